"""The signed trust list: which issuers exist, what they may certify, and their keys' lifecycles.

A trust list is a tagged COSE_Sign1 (18) in deterministic CBOR, signed ES256 (low S) by the
trust-anchor key, with the protected header ``{1: -7, 4: anchor kid, 16:
"application/vnd.certseal.trust-list+cbor"}`` and an empty unprotected header. Its payload is
``{"exp": uint, "iat": uint, "seq": uint, "issuers": [* Issuer]}`` (CDDL in
docs/credential-format.md §12). Every key is given as a COSE_Key (EC2 P-256 or OKP Ed25519) under
its certseal kid (SHA-256 of the SPKI, first 8 bytes), with its use, signing window,
``verify_until`` and state. Nothing here reads the clock or the network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from . import _algorithms, _cbor, cose
from ._algorithms import PublicKey
from .errors import (
    InvalidInput,
    Malformed,
    PolicyError,
    TrustListExpired,
    UnknownKey,
)
from .keys import ISSUER_PATTERN, KID_BYTES, SigningKey, key_id, load_public_key, public_key_pem

TYP_TRUST_LIST = "application/vnd.certseal.trust-list+cbor"
MAX_TRUST_LIST_BYTES = 1024 * 1024
"""Verifiers refuse a trust list larger than 1 MiB before parsing it."""
MAX_TIMESTAMP = 2**32 - 1
MAX_SEQUENCE = 2**63 - 1
"""The highest sequence number: a signed 64-bit integer, what a database column holds."""
_CLAIM_KEYS = ("exp", "iat", "seq", "issuers")  # RFC 8949 §4.2.1 order: shorter keys first
_ISSUER_KEYS = ("code", "keys", "name", "region", "operations", "status_base")
_KEY_KEYS = ("key", "kid", "use", "state", "not_after", "not_before", "verify_until")
_KEY_KEYS_COMPROMISED = ("key", "kid", "use", "state", "not_after", "not_before", "verify_until", "compromised_at")
_OPERATION_CODE = re.compile(r"[1-9][0-9]?\.[1-9][0-9]?")

# COSE_Key (RFC 9052 §7, RFC 9053 §7): labels and values certseal uses.
_KTY, _ALG, _CRV, _X, _Y = 1, 3, -1, -2, -3
_KTY_OKP, _KTY_EC2 = 1, 2
_CRV_P256, _CRV_ED25519 = 1, 6
_COORDINATE_BYTES = 32


class KeyUse(StrEnum):
    """What a key signs: certificates, or status list tokens (never both)."""

    CERTIFICATE = "certificate"
    STATUS_LIST = "status_list"


class KeyState(StrEnum):
    """A key's lifecycle state; a compromised key also says since when (``compromised_at``)."""

    ACTIVE = "active"
    RETIRED = "retired"
    COMPROMISED = "compromised"


@dataclass(frozen=True)
class TrustListKey:
    """One issuer key: kid, use, public key, signing window, ``verify_until`` and state (times UTC)."""

    kid: bytes
    use: KeyUse
    public_key: PublicKey
    not_before: datetime
    not_after: datetime | None
    verify_until: datetime | None
    state: KeyState
    compromised_at: datetime | None = None


@dataclass(frozen=True)
class TrustListIssuer:
    """One issuer: code, name, region, the catalogue items it may certify, its ``status_base`` and keys."""

    code: str
    name: str
    region: str
    operations: tuple[str, ...]
    status_base: str
    keys: tuple[TrustListKey, ...]


