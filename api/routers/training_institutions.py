"""Training institutions (培训机构): an issuer registers its own; the admin registers for any issuer and sees all."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlmodel import Session

from schemas.api import MAX_OFFSET, ErrorResponse
from schemas.exams import (
    TrainingInstitutionCreate,
    TrainingInstitutionOut,
    TrainingInstitutionPage,
)

from ..db import read_transaction, write_transaction
from ..deps import ClockDep, IssuerOrAdminDep, OwnedTrainingInstitutionDep, SessionDep
from ..errors import DATABASE_UNAVAILABLE_RESPONSE
from ..models import TrainingInstitution
from ..services import exam_registry

router = APIRouter(
    prefix="/v1/training-institutions",
    tags=["exams"],
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        **DATABASE_UNAVAILABLE_RESPONSE,
    },
)


def institution_out(session: Session, institutions: list[TrainingInstitution]) -> list[TrainingInstitutionOut]:
    """Describe institutions with their issuers' codes."""
    with read_transaction(session):
        codes = exam_registry.issuer_codes(session, {row.issuer_id for row in institutions})
    return [
        TrainingInstitutionOut(
            code=row.code, name=row.name, region=row.region, issuer=codes[row.issuer_id], created_at=row.created_at
        )
        for row in institutions
    ]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TrainingInstitutionOut,
    summary="Register a training institution (issuer key; the admin names the issuer)",
    responses={409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
def create_training_institution(
    body: TrainingInstitutionCreate, principal: IssuerOrAdminDep, session: SessionDep, clock: ClockDep
) -> TrainingInstitutionOut:
    """Codes are unique nationwide: 409 `training_institution_exists` for a taken one."""
    with write_transaction(session):
        issuer = exam_registry.owning_issuer(session, caller=principal.issuer, code=body.issuer)
        institution = exam_registry.create_training_institution(
            session, issuer=issuer, code=body.code, name=body.name, region=body.region, now=clock.now()
        )
    return institution_out(session, [institution])[0]


@router.get("", response_model=TrainingInstitutionPage, summary="List training institutions (own; admin: all)")
def list_training_institutions(
    principal: IssuerOrAdminDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> TrainingInstitutionPage:
    """By code."""
    with read_transaction(session):
        total, rows = exam_registry.list_training_institutions(
            session, owner=principal.owner, limit=limit, offset=offset
        )
    return TrainingInstitutionPage(items=institution_out(session, rows), total=total, limit=limit, offset=offset)


@router.get("/{code}", response_model=TrainingInstitutionOut, summary="Read a training institution")
def read_training_institution(institution: OwnedTrainingInstitutionDep, session: SessionDep) -> TrainingInstitutionOut:
    """Another issuer's institution answers 404 `training_institution_not_found`."""
    return institution_out(session, [institution])[0]
