"""A general COSE_Sign1 (RFC 9052) decoder, signer and verifier.

This layer follows RFC 9052 as any interoperable verifier must: the message may be tagged (18,
optionally inside the CWT tag 61) or untagged, ``alg`` and ``kid`` are read from the protected
header and, where it lacks them, from the unprotected one, and external AAD is supported. The
certseal profile (``crypto.envelope``) adds its strict rules on top.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import cbor2

from . import _algorithms, _cbor
from .errors import BadSignature, Malformed, UnknownKey, WrongType
from .keys import SigningKey, TrustedKey

COSE_SIGN1_TAG = 18
CWT_TAG = 61
HEADER_ALG = 1
HEADER_KID = 4
HEADER_TYP = 16  # RFC 9596: the content type of the whole message
_TYPED_HEADER = (HEADER_ALG, HEADER_KID, HEADER_TYP)


class KeyLookup(Protocol):
    """Anything that finds a trusted key by kid, such as :class:`crypto.keys.TrustStore`."""

    def get(self, kid: bytes) -> TrustedKey | None:
        """Return the trusted key for ``kid`` or None."""


@dataclass(frozen=True, slots=True)
class Sign1Message:
    """A decoded, not yet verified COSE_Sign1."""

    protected_bytes: bytes
    protected: Mapping[Any, Any]
    unprotected: Mapping[Any, Any]
    payload: bytes
    signature: bytes
    tags: tuple[int, ...]

    def header(self, label: int) -> Any:
        """Return a header parameter, protected first (RFC 9052 section 3)."""
        if label in self.protected:
            return self.protected[label]
        return self.unprotected.get(label)

    def signed_bytes(self, external_aad: bytes = b"") -> bytes:
        """Return the Sig_structure ``["Signature1", protected, external_aad, payload]``."""
        # RFC 9052 sections 3 and 4.4: with no protected parameters the Sig_structure holds a
        # zero-length byte string, even when the message carries the empty map as h'a0'.
        protected_bytes = self.protected_bytes if self.protected else b""
        return sig_structure(protected_bytes, external_aad, self.payload)


_SIGNATURE1_PREFIX = b"\x84\x6aSignature1"  # array(4), text(10) "Signature1"


def sig_structure(protected_bytes: bytes, external_aad: bytes, payload: bytes) -> bytes:
    """Return the Sig_structure for COSE_Sign1 (RFC 9052 section 4.4), deterministically encoded."""
    # Built by hand: this runs on every verification and is four byte strings behind a fixed head.
    return b"".join(
        (
            _SIGNATURE1_PREFIX,
            _cbor.bstr_head(len(protected_bytes)),
            protected_bytes,
            _cbor.bstr_head(len(external_aad)),
            external_aad,
            _cbor.bstr_head(len(payload)),
            payload,
        )
    )


def from_cbor_value(value: Any) -> Sign1Message:
    """Interpret a decoded CBOR value as a COSE_Sign1, checking its shape."""
    tags: list[int] = []
    while isinstance(value, cbor2.CBORTag):
        tags.append(value.tag)
        value = value.value
    if tags not in ([], [COSE_SIGN1_TAG], [CWT_TAG, COSE_SIGN1_TAG]):
        raise Malformed(f"tags {tags} are not a COSE_Sign1")
    if not (isinstance(value, list) and len(value) == 4):
        raise Malformed("COSE_Sign1 is not a 4-element array")
    protected_bytes, unprotected, payload, signature = value
    if not (
        type(protected_bytes) is bytes
        and isinstance(unprotected, dict)
        and type(payload) is bytes
        and type(signature) is bytes
    ):
        raise Malformed("COSE_Sign1 element types (detached payloads are not supported)")
    if protected_bytes:
        protected = _loads_lenient(protected_bytes)
        if not isinstance(protected, dict):
            raise Malformed("protected header is not a map")
    else:
        protected = {}
    # A label in both buckets is allowed (RFC 9052 section 3): :meth:`Sign1Message.header` reads the
    # protected one, so an unprotected duplicate can never override what the signature covers.
    return Sign1Message(protected_bytes, protected, unprotected, payload, signature, tuple(tags))


def _loads_lenient(data: bytes) -> Any:
    """Decode one CBOR item as a general RFC 9052 verifier may: any valid encoding, nothing after it."""
    if len(data) > _cbor.MAX_ENVELOPE_BYTES:
        raise Malformed(f"{len(data)} bytes exceeds {_cbor.MAX_ENVELOPE_BYTES}")
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except _cbor.DECODE_ERRORS as exc:
        raise Malformed(f"CBOR decode: {type(exc).__name__}") from None
    if stream.tell() != len(data):
        raise Malformed("trailing bytes after CBOR item")
    return value


def decode(data: bytes) -> Sign1Message:
    """Decode a COSE_Sign1 as a general RFC 9052 verifier does."""
    return from_cbor_value(_loads_lenient(bytes(data)))


def verify(message: Sign1Message, keys: KeyLookup, *, external_aad: bytes = b"") -> TrustedKey:
    """Verify ``message``'s signature with the trusted key its kid names and return that key.

    Raises :class:`UnknownKey`, :class:`UnsupportedAlgorithm` or :class:`BadSignature`.
    """
    return verify_parts(
        message.header(HEADER_ALG),
        message.header(HEADER_KID),
        message.signature,
        message.signed_bytes(external_aad),
        keys,
    )


def verify_parts(alg: object, kid: object, signature: bytes, signed: bytes, keys: KeyLookup) -> TrustedKey:
    """Verify ``signature`` over the Sig_structure ``signed`` with the trusted key ``kid`` names, under ``alg``."""
    if type(kid) is not bytes:
        raise UnknownKey("no kid byte string in either header")
    algorithm = _algorithms.algorithm(alg)
    trusted = keys.get(kid)
    if trusted is None:
        raise UnknownKey(f"kid {kid.hex()}")
    if algorithm.cose_id not in trusted.algorithms:
        raise BadSignature(f"{algorithm.name} does not go with kid {kid.hex()}'s key type")
    algorithm.verify(trusted.public_key, signature, signed)
    return trusted


def sign(payload: bytes, key: SigningKey) -> bytes:
    """Return a tagged COSE_Sign1 over ``payload`` with ``alg`` and ``kid`` protected, nothing unprotected."""
    protected_bytes = _cbor.dumps({HEADER_ALG: key.alg, HEADER_KID: key.kid})
    signature = key.sign(sig_structure(protected_bytes, b"", payload))
    return _cbor.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected_bytes, {}, payload, signature]))


@dataclass(frozen=True)
class TypedSign1:
    """A strictly decoded, still unverified COSE_Sign1 whose protected header is exactly ``{1, 4, 16}``."""

    protected: bytes
    alg: object
    kid: object
    payload: bytes
    signature: bytes

    def signed_bytes(self) -> bytes:
        """The Sig_structure the signature covers (no external AAD)."""
        return sig_structure(self.protected, b"", self.payload)


def sign_typed(payload: bytes, key: SigningKey, typ: str) -> bytes:
    """A tagged COSE_Sign1 with the protected header ``{1: alg, 4: kid, 16: typ}`` and an empty unprotected one."""
    protected = _cbor.dumps({HEADER_ALG: key.alg, HEADER_KID: key.kid, HEADER_TYP: typ})
    signature = key.sign(sig_structure(protected, b"", payload))
    return _cbor.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))


def decode_typed(data: bytes, *, typ: str, what: str, max_bytes: int) -> TypedSign1:
    """Decode a tagged COSE_Sign1 of type ``typ`` under certseal's strict rules (``what`` names it in errors).

    Deterministic CBOR of at most ``max_bytes``, tag 18 (never 61), four elements, an empty unprotected
    header and a protected header of exactly alg, kid and typ: else :class:`Malformed`. Another ``typ``
    is :class:`WrongType`, so a certificate, a status list and a trust list never pass for one another.
    """
    value = _cbor.loads_strict(bytes(data), max_bytes=max_bytes)
    if not isinstance(value, cbor2.CBORTag) or value.tag != COSE_SIGN1_TAG:
        raise Malformed(f"{what} is a COSE_Sign1 tagged 18 (and not 61)")
    message = value.value
    if not (isinstance(message, list) and len(message) == 4):
        raise Malformed("COSE_Sign1 is not a 4-element array")
    protected, unprotected, payload, signature = message
    if not (type(protected) is bytes and type(payload) is bytes and type(signature) is bytes):
        raise Malformed("COSE_Sign1 element types")
    if type(unprotected) is not dict or unprotected:
        raise Malformed(f"{what} has an empty unprotected header")
    header = _cbor.loads_strict(protected)
    if not isinstance(header, dict) or not all(type(label) is int for label in header):
        raise Malformed("protected header is not a map of integer labels")
    if header.get(HEADER_TYP) != typ:
        raise WrongType(f"typ {header.get(HEADER_TYP)!r} is not {typ}")
    if tuple(header) != _TYPED_HEADER:
        raise Malformed("protected header must be exactly alg, kid and typ")
    return TypedSign1(protected, header[HEADER_ALG], header[HEADER_KID], payload, signature)


def require_low_s(signature: bytes) -> None:
    """Refuse the high-S twin of an ES256 signature (certseal signs only the low-S form): :class:`Malformed`."""
    if not _algorithms.ES256_ALG.is_low_s(signature):
        raise Malformed("ES256 signature with a high s: certseal signs only the low-S form")
