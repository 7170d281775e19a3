"""Online verification: the offline signature check, then the registry, as composable checks.

Every check follows ``crypto.policy.Check``: ``verify(certificate, now)`` raises one specific
error. The registry row is read once per request; if it cannot be read the caller answers 503,
never ``accept``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

import crypto
from crypto import SignedCertificate, VerificationError
from schemas.api import VerifyRequest
from schemas.catalogue import Catalogue
from schemas.idnumber import InvalidIdNumber, normalize_id_number

from ..errors import ApiError
from ..keyring import Keyring
from ..models import HolderCheckFailure, utcnow
from ..security import id_number_hmac, sign_url_path
from ..settings import Settings


class KeyRevoked(VerificationError):
    """The signing key was revoked (e.g. compromised)."""

    code = "key_revoked"
    message = "signing key has been revoked"


class IssuerNotAuthorized(VerificationError):
    """The key is not the named issuer's, or the item is outside the issuer's scope now."""

    code = "issuer_not_authorized"
    message = "issuer is not authorized for this certificate"


class UnknownCertificate(VerificationError):
    """Validly signed but absent from the registry."""

    code = "unknown_certificate"
    message = "certificate is not in the registry"


class ClaimsMismatch(VerificationError):
    """The registry holds a different credential under this serial."""

    code = "claims_mismatch"
    message = "certificate does not match the registry"


class Suspended(VerificationError):
    """The certificate is suspended (暂扣)."""

    code = "suspended"
    message = "certificate is suspended"


class Revoked(VerificationError):
    """The certificate is revoked (吊销)."""

    code = "revoked"
    message = "certificate is revoked"


class HolderMismatch(VerificationError):
    """The ID number given is not the holder's."""

    code = "holder_mismatch"
    message = "ID number does not match the holder"


_REGISTRY_SQL = """
    SELECT k.state, i.code, i.name, i.operations, c.id, c.status, c.review_due, c.envelope_sha256, c.id_hmac,
           c.id_hmac_version, c.photo_type
    FROM signing_keys k
    JOIN issuers i ON i.id = k.issuer_id
    LEFT JOIN certificates c ON c.serial = {serial}
    WHERE k.kid = {kid}
"""
# The driver's own placeholder style: the query runs on the raw DB-API cursor, because SQLAlchemy's
# statement and result machinery cost three times the query itself on the hottest path.
_PLACEHOLDERS = {"qmark": ("?", "?"), "numeric": (":1", ":2"), "named": (":serial", ":kid")}
_FORMAT_PLACEHOLDERS = ("%(serial)s", "%(kid)s")


@dataclass(frozen=True)
class RegistryEntry:
    """What the registry knows about a credential's key, issuer and certificate."""

    key_state: str
    issuer_code: str
    issuer_name: str
    operations: frozenset[str]
    certificate_id: str | None
    status: str | None
    review_due: date | None
    envelope_sha256: str | None
    id_hmac: bytes | None
    id_hmac_version: int | None
    has_photo: bool


