"""Exam points (考试点): register with their 教考分离 exclusions, suspend, reinstate, close, certificates to review."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlmodel import Session

import crypto
from schemas.api import MAX_OFFSET, ErrorResponse
from schemas.exams import (
    CertificateToReview,
    CertificateToReviewPage,
    ExamPointClose,
    ExamPointCreate,
    ExamPointOut,
    ExamPointPage,
    ExamPointStatusChange,
)

from ..db import read_transaction, write_transaction
from ..deps import CatalogueDep, ClockDep, IssuerOrAdminDep, OwnedExamPointDep, SessionDep
from ..errors import DATABASE_UNAVAILABLE_RESPONSE
from ..models import ExamPoint
from ..services import exam_registry

router = APIRouter(
    prefix="/v1/exam-points",
    tags=["exams"],
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        **DATABASE_UNAVAILABLE_RESPONSE,
    },
)


def exam_points_out(session: Session, points: list[ExamPoint]) -> list[ExamPointOut]:
    """Describe exam points with their issuers' codes and exclusions."""
    with read_transaction(session):
        issuers = exam_registry.issuer_codes(session, {point.issuer_id for point in points})
        excluded = exam_registry.excluded_codes(session, [point.id for point in points])
    return [
        ExamPointOut(
            code=point.code,
            issuer=issuers[point.issuer_id],
            name=point.name,
            region=point.region,
            address=point.address,
            operations=point.operations,
            capacity_per_session=point.capacity_per_session,
            accredited_from=point.accredited_from,
            accredited_until=point.accredited_until,
            status=point.status,  # type: ignore[arg-type]
            status_reason=point.status_reason,
            status_changed_at=point.status_changed_at,
            review_from=point.review_from,
            excluded_training_institutions=excluded[point.id],
            created_at=point.created_at,
        )
        for point in points
    ]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ExamPointOut,
    summary="Register an exam point and the training institutions it must not examine for (issuer key or admin)",
    responses={409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
def create_exam_point(
    body: ExamPointCreate, principal: IssuerOrAdminDep, session: SessionDep, catalogue: CatalogueDep, clock: ClockDep
) -> ExamPointOut:
    """Items must be within the issuer's scope (403 `operation_not_allowed`); exclusions name institutions the
    same issuer registered (422 `unknown_training_institution`)."""
    with write_transaction(session):
        issuer = exam_registry.owning_issuer(session, caller=principal.issuer, code=body.issuer)
        point = exam_registry.create_exam_point(
            session,
            issuer=issuer,
            code=body.code,
            name=body.name,
            region=body.region,
            address=body.address,
            operations=body.operations,
            capacity_per_session=body.capacity_per_session,
            accredited_from=body.accredited_from,
            accredited_until=body.accredited_until,
            excluded_training_institutions=body.excluded_training_institutions,
            catalogue=catalogue,
            now=clock.now(),
        )
    return exam_points_out(session, [point])[0]


@router.get("", response_model=ExamPointPage, summary="List exam points (own; admin: all)")
def list_exam_points(
    principal: IssuerOrAdminDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> ExamPointPage:
    """By code, each with its status and exclusions."""
    with read_transaction(session):
        total, rows = exam_registry.list_exam_points(session, owner=principal.owner, limit=limit, offset=offset)
    return ExamPointPage(items=exam_points_out(session, rows), total=total, limit=limit, offset=offset)


@router.get("/{code}", response_model=ExamPointOut, summary="Read an exam point with its exclusions")
def read_exam_point(point: OwnedExamPointDep, session: SessionDep) -> ExamPointOut:
    """Another issuer's exam point answers 404 `exam_point_not_found`."""
    return exam_points_out(session, [point])[0]


_TRANSITION = {409: {"model": ErrorResponse, "description": "`invalid_exam_point_transition`"}}


@router.post(
    "/{code}/suspend",
    response_model=ExamPointOut,
    summary="Suspend an active exam point: no new sessions there",
    responses=_TRANSITION,
)
def suspend_exam_point(
    body: ExamPointStatusChange, point: OwnedExamPointDep, session: SessionDep, clock: ClockDep
) -> ExamPointOut:
    """Only an active point can be suspended."""
    with write_transaction(session):
        exam_registry.change_exam_point_status(
            session, point=point, action="suspend", reason=body.reason, now=clock.now()
        )
    return exam_points_out(session, [point])[0]


@router.post(
    "/{code}/reinstate",
    response_model=ExamPointOut,
    summary="Reinstate a suspended exam point",
    responses=_TRANSITION,
)
def reinstate_exam_point(
    body: ExamPointStatusChange, point: OwnedExamPointDep, session: SessionDep, clock: ClockDep
) -> ExamPointOut:
    """Only a suspended point can be reinstated; a closed one stays closed."""
    with write_transaction(session):
        exam_registry.change_exam_point_status(
            session, point=point, action="reinstate", reason=body.reason, now=clock.now()
        )
    return exam_points_out(session, [point])[0]


@router.post(
    "/{code}/close",
    response_model=ExamPointOut,
    summary="Close an exam point for good; its certificates issued from review_from on are listed for review",
    responses=_TRANSITION,
)
def close_exam_point(
    body: ExamPointClose, point: OwnedExamPointDep, session: SessionDep, clock: ClockDep
) -> ExamPointOut:
    """Final. Nothing is revoked automatically: see `GET /v1/exam-points/{code}/certificates-to-review`."""
    with write_transaction(session):
        exam_registry.change_exam_point_status(
            session, point=point, action="close", reason=body.reason, review_from=body.review_from, now=clock.now()
        )
    return exam_points_out(session, [point])[0]


@router.get(
    "/{code}/certificates-to-review",
    response_model=CertificateToReviewPage,
    summary="A closed exam point's certificates issued from its review_from date on (listed, never revoked)",
)
def certificates_to_review(
    point: OwnedExamPointDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> CertificateToReviewPage:
    """Empty unless the point is closed; by issue date."""
    with read_transaction(session):
        total, rows = exam_registry.certificates_to_review(session, point=point, limit=limit, offset=offset)
    items = [
        CertificateToReview(
            id=row.id,
            serial=row.serial,
            holder_name=row.holder_name,
            masked_id=crypto.display_masked(row.masked_id),
            operation=row.operation,
            issue_date=row.issue_date,
            status=row.status,
            exam_session_id=row.exam_session_id,
        )
        for row in rows
    ]
    return CertificateToReviewPage(items=items, total=total, limit=limit, offset=offset)
