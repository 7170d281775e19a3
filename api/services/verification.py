"""Online verification: the offline signature check, then the registry, as composable checks.

Every check follows ``crypto.policy.Check``: ``verify(certificate, now)`` raises one specific
error. The registry row is read once per request; if it cannot be read the caller answers 503,
never ``accept``. Everything here blocks on the database and runs on the verify lane's threads.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy.exc import SQLAlchemyError

import crypto
from crypto import (
    IssuerNotAuthorized,
    KeyRevoked,
    Revoked,
    SignedCertificate,
    Superseded,
    Suspended,
    VerificationError,
)
from schemas.api import VerifyRequest
from schemas.catalogue import Catalogue
from schemas.idnumber import InvalidIdNumber, normalize_id_number

from ..keyring import Keyring
from ..metrics import REGISTRY_READ_ERRORS
from ..security import id_number_hmac, sign_url_path
from ..settings import Settings
from .errors import InvalidIdNumberError, RegistryUnavailable
from .status_lists import StatusLists
from .verify_store import HolderCheckLimits, RegistryEntry, VerifyStore


class UnknownCertificate(VerificationError):
    """Validly signed but absent from the registry."""

    code = "unknown_certificate"
    message = "certificate is not in the registry"


class ClaimsMismatch(VerificationError):
    """The registry holds a different credential under this serial."""

    code = "claims_mismatch"
    message = "certificate does not match the registry"


class HolderMismatch(VerificationError):
    """The ID number given is not the holder's."""

    code = "holder_mismatch"
    message = "ID number does not match the holder"


@dataclass(frozen=True)
class KeyNotCompromised:
    """The key was not compromised when the registry took in the certificate.

    ``iat`` cannot decide this (whoever holds a stolen key can backdate it); the registry's own time
    can. A certificate absent from the registry counts as registered after the compromise.
    """

    entry: RegistryEntry
    name: ClassVar[str] = "key_status"

    def verify(self, certificate: SignedCertificate, now: datetime) -> None:
        """Raise :class:`KeyRevoked` for a certificate registered at or after the key's ``compromised_at``."""
        compromised_at, registered_at = self.entry.key_compromised_at, self.entry.registered_at
        if compromised_at is not None and (registered_at is None or registered_at >= compromised_at):
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
    """The registry status is valid: not suspended, revoked or superseded."""

    entry: RegistryEntry
    name: ClassVar[str] = "status"

    def verify(self, certificate: SignedCertificate, now: datetime) -> None:
        """Raise :class:`Suspended`, :class:`Revoked` or :class:`Superseded`."""
        if self.entry.status == "suspended":
            raise Suspended()
        if self.entry.status == "revoked":
            raise Revoked()
        if self.entry.status == "superseded":
            raise Superseded()


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
    message: str | None = None  # what is wrong with a refused QR text (the URL rule's message), else None


def holder_check_limits(settings: Settings) -> HolderCheckLimits:
    """The holder-check limits from the settings."""
    return HolderCheckLimits(
        per_client=settings.holder_check_failures_per_hour,
        all_clients=settings.holder_check_global_failures,
        all_clients_window_seconds=settings.holder_check_global_window_seconds,
    )


