"""The full offline verdict: a certificate judged against a verified trust list and status list tokens.

Nothing here reads the clock or the network: the caller fetches (and keeps fresh) the trust list and
the lists, and passes ``now``. Every failure is listed, as the online verdict does; the verdict
accepts only with none. The order of the checks (credential-format §12.5): format, signature (the
kid among the trust list's *certificate* keys), ``iss`` against the key's issuer, the key's signing
window, its state and ``verify_until``, the issuer's scope, the validity period, the caller's
``checks``, the trust list's ``exp``, then the status from the list whose ``sub`` the certificate
derives, signed by one of its issuer's *status-list* keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import cbor2

from . import _cbor, cose
from .envelope import SignedCertificate, verify_signature
from .errors import (
    CertsealError,
    Expired,
    IssuerNotAuthorized,
    KeyNotValidAtIssue,
    KeyRevoked,
    PolicyError,
    Revoked,
    StatusListExpired,
    StatusListSubjectMismatch,
    Superseded,
    Suspended,
    TrustListExpired,
    UnknownKey,
    VerificationError,
)
from .keys import TrustedKey
from .policy import CLOCK_SKEW, AllOf, Check, KeySigningWindow, ValidityPeriod
from .qrtext import envelope_from_qr_text
from .statuslist import (
    MAX_TOKEN_BYTES,
    TYP_STATUS_LIST,
    Status,
    StatusListToken,
    list_index,
    status_list_uri,
    verify_status_list_token,
)
from .trustlist import KeyState, KeyUse, TrustList, TrustListIssuer, TrustListKey

StatusSource = Literal["list", "stale", "none"]
_STATUS_ERRORS: dict[Status, type[VerificationError]] = {
    Status.REVOKED: Revoked,
    Status.SUSPENDED: Suspended,
    Status.SUPERSEDED: Superseded,
}
_CLAIM_SUB = 2


@dataclass(frozen=True)
class OfflineVerdict:
    """The offline decision, every reason (error codes, in check order), and what the status rests on.

    ``status_as_of`` is the list's ``iat`` (the status is "as of" that time); ``stale_by`` is ``now -
    exp`` whenever the certificate's list is past its ``exp`` (then ``status_source`` is ``stale``
    if ``allow_stale`` let it be used, else ``none`` with ``status_unknown``). ``message`` says what
    went wrong when the verdict stopped before the certificate could be read.
    """

    decision: Literal["accept", "reject"]
    reasons: tuple[str, ...]
    certificate: SignedCertificate | None
    issuer: TrustListIssuer | None
    status: Status | None
    status_source: StatusSource
    status_as_of: datetime | None
    status_list_uri: str | None
    status_list_idx: int | None
    stale_by: timedelta | None
    message: str | None = None


class _CertificateKeys:
    """The trust list's certificate keys as a kid lookup: a status-list key is never found here."""

    def __init__(self, trust_list: TrustList) -> None:
        self._trust_list = trust_list

    def get(self, kid: bytes) -> TrustedKey | None:
        found = self._trust_list.key(kid, KeyUse.CERTIFICATE)
        if found is None:
            return None
        issuer, key = found
        return TrustedKey(kid=key.kid, public_key=key.public_key, issuer=issuer.code)


class StatusListStore:
    """Status List Tokens indexed by their ``sub``, each verified and decompressed at most once.

    Build one from the lists fetched (refetched by ETag) and pass it to every :func:`verify_offline`:
    after the first check of a list, a status check is a dictionary lookup and one 2-bit read, whatever
    the number of lists. The key's state, window and ``verify_until`` and the list's ``exp`` are still
    judged on every call, against the trust list and the time given then.
    """

    def __init__(self, tokens: Iterable[bytes] = ()) -> None:
        self._by_uri: dict[str, list[tuple[bytes, bytes]]] = {}
        self._kids: set[bytes] = set()
        self._verified: dict[tuple[bytes, bytes], StatusListToken] = {}
        for data in tokens:
            self.add(data)

    def add(self, data: bytes) -> None:
        """Index one token by its ``sub`` (anything that is not a status list token is ignored)."""
        peeked = _peek(bytes(data))
        if peeked is not None:
            kid, sub = peeked
            self._by_uri.setdefault(sub, []).append((kid, bytes(data)))
            self._kids.add(kid)

    def tokens_for(self, uri: str) -> list[tuple[bytes, bytes]]:
        """The (kid, token) pairs whose ``sub`` is ``uri``."""
        return self._by_uri.get(uri, [])

    def signed_by_any(self, kids: Iterable[bytes]) -> bool:
        """Whether any token given names one of ``kids``."""
        return not self._kids.isdisjoint(kids)

    def verified(self, data: bytes, key: TrustListKey, *, uri: str, now: datetime) -> StatusListToken:
        """The token verified under ``key`` for ``uri`` and decompressed, from the cache after the first time."""
        cached = self._verified.get((data, key.kid))
        if cached is None:
            cached = verify_status_list_token(
                data, TrustedKey(kid=key.kid, public_key=key.public_key), expected_uri=uri, now=now, allow_expired=True
            )
            self._verified[(data, key.kid)] = cached
        return cached


