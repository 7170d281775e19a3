"""Issuers, their signing keys and API keys (admin, or the issuer itself where stated)."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlmodel import select

from schemas.api import (
    ApiKeyCreate,
    ApiKeyOut,
    AppKeyCreate,
    ErrorResponse,
    IssuerCreate,
    IssuerOut,
    IssuerScopeUpdate,
    KeyRevoke,
    SigningKeyOut,
)

from ..db import read_transaction, write_transaction
from ..deps import AdminDep, CatalogueDep, KeyringDep, ManagedIssuerDep, PathIssuerDep, SessionDep
from ..errors import DATABASE_UNAVAILABLE_RESPONSE
from ..models import Issuer, SigningKeyRow
from ..services import issuance

router = APIRouter(
    prefix="/v1",
    tags=["issuers"],
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, **DATABASE_UNAVAILABLE_RESPONSE},
)


def issuer_out(session: SessionDep, issuer: Issuer) -> IssuerOut:
    """Describe an issuer with all its keys."""
    with read_transaction(session):
        keys = session.exec(
            select(SigningKeyRow)
            .where(SigningKeyRow.issuer_id == issuer.id)
            .order_by(SigningKeyRow.not_before)  # type: ignore[arg-type]
            .execution_options(populate_existing=True)
        ).all()
    return IssuerOut(
        code=issuer.code,
        name=issuer.name,
        region=issuer.region,
        operations=issuer.operations,
        keys=[SigningKeyOut.model_validate(key, from_attributes=True) for key in keys],
    )


@router.post(
    "/issuers",
    status_code=status.HTTP_201_CREATED,
    response_model=IssuerOut,
    summary="Create an issuer with its first signing key (admin)",
    responses={409: {"model": ErrorResponse}},
)
def create_issuer(
    body: IssuerCreate, _admin: AdminDep, session: SessionDep, keyring: KeyringDep, catalogue: CatalogueDep
) -> IssuerOut:
    """Create an issuing authority and generate its first signing key (ES256 unless asked otherwise)."""
    with write_transaction(session):
        issuer, _key = issuance.create_issuer(
            session,
            keyring,
            code=body.code,
            name=body.name,
            region=body.region,
            operations=body.operations,
            alg=body.alg,
            catalogue=catalogue,
        )
    return issuer_out(session, issuer)


@router.get("/issuers/{code}", response_model=IssuerOut, summary="Read an issuer (admin or the issuer)")
def read_issuer(issuer: ManagedIssuerDep, session: SessionDep) -> IssuerOut:
    """Return the issuer, its scope and its keys."""
    return issuer_out(session, issuer)


@router.put("/issuers/{code}/operations", response_model=IssuerOut, summary="Set an issuer's scope (admin)")
def set_scope(
    body: IssuerScopeUpdate, issuer: PathIssuerDep, _admin: AdminDep, session: SessionDep, catalogue: CatalogueDep
) -> IssuerOut:
    """Replace the operation items the issuer may certify; verification checks the scope at verify time."""
    with write_transaction(session):
        issuer.operations = issuance.checked_operations(body.operations, catalogue)
        session.add(issuer)
    return issuer_out(session, issuer)


@router.post(
    "/issuers/{code}/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyOut,
    summary="Create an issuer API key, shown once (admin)",
)
def create_issuer_api_key(
    body: ApiKeyCreate, issuer: PathIssuerDep, _admin: AdminDep, session: SessionDep
) -> ApiKeyOut:
    """Return a new API key for the issuer; only its hash is stored, so it cannot be shown again."""
    with write_transaction(session):
        row, token = issuance.create_api_key(session, issuer=issuer, label=body.label)
    return ApiKeyOut(id=row.id, token=token, scope="issuer", issuer=issuer.code)


@router.post(
    "/apps/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyOut,
    summary="Create a third-party app API key for higher verify limits (admin)",
)
def create_app_api_key(body: AppKeyCreate, _admin: AdminDep, session: SessionDep) -> ApiKeyOut:
    """Return a new app key; apps may only call the public endpoints, with higher limits."""
    with write_transaction(session):
        row, token = issuance.create_api_key(session, issuer=None, label=body.label)
    return ApiKeyOut(id=row.id, token=token, scope="app", issuer=None)


@router.post(
    "/issuers/{code}/keys/rotate",
    status_code=status.HTTP_201_CREATED,
    response_model=SigningKeyOut,
    summary="Start a new signing key; the old one keeps verifying (admin or the issuer)",
)
def rotate_key(issuer: ManagedIssuerDep, session: SessionDep, keyring: KeyringDep) -> SigningKeyOut:
    """Retire the active key (it stops signing, its certificates stay valid) and create a new one."""
    with write_transaction(session):
        row = issuance.rotate_key(session, keyring, issuer=issuer)
    return SigningKeyOut.model_validate(row, from_attributes=True)


@router.post(
    "/issuers/{code}/keys/{kid}/revoke",
    response_model=SigningKeyOut,
    summary="Revoke a signing key: its certificates are rejected with key_revoked (admin)",
    responses={404: {"model": ErrorResponse}},
)
def revoke_key(
    body: KeyRevoke, kid: str, issuer: PathIssuerDep, _admin: AdminDep, session: SessionDep
) -> SigningKeyOut:
    """Revoke a key, e.g. after a compromise; rotate afterwards so the issuer can sign again."""
    with write_transaction(session):
        row = issuance.revoke_key(session, issuer=issuer, kid=kid, reason=body.reason)
    return SigningKeyOut.model_validate(row, from_attributes=True)
