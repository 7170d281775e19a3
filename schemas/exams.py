"""Request and response models of the exam chain: training institutions, exam points, sessions and results.

No model carries a full ID number: results show the masked form only, and the import report names rows
by line number, never by the values in them.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from .api import ISSUER_CODE_PATTERN, OPERATION_PATTERN, Strict

# Codes of exam points and training institutions: unique nationwide, printed on documents.
EXAM_CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
_EXAM_CODE = re.compile(EXAM_CODE_PATTERN)
# The fixed CSV header of a results upload (issue 13: clients and scripts rely on it).
RESULTS_CSV_HEADER = ("id_number", "name", "theory_score", "practical_score", "training_institution")
MAX_RESULT_ROWS = 20_000
MAX_CAPACITY = 10_000
# Dates of the exam chain (accreditation, exam, review): nothing before the national scheme or past this
# century. Year 1 or 9999 is a typo or an attack, and date arithmetic on it (validity, retake windows) overflows.
EARLIEST_EXAM_DATE = date(1990, 1, 1)
LATEST_EXAM_DATE = date(2099, 12, 31)
ExamChainDate = Annotated[
    date,
    Field(ge=EARLIEST_EXAM_DATE, le=LATEST_EXAM_DATE, description="from 1990-01-01 to 2099-12-31"),
]
ExamCode = Annotated[str, Field(pattern=EXAM_CODE_PATTERN)]


def could_be_code(text: str) -> bool:
    """Whether ``text`` has the shape of an exam point's or training institution's code (checked before any query:
    anything else names no row, and some values, a NUL character, are not even valid text to PostgreSQL)."""
    return _EXAM_CODE.fullmatch(text) is not None


# A proctor's id as the exam point writes it (a staff number, or a name): no control, format or unassigned
# characters (bidi overrides, zero-width spaces, NUL), which no one types and the database may refuse.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _visible_text(value: str) -> str:
    if any(unicodedata.category(character) in _INVISIBLE_CATEGORIES for character in value):
        raise ValueError("control or format characters are not allowed")
    return value


ProctorId = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_visible_text)]
# Names, regions and addresses shown to people (an exam point's name reaches the site manager's phone page):
# a bidi override or a control character there could make them read something else.
VisibleText = AfterValidator(_visible_text)

ExamPointStatus = Literal["active", "suspended", "closed"]


class TrainingInstitutionCreate(Strict):
    """A training institution (培训机构); the admin names the issuer it belongs to, an issuer key its own."""

    code: str = Field(pattern=EXAM_CODE_PATTERN, examples=["GD-TI-0001"])
    name: Annotated[str, VisibleText] = Field(min_length=1, max_length=200, examples=["广州市安全技术培训中心"])
    region: Annotated[str, VisibleText] = Field(min_length=1, max_length=100, examples=["广东省广州市"])
    issuer: str | None = Field(default=None, pattern=ISSUER_CODE_PATTERN, description="admin only")


class TrainingInstitutionOut(BaseModel):
    """A registered training institution."""

    code: str
    name: str
    region: str
    issuer: str
    created_at: datetime


class TrainingInstitutionPage(BaseModel):
    """One page of training institutions, by code."""

    items: list[TrainingInstitutionOut]
    total: int
    limit: int
    offset: int


class ExamPointCreate(Strict):
    """An exam point (考试点) and the training institutions it must not examine for (教考分离)."""

    code: str = Field(pattern=EXAM_CODE_PATTERN, examples=["GD-EP-0001"])
    name: Annotated[str, VisibleText] = Field(min_length=1, max_length=200, examples=["广州市特种作业考试点（黄埔）"])
    region: Annotated[str, VisibleText] = Field(min_length=1, max_length=100, examples=["广东省广州市"])
    address: Annotated[str, VisibleText] = Field(min_length=1, max_length=300)
    operations: list[str] = Field(min_length=1, max_length=200, examples=[["2.1", "2.2"]])
    capacity_per_session: int = Field(ge=1, le=MAX_CAPACITY)
    accredited_from: ExamChainDate
    accredited_until: ExamChainDate | None = None
    excluded_training_institutions: list[ExamCode] = Field(default_factory=list, max_length=1000)
    issuer: str | None = Field(default=None, pattern=ISSUER_CODE_PATTERN, description="admin only")


class ExamPointOut(BaseModel):
    """An exam point with its status and exclusions."""

    code: str
    issuer: str
    name: str
    region: str
    address: str
    operations: list[str]
    capacity_per_session: int
    accredited_from: date
    accredited_until: date | None
    status: ExamPointStatus
    status_reason: str | None
    status_changed_at: datetime | None
    review_from: date | None
    excluded_training_institutions: list[str]
    created_at: datetime


class ExamPointPage(BaseModel):
    """One page of exam points, by code."""

    items: list[ExamPointOut]
    total: int
    limit: int
    offset: int


class ExamPointStatusChange(Strict):
    """Why an exam point is suspended or reinstated."""

    reason: str = Field(min_length=1, max_length=500)


class ExamPointClose(Strict):
    """Close an exam point for good; its certificates issued from ``review_from`` on are listed for review."""

    reason: str = Field(min_length=1, max_length=500)
    review_from: ExamChainDate


class CertificateToReview(BaseModel):
    """A certificate an exam point produced, listed after the point was closed (never revoked automatically)."""

    id: str
    serial: str
    holder_name: str
    masked_id: str
    operation: str
    issue_date: date
    status: str
    exam_session_id: str | None


class CertificateToReviewPage(BaseModel):
    """One page of certificates to review, by issue date."""

    items: list[CertificateToReview]
    total: int
    limit: int
    offset: int


class ExamSessionCreate(Strict):
    """One exam session: an operation item at an exam point on one day."""

    exam_point: str = Field(pattern=EXAM_CODE_PATTERN)
    operation: str = Field(pattern=OPERATION_PATTERN, examples=["2.1"])
    exam_date: ExamChainDate
    theory_exam: bool = True
    practical_exam: bool = True
    real_equipment: bool = False
    proctor_ids: list[ProctorId] = Field(default_factory=list, max_length=50)


class ExamSessionOut(BaseModel):
    """An exam session and how many results it holds."""

    id: str
    issuer: str
    exam_point: str
    operation: str
    exam_date: date
    theory_exam: bool
    practical_exam: bool
    real_equipment: bool
    proctor_ids: list[str]
    results: int
    created_at: datetime


class ExamSessionPage(BaseModel):
    """One page of exam sessions, newest exam date first."""

    items: list[ExamSessionOut]
    total: int
    limit: int
    offset: int


class RowIssue(BaseModel):
    """One refused row (an error) or one remark on a recorded row (a warning); never the row's values."""

    line: int = Field(
        description="1-based physical line of the CSV (the header is line 1), or position in the JSON list"
    )
    code: str
    message: str