def verify_online(
    request: VerifyRequest,
    *,
    store: VerifyStore,
    keyring: Keyring,
    settings: Settings,
    client: str,
    now: datetime,
) -> Outcome:
    """Verify a QR text against the signature, the registry and the request's purpose and holder.

    ``client`` (an API key id or an address) is who the holder-check limit counts; a client over its
    limit gets :class:`HolderCheckLimited` for every holder check on the certificate, right or wrong,
    so the refusal tells nothing about the number.
    """
    checks = ["format"]  # only the checks that ran: a refused QR text lists "format" alone
    try:
        envelope = crypto.envelope_from_qr_text(request.qr)
    except VerificationError as error:  # its detail names the problem with the text the caller sent
        return Outcome("reject", [error.code], checks, None, None, False, error.detail or None)
    checks.append("signature")
    try:
        certificate = crypto.verify_signature(envelope, keyring)
    except VerificationError as error:
        return Outcome("reject", [error.code], checks, None, None, False)
    except SQLAlchemyError:  # the key lookup reads the database: fail closed, never a 500 or an accept
        REGISTRY_READ_ERRORS.labels("database_error").inc()
        raise RegistryUnavailable() from None
    id_number = None
    if request.holder_id_number:
        try:
            id_number = normalize_id_number(request.holder_id_number)
        except InvalidIdNumber as exc:
            raise InvalidIdNumberError(str(exc)) from None
    entry = store.registry_entry(serial=certificate.claims.serial.hex(), kid=certificate.kid.hex())
    if entry is None:  # the key row was deleted since it was cached (e.g. demo data purged)
        keyring.forget(certificate.kid)
        return Outcome("reject", [crypto.UnknownKey.code], checks, None, None, False)
    policy: list[crypto.Check] = [
        crypto.ValidityPeriod(),
        crypto.KeySigningWindow(entry.key_not_before, entry.key_not_after),
        KeyNotCompromised(entry),
        IssuerAuthorized(entry),
    ]
    policy.append(InRegistry(entry))
    if entry.certificate_id is not None:
        policy.append(StatusValid(entry))
    if settings.review_required:
        policy.append(crypto.ReviewNotOverdue(due=entry.review_due))
    if request.purpose == "hot_work":
        policy.append(crypto.CoversHotWork())
    if request.operation:
        policy.append(crypto.CoversOperation(crypto.Operation.parse(request.operation)))
    holder_checked = id_number is not None and entry.certificate_id is not None
    if id_number is not None and entry.certificate_id is not None:
        policy.append(HolderMatches(entry, id_number, settings.id_hmac_keys))
    failures = crypto.AllOf(policy).failures(certificate, now)
    reasons = [failure.code for failure in failures]
    if holder_checked and entry.certificate_id is not None:
        limits = holder_check_limits(settings)
        if HolderMismatch.code in reasons:
            store.count_holder_failure(
                certificate_id=entry.certificate_id, client=client, limits=limits, now=now.timestamp()
            )
        else:
            store.check_holder_allowed(
                certificate_id=entry.certificate_id, client=client, limits=limits, now=now.timestamp()
            )
    checks += [check.name for check in policy]
    return Outcome("reject" if reasons else "accept", reasons, checks, certificate, entry, holder_checked)


def certificate_summary(
    outcome: Outcome, *, catalogue: Catalogue, settings: Settings, lists: StatusLists, now: datetime
) -> dict[str, Any] | None:
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
        photo_url = settings.public_base_url.rstrip("/") + sign_url_path(
            path, key, settings.photo_url_ttl_seconds, now=now.timestamp()
        )
    return {
        "serial": claims.serial.hex(),
        "issuer": {
            "code": claims.issuer,
            "name": entry.issuer_name if entry else None,
            "service_phone": entry.issuer_service_phone if entry else None,
        },
        "holder_name": claims.holder_name,
        "masked_id": claims.masked_id_display,
        "operation": catalogue.describe(claims.operation),
        "valid_from": claims.valid_from.isoformat(),
        "valid_until": claims.valid_until.isoformat(),
        "review_due": review_due.isoformat() if review_due else None,
        "status": entry.status if entry else None,
        "status_since": entry.status_since.isoformat() if entry and entry.status_since else None,
        "status_list": _status_list_ref(claims, lists),
        "superseded_by": entry.superseded_by if entry else None,
        "exam_point": (
            {"code": entry.exam_point_code, "name": entry.exam_point_name}
            if entry is not None and entry.exam_point_code
            else None
        ),
        "photo_url": photo_url,
    }


def _status_list_ref(claims: crypto.CertificateClaims, lists: StatusLists) -> dict[str, Any] | None:
    if claims.status_index is None:
        return None
    return {"uri": lists.uri(claims.issuer, claims.status_index), "idx": crypto.list_index(claims.status_index)}