@dataclass(frozen=True)
class TrustListContent:
    """What a trust list asserts, minus its sequence number and times: the issuers, sorted by code."""

    issuers: tuple[TrustListIssuer, ...]

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form (``certseal trust sign --content``): kid hex, keys as PEM, times ISO 8601 UTC."""
        return {"issuers": [_issuer_json(issuer) for issuer in self.issuers]}

    @classmethod
    def from_json(cls, data: Any) -> TrustListContent:
        """Parse the JSON form; a wrong field is :class:`InvalidInput` naming the field and its rule.

        A key's ``kid`` may be left out (it is computed from ``public_key_pem``); given, it must match.
        """
        if not isinstance(data, dict) or set(data) != {"issuers"} or not isinstance(data["issuers"], list):
            raise InvalidInput('content: expected exactly {"issuers": [...]}')
        issuers = tuple(_issuer_from_json(item, f"issuers[{n}]") for n, item in enumerate(data["issuers"]))
        content = cls(tuple(sorted(issuers, key=lambda issuer: issuer.code)))
        problem = _content_problem(content)
        if problem:
            raise InvalidInput(f"content: {problem}")
        return content


@dataclass(frozen=True)
class TrustList:
    """A verified trust list: its sequence number, times, content and the anchor's kid."""

    sequence: int
    iat: datetime
    exp: datetime
    content: TrustListContent
    anchor_kid: bytes

    def issuer(self, code: str) -> TrustListIssuer | None:
        """Return the issuer with ``code``, if listed."""
        return next((issuer for issuer in self.content.issuers if issuer.code == code), None)

    def key(self, kid: bytes, use: KeyUse) -> tuple[TrustListIssuer, TrustListKey] | None:
        """Return the issuer and key listed under ``kid`` for ``use`` (a key of another use is not found)."""
        for issuer in self.content.issuers:
            for key in issuer.keys:
                if key.kid == kid and key.use == use:
                    return issuer, key
        return None

    def is_expired(self, now: datetime) -> bool:
        """Tell whether ``now`` is at or past ``exp``."""
        return _aware(now) >= self.exp


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise PolicyError("times must carry a time zone")
    return moment


# --- COSE_Key ---------------------------------------------------------------------------------


def cose_key(public_key: PublicKey) -> dict[int, Any]:
    """Return ``public_key`` as a COSE_Key map: EC2 P-256 with ``alg`` ES256, or OKP Ed25519 with EdDSA."""
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
        numbers = public_key.public_numbers()
        return {
            _KTY: _KTY_EC2,
            _ALG: _algorithms.ES256,
            _CRV: _CRV_P256,
            _X: numbers.x.to_bytes(_COORDINATE_BYTES, "big"),
            _Y: numbers.y.to_bytes(_COORDINATE_BYTES, "big"),
        }
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {_KTY: _KTY_OKP, _ALG: _algorithms.EDDSA, _CRV: _CRV_ED25519, _X: raw}
    raise InvalidInput("a trust list holds ES256 (P-256) or Ed25519 keys only")


def public_key_from_cose_key(value: object) -> PublicKey:
    """Parse a COSE_Key map of exactly the shape :func:`cose_key` writes; anything else is :class:`Malformed`."""
    if not isinstance(value, dict) or not all(type(label) is int for label in value):
        raise Malformed("COSE_Key is not a map of integer labels")
    labels = tuple(value)
    try:
        if labels == (_KTY, _ALG, _CRV, _X, _Y) and (value[_KTY], value[_ALG], value[_CRV]) == (
            _KTY_EC2,
            _algorithms.ES256,
            _CRV_P256,
        ):
            x, y = value[_X], value[_Y]
            if not (_is_coordinate(x) and _is_coordinate(y)):
                raise Malformed("COSE_Key x and y must be 32-byte strings")
            numbers = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1())
            return numbers.public_key()
        if labels == (_KTY, _ALG, _CRV, _X) and (value[_KTY], value[_ALG], value[_CRV]) == (
            _KTY_OKP,
            _algorithms.EDDSA,
            _CRV_ED25519,
        ):
            if not _is_coordinate(value[_X]):
                raise Malformed("COSE_Key x must be a 32-byte string")
            return ed25519.Ed25519PublicKey.from_public_bytes(value[_X])
    except ValueError:  # a point off the curve
        raise Malformed("COSE_Key is not a valid public key") from None
    raise Malformed("COSE_Key must be EC2 P-256 {1: 2, 3: -7, -1: 1, -2, -3} or OKP Ed25519 {1: 1, 3: -8, -1: 6, -2}")


def _is_coordinate(value: object) -> bool:
    return type(value) is bytes and len(value) == _COORDINATE_BYTES


