"""Request and response models of the HTTP API (pydantic), separate from the database tables."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

OPERATION_PATTERN = r"^[1-9][0-9]?\.[1-9][0-9]?$"
ISSUER_CODE_PATTERN = r"^[A-Z0-9][A-Z0-9-]{0,15}$"
# Paging deeper than this is a mistake or an attack; it also keeps OFFSET inside a 64-bit integer.
MAX_OFFSET = 1_000_000_000

ReasonCode = Literal[
    "malformed",
    "unsupported_format",
    "unsupported_algorithm",
    "unknown_key",
    "key_revoked",
    "bad_signature",
    "not_yet_valid",
    "expired",
    "review_overdue",
    "suspended",
    "revoked",
    "superseded",
    "key_not_valid_at_issue",
    "unknown_certificate",
    "claims_mismatch",
    "issuer_not_authorized",
    "operation_not_covered",
    "holder_mismatch",
]
REASON_CODES: tuple[str, ...] = get_args(ReasonCode)


class Strict(BaseModel):
    """Base for request bodies: unknown fields are an error, strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ErrorDetail(BaseModel):
    """The body of every error response."""

    code: str = Field(examples=["validation_error"])
    message: str
    details: object | None = None


class ErrorResponse(BaseModel):
    """``{"error": {...}}``."""

    error: ErrorDetail


class IssuerCreate(Strict):
    """A new issuing authority; it gets its first signing key at once."""

    code: str = Field(pattern=ISSUER_CODE_PATTERN, examples=["CN-44"])
    name: str = Field(min_length=1, max_length=200, examples=["广东省应急管理厅"])
    region: str = Field(min_length=1, max_length=100, examples=["广东省"])
    operations: list[str] = Field(min_length=1, max_length=200, examples=[["2.1", "2.2", "1.2"]])
    alg: Literal["ES256", "EdDSA"] = "ES256"


class IssuerScopeUpdate(Strict):
    """The operation items an issuer may certify from now on."""

    operations: list[str] = Field(max_length=200, examples=[["1.1", "1.2"]])


SERVICE_PHONE_PATTERN = r"^\+?[0-9][0-9 ()-]{2,30}$"


class IssuerUpdate(Strict):
    """Fields of an issuer to change; a field left out stays as it is, ``service_phone: null`` removes the phone."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    region: str | None = Field(default=None, min_length=1, max_length=100)
    service_phone: str | None = Field(
        default=None,
        pattern=SERVICE_PHONE_PATTERN,
        max_length=32,
        description="whom a site manager calls about a refused certificate; digits, spaces, +, -, ( )",
        examples=["020-12345678"],
    )


KeyUseName = Literal["certificate", "status_list"]
KeyStateName = Literal["active", "retired", "compromised"]
CertificateStatus = Literal["valid", "suspended", "revoked", "superseded"]


class SigningKeyOut(BaseModel):
    """A signing key's public facts: what it signs, its signing window and its state."""

    kid: str = Field(examples=["3f2a9c0d1e4b5a67"])
    alg: str
    use: KeyUseName
    state: KeyStateName
    not_before: datetime
    not_after: datetime | None
    compromised_at: datetime | None = None


class IssuerOut(BaseModel):
    """An issuer with its signing keys."""

    code: str
    name: str
    region: str
    service_phone: str | None
    operations: list[str]
    keys: list[SigningKeyOut]


class KeyCompromise(Strict):
    """A signing key reported compromised: why, and since when (default: now)."""

    reason: str = Field(min_length=1, max_length=500, examples=["private key copied from the exam centre's PC"])
    compromised_at: AwareDatetime | None = Field(
        default=None,
        examples=["2026-11-28T09:00:00+08:00"],
        description="when the key was compromised at the latest (with a time zone); certificates registered "
        "from then on are refused online, earlier ones are listed for reissue",
    )


class ReissueItem(BaseModel):
    """A certificate of a compromised key registered before the compromise: still accepted online, to reissue."""

    id: str
    serial: str
    status: CertificateStatus
    created_at: datetime


class ReissueList(BaseModel):
    """One page of certificates to reissue; ``next_after`` continues it (null: the last page)."""

    kid: str
    compromised_at: datetime | None
    items: list[ReissueItem]
    next_after: str | None


IssuanceBasis = Literal["reissue", "renewal", "legacy_migration"]
ID_PATTERN = r"^[0-9a-f]{32}$"


