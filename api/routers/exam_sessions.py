"""Exam sessions: open one at an exam point, import its results in bulk (JSON or CSV), list them, upload photos."""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request, status
from sqlmodel import Session

from schemas.api import MAX_OFFSET, ErrorResponse
from schemas.exams import (
    EXAM_CODE_PATTERN,
    RESULTS_CSV_HEADER,
    ExamResultPage,
    ExamSessionCreate,
    ExamSessionOut,
    ExamSessionPage,
    ImportReport,
    PhotoReport,
)

from ..db import read_transaction, write_transaction
from ..deps import CatalogueDep, ClockDep, IssuerOrAdminDep, OwnedExamSessionDep, SessionDep, SettingsDep
from ..errors import DATABASE_UNAVAILABLE_RESPONSE, ApiError
from ..models import ExamSession
from ..services import exam_registry, exam_results
from ..settings import Settings
from .exam_results import result_out

router = APIRouter(
    prefix="/v1/exam-sessions",
    tags=["exams"],
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        **DATABASE_UNAVAILABLE_RESPONSE,
    },
)


def sessions_out(session: Session, rows: list[ExamSession]) -> list[ExamSessionOut]:
    """Describe sessions with their issuer and exam point codes and result counts."""
    with read_transaction(session):
        issuers = exam_registry.issuer_codes(session, {row.issuer_id for row in rows})
        points = exam_registry.point_codes(session, {row.exam_point_id for row in rows})
        counts = exam_registry.result_counts(session, [row.id for row in rows])
    return [
        ExamSessionOut(
            id=row.id,
            issuer=issuers[row.issuer_id],
            exam_point=points[row.exam_point_id],
            operation=row.operation,
            exam_date=row.exam_date,
            theory_exam=row.theory_exam,
            practical_exam=row.practical_exam,
            real_equipment=row.real_equipment,
            proctor_ids=row.proctor_ids,
            results=counts.get(row.id, 0),
            created_at=row.created_at,
        )
        for row in rows
    ]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ExamSessionOut,
    summary="Open an exam session at an active, accredited exam point",
    responses={409: {"model": ErrorResponse, "description": "`exam_point_not_active`"}, 422: {"model": ErrorResponse}},
)
def create_exam_session(
    body: ExamSessionCreate, principal: IssuerOrAdminDep, session: SessionDep, catalogue: CatalogueDep, clock: ClockDep
) -> ExamSessionOut:
    """The item must be one of the point's and its issuer's (403 `operation_not_allowed`); a suspended or
    closed point, or an exam date outside its accreditation, is 409 `exam_point_not_active`."""
    with write_transaction(session):
        created = exam_registry.create_exam_session(
            session,
            point_code=body.exam_point,
            owner=principal.owner,
            operation=body.operation,
            exam_date=body.exam_date,
            theory_exam=body.theory_exam,
            practical_exam=body.practical_exam,
            real_equipment=body.real_equipment,
            proctor_ids=body.proctor_ids,
            catalogue=catalogue,
            now=clock.now(),
        )
    return sessions_out(session, [created])[0]