# --- content rules (shared by signing and verifying) ----------------------------------------------


def _content_problem(content: TrustListContent) -> str | None:
    """Return what breaks the trust list's rules, or None: the signer refuses it, a verifier calls it malformed."""
    codes = [issuer.code for issuer in content.issuers]
    if codes != sorted(codes) or len(set(codes)) != len(codes):
        return "issuers must be sorted by code, each code once"
    seen: set[bytes] = set()
    for issuer in content.issuers:
        where = f"issuer {issuer.code!r}"
        if type(issuer.code) is not str or not ISSUER_PATTERN.fullmatch(issuer.code):
            return f"{where}: code must match `{ISSUER_PATTERN.pattern}`"
        if type(issuer.name) is not str or type(issuer.region) is not str:
            return f"{where}: name and region are text"
        if not all(type(op) is str and _OPERATION_CODE.fullmatch(op) for op in issuer.operations):
            return f"{where}: operations are catalogue item codes such as 2.1"
        if len(set(issuer.operations)) != len(issuer.operations):
            return f"{where}: an operation is listed twice"
        if type(issuer.status_base) is not str or not issuer.status_base or issuer.status_base.endswith("/"):
            return f"{where}: status_base must be a non-empty URI without a trailing slash"
        for key in issuer.keys:
            problem = _key_problem(key)
            if problem:
                return f"{where}: key {key.kid.hex() if type(key.kid) is bytes else key.kid!r}: {problem}"
            if key.kid in seen:
                return f"{where}: kid {key.kid.hex()} is listed twice (one issuer and one use per key)"
            seen.add(key.kid)
    return None


def _key_problem(key: TrustListKey) -> str | None:
    if type(key.kid) is not bytes or len(key.kid) != KID_BYTES:
        return f"kid must be {KID_BYTES} bytes"
    try:
        expected = key_id(key.public_key)
    except (AttributeError, TypeError):
        return "public_key is not a public key"
    if key.kid != expected:
        return "kid is not SHA-256(SPKI)[0:8] of the key"
    if not isinstance(key.use, KeyUse) or not isinstance(key.state, KeyState):
        return "use or state is not one of the allowed values"
    is_p256 = isinstance(key.public_key, ec.EllipticCurvePublicKey) and isinstance(key.public_key.curve, ec.SECP256R1)
    if not (is_p256 or isinstance(key.public_key, ed25519.Ed25519PublicKey)):
        return "keys are ES256 (P-256) or Ed25519"
    if key.use is KeyUse.STATUS_LIST and not is_p256:
        return "status-list keys are ES256 (P-256)"
    times = (key.not_before, key.not_after, key.verify_until, key.compromised_at)
    if not all(moment is None or _is_whole_utc_second(moment) for moment in times) or key.not_before is None:
        return "times must be timezone-aware whole seconds from 1970 to 2106 (not_before required)"
    if key.not_after is not None and key.not_after < key.not_before:
        return "not_after must not precede not_before"
    if (key.state is KeyState.COMPROMISED) != (key.compromised_at is not None):
        return "compromised_at is given if and only if the state is compromised"
    return None


def _is_whole_utc_second(moment: object) -> bool:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.microsecond:
        return False
    try:
        return 0 <= moment.timestamp() <= MAX_TIMESTAMP
    except (OverflowError, ValueError):
        return False


# --- CBOR form --------------------------------------------------------------------------------


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _optional_seconds(moment: datetime | None) -> int | None:
    return None if moment is None else _seconds(moment)


def _key_cbor(key: TrustListKey) -> dict[str, Any]:
    value: dict[str, Any] = {
        "kid": key.kid,
        "use": key.use.value,
        "key": cose_key(key.public_key),
        "not_before": _seconds(key.not_before),
        "not_after": _optional_seconds(key.not_after),
        "verify_until": _optional_seconds(key.verify_until),
        "state": key.state.value,
    }
    if key.compromised_at is not None:
        value["compromised_at"] = _seconds(key.compromised_at)
    return value


