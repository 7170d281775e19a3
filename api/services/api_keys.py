"""API keys with a lifecycle: create (optionally expiring), list, revoke, and set or change the expiry.

Callers run each function inside one :func:`api.db.write_transaction` (or ``read_transaction`` to list).
Revoking and changing the expiry are each one conditional ``UPDATE``: a revoked key stays revoked
whatever runs at the same time, and no write resurrects it. A key is refused from its ``expires_at`` on
and from its ``revoked_at`` on, on every replica at once, because authentication reads the row every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import update
from sqlmodel import Session, select

from ..models import ApiKey, Issuer
from ..security import new_api_key
from .errors import ApiKeyNotFound, ApiKeyRevoked, InvalidExpiry

Scope = Literal["issuer", "app"]


@dataclass(frozen=True)
class KeyOwner:
    """Which keys a call may see: one issuer's, the apps', or (``scope`` None, for the CLI) every key."""

    scope: Scope | None = None
    issuer_id: str | None = None

    @classmethod
    def of_issuer(cls, issuer: Issuer) -> KeyOwner:
        """The keys of this issuer."""
        return cls("issuer", issuer.id)

    @classmethod
    def apps(cls) -> KeyOwner:
        """The third-party app keys."""
        return cls("app")

    def conditions(self) -> list[object]:
        """``WHERE`` conditions selecting this owner's keys."""
        conditions: list[object] = []
        if self.scope is not None:
            conditions.append(ApiKey.scope == self.scope)
        if self.issuer_id is not None:
            conditions.append(ApiKey.issuer_id == self.issuer_id)
        return conditions


def key_state(key: ApiKey, *, now: datetime) -> Literal["active", "expired", "revoked"]:
    """``revoked`` (final), ``expired`` (from ``expires_at`` on) or ``active``."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def create_api_key(
    session: Session, *, issuer: Issuer | None, label: str, expires_at: datetime | None, now: datetime
) -> tuple[ApiKey, str]:
    """Create an issuer key (or, with no issuer, an app key); return it and its token, which is never stored."""
    if expires_at is not None and expires_at <= now:
        raise InvalidExpiry()
    token, prefix, secret_hash = new_api_key()
    row = ApiKey(
        prefix=prefix,
        secret_hash=secret_hash,
        scope="issuer" if issuer is not None else "app",
        issuer_id=issuer.id if issuer is not None else None,
        label=label,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return row, token


def list_api_keys(session: Session, *, owner: KeyOwner) -> list[tuple[ApiKey, str | None]]:
    """The owner's keys, oldest first, each with its issuer's code (None for app keys)."""
    query = (
        select(ApiKey, Issuer.code)
        .outerjoin(Issuer, Issuer.id == ApiKey.issuer_id)  # type: ignore[arg-type]
        .where(*owner.conditions())  # type: ignore[arg-type]
        .order_by(ApiKey.created_at, ApiKey.prefix)  # type: ignore[arg-type]
        .execution_options(populate_existing=True)
    )
    return [(key, code) for key, code in session.exec(query).all()]


def _one(session: Session, *, prefix: str, owner: KeyOwner) -> tuple[ApiKey, str | None]:
    query = (
        select(ApiKey, Issuer.code)
        .outerjoin(Issuer, Issuer.id == ApiKey.issuer_id)  # type: ignore[arg-type]
        .where(ApiKey.prefix == prefix, *owner.conditions())  # type: ignore[arg-type]
        .execution_options(populate_existing=True)
    )
    found = session.exec(query).first()
    if found is None:
        raise ApiKeyNotFound()
    return found[0], found[1]


def revoke_api_key(session: Session, *, prefix: str, owner: KeyOwner, now: datetime) -> tuple[ApiKey, str | None]:
    """Revoke the key (at once, for good); revoking a revoked key changes nothing. :class:`ApiKeyNotFound`."""
    session.execute(
        update(ApiKey)
        .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None), *owner.conditions())  # type: ignore[arg-type, union-attr]
        .values(revoked_at=now)
    )
    return _one(session, prefix=prefix, owner=owner)


def set_api_key_expiry(
    session: Session, *, prefix: str, owner: KeyOwner, expires_at: datetime | None
) -> tuple[ApiKey, str | None]:
    """Set (None: remove) the key's expiry; a time in the past expires it at once. Refused for a revoked key."""
    changed = session.execute(
        update(ApiKey)
        .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None), *owner.conditions())  # type: ignore[arg-type, union-attr]
        .values(expires_at=expires_at)
    ).rowcount  # type: ignore[attr-defined]
    key, code = _one(session, prefix=prefix, owner=owner)
    if not changed:
        raise ApiKeyRevoked()
    return key, code