def _rejected(error: VerificationError) -> OfflineVerdict:
    return OfflineVerdict(
        decision="reject",
        reasons=(error.code,),
        certificate=None,
        issuer=None,
        status=None,
        status_source="none",
        status_as_of=None,
        status_list_uri=None,
        status_list_idx=None,
        stale_by=None,
        message=error.detail or str(error),
    )


def verify_offline(
    qr_text: str,
    trust_list: TrustList,
    status_lists: Iterable[bytes] | StatusListStore,
    *,
    now: datetime,
    allow_stale: bool = False,
    checks: Sequence[Check] = (),
) -> OfflineVerdict:
    """Verify QR text fully offline against ``trust_list`` and the Status List Tokens ``status_lists``.

    ``checks`` are extra policy checks (review date, purpose, operation); the validity period always
    runs. ``status_lists`` is the token bytes, or a :class:`StatusListStore` kept across calls (then a
    list is verified and decompressed once, not on every call). A stale trust list (past its ``exp``)
    is ``trust_list_expired`` and a stale status list is ``status_unknown``, unless ``allow_stale``.
    Fails closed: any doubt is a reason to reject.
    """
    if now.tzinfo is None:
        raise PolicyError("verification time must carry a time zone")
    try:
        certificate = verify_signature(envelope_from_qr_text(qr_text), _CertificateKeys(trust_list))
    except VerificationError as error:
        return _rejected(error)
    found = trust_list.key(certificate.kid, KeyUse.CERTIFICATE)
    if found is None:  # verify_signature found it: cannot happen, but never accept without a key
        return _rejected(UnknownKey(f"kid {certificate.kid.hex()}"))
    issuer, key = found
    failures: list[VerificationError] = []
    if certificate.claims.issuer != issuer.code:
        failures.append(IssuerNotAuthorized(f"iss {certificate.claims.issuer} but the key is {issuer.code}'s"))
    failures += _key_failures(certificate, key, now)
    if str(certificate.claims.operation) not in issuer.operations:
        failures.append(IssuerNotAuthorized(f"{issuer.code} may not certify {certificate.claims.operation}"))
    failures += AllOf([ValidityPeriod(), *checks]).failures(certificate, now)
    if trust_list.is_expired(now) and not allow_stale:
        failures.append(TrustListExpired(f"exp {trust_list.exp.isoformat()}"))
    status = _status(certificate, issuer, trust_list, status_lists, now=now, allow_stale=allow_stale)
    failures += status.failures
    reasons = tuple(dict.fromkeys(error.code for error in failures))  # each code once, in check order
    return OfflineVerdict(
        decision="reject" if reasons else "accept",
        reasons=reasons,
        certificate=certificate,
        issuer=issuer,
        status=status.status,
        status_source=status.source,
        status_as_of=status.as_of,
        status_list_uri=status.uri,
        status_list_idx=status.idx,
        stale_by=status.stale_by,
        message="; ".join(error.detail or str(error) for error in failures) or None,
    )


def _key_failures(certificate: SignedCertificate, key: TrustListKey, now: datetime) -> list[VerificationError]:
    """The key's signing window (against ``iat``), its state, and its ``verify_until`` (against ``now``)."""
    failures = AllOf([KeySigningWindow(key.not_before, key.not_after)]).failures(certificate, now)
    if key.state is KeyState.COMPROMISED:
        # Offline a verifier cannot tell when a certificate was really made (iat can be backdated by
        # whoever holds the stolen key): everything the key signed is refused.
        failures.append(KeyRevoked(f"key {key.kid.hex()} compromised at {key.compromised_at}"))
    if key.verify_until is not None and now >= key.verify_until:
        failures.append(Expired(f"key {key.kid.hex()} verifies until {key.verify_until.isoformat()}"))
    return failures