def _issuer_cbor(issuer: TrustListIssuer) -> dict[str, Any]:
    return {
        "code": issuer.code,
        "name": issuer.name,
        "region": issuer.region,
        "operations": list(issuer.operations),
        "status_base": issuer.status_base,
        "keys": [_key_cbor(key) for key in issuer.keys],
    }


def sign_trust_list(
    content: TrustListContent, anchor: SigningKey, *, sequence: int, iat: datetime, exp: datetime
) -> bytes:
    """Return the trust list (tagged COSE_Sign1) over ``content``, signed ES256 by the trust-anchor key.

    ``sequence`` >= 1 must grow from one publication to the next; ``iat`` < ``exp``, whole seconds.
    Content that breaks the rules a verifier applies is :class:`InvalidInput`.
    """
    if anchor.alg != _algorithms.ES256:
        raise InvalidInput("the trust anchor signs with ES256")
    if type(sequence) is not int or not 1 <= sequence <= MAX_SEQUENCE:
        raise InvalidInput("sequence must be a positive integer")
    if not (_is_whole_utc_second(iat) and _is_whole_utc_second(exp) and iat < exp):
        raise InvalidInput("iat and exp must be whole-second, timezone-aware times with iat before exp")
    problem = _content_problem(content)
    if problem:
        raise InvalidInput(problem)
    claims = {
        "seq": sequence,
        "iat": _seconds(iat),
        "exp": _seconds(exp),
        "issuers": [_issuer_cbor(issuer) for issuer in content.issuers],
    }
    return cose.sign_typed(_cbor.dumps(claims), anchor, TYP_TRUST_LIST)


def verify_trust_list(data: bytes, anchor: PublicKey, *, now: datetime, allow_expired: bool = False) -> TrustList:
    """Verify a trust list signed by the trust anchor ``anchor`` and return it.

    Checks, in order: size and shape (:class:`Malformed`), ``typ`` (:class:`WrongType`: a
    certificate or a status list is not a trust list), the exact header (:class:`Malformed`), the
    anchor's kid (:class:`UnknownKey`), the signature (:class:`BadSignature`; a high-S twin is
    :class:`Malformed`), the claims and every key (:class:`Malformed`), then ``exp``
    (:class:`TrustListExpired` unless ``allow_expired``).
    """
    _aware(now)
    if not (isinstance(anchor, ec.EllipticCurvePublicKey) and isinstance(anchor.curve, ec.SECP256R1)):
        raise InvalidInput("the trust anchor is an ES256 (P-256) public key")
    message = cose.decode_typed(data, typ=TYP_TRUST_LIST, what="a trust list", max_bytes=MAX_TRUST_LIST_BYTES)
    if message.alg != _algorithms.ES256:
        raise Malformed("protected header must be exactly {1: -7, 4: kid, 16: typ}")
    anchor_kid = key_id(anchor)
    if type(message.kid) is not bytes or message.kid != anchor_kid:
        raise UnknownKey("the trust list's kid is not the trust anchor's")
    _algorithms.ES256_ALG.verify(anchor, message.signature, message.signed_bytes())
    cose.require_low_s(message.signature)
    trust_list = _decode_claims(message.payload, anchor_kid)
    if trust_list.is_expired(now) and not allow_expired:
        raise TrustListExpired(f"exp {trust_list.exp.isoformat()} is not after {now.isoformat()}")
    return trust_list


def _decode_claims(payload: bytes, anchor_kid: bytes) -> TrustList:
    claims = _cbor.loads_strict(payload, max_bytes=MAX_TRUST_LIST_BYTES)
    if not isinstance(claims, dict) or tuple(claims) != _CLAIM_KEYS:
        raise Malformed("trust list claims must be exactly seq, iat, exp and issuers")
    seq, iat, exp, issuers = claims["seq"], claims["iat"], claims["exp"], claims["issuers"]
    if type(seq) is not int or not 1 <= seq <= MAX_SEQUENCE:
        raise Malformed(f"seq must be an integer from 1 to {MAX_SEQUENCE}")
    if not (_is_uint(iat) and _is_uint(exp) and iat < exp):
        raise Malformed("iat and exp must be times with iat before exp")
    if not isinstance(issuers, list):
        raise Malformed("issuers must be an array")
    content = TrustListContent(tuple(_decode_issuer(item) for item in issuers))
    problem = _content_problem(content)
    if problem:
        raise Malformed(problem)
    return TrustList(
        sequence=seq,
        iat=datetime.fromtimestamp(iat, UTC),
        exp=datetime.fromtimestamp(exp, UTC),
        content=content,
        anchor_kid=anchor_kid,
    )


