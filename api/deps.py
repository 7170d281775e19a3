"""Request dependencies as ``Annotated`` aliases: settings, database session, keys and principals.

Ownership is checked in one place (:func:`owned_certificate`), never copied into handlers.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from schemas.catalogue import Catalogue

from .errors import ApiError
from .keyring import Keyring
from .models import ApiKey, Certificate, Issuer
from .security import api_key_prefix, hash_api_key
from .services.events import EventRecorder
from .settings import Settings


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_engine(request: Request) -> Engine:
    """The app's database engine."""
    return request.app.state.engine  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    """A session per request; handlers commit their own transaction."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


async def get_keyring(request: Request) -> Keyring:
    """The app's signing and verifying keys."""
    return request.app.state.keyring  # type: ignore[no-any-return]


async def get_catalogue(request: Request) -> Catalogue:
    """The operation catalogue."""
    return request.app.state.catalogue  # type: ignore[no-any-return]


async def get_events(request: Request) -> EventRecorder:
    """The verification event recorder."""
    return request.app.state.events  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionDep = Annotated[Session, Depends(get_session)]
KeyringDep = Annotated[Keyring, Depends(get_keyring)]
CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
EventsDep = Annotated[EventRecorder, Depends(get_events)]

_bearer = HTTPBearer(auto_error=False, description="Admin token or API key")
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the admin, an issuer (with its row) or a third-party app."""

    kind: str  # admin | issuer | app
    issuer: Issuer | None = None
    api_key_id: str | None = None

    @property
    def actor(self) -> str:
        """How the audit trail names this principal."""
        if self.kind == "issuer" and self.issuer is not None:
            return f"issuer:{self.issuer.code}"
        return self.kind if self.api_key_id is None else f"{self.kind}:{self.api_key_id}"


_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def _resolve(token: str, session: Session, settings: Settings) -> Principal | None:
    admin = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return Principal("admin")
    prefix = api_key_prefix(token)
    if prefix is None:
        return None
    try:
        key = session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    except SQLAlchemyError:
        raise ApiError(503, "registry_unavailable", "the registry cannot be read; try again") from None
    if key is None or key.revoked_at is not None or not hmac.compare_digest(key.secret_hash, hash_api_key(token)):
        return None
    if key.scope == "issuer":
        issuer = session.get(Issuer, key.issuer_id)
        return Principal("issuer", issuer, key.id) if issuer else None
    return Principal("app", None, key.id)


def get_principal(credentials: CredentialsDep, session: SessionDep, settings: SettingsDep) -> Principal:
    """Authenticate the bearer token; 401 if missing or unknown."""
    if credentials is None:
        raise ApiError(401, "unauthorized", "a bearer token is required")
    principal = _resolve(credentials.credentials, session, settings)
    if principal is None:
        raise ApiError(401, "unauthorized", "the token is not valid")
    return principal


def optional_client(request: Request) -> Principal | None:
    """For public endpoints: a valid key raises limits, an invalid one is 401, none is fine."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "use Authorization: Bearer <API key>")
    with Session(request.app.state.engine) as session:
        principal = _resolve(token.strip(), session, request.app.state.settings)
    if principal is None:
        raise ApiError(401, "unauthorized", "the token is not valid")
    return principal


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


AdminDep = Annotated[Principal, Depends(require_admin)]
IssuerDep = Annotated[Issuer, Depends(require_issuer)]


def issuer_by_code(code: str, session: SessionDep) -> Issuer:
    """The issuer named in the path, or 404."""
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
    """The certificate in the path, if it exists and belongs to the calling issuer (else 404 / 403)."""
    certificate = session.get(Certificate, certificate_id)
    if certificate is None:
        raise ApiError(404, "certificate_not_found", "no such certificate")
    if certificate.issuer_id != issuer.id:
        raise ApiError(403, "forbidden", "the certificate belongs to another issuer")
    return certificate


OwnedCertificateDep = Annotated[Certificate, Depends(owned_certificate)]