class RegistryReader:
    """Reads registry rows on one dedicated, autocommitting DB-API connection.

    Verification runs on the event loop thread, one request at a time between awaits, so one
    connection serves it; skipping the pool's checkout and reset-on-return halves the cost of the
    read. A failed connection is dropped and the next request opens a new one.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Any = None
        serial, kid = _PLACEHOLDERS.get(engine.dialect.paramstyle, _FORMAT_PLACEHOLDERS)
        self._statement = _REGISTRY_SQL.format(serial=serial, kid=kid)
        self._positional = engine.dialect.paramstyle in ("qmark", "numeric", "format")
        self._driver_error: type[BaseException] = engine.dialect.loaded_dbapi.Error

    def _connect(self) -> Any:
        pooled = self._engine.raw_connection()
        pooled.detach()  # ours for good: never returned to, or reset by, the pool
        connection: Any = pooled.dbapi_connection
        if hasattr(connection, "autocommit"):
            connection.autocommit = True  # no transaction held open between reads (PostgreSQL)
        else:
            connection.isolation_level = None  # sqlite3: autocommit
        self._connection = connection
        return connection

    def close(self) -> None:
        """Close the connection, if open."""
        if self._connection is not None:
            with contextlib.suppress(self._driver_error):  # it may be broken already
                self._connection.close()
            self._connection = None

    def read(self, certificate: SignedCertificate) -> RegistryEntry | None:
        """Read the key, issuer and certificate rows in one query; raise ApiError 503 if the database fails."""
        serial, kid = certificate.claims.serial.hex(), certificate.kid.hex()
        params: tuple[str, str] | dict[str, str] = (serial, kid) if self._positional else {"serial": serial, "kid": kid}
        try:
            connection = self._connection or self._connect()
            cursor = connection.cursor()
            try:
                cursor.execute(self._statement, params)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except (SQLAlchemyError, self._driver_error):
            self.close()
            raise ApiError(503, "registry_unavailable", "the registry cannot be read; try again") from None
        return None if row is None else _entry(row)


def _entry(row: Any) -> RegistryEntry:
    key_state, issuer_code, issuer_name, operations, certificate_id, status, review_due, envelope_sha256 = row[:8]
    id_hmac, id_hmac_version, photo_type = row[8:]
    if isinstance(operations, str):  # SQLite hands JSON columns back as text
        operations = json.loads(operations)
    if isinstance(review_due, str):  # and dates as ISO strings
        review_due = date.fromisoformat(review_due)
    return RegistryEntry(
        key_state=key_state,
        issuer_code=issuer_code,
        issuer_name=issuer_name,
        operations=frozenset(operations or ()),
        certificate_id=certificate_id,
        status=status,
        review_due=review_due,
        envelope_sha256=envelope_sha256,
        id_hmac=bytes(id_hmac) if id_hmac is not None else None,
        id_hmac_version=id_hmac_version,
        has_photo=photo_type is not None,
    )


@dataclass(frozen=True)
class KeyNotRevoked:
    """The signing key is not revoked."""

    entry: RegistryEntry
    name: ClassVar[str] = "key_status"

    def verify(self, certificate: SignedCertificate, now: datetime) -> None:
        """Raise :class:`KeyRevoked` for a revoked key."""
        if self.entry.key_state == "revoked":
            raise KeyRevoked(f"kid {certificate.kid.hex()}")


@dataclass(frozen=True)
class IssuerAuthorized:
    """The key belongs to the issuer in ``iss``, and the item is in that issuer's scope today."""

    entry: RegistryEntry
    name: ClassVar[str] = "issuer"

    def verify(self, certificate: SignedCertificate, now: datetime) -> None:
        """Raise :class:`IssuerNotAuthorized` otherwise."""
        if self.entry.issuer_code != certificate.claims.issuer:
            raise IssuerNotAuthorized("key belongs to another issuer")
        if str(certificate.claims.operation) not in self.entry.operations:
            raise IssuerNotAuthorized("operation outside the issuer's scope")


@dataclass(frozen=True)
class InRegistry:
    """The registry holds exactly this credential under its serial."""

    entry: RegistryEntry
    name: ClassVar[str] = "registry"

    def verify(self, certificate: SignedCertificate, now: datetime) -> None:
        """Raise :class:`UnknownCertificate` or :class:`ClaimsMismatch`."""
        if self.entry.certificate_id is None:
            raise UnknownCertificate(f"serial {certificate.claims.serial.hex()}")
        presented = hashlib.sha256(certificate.envelope).hexdigest()
        if not hmac.compare_digest(presented, self.entry.envelope_sha256 or ""):
            raise ClaimsMismatch("envelope differs from the registered one")


@dataclass(frozen=True)
class StatusValid:
    """The registry status is neither suspended nor revoked."""

    entry: RegistryEntry
    name: ClassVar[str] = "status"

    def verify(self, certificate: SignedCertificate, now: datetime) -> None:
        """Raise :class:`Suspended` or :class:`Revoked`."""
        if self.entry.status == "suspended":
            raise Suspended()
        if self.entry.status == "revoked":
            raise Revoked()


@dataclass(frozen=True)
class HolderMatches:
    """The ID number typed from the worker's ID card hashes to the registry's keyed hash."""

    entry: RegistryEntry
    id_number: str
    keys: dict[int, bytes]
    name: ClassVar[str] = "holder"

    def verify(self, certificate: SignedCertificate, now: datetime) -> None:
        """Raise :class:`HolderMismatch` unless the keyed hashes are equal."""
        key = self.keys.get(self.entry.id_hmac_version or 0)
        if key is None or self.entry.id_hmac is None:
            raise HolderMismatch("no HMAC key for this row's version")
        if not hmac.compare_digest(id_number_hmac(self.id_number, key), self.entry.id_hmac):
            raise HolderMismatch()


@dataclass
class Outcome:
    """The verdict with everything the response and the event log need."""

    decision: str
    reasons: list[str]
    checks: list[str]
    certificate: SignedCertificate | None
    entry: RegistryEntry | None
    holder_checked: bool


def _holder_failures(engine: Engine, certificate_id: str, since: datetime) -> int:
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.count())
                    .select_from(HolderCheckFailure)
                    .where(HolderCheckFailure.certificate_id == certificate_id, HolderCheckFailure.at >= since)  # type: ignore[arg-type]
                ).scalar_one()
            )
    except SQLAlchemyError:  # the guessing limit cannot be judged: fail closed
        raise ApiError(503, "registry_unavailable", "the registry cannot be read; try again") from None


