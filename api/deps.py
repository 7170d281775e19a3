"""Request dependencies as ``Annotated`` aliases: settings, database session, keys and principals.

Ownership is checked here only, never copied into handlers: each ``owned_*`` dependency reads the row named
in the path and answers 404, exactly as for a missing row, when it is another issuer's (the admin sees every
row). A path value that cannot name a row (not an id's or a code's shape: a NUL, 4,000 characters) is the
same 404 before any query, so a value PostgreSQL would refuse never reaches it.

Sessions never begin a transaction by themselves (``autobegin=False``): each unit of database work
is an explicit :func:`~api.db.read_transaction` or :func:`~api.db.write_transaction` inside one
synchronous function, so a connection is never held across the hops between FastAPI's worker
threads (holding one there let a burst deadlock the pool against the threads).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from anyio import to_thread
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from schemas.catalogue import Catalogue

from .clock import Clock
from .db import read_transaction
from .errors import ApiError
from .keyring import Keyring
from .models import (
    ApiKey,
    Certificate,
    CertificateBatch,
    ExamPoint,
    ExamSession,
    Issuer,
    TrainingInstitution,
    could_be_id,
)
from .security import api_key_matches, api_key_prefix
from .services import exam_registry, exam_results
from .services.errors import ExamResultNotFound, RegistryUnavailable
from .services.idempotency import check_idempotency_key
from .services.key_usage import KeyUsage
from .services.status_lists import StatusLists
from .services.trust_lists import TrustLists
from .settings import Settings, is_published_demo_token


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request that holds no connection between transactions (creating it does no I/O)."""
    session = Session(request.app.state.engine, expire_on_commit=False, autobegin=False)
    try:
        yield session
    finally:
        if session.in_transaction():  # only after an error inside a unit of work: rollback is I/O
            await to_thread.run_sync(session.close)
        else:
            session.close()


async def get_clock(request: Request) -> Clock:
    """The app's clock."""
    return request.app.state.clock  # type: ignore[no-any-return]


async def get_keyring(request: Request) -> Keyring:
    """The app's signing and verifying keys."""
    return request.app.state.keyring  # type: ignore[no-any-return]


async def get_catalogue(request: Request) -> Catalogue:
    """The operation catalogue."""
    return request.app.state.catalogue  # type: ignore[no-any-return]


async def get_key_usage(request: Request) -> KeyUsage:
    """The app's record of when each API key was last used."""
    return request.app.state.key_usage  # type: ignore[no-any-return]


async def get_status_lists(request: Request) -> StatusLists:
    """The app's status lists."""
    return request.app.state.status_lists  # type: ignore[no-any-return]


async def get_trust_lists(request: Request) -> TrustLists:
    """The app's trust list publisher."""
    return request.app.state.trust_lists  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
KeyringDep = Annotated[Keyring, Depends(get_keyring)]
CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
ClockDep = Annotated[Clock, Depends(get_clock)]
StatusListsDep = Annotated[StatusLists, Depends(get_status_lists)]
TrustListsDep = Annotated[TrustLists, Depends(get_trust_lists)]

