"""Exam results one at a time: read one, set its photo."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import Response

from schemas.api import ErrorResponse
from schemas.exams import ExamResultOut, ExamResultPhoto, ReapplicationOverride

from ..db import write_transaction
from ..deps import AdminDep, OwnedExamResultDep, SessionDep, SettingsDep
from ..errors import DATABASE_UNAVAILABLE_RESPONSE
from ..services import exam_results
from ..services.photos import clean_photo

router = APIRouter(
    prefix="/v1/exam-results",
    tags=["exams"],
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        **DATABASE_UNAVAILABLE_RESPONSE,
    },
)


def result_out(row: Any) -> ExamResultOut:
    """Describe a result row (from :func:`api.services.exam_results.session_results`): the masked ID only."""
    return ExamResultOut(
        id=row.id,
        session_id=row.session_id,
        holder_name=row.holder_name,
        masked_id=exam_results.display_masked(row.masked_id),
        theory_score=row.theory_score,
        practical_score=row.practical_score,
        passed=row.passed,
        attempt=row.attempt,
        training_institution=row.training_institution_code,
        training_institution_registered=row.training_institution_registered,
        usable_until=row.usable_until,
        has_photo=bool(row.has_photo),
        certificate_id=row.certificate_id,
        certificate_serial=row.certificate_serial,
        reapplication_override=row.bar_override_reason,
        created_at=row.created_at,
    )


@router.get("/{result_id}", response_model=ExamResultOut, summary="Read one exam result")
def read_exam_result(result: OwnedExamResultDep) -> ExamResultOut:
    """Another issuer's result answers 404 `exam_result_not_found`."""
    return result_out(result)


@router.put(
    "/{result_id}/photo",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Set a candidate's photo (JPEG or PNG, re-encoded from its pixels)",
    responses={413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
def put_exam_result_photo(
    body: ExamResultPhoto, result: OwnedExamResultDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """Decoded before the write transaction: waiting for a decoder holds no connection."""
    photo = clean_photo(body.photo_base64, max_bytes=settings.max_photo_bytes)
    with write_transaction(session):
        exam_results.set_photo(session, result_id=result.id, photo=photo)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{result_id}/reapplication-override",
    response_model=ExamResultOut,
    summary="Lift the 3-year reapplication bar for this result (admin, with a reason)",
    responses={422: {"model": ErrorResponse}},
)
def override_reapplication_bar(
    body: ReapplicationOverride, result: OwnedExamResultDep, admin: AdminDep, session: SessionDep
) -> ExamResultOut:
    """A holder whose certificate for the item was revoked within 3 years may then be certified from this result."""
    with write_transaction(session):
        exam_results.override_reapplication_bar(session, result_id=result.id, reason=body.reason, actor=admin.actor)
        row = exam_results.find_result(session, result_id=result.id, owner=None)
    return result_out(row)