class CertificateCreate(Strict):
    """A certificate to sign: from a passed exam result (``exam_result_id``), or from holder fields directly.

    With ``exam_result_id`` the holder comes from the result, so holder fields beside it are a 422. Without
    one, ``CERTSEAL_DIRECT_ISSUANCE`` decides: ``allowed``, ``with_basis`` (``basis`` is required) or ``off``.
    """

    exam_result_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="a passed, uncertified, still usable exam result of this issuer"
    )
    holder_name: str | None = Field(default=None, min_length=1, max_length=32, examples=["张伟"])
    holder_id_number: str | None = Field(default=None, min_length=15, max_length=40, examples=["11010519900307123X"])
    operation: str | None = Field(default=None, pattern=OPERATION_PATTERN, examples=["2.1"])
    issue_date: date | None = Field(default=None, examples=["2026-11-20"], description="default: today (China time)")
    valid_until: date | None = Field(default=None, description="default: issue date + 6 years - 1 day")
    review_due: date | None = Field(default=None, description="default by policy: issue date + 3 years")
    photo_base64: str | None = Field(default=None, description="JPEG or PNG, base64; EXIF is removed")
    basis: IssuanceBasis | None = Field(
        default=None,
        description="without an exam result: why (required when CERTSEAL_DIRECT_ISSUANCE is with_basis); recorded",
    )

    @model_validator(mode="after")
    def _exam_result_or_holder(self) -> CertificateCreate:
        if self.exam_result_id is not None:
            given = [name for name in _HOLDER_FIELDS if getattr(self, name) is not None]
            if given:
                raise ValueError(f"the exam result names the holder: leave out {', '.join(given)}")
            if self.basis is not None:
                raise ValueError("basis is for issuance without an exam result")
            return self
        missing = [name for name in _HOLDER_FIELDS[:3] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"give exam_result_id, or {', '.join(missing)}")
        return self


_HOLDER_FIELDS = ("holder_name", "holder_id_number", "operation", "photo_base64")


class CertificateReissue(Strict):
    """Reissue a valid certificate (lost card, key compromise, correction): re-signed under the current key."""

    reason: str = Field(min_length=1, max_length=500, examples=["证件遗失补发"])
    photo_base64: str | None = Field(default=None, description="a new photo (JPEG or PNG, base64); default: the old")


class StatusChange(Strict):
    """A status change needs a reason, kept in the audit trail."""

    reason: str = Field(min_length=1, max_length=500, examples=["违规作业，暂扣证件"])


class ReviewRecord(Strict):
    """A passed review (复审): the new review-due date, which wins over the signed one online."""

    next_review_due: date | None = Field(default=None, description="default: today + review interval")
    note: str | None = Field(default=None, max_length=500)


class OperationOut(BaseModel):
    """A catalogue item with its names."""

    code: str = Field(examples=["2.1"])
    zh: str | None = Field(examples=["熔化焊接与热切割作业"])
    en: str | None = Field(examples=["Fusion welding and thermal cutting"])
    category_zh: str | None = None
    category_en: str | None = None
    covers_hot_work: bool


class CertificateOut(BaseModel):
    """A certificate as its issuer sees it (masked ID number only)."""

    id: str
    serial: str
    issuer: str
    kid: str
    status: CertificateStatus
    status_reason: str | None
    status_changed_at: datetime | None
    holder_name: str
    masked_id: str = Field(examples=["1101**********123X"])
    operation: OperationOut
    issue_date: date
    valid_until: date
    review_due: date | None
    has_photo: bool
    status_index: int
    qr_text: str
    links: dict[str, str]
    created_at: datetime
    basis: str | None = Field(
        description="exam, reissue, renewal, legacy_migration or direct (null: issued before bases were recorded)"
    )
    exam_result_id: str | None
    exam_session_id: str | None
    supersedes_id: str | None = Field(description="the certificate this reissue replaced")
    batch_id: str | None


class CertificateSearch(Strict):
    """Find the calling issuer's certificates of one holder: the ID number travels in the body, never in a URL."""

    holder_id_number: str = Field(
        min_length=1, max_length=40, description="the holder's full ID number, matched by keyed hash"
    )
    status: CertificateStatus | None = None
    operation: str | None = Field(default=None, pattern=OPERATION_PATTERN, examples=["2.1"])
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class CertificatePage(BaseModel):
    """One page of certificates."""

    items: list[CertificateOut]
    total: int
    limit: int
    offset: int