_bearer = HTTPBearer(auto_error=False, description="Admin token or API key")
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the admin, an issuer (with its row) or a third-party app."""

    kind: str  # admin | issuer | app
    issuer: Issuer | None = None
    api_key_id: str | None = None

    @property
    def owner(self) -> str | None:
        """The issuer id this principal's view of owned rows is limited to; None for the admin (every issuer's)."""
        return self.issuer.id if self.kind == "issuer" and self.issuer is not None else None

    @property
    def actor(self) -> str:
        """How the audit trail names this principal."""
        if self.kind == "issuer" and self.issuer is not None:
            return f"issuer:{self.issuer.code}"
        return self.kind if self.api_key_id is None else f"{self.kind}:{self.api_key_id}"


_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


ADMIN = "admin"  # what :func:`claimed_identity` answers for the admin token (never an API key prefix: hex)


def claimed_identity(token: str, settings: Settings) -> str | None:
    """Who a bearer token says it is, before any lookup: :data:`ADMIN`, or the API key prefix it carries.

    None for a token that can never authenticate: malformed, or a published demo secret outside demo
    mode (whatever the database holds). Every authentication, the verify hot path's included, starts here.
    """
    if not settings.demo and is_published_demo_token(token):
        return None
    admin = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return ADMIN
    return api_key_prefix(token)


def _resolve(
    token: str, session: Session, settings: Settings, usage: KeyUsage | None, *, now: datetime
) -> Principal | None:
    prefix = claimed_identity(token, settings)
    if prefix is None:
        return None
    if prefix == ADMIN:
        return Principal("admin")
    try:
        with read_transaction(session):
            key = session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
            if key is None or not api_key_matches(
                token,
                key.secret_hash,
                revoked=key.revoked_at is not None,
                expires_at=key.expires_at,
                now=now,
            ):
                return None
            issuer = session.get(Issuer, key.issuer_id) if key.scope == "issuer" else None
    except SQLAlchemyError:
        raise RegistryUnavailable() from None
    if key.scope == "issuer" and issuer is None:
        return None
    if usage is not None:
        usage.touch(key.id, at=now)
    return Principal("issuer", issuer, key.id) if issuer else Principal("app", None, key.id)


def get_principal(
    credentials: CredentialsDep,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    usage: Annotated[KeyUsage | None, Depends(get_key_usage)] = None,
) -> Principal:
    """Authenticate the bearer token; 401 if missing, unknown, revoked, expired or a published demo secret."""
    if credentials is None:
        raise ApiError(401, "unauthorized", "a bearer token is required")
    principal = _resolve(credentials.credentials, session, settings, usage, now=clock.now())
    if principal is None:
        raise ApiError(401, "unauthorized", "the token is not valid")
    return principal


def bearer_token(header: str | None) -> str | None:
    """The bearer token in an ``Authorization`` header value, None without one; malformed is 401."""
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "use Authorization: Bearer <API key>")
    return token.strip()


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_admin(principal: PrincipalDep) -> Principal:
    """Only the admin token passes."""
    if principal.kind != "admin":
        raise ApiError(403, "forbidden", "admin token required")
    return principal


def require_issuer(principal: PrincipalDep) -> Issuer:
    """Only an issuer API key passes; returns its issuer."""
    if principal.kind != "issuer" or principal.issuer is None:
        raise ApiError(403, "forbidden", "issuer API key required")
    return principal.issuer


def require_issuer_or_admin(principal: PrincipalDep) -> Principal:
    """An issuer API key (acting on what it owns) or the admin token (sees everything); apps are refused."""
    if principal.kind == "admin" or (principal.kind == "issuer" and principal.issuer is not None):
        return principal
    raise ApiError(403, "forbidden", "issuer API key or admin token required")


AdminDep = Annotated[Principal, Depends(require_admin)]
IssuerOrAdminDep = Annotated[Principal, Depends(require_issuer_or_admin)]
IssuerDep = Annotated[Issuer, Depends(require_issuer)]


def issuer_by_code(code: str, session: SessionDep) -> Issuer:
    """The issuer named in the path, or 404."""
    with read_transaction(session):
        issuer = session.exec(select(Issuer).where(Issuer.code == code)).first()
    if issuer is None:
        raise ApiError(404, "issuer_not_found", "no such issuer")
    return issuer


PathIssuerDep = Annotated[Issuer, Depends(issuer_by_code)]


def admin_or_same_issuer(principal: PrincipalDep, issuer: PathIssuerDep) -> Issuer:
    """The admin, or the issuer named in the path acting on itself."""
    if principal.kind == "admin" or (principal.issuer is not None and principal.issuer.id == issuer.id):
        return issuer
    raise ApiError(403, "forbidden", "only the admin or this issuer may do this")


ManagedIssuerDep = Annotated[Issuer, Depends(admin_or_same_issuer)]


def owned_certificate(certificate_id: str, issuer: IssuerDep, session: SessionDep) -> Certificate:
    """The certificate in the path if it belongs to the calling issuer; else 404, as for a missing one.

    Another issuer's certificate answers exactly like an id that does not exist, so the answer never
    tells a caller that an id is taken.
    """
    certificate = find_certificate(session, certificate_id)
    if certificate is None or certificate.issuer_id != issuer.id:
        raise ApiError(404, "certificate_not_found", "no such certificate")
    return certificate


def find_certificate(session: Session, certificate_id: str) -> Certificate | None:
    """The certificate with this id from a URL, or None (also for a string that cannot be an id)."""
    if not could_be_id(certificate_id):
        return None
    with read_transaction(session):
        return session.get(Certificate, certificate_id)


OwnedCertificateDep = Annotated[Certificate, Depends(owned_certificate)]


def owned_batch(batch_id: str, principal: IssuerOrAdminDep, session: SessionDep) -> CertificateBatch:
    """The certificate batch in the path if the caller may see it (its issuer, or the admin); else 404 as if absent."""
    batch = None
    if could_be_id(batch_id):
        with read_transaction(session):
            batch = session.get(CertificateBatch, batch_id)
    if batch is None or (principal.owner is not None and batch.issuer_id != principal.owner):
        raise ApiError(404, "batch_not_found", "no such certificate batch")
    return batch


OwnedBatchDep = Annotated[CertificateBatch, Depends(owned_batch)]


def owned_training_institution(code: str, principal: IssuerOrAdminDep, session: SessionDep) -> TrainingInstitution:
    """The training institution in the path if the caller may see it; another issuer's answers 404 as if missing."""
    with read_transaction(session):
        return exam_registry.find_training_institution(session, code=code, owner=principal.owner)


OwnedTrainingInstitutionDep = Annotated[TrainingInstitution, Depends(owned_training_institution)]


def owned_exam_point(code: str, principal: IssuerOrAdminDep, session: SessionDep) -> ExamPoint:
    """The exam point in the path if the caller may see it; another issuer's answers 404 like a missing one."""
    with read_transaction(session):
        return exam_registry.find_exam_point(session, code=code, owner=principal.owner)


OwnedExamPointDep = Annotated[ExamPoint, Depends(owned_exam_point)]


def owned_exam_session(session_id: str, principal: IssuerOrAdminDep, session: SessionDep) -> ExamSession:
    """The exam session in the path if the caller may see it; another issuer's answers 404 like a missing one."""
    with read_transaction(session):
        return exam_registry.find_exam_session(session, session_id=session_id, owner=principal.owner)


OwnedExamSessionDep = Annotated[ExamSession, Depends(owned_exam_session)]


def owned_exam_result(result_id: str, principal: IssuerOrAdminDep, session: SessionDep) -> Any:
    """The result row in the path (as :func:`api.services.exam_results.find_result` gives it) if the caller may
    see it; another issuer's answers 404 like a missing one."""
    row = None
    if could_be_id(result_id):
        with read_transaction(session):
            row = exam_results.find_result(session, result_id=result_id, owner=principal.owner)
    if row is None:
        raise ExamResultNotFound()
    return row


OwnedExamResultDep = Annotated[Any, Depends(owned_exam_result)]


def idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(description="1 to 200 printable ASCII characters; else 422 `invalid_idempotency_key`"),
    ] = None,
) -> str | None:
    """The request's ``Idempotency-Key`` if it has one, checked by the one rule every endpoint and the CLI share."""
    check_idempotency_key(idempotency_key)
    return idempotency_key


IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]