@dataclass(frozen=True)
class _StatusResult:
    failures: list[VerificationError]
    status: Status | None = None
    source: StatusSource = "none"
    as_of: datetime | None = None
    uri: str | None = None
    idx: int | None = None
    stale_by: timedelta | None = None


def _peek(data: bytes) -> tuple[bytes, str] | None:
    """Return a token's (kid, sub) without verifying anything, or None if it is not a status list token."""
    if len(data) > MAX_TOKEN_BYTES:
        return None
    try:  # leniently: a token for this certificate that breaks the strict rules is refused by name later
        message = cose.from_cbor_value(cbor2.loads(bytes(data)))
        claims = cbor2.loads(message.payload)
    except (CertsealError, *_cbor.DECODE_ERRORS):
        return None
    kid = message.protected.get(cose.HEADER_KID)
    sub = claims.get(_CLAIM_SUB) if isinstance(claims, dict) else None
    if message.protected.get(cose.HEADER_TYP) != TYP_STATUS_LIST or type(kid) is not bytes or type(sub) is not str:
        return None
    return kid, sub


def _status(
    certificate: SignedCertificate,
    issuer: TrustListIssuer,
    trust_list: TrustList,
    status_lists: Iterable[bytes] | StatusListStore,
    *,
    now: datetime,
    allow_stale: bool,
) -> _StatusResult:
    """Find the certificate's list, verify it with the issuer's status-list keys and read the entry."""
    index = certificate.claims.status_index
    if index is None:
        return _StatusResult([StatusListExpired("the certificate carries no status index: no list can speak for it")])
    uri, idx = status_list_uri(issuer.status_base, index), list_index(index)
    status_keys = {key.kid: key for key in issuer.keys if key.use is KeyUse.STATUS_LIST}
    store = status_lists if isinstance(status_lists, StatusListStore) else StatusListStore(status_lists)
    newest: StatusListToken | None = None
    errors: list[VerificationError] = []
    for kid, data in store.tokens_for(uri):
        try:
            token = _verified_list(store, data, status_keys.get(kid), uri=uri, now=now)
        except VerificationError as error:
            errors.append(error)
            continue
        if newest is None or token.iat > newest.iat:
            newest = token
    if newest is None:
        if errors:  # the certificate's list was given, but cannot be trusted
            return _StatusResult(errors[:1], uri=uri, idx=idx)
        if store.signed_by_any(status_keys):
            return _StatusResult(
                [StatusListSubjectMismatch(f"none of the issuer's lists given is {uri}")], uri=uri, idx=idx
            )
        return _StatusResult([StatusListExpired(f"no status list {uri} given")], uri=uri, idx=idx)
    stale_by = now - newest.exp if newest.is_expired(now) else None
    if stale_by is not None and not allow_stale:
        failure = StatusListExpired(f"list {uri} expired {newest.exp.isoformat()}")
        return _StatusResult([failure], uri=uri, idx=idx, as_of=newest.iat, stale_by=stale_by)
    status = newest.status(idx)
    status_error = _STATUS_ERRORS.get(status)
    return _StatusResult(
        [status_error(f"entry {idx} of {uri} is {status.name.lower()}")] if status_error else [],
        status=status,
        source="stale" if stale_by is not None else "list",
        as_of=newest.iat,
        uri=uri,
        idx=idx,
        stale_by=stale_by,
    )


def _verified_list(
    store: StatusListStore, data: bytes, key: TrustListKey | None, *, uri: str, now: datetime
) -> StatusListToken:
    """Verify a list token with the issuer's status-list ``key`` (None: the signer is not one of them)."""
    if key is None:
        raise UnknownKey("the status list is not signed by one of the issuer's status-list keys")
    if key.state is KeyState.COMPROMISED:
        raise UnknownKey(f"status-list key {key.kid.hex()} is compromised: its lists are not trusted")
    if key.verify_until is not None and now >= key.verify_until:
        raise UnknownKey(f"status-list key {key.kid.hex()} verifies until {key.verify_until.isoformat()}")
    token = store.verified(data, key, uri=uri, now=now)
    lower = key.not_before - CLOCK_SKEW
    upper = key.not_after + CLOCK_SKEW if key.not_after is not None else None
    if token.iat < lower or (upper is not None and token.iat > upper):
        raise KeyNotValidAtIssue(f"list iat {token.iat.isoformat()} outside the status-list key's signing window")
    return token


__all__ = ["OfflineVerdict", "StatusListStore", "StatusSource", "verify_offline"]