class VerifyRequest(Strict):
    """What a site manager's phone or a third-party app asks."""

    qr: str = Field(
        min_length=1, max_length=4096, description="QR text or URL", examples=["https://cert.example.gov.cn/c1#0123..."]
    )
    holder_id_number: str | None = Field(
        default=None, max_length=40, description="the worker's full ID number, checked by keyed hash"
    )
    purpose: Literal["hot_work"] | None = None
    operation: str | None = Field(default=None, pattern=OPERATION_PATTERN, examples=["2.1"])


class IssuerBrief(BaseModel):
    """Issuer code, name and the phone a site manager calls about a refused certificate."""

    code: str
    name: str | None
    service_phone: str | None = None


class ExamPointBrief(BaseModel):
    """An exam point's code and name."""

    code: str = Field(examples=["GD-GZ-001"])
    name: str = Field(examples=["广州市安全生产考试点（天河）"])


class StatusListRef(BaseModel):
    """A certificate's entry in a status list: the list's URI (its ``sub``) and the index in it."""

    uri: str = Field(examples=["https://cert.example.gov.cn/v1/status-lists/CN-44/3"])
    idx: int = Field(ge=0, le=131_071)


class TrustListPublished(BaseModel):
    """The trust list just stored."""

    sequence: int
    iat: datetime
    exp: datetime


class StatusListAggregation(BaseModel):
    """Every status list (the draft's Status List Aggregation)."""

    status_lists: list[str]


class VerifiedCertificateOut(BaseModel):
    """The certificate summary a verifier shows."""

    serial: str
    issuer: IssuerBrief
    holder_name: str
    masked_id: str
    operation: OperationOut
    valid_from: date
    valid_until: date
    review_due: date | None
    status: CertificateStatus | None
    status_since: datetime | None = Field(description="when the status last changed (null: never since issuance)")
    status_list: StatusListRef | None = Field(description="where offline verifiers read this certificate's status")
    superseded_by: str | None = Field(
        default=None, description="a superseded certificate: the serial of the certificate reissued in its place"
    )
    exam_point: ExamPointBrief | None = Field(
        default=None, description="where the exam behind this certificate was passed (null: none recorded)"
    )
    photo_url: str | None


class VerifyResponse(BaseModel):
    """Accept or reject, every reason, the checks that ran and the certificate."""

    decision: Literal["accept", "reject"]
    reasons: list[ReasonCode]
    checks: list[str] = Field(examples=[["format", "signature", "validity", "registry", "status", "issuer", "review"]])
    checked_at: datetime
    certificate: VerifiedCertificateOut | None
    message: str | None = Field(
        default=None,
        description="what is wrong with a QR text the URL rule refused (only `format` ran); otherwise null",
        examples=["URL path must end with /c1: the version path is case-sensitive"],
    )


class PublicKeyOut(BaseModel):
    """A verifying key for offline checks: JWK and PEM, with what it signs, its windows and state."""

    kid: str
    issuer: str
    alg: str
    use: KeyUseName
    state: KeyStateName
    not_before: datetime
    not_after: datetime | None
    verify_until: datetime | None
    compromised_at: datetime | None
    jwk: dict[str, str]
    pem: str


class KeyList(BaseModel):
    """All issuers' public keys."""

    keys: list[PublicKeyOut]
    generated_at: datetime


class CatalogueItemOut(BaseModel):
    """One operation item: its code (category.item) and names."""

    code: str = Field(examples=["2.1"])
    zh: str = Field(examples=["熔化焊接与热切割作业"])
    en: str = Field(examples=["Fusion welding and thermal cutting"])


class CatalogueCategoryOut(BaseModel):
    """One category of the catalogue with its items."""

    code: int = Field(examples=[2])
    zh: str = Field(examples=["焊接与热切割作业"])
    en: str = Field(examples=["Welding and hot cutting"])
    items: list[CatalogueItemOut]


class CatalogueOut(BaseModel):
    """The operation catalogue: how a credential's operation [category, item] maps to a job title."""

    hot_work_category: int = Field(examples=[2], description="the category every verifier treats as hot work")
    categories: list[CatalogueCategoryOut]


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "unavailable"]


class Readiness(BaseModel):
    """Readiness: ``ok``; ``degraded`` naming optional dependencies down; or ``unavailable`` with what failed."""

    status: Literal["ok", "degraded", "unavailable"]

    failed: list[str] | None = Field(
        default=None,
        examples=[["database"]],
        description="on 503 only: what failed, e.g. `database`, `schema` (migrations not at head)",
    )
    degraded: list[str] | None = Field(
        default=None,
        examples=[["redis"]],
        description="on 200 with status `degraded` only: optional dependencies that do not answer, e.g. "
        "`redis` (rate limits then count per process)",
    )