def _record_holder_failure(engine: Engine, certificate_id: str) -> None:
    try:
        with engine.begin() as connection:
            connection.execute(
                HolderCheckFailure.__table__.insert().values(  # type: ignore[attr-defined]
                    id=HolderCheckFailure(certificate_id=certificate_id).id, certificate_id=certificate_id, at=utcnow()
                )
            )
    except SQLAlchemyError:  # an uncounted wrong guess would lift the limit: fail closed
        raise ApiError(503, "registry_unavailable", "the registry cannot be written; try again") from None


def verify_online(
    request: VerifyRequest,
    *,
    engine: Engine,
    registry: RegistryReader,
    keyring: Keyring,
    settings: Settings,
    now: datetime,
) -> Outcome:
    """Verify a QR text against the signature, the registry and the request's purpose and holder."""
    checks = ["format", "signature"]
    try:
        certificate = crypto.verify_signature(crypto.envelope_from_qr_text(request.qr), keyring)
    except VerificationError as error:
        return Outcome("reject", [error.code], checks, None, None, False)
    except SQLAlchemyError:  # the key lookup reads the database: fail closed, never a 500 or an accept
        raise ApiError(503, "registry_unavailable", "the registry cannot be read; try again") from None
    id_number = None
    if request.holder_id_number:
        try:
            id_number = normalize_id_number(request.holder_id_number)
        except InvalidIdNumber as exc:
            raise ApiError(422, "invalid_id_number", str(exc)) from None
    entry = registry.read(certificate)
    policy: list[crypto.Check] = [crypto.ValidityPeriod()]
    if entry is None:  # the key row vanished between the key lookup and now: fail closed
        raise ApiError(503, "registry_unavailable", "the registry changed during verification; try again")
    policy += [KeyNotRevoked(entry), IssuerAuthorized(entry), InRegistry(entry)]
    if entry.certificate_id is not None:
        policy.append(StatusValid(entry))
    if settings.review_required:
        policy.append(crypto.ReviewNotOverdue(due=entry.review_due))
    if request.purpose == "hot_work":
        policy.append(crypto.CoversHotWork())
    if request.operation:
        policy.append(crypto.CoversOperation(crypto.Operation.parse(request.operation)))
    holder_checked = id_number is not None and entry.certificate_id is not None
    if holder_checked:
        assert entry.certificate_id is not None
        assert id_number is not None
        since = now - timedelta(hours=1)
        if _holder_failures(engine, entry.certificate_id, since) >= settings.holder_check_failures_per_hour:
            raise ApiError(429, "holder_check_limited", "too many wrong ID numbers for this certificate; wait an hour")
        policy.append(HolderMatches(entry, id_number, settings.id_hmac_keys))
    failures = crypto.AllOf(policy).failures(certificate, now)
    reasons = [failure.code for failure in failures]
    if holder_checked and "holder_mismatch" in reasons:
        assert entry.certificate_id is not None
        _record_holder_failure(engine, entry.certificate_id)
    checks += [check.name for check in policy]
    return Outcome("reject" if reasons else "accept", reasons, checks, certificate, entry, holder_checked)


def certificate_summary(outcome: Outcome, *, catalogue: Catalogue, settings: Settings) -> dict[str, Any] | None:
    """The certificate part of the verify response (masked ID only; photo via a short-lived URL)."""
    certificate, entry = outcome.certificate, outcome.entry
    if certificate is None:
        return None
    claims = certificate.claims
    review_due = (entry.review_due if entry else None) or claims.review_due  # the registry's date wins
    photo_url = None
    if entry is not None and entry.has_photo and entry.certificate_id and "claims_mismatch" not in outcome.reasons:
        path = f"/v1/certificates/{entry.certificate_id}/photo"
        key = settings.require("url_signing_key").encode()
        photo_url = settings.public_base_url.rstrip("/") + sign_url_path(path, key, settings.photo_url_ttl_seconds)
    return {
        "serial": claims.serial.hex(),
        "issuer": {"code": claims.issuer, "name": entry.issuer_name if entry else None},
        "holder_name": claims.holder_name,
        "masked_id": claims.masked_id_display,
        "operation": catalogue.describe(claims.operation),
        "valid_from": claims.valid_from.isoformat(),
        "valid_until": claims.valid_until.isoformat(),
        "review_due": review_due.isoformat() if review_due else None,
        "status": entry.status if entry else None,
        "photo_url": photo_url,
    }