@router.get("", response_model=ExamSessionPage, summary="List exam sessions (own; admin: all)")
def list_exam_sessions(
    principal: IssuerOrAdminDep,
    session: SessionDep,
    exam_point: Annotated[str | None, Query(pattern=EXAM_CODE_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> ExamSessionPage:
    """Newest exam date first; `exam_point` keeps one point's sessions."""
    with read_transaction(session):
        total, rows = exam_registry.list_exam_sessions(
            session, owner=principal.owner, point_code=exam_point, limit=limit, offset=offset
        )
    return ExamSessionPage(items=sessions_out(session, rows), total=total, limit=limit, offset=offset)


@router.get("/{session_id}", response_model=ExamSessionOut, summary="Read an exam session")
def read_exam_session(exam_session: OwnedExamSessionDep, session: SessionDep) -> ExamSessionOut:
    """Another issuer's session answers 404 `exam_session_not_found`."""
    return sessions_out(session, [exam_session])[0]


def _media_type(request: Request, accepted: tuple[str, ...], hint: str) -> str:
    """The request body's media type (parameters such as charset dropped) if it is one of ``accepted``, else 415."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in accepted:
        raise ApiError(415, "unsupported_media_type", hint)
    return media_type


# Windows (and so many upload tools) label a zip application/x-zip-compressed.
ZIP_MEDIA_TYPES = ("application/zip", "application/x-zip-compressed")

_ROW_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id_number", "name", "theory_score", "practical_score"],
    "properties": {
        "id_number": {"type": "string"},
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 32,
            "description": "letters, marks, middle dots, spaces",
        },
        "theory_score": {"type": "integer", "minimum": 0, "maximum": 100},
        "practical_score": {"type": "integer", "minimum": 0, "maximum": 100},
        "training_institution": {"type": ["string", "null"], "pattern": EXAM_CODE_PATTERN},
    },
}
_RESULTS_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"type": "array", "maxItems": 20000, "items": _ROW_SCHEMA}},
        "text/csv": {
            "schema": {"type": "string", "description": "UTF-8 (BOM optional); header: " + ",".join(RESULTS_CSV_HEADER)}
        },
    },
}


def _import(
    session: Session, exam_session: ExamSession, data: bytes, kind: str, settings: Settings, now: Any
) -> ImportReport:
    rows = exam_results.parse_csv(data) if kind == "csv" else exam_results.parse_json(data)
    with write_transaction(session):
        return exam_results.import_results(session, exam_session=exam_session, rows=rows, settings=settings, now=now)


@router.post(
    "/{session_id}/results",
    response_model=ImportReport,
    summary="Import results: a JSON list or a CSV file; a per-row report (re-importing the same rows changes nothing)",
    openapi_extra={"requestBody": _RESULTS_BODY},
    responses={
        409: {"model": ErrorResponse, "description": "`exam_not_held`: the exam date is still ahead"},
        413: {"model": ErrorResponse},
        415: {"model": ErrorResponse},
        422: {
            "model": ErrorResponse,
            "description": "`invalid_csv_header`, `invalid_encoding`, `malformed_csv`, `invalid_results_body`, "
            "`too_many_rows` (over 20,000)",
        },
    },
)
async def import_results(
    request: Request, exam_session: OwnedExamSessionDep, session: SessionDep, settings: SettingsDep, clock: ClockDep
) -> ImportReport:
    """Good rows are recorded even when others are refused; each refused row gets `{line, code, message}`."""
    media_type = _media_type(request, ("application/json", "text/csv"), "send application/json or text/csv")
    data = await request.body()
    kind = "csv" if media_type == "text/csv" else "json"
    return await to_thread.run_sync(_import, session, exam_session, data, kind, settings, clock.now())


@router.get("/{session_id}/results", response_model=ExamResultPage, summary="List a session's results (paged)")
def list_results(
    exam_session: OwnedExamSessionDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> ExamResultPage:
    """Masked IDs only; each with its certificate's id and serial once one is issued."""
    with read_transaction(session):
        total, rows = exam_results.session_results(session, exam_session=exam_session, limit=limit, offset=offset)
    return ExamResultPage(items=[result_out(row) for row in rows], total=total, limit=limit, offset=offset)


@router.post(
    "/{session_id}/photos",
    response_model=PhotoReport,
    summary="Upload photos: a zip of <ID number>.jpg|.jpeg|.png, matched by keyed hash (names never kept)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in ZIP_MEDIA_TYPES
            },
        }
    },
    responses={
        413: {"model": ErrorResponse},
        415: {"model": ErrorResponse, "description": "`unsupported_media_type`: not application/zip"},
        422: {"model": ErrorResponse, "description": "`invalid_zip`"},
        503: {"model": ErrorResponse, "description": "`busy`: every photo decoder stayed busy"},
    },
)
async def upload_photos(
    request: Request, exam_session: OwnedExamSessionDep, session: SessionDep, settings: SettingsDep
) -> PhotoReport:
    """Each entry is re-encoded from its pixels; refused entries are named by position with a code."""
    _media_type(request, ZIP_MEDIA_TYPES, "send the photos as application/zip")
    data = await request.body()
    return await to_thread.run_sync(
        lambda: exam_results.import_photo_zip(session, exam_session=exam_session, data=data, settings=settings)
    )