class ImportReport(BaseModel):
    """What a results upload did, row by row."""

    rows: int = Field(description="rows read (the header and blank lines not counted)")
    accepted: int = Field(description="rows newly recorded")
    unchanged: int = Field(description="rows already recorded with the same data (a re-import changes nothing)")
    passed: int = Field(description="of the rows newly recorded, the passes")
    rejected: int
    errors: list[RowIssue]
    warnings: list[RowIssue]


class ExamResultOut(BaseModel):
    """One candidate's result (the masked ID only)."""

    id: str
    session_id: str
    holder_name: str
    masked_id: str
    theory_score: int
    practical_score: int
    passed: bool
    attempt: int
    training_institution: str | None
    training_institution_registered: bool
    usable_until: date
    has_photo: bool
    certificate_id: str | None
    certificate_serial: str | None
    reapplication_override: str | None = Field(
        description="why an admin lifted the 3-year bar after a revocation for this holder and item (null: not lifted)"
    )
    created_at: datetime


class ReapplicationOverride(Strict):
    """An admin lifts the 3-year reapplication bar for one exam result, with a reason kept on the result."""

    reason: str = Field(min_length=1, max_length=500, examples=["复议撤销原吊销决定"])


class ExamResultPage(BaseModel):
    """One page of a session's results."""

    items: list[ExamResultOut]
    total: int
    limit: int
    offset: int


class PhotoIssue(BaseModel):
    """A zip entry that was not stored: its 1-based position in the zip, never its name."""

    entry: int
    code: str
    message: str


class PhotoReport(BaseModel):
    """What a photo zip did."""

    entries: int
    matched: int
    errors: list[PhotoIssue]


class ExamResultPhoto(Strict):
    """A candidate's photo (JPEG or PNG, base64), re-encoded from its pixels before it is stored."""

    photo_base64: str = Field(min_length=1)