def _decode_issuer(value: object) -> TrustListIssuer:
    if not isinstance(value, dict) or tuple(value) != _ISSUER_KEYS:
        raise Malformed("an issuer must be exactly code, name, region, operations, status_base and keys")
    operations, keys = value["operations"], value["keys"]
    if not isinstance(operations, list) or not isinstance(keys, list):
        raise Malformed("an issuer's operations and keys are arrays")
    for name in ("code", "name", "region", "status_base"):
        if type(value[name]) is not str:
            raise Malformed(f"an issuer's {name} is text")
    return TrustListIssuer(
        code=value["code"],
        name=value["name"],
        region=value["region"],
        operations=tuple(operations),
        status_base=value["status_base"],
        keys=tuple(_decode_key(item) for item in keys),
    )


def _decode_key(value: object) -> TrustListKey:
    if not isinstance(value, dict) or tuple(value) not in (_KEY_KEYS, _KEY_KEYS_COMPROMISED):
        raise Malformed("a key must be kid, use, key, not_before, not_after, verify_until, state [, compromised_at]")
    if value["use"] not in tuple(KeyUse) or value["state"] not in tuple(KeyState):
        raise Malformed("a key's use or state is not one of the allowed values")
    if type(value["kid"]) is not bytes:
        raise Malformed("a key's kid is a byte string")
    if not _is_uint(value["not_before"]) or not all(
        value.get(name) is None or _is_uint(value[name]) for name in ("not_after", "verify_until", "compromised_at")
    ):
        raise Malformed("a key's times are unsigned integers (not_after and verify_until may be null)")
    return TrustListKey(
        kid=value["kid"],
        use=KeyUse(value["use"]),
        public_key=public_key_from_cose_key(value["key"]),
        not_before=datetime.fromtimestamp(value["not_before"], UTC),
        not_after=_optional_time(value["not_after"]),
        verify_until=_optional_time(value["verify_until"]),
        state=KeyState(value["state"]),
        compromised_at=_optional_time(value.get("compromised_at")),
    )


