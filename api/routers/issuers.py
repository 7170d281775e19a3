"""Issuers, their signing keys and API keys (admin, or the issuer itself where stated)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlmodel import select

from schemas.api import (
    ErrorResponse,
    IssuerCreate,
    IssuerOut,
    IssuerScopeUpdate,
    IssuerUpdate,
    KeyCompromise,
    KeyUseName,
    ReissueItem,
    ReissueList,
    SigningKeyOut,
)
from schemas.api_keys import (
    ApiKeyCreated,
    ApiKeyExpiryUpdate,
    ApiKeyInfo,
    ApiKeyList,
    AppApiKeyCreate,
    IssuerApiKeyCreate,
)

from ..db import read_transaction, write_transaction
from ..deps import (
    AdminDep,
    CatalogueDep,
    ClockDep,
    KeyringDep,
    ManagedIssuerDep,
    PathIssuerDep,
    PrincipalDep,
    SessionDep,
    TrustListsDep,
)
from ..errors import DATABASE_UNAVAILABLE_RESPONSE
from ..models import ApiKey, Issuer, SigningKeyRow
from ..services import api_keys, issuance
from ..services.api_keys import KeyOwner

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
        service_phone=issuer.service_phone,
        operations=issuer.operations,
        keys=[SigningKeyOut.model_validate(key, from_attributes=True) for key in keys],
    )


@router.post(
    "/issuers",
    status_code=status.HTTP_201_CREATED,
    response_model=IssuerOut,
    summary="Create an issuer with its first certificate and status-list keys (admin)",
    responses={409: {"model": ErrorResponse}},
)
def create_issuer(
    body: IssuerCreate,
    _admin: AdminDep,
    session: SessionDep,
    keyring: KeyringDep,
    catalogue: CatalogueDep,
    trust_lists: TrustListsDep,
    clock: ClockDep,
) -> IssuerOut:
    """Create an issuing authority with a certificate key (ES256 unless asked otherwise) and a status-list key."""
    now = clock.now()
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
            now=now,
        )
        trust_lists.key_changed(session, now=now)
    return issuer_out(session, issuer)


@router.get("/issuers/{code}", response_model=IssuerOut, summary="Read an issuer (admin or the issuer)")
def read_issuer(issuer: ManagedIssuerDep, session: SessionDep) -> IssuerOut:
    """Return the issuer, its scope and its keys."""
    return issuer_out(session, issuer)


@router.patch("/issuers/{code}", response_model=IssuerOut, summary="Change an issuer's name, region or phone (admin)")
def update_issuer(
    body: IssuerUpdate,
    issuer: PathIssuerDep,
    _admin: AdminDep,
    session: SessionDep,
    trust_lists: TrustListsDep,
    clock: ClockDep,
) -> IssuerOut:
    """Only the fields given change; the name and region are in the trust list, so it is re-signed."""
    with write_transaction(session):
        issuance.update_issuer(session, issuer=issuer, changes=body.model_dump(exclude_unset=True))
        trust_lists.key_changed(session, now=clock.now())
    return issuer_out(session, issuer)


@router.put("/issuers/{code}/operations", response_model=IssuerOut, summary="Set an issuer's scope (admin)")
def set_scope(
    body: IssuerScopeUpdate,
    issuer: PathIssuerDep,
    _admin: AdminDep,
    session: SessionDep,
    catalogue: CatalogueDep,
    trust_lists: TrustListsDep,
    clock: ClockDep,
) -> IssuerOut:
    """Replace the operation items the issuer may certify; verification checks the scope at verify time."""
    with write_transaction(session):
        issuer.operations = issuance.checked_operations(body.operations, catalogue)
        session.add(issuer)
        session.flush()
        trust_lists.key_changed(session, now=clock.now())
    return issuer_out(session, issuer)


def api_key_info(key: ApiKey, issuer_code: str | None, *, now: datetime) -> ApiKeyInfo:
    """Describe an API key for an admin: never its token or hash."""
    return ApiKeyInfo(
        id=key.id,
        prefix=key.prefix,
        scope=key.scope,  # type: ignore[arg-type]
        issuer=issuer_code,
        label=key.label,
        state=api_keys.key_state(key, now=now),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
    )


def _created(key: ApiKey, token: str, issuer_code: str | None) -> ApiKeyCreated:
    return ApiKeyCreated(
        id=key.id,
        token=token,
        prefix=key.prefix,
        scope=key.scope,  # type: ignore[arg-type]
        issuer=issuer_code,
        label=key.label,
        expires_at=key.expires_at,
    )


_KEY_RESPONSES: dict[int | str, dict[str, object]] = {404: {"model": ErrorResponse}}


@router.post(
    "/issuers/{code}/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    summary="Create an issuer API key, shown once, optionally expiring (admin)",
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
def create_issuer_api_key(
    body: IssuerApiKeyCreate, _admin: AdminDep, issuer: PathIssuerDep, session: SessionDep, clock: ClockDep
) -> ApiKeyCreated:
    """Return a new API key for the issuer; only its hash is stored, so it cannot be shown again."""
    now = clock.now()
    with write_transaction(session):
        row, token = api_keys.create_api_key(
            session, issuer=issuer, label=body.label, expires_at=body.expiry(now=now), now=now
        )
    return _created(row, token, issuer.code)


@router.get(
    "/issuers/{code}/api-keys",
    response_model=ApiKeyList,
    summary="List an issuer's API keys: prefix, label, created, last used, expires, state (admin)",
    responses=_KEY_RESPONSES,
)
def list_issuer_api_keys(_admin: AdminDep, issuer: PathIssuerDep, session: SessionDep, clock: ClockDep) -> ApiKeyList:
    """Every key of the issuer, revoked and expired ones included, oldest first; never a token."""
    with read_transaction(session):
        rows = api_keys.list_api_keys(session, owner=KeyOwner.of_issuer(issuer))
    now = clock.now()
    return ApiKeyList(items=[api_key_info(key, code, now=now) for key, code in rows])


@router.delete(
    "/issuers/{code}/api-keys/{prefix}",
    response_model=ApiKeyInfo,
    summary="Revoke an issuer API key: refused from now on (admin)",
    responses=_KEY_RESPONSES,
)
def revoke_issuer_api_key(
    prefix: str, _admin: AdminDep, issuer: PathIssuerDep, session: SessionDep, clock: ClockDep
) -> ApiKeyInfo:
    """Revoke the key for good; every request with it answers 401 at once. Revoking twice changes nothing."""
    now = clock.now()
    with write_transaction(session):
        key, code = api_keys.revoke_api_key(session, prefix=prefix, owner=KeyOwner.of_issuer(issuer), now=now)
    return api_key_info(key, code, now=now)


@router.patch(
    "/issuers/{code}/api-keys/{prefix}",
    response_model=ApiKeyInfo,
    summary="Set or change an issuer API key's expiry (admin)",
    responses={**_KEY_RESPONSES, 409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
def expire_issuer_api_key(
    prefix: str, body: ApiKeyExpiryUpdate, _admin: AdminDep, issuer: PathIssuerDep, session: SessionDep, clock: ClockDep
) -> ApiKeyInfo:
    """Set when the key stops working (a past time: at once; ``null``: never); a revoked key stays revoked (409)."""
    now = clock.now()
    with write_transaction(session):
        key, code = api_keys.set_api_key_expiry(
            session, prefix=prefix, owner=KeyOwner.of_issuer(issuer), expires_at=body.expiry(now=now)
        )
    return api_key_info(key, code, now=now)


@router.post(
    "/apps/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    summary="Create a third-party app API key for higher verify limits, optionally expiring (admin)",
    responses={422: {"model": ErrorResponse}},
)
def create_app_api_key(body: AppApiKeyCreate, _admin: AdminDep, session: SessionDep, clock: ClockDep) -> ApiKeyCreated:
    """Return a new app key; apps may only call the public endpoints, with higher limits."""
    now = clock.now()
    with write_transaction(session):
        row, token = api_keys.create_api_key(
            session, issuer=None, label=body.label, expires_at=body.expiry(now=now), now=now
        )
    return _created(row, token, None)


@router.get("/apps/api-keys", response_model=ApiKeyList, summary="List the third-party app API keys (admin)")
def list_app_api_keys(_admin: AdminDep, session: SessionDep, clock: ClockDep) -> ApiKeyList:
    """Every app key, revoked and expired ones included, oldest first; never a token."""
    with read_transaction(session):
        rows = api_keys.list_api_keys(session, owner=KeyOwner.apps())
    now = clock.now()
    return ApiKeyList(items=[api_key_info(key, code, now=now) for key, code in rows])


@router.delete(
    "/apps/api-keys/{prefix}",
    response_model=ApiKeyInfo,
    summary="Revoke a third-party app API key: refused from now on (admin)",
    responses=_KEY_RESPONSES,
)
def revoke_app_api_key(prefix: str, _admin: AdminDep, session: SessionDep, clock: ClockDep) -> ApiKeyInfo:
    """Revoke the app key for good; verify with it answers 401 at once. Revoking twice changes nothing."""
    now = clock.now()
    with write_transaction(session):
        key, code = api_keys.revoke_api_key(session, prefix=prefix, owner=KeyOwner.apps(), now=now)
    return api_key_info(key, code, now=now)


@router.patch(
    "/apps/api-keys/{prefix}",
    response_model=ApiKeyInfo,
    summary="Set or change a third-party app API key's expiry (admin)",
    responses={**_KEY_RESPONSES, 409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
def expire_app_api_key(
    prefix: str, body: ApiKeyExpiryUpdate, _admin: AdminDep, session: SessionDep, clock: ClockDep
) -> ApiKeyInfo:
    """Set when the app key stops working (a past time: at once; ``null``: never); a revoked key stays revoked."""
    now = clock.now()
    with write_transaction(session):
        key, code = api_keys.set_api_key_expiry(
            session, prefix=prefix, owner=KeyOwner.apps(), expires_at=body.expiry(now=now)
        )
    return api_key_info(key, code, now=now)


@router.post(
    "/issuers/{code}/keys/rotate",
    status_code=status.HTTP_201_CREATED,
    response_model=SigningKeyOut,
    summary="Start a new certificate or status-list key; the old one keeps verifying (admin or the issuer)",
)
def rotate_key(
    issuer: ManagedIssuerDep,
    session: SessionDep,
    keyring: KeyringDep,
    trust_lists: TrustListsDep,
    clock: ClockDep,
    principal: PrincipalDep,
    use: Annotated[KeyUseName, Query(description="which key to rotate")] = "certificate",
) -> SigningKeyOut:
    """Retire the active key of ``use`` (it stops signing, what it signed stays valid) and create a new one.

    An issuer may make at most 10 keys of a use for itself in 24 hours (429 ``rate_limited``); the admin is not limited.
    """
    now = clock.now()
    limit = None if principal.kind == "admin" else issuance.ISSUER_ROTATIONS_PER_DAY
    with write_transaction(session):
        row = issuance.rotate_key(session, keyring, issuer=issuer, use=use, now=now, daily_limit=limit)
        trust_lists.key_changed(session, now=row.not_before)  # the rotation's time, after any wait for the lock
    return SigningKeyOut.model_validate(row, from_attributes=True)


@router.post(
    "/issuers/{code}/keys/{kid}/compromise",
    response_model=SigningKeyOut,
    summary="Report a key compromised: what it signed since then is rejected with key_revoked (admin)",
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
def compromise_key(
    body: KeyCompromise,
    kid: str,
    issuer: PathIssuerDep,
    _admin: AdminDep,
    session: SessionDep,
    trust_lists: TrustListsDep,
    clock: ClockDep,
) -> SigningKeyOut:
    """Online, certificates registered from ``compromised_at`` on are refused; earlier ones are listed for reissue
    (``GET .../reissue``). Offline verifiers refuse all of them once they have the new trust list. Rotate
    afterwards so the issuer can sign again."""
    now = clock.now()
    with write_transaction(session):
        row = issuance.compromise_key(
            session, issuer=issuer, kid=kid, reason=body.reason, compromised_at=body.compromised_at, now=now
        )
        trust_lists.key_changed(session, now=now)
    return SigningKeyOut.model_validate(row, from_attributes=True)


@router.get(
    "/issuers/{code}/keys/{kid}/reissue",
    response_model=ReissueList,
    summary="Certificates of a compromised key to reissue (admin or the issuer)",
    responses={404: {"model": ErrorResponse}},
)
def certificates_to_reissue(
    kid: str,
    issuer: ManagedIssuerDep,
    session: SessionDep,
    after: Annotated[str | None, Query(max_length=32, description="the last id of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> ReissueList:
    """Those registered before ``compromised_at`` that are not revoked or superseded; empty for a sound key."""
    with read_transaction(session):
        key, rows = issuance.certificates_to_reissue(session, issuer=issuer, kid=kid, after=after, limit=limit)
    items = [ReissueItem(id=row.id, serial=row.serial, status=row.status, created_at=row.created_at) for row in rows]  # type: ignore[arg-type]
    return ReissueList(
        kid=kid,
        compromised_at=key.compromised_at,
        items=items,
        next_after=items[-1].id if len(items) == limit else None,
    )