def _optional_time(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _is_uint(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_TIMESTAMP


# --- JSON form --------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key_json(key: TrustListKey) -> dict[str, Any]:
    return {
        "kid": key.kid.hex(),
        "use": key.use.value,
        "public_key_pem": public_key_pem(key.public_key).decode("ascii"),
        "not_before": _iso(key.not_before),
        "not_after": _iso(key.not_after),
        "verify_until": _iso(key.verify_until),
        "state": key.state.value,
        "compromised_at": _iso(key.compromised_at),
    }


def _issuer_json(issuer: TrustListIssuer) -> dict[str, Any]:
    return {
        "code": issuer.code,
        "name": issuer.name,
        "region": issuer.region,
        "operations": list(issuer.operations),
        "status_base": issuer.status_base,
        "keys": [_key_json(key) for key in issuer.keys],
    }


_ISSUER_JSON_FIELDS = frozenset(("code", "name", "region", "operations", "status_base", "keys"))
_KEY_JSON_FIELDS = frozenset(
    ("kid", "use", "public_key_pem", "not_before", "not_after", "verify_until", "state", "compromised_at")
)


def _fields(data: object, allowed: frozenset[str], required: frozenset[str], where: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: expected an object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidInput(f"{where}.{unknown[0]}: unknown field")
    missing = sorted(required - set(data))
    if missing:
        raise InvalidInput(f"{where}.{missing[0]}: required")
    return data


def _text(data: Mapping[str, Any], name: str, where: str) -> str:
    value = data[name]
    if type(value) is not str:
        raise InvalidInput(f"{where}.{name}: must be a string")
    return value


def _json_time(value: object, where: str, *, optional: bool) -> datetime | None:
    if value is None and optional:
        return None
    rule = "an ISO 8601 UTC time such as 2026-06-15T02:00:00Z" + (" or null" if optional else "")
    if type(value) is not str:
        raise InvalidInput(f"{where}: must be {rule}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{where}: must be {rule}") from None
    if moment.tzinfo is None or moment.utcoffset() != UTC.utcoffset(None) or not _is_whole_utc_second(moment):
        raise InvalidInput(f"{where}: must be {rule} (UTC, whole seconds, 1970 to 2106)")
    return moment.astimezone(UTC)


def _issuer_from_json(data: object, where: str) -> TrustListIssuer:
    fields = _fields(data, _ISSUER_JSON_FIELDS, _ISSUER_JSON_FIELDS, where)
    code = _text(fields, "code", where)
    if not ISSUER_PATTERN.fullmatch(code):
        raise InvalidInput(f"{where}.code: must match `{ISSUER_PATTERN.pattern}`")
    operations = fields["operations"]
    if not (
        isinstance(operations, list) and all(type(op) is str and _OPERATION_CODE.fullmatch(op) for op in operations)
    ):
        raise InvalidInput(f'{where}.operations: must be a list of catalogue item codes such as "2.1"')
    keys = fields["keys"]
    if not isinstance(keys, list):
        raise InvalidInput(f"{where}.keys: must be a list")
    status_base = _text(fields, "status_base", where)
    if not status_base or status_base.endswith("/"):
        raise InvalidInput(f"{where}.status_base: must be a non-empty URI without a trailing slash")
    return TrustListIssuer(
        code=code,
        name=_text(fields, "name", where),
        region=_text(fields, "region", where),
        operations=tuple(operations),
        status_base=status_base,
        keys=tuple(_key_from_json(item, f"{where}.keys[{n}]") for n, item in enumerate(keys)),
    )


_KEY_REQUIRED = frozenset(("use", "public_key_pem", "not_before", "state"))


def _key_from_json(data: object, where: str) -> TrustListKey:
    fields = _fields(data, _KEY_JSON_FIELDS, _KEY_REQUIRED, where)
    pem = _text(fields, "public_key_pem", where)
    try:
        public_key = load_public_key(pem.encode("ascii"))
    except (InvalidInput, UnicodeEncodeError):
        raise InvalidInput(f"{where}.public_key_pem: must be a PEM SubjectPublicKeyInfo") from None
    kid = key_id(public_key)
    given = fields.get("kid")
    if given is not None and (type(given) is not str or given.lower() != kid.hex()):
        raise InvalidInput(f"{where}.kid: must be {kid.hex()}, SHA-256(SPKI)[0:8] of public_key_pem (or left out)")
    use, state = fields["use"], fields["state"]
    if use not in tuple(KeyUse):
        raise InvalidInput(f"{where}.use: must be one of {', '.join(KeyUse)}")
    if state not in tuple(KeyState):
        raise InvalidInput(f"{where}.state: must be one of {', '.join(KeyState)}")
    key = TrustListKey(
        kid=kid,
        use=KeyUse(use),
        public_key=public_key,
        not_before=_json_time(fields["not_before"], f"{where}.not_before", optional=False),  # type: ignore[arg-type]
        not_after=_json_time(fields.get("not_after"), f"{where}.not_after", optional=True),
        verify_until=_json_time(fields.get("verify_until"), f"{where}.verify_until", optional=True),
        state=KeyState(state),
        compromised_at=_json_time(fields.get("compromised_at"), f"{where}.compromised_at", optional=True),
    )
    problem = _key_problem(key)
    if problem:
        raise InvalidInput(f"{where}: {problem}")
    return key


__all__ = [
    "MAX_TRUST_LIST_BYTES",
    "TYP_TRUST_LIST",
    "KeyState",
    "KeyUse",
    "TrustList",
    "TrustListContent",
    "TrustListIssuer",
    "TrustListKey",
    "cose_key",
    "public_key_from_cose_key",
    "sign_trust_list",
    "verify_trust_list",
]
