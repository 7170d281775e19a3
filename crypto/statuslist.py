"""Status lists and Status List Tokens (IETF draft-ietf-oauth-status-list, CWT form).

A :class:`StatusList` is the draft's byte array: ``bits`` (1, 2, 4 or 8) per entry, entry 0 in the
least significant bits of byte 0, compressed with DEFLATE in the ZLIB format (RFC 1950) at level 9.
certseal publishes 2-bit lists of exactly :data:`LIST_SIZE` entries; a certificate's status index
picks the list (``status_index >> 17``) and the entry in it (``status_index & 0x1FFFF``).

A Status List Token is a tagged COSE_Sign1 (18, never inside the CWT tag 61) with the protected
header ``{1: -7, 4: kid, 16: "application/statuslist+cwt"}``, an empty unprotected header, and the
claims ``{2: sub, 4: exp, 6: iat, 65533: {"bits": 2, "lst": bstr}, 65534: ttl}`` in deterministic
CBOR. Nothing here reads the clock or the network: the caller passes ``now`` and the bytes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

from . import _algorithms, _cbor, cose
from .errors import (
    InvalidInput,
    Malformed,
    PolicyError,
    StatusIndexOutOfRange,
    StatusListExpired,
    StatusListMalformed,
    StatusListSubjectMismatch,
    StatusListTooLarge,
    UnknownKey,
    UnsupportedAlgorithm,
)
from .keys import SigningKey, TrustedKey

ALLOWED_BITS = (1, 2, 4, 8)
STATUS_BITS = 2
"""Bits per entry in certseal's lists (the draft allows 1, 2, 4 or 8)."""
LIST_INDEX_BITS = 17
LIST_SIZE = 1 << LIST_INDEX_BITS
"""Entries in every certseal status list: 131,072 (32,768 bytes before compression)."""
LIST_INDEX_MASK = LIST_SIZE - 1
ZLIB_LEVEL = 9

TYP_STATUS_LIST = "application/statuslist+cwt"
CLAIM_SUB = 2
CLAIM_EXP = 4
CLAIM_IAT = 6
CLAIM_STATUS_LIST = 65533
CLAIM_TTL = 65534
_CLAIM_ORDER = (CLAIM_SUB, CLAIM_EXP, CLAIM_IAT, CLAIM_STATUS_LIST, CLAIM_TTL)  # deterministic order

DEFAULT_TTL = timedelta(minutes=10)
DEFAULT_LIFETIME = timedelta(hours=24)
# A 2-bit list of 131,072 entries is 32,768 bytes; even incompressible it deflates to < 33 KB.
MAX_TOKEN_BYTES = 64 * 1024
MAX_TIMESTAMP = 2**32 - 1  # as the certificate's times: unsigned 32-bit seconds


class Status(IntEnum):
    """certseal's status values (draft section 7.1; 3 is the draft's application-specific value)."""

    VALID = 0
    REVOKED = 1  # the draft's INVALID
    SUSPENDED = 2
    SUPERSEDED = 3  # application-specific: reissued under a new key


def list_number(status_index: int) -> int:
    """Return the number of the list that holds ``status_index``: ``status_index >> 17``."""
    _check_status_index(status_index)
    return status_index >> LIST_INDEX_BITS


def list_index(status_index: int) -> int:
    """Return the entry of ``status_index`` inside its list: ``status_index & 0x1FFFF``."""
    _check_status_index(status_index)
    return status_index & LIST_INDEX_MASK


def status_list_uri(status_base: str, status_index: int) -> str:
    """Return the URI (the token's ``sub``) of the list holding ``status_index``: ``<status_base>/<list number>``."""
    if not status_base or status_base.endswith("/"):
        raise InvalidInput("status_base must be a non-empty URI without a trailing slash")
    return f"{status_base}/{list_number(status_index)}"


def _check_status_index(status_index: int) -> None:
    if type(status_index) is not int or status_index < 0:
        raise InvalidInput("a status index is a non-negative integer")


class StatusList:
    """The draft's status byte array: ``size`` entries of ``bits`` bits, entry 0 in the low bits of byte 0."""

    __slots__ = ("_data", "bits", "size")

    def __init__(self, bits: int, size: int, data: bytearray) -> None:
        if bits not in ALLOWED_BITS:
            raise InvalidInput(f"bits must be one of {ALLOWED_BITS}, not {bits!r}")
        if type(size) is not int or size <= 0 or len(data) != _byte_length(size, bits):
            raise InvalidInput("size must be positive and match the byte array")
        self.bits = bits
        self.size = size
        self._data = data

    @classmethod
    def new(cls, size: int = LIST_SIZE, bits: int = STATUS_BITS) -> StatusList:
        """Return a list of ``size`` entries of ``bits`` bits, all 0 (VALID)."""
        if bits not in ALLOWED_BITS:
            raise InvalidInput(f"bits must be one of {ALLOWED_BITS}, not {bits!r}")
        if type(size) is not int or size <= 0:
            raise InvalidInput("size must be a positive integer")
        return cls(bits, size, bytearray(_byte_length(size, bits)))

    @classmethod
    def from_bytes(cls, data: bytes, bits: int) -> StatusList:
        """Return the list over an uncompressed byte array (every byte full of entries)."""
        if bits not in ALLOWED_BITS:
            raise StatusListMalformed(f"bits {bits!r} is not one of {ALLOWED_BITS}")
        if not data:
            raise StatusListMalformed("empty status list")
        return cls(bits, len(data) * 8 // bits, bytearray(data))

    @classmethod
    def from_compressed(cls, bits: int, lst: bytes, *, max_entries: int) -> StatusList:
        """Decompress ``lst`` (ZLIB) into a list of at most ``max_entries`` entries.

        Decompresses at most the bytes ``max_entries`` needs, so a decompression bomb costs no more
        than that: more output is :class:`StatusListTooLarge`; a ``bits`` outside 1/2/4/8, a damaged
        or truncated stream, or bytes after it are :class:`StatusListMalformed`.
        """
        if type(bits) is not int or bits not in ALLOWED_BITS:
            raise StatusListMalformed(f"bits {bits!r} is not one of {ALLOWED_BITS}")
        if type(lst) is not bytes:
            raise StatusListMalformed("lst is not a byte string")
        if type(max_entries) is not int or max_entries <= 0:
            raise InvalidInput("max_entries must be a positive integer")
        limit = _byte_length(max_entries, bits)
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(lst, limit)
            # At the limit (or out of input): one more byte of output means the list is too large;
            # none and no end of stream means the stream is truncated.
            if not inflater.eof and inflater.decompress(inflater.unconsumed_tail, 1):
                raise StatusListTooLarge(f"lst inflates beyond {limit} bytes")
        except zlib.error as exc:
            raise StatusListMalformed(f"zlib: {exc}") from None
        if not inflater.eof:
            raise StatusListMalformed("lst is a truncated zlib stream")
        if inflater.unused_data:
            raise StatusListMalformed("bytes after the zlib stream")
        return cls.from_bytes(data, bits)

    def get(self, index: int) -> int:
        """Return the status at ``index``; an index outside the list is :class:`StatusIndexOutOfRange`."""
        if type(index) is not int or not 0 <= index < self.size:
            raise StatusIndexOutOfRange(f"index {index!r} outside a list of {self.size}")
        per_byte = 8 // self.bits
        shift = (index % per_byte) * self.bits
        return (self._data[index // per_byte] >> shift) & ((1 << self.bits) - 1)

    def set(self, index: int, value: int) -> None:
        """Set the status at ``index`` to ``value`` (0 .. 2**bits - 1)."""
        if type(index) is not int or not 0 <= index < self.size:
            raise InvalidInput(f"index {index!r} outside a list of {self.size}")
        if type(value) not in (int, Status) or not 0 <= value < (1 << self.bits):
            raise InvalidInput(f"value {value!r} does not fit in {self.bits} bits")
        per_byte = 8 // self.bits
        shift = (index % per_byte) * self.bits
        mask = ((1 << self.bits) - 1) << shift
        position = index // per_byte
        self._data[position] = (self._data[position] & ~mask) | (int(value) << shift)

    def to_bytes(self) -> bytes:
        """Return the uncompressed byte array."""
        return bytes(self._data)

    def compressed(self) -> bytes:
        """Return ``lst``: the byte array in the ZLIB format (RFC 1950), DEFLATE at level 9."""
        return zlib.compress(self._data, ZLIB_LEVEL)

    def to_cbor(self) -> dict[str, Any]:
        """Return the draft's StatusList map ``{"bits": n, "lst": bstr}``."""
        return {"bits": self.bits, "lst": self.compressed()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StatusList):
            return NotImplemented
        return (self.bits, self.size, self._data) == (other.bits, other.size, other._data)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"StatusList(bits={self.bits}, size={self.size})"


def _byte_length(size: int, bits: int) -> int:
    return (size * bits + 7) // 8


@dataclass(frozen=True, slots=True)
class StatusListToken:
    """A verified Status List Token: its URI, times, the signer's kid and the decompressed list."""

    uri: str
    iat: datetime
    exp: datetime
    ttl: timedelta
    status_list: StatusList
    kid: bytes

    def status(self, idx: int) -> Status:
        """Return the status of entry ``idx`` (``status_index & 0x1FFFF``)."""
        return Status(self.status_list.get(idx))

    def is_expired(self, now: datetime) -> bool:
        """Tell whether ``now`` is at or past ``exp``."""
        return _aware(now) >= self.exp


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise PolicyError("verification time must carry a time zone")
    return now


def _timestamp(moment: datetime, name: str) -> int:
    seconds = int(_aware(moment).timestamp())
    if not 0 <= seconds <= MAX_TIMESTAMP:
        raise InvalidInput(f"{name} is out of range")
    return seconds


def sign_status_list(
    status_list: StatusList,
    key: SigningKey,
    *,
    uri: str,
    iat: datetime,
    exp: datetime | None = None,
    ttl: timedelta = DEFAULT_TTL,
) -> bytes:
    """Return a Status List Token (tagged COSE_Sign1) for ``status_list`` at ``uri``, signed with ``key``.

    ``exp`` defaults to ``iat`` + 24 hours; ``ttl`` (how long a verifier may cache it) to 10 minutes.
    The list must be certseal's: 2 bits and :data:`LIST_SIZE` entries; the key must be ES256.
    """
    if key.alg != _algorithms.ES256:
        raise UnsupportedAlgorithm("status lists are signed with ES256")
    if status_list.bits != STATUS_BITS or status_list.size != LIST_SIZE:
        raise InvalidInput(f"a certseal status list has {LIST_SIZE} entries of {STATUS_BITS} bits")
    if type(uri) is not str or not uri:
        raise InvalidInput("uri must be a non-empty string")
    issued = _timestamp(iat, "iat")
    expires = _timestamp(exp if exp is not None else iat + DEFAULT_LIFETIME, "exp")
    ttl_seconds = int(ttl.total_seconds())
    if expires <= issued or ttl_seconds <= 0:
        raise InvalidInput("exp must follow iat and ttl must be positive")
    claims = {
        CLAIM_SUB: uri,
        CLAIM_EXP: expires,
        CLAIM_IAT: issued,
        CLAIM_STATUS_LIST: status_list.to_cbor(),
        CLAIM_TTL: ttl_seconds,
    }
    return cose.sign_typed(_cbor.dumps(claims), key, TYP_STATUS_LIST)


def verify_status_list_token(
    data: bytes,
    trusted_key: TrustedKey,
    *,
    expected_uri: str,
    now: datetime,
    allow_expired: bool = False,
) -> StatusListToken:
    """Verify a Status List Token signed by ``trusted_key`` for ``expected_uri`` and return it, decompressed.

    Checks, in order: the shape (:class:`Malformed`), the ``typ`` (:class:`WrongType`: a certificate
    is not a status list), the kid and signature (:class:`UnknownKey`, :class:`BadSignature`), the
    claims and the list (:class:`Malformed`, :class:`StatusListMalformed`,
    :class:`StatusListTooLarge`), ``sub`` (:class:`StatusListSubjectMismatch`), then ``exp``
    (:class:`StatusListExpired`, code ``status_unknown``, unless ``allow_expired``: then the caller
    reads :meth:`StatusListToken.is_expired` and says how stale the list is).
    """
    _aware(now)
    message = cose.decode_typed(data, typ=TYP_STATUS_LIST, what="a status list token", max_bytes=MAX_TOKEN_BYTES)
    kid = message.kid
    if type(kid) is not bytes or kid != trusted_key.kid:
        raise UnknownKey("the token's kid is not the status list key's")
    if message.alg != _algorithms.ES256:
        raise UnsupportedAlgorithm(f"status lists are signed with ES256, not {message.alg!r}")
    cose.verify_parts(message.alg, kid, message.signature, message.signed_bytes(), _OneKey(trusted_key))
    cose.require_low_s(message.signature)
    token = _decode_claims(message.payload, kid)
    if token.uri != expected_uri:
        raise StatusListSubjectMismatch(f"sub {token.uri!r} is not {expected_uri!r}")
    if token.is_expired(now) and not allow_expired:
        raise StatusListExpired(f"exp {token.exp.isoformat()} is not after {now.isoformat()}")
    return token


class _OneKey:
    """A key lookup that knows only the status list key."""

    def __init__(self, key: TrustedKey) -> None:
        self._key = key

    def get(self, kid: bytes) -> TrustedKey | None:
        return self._key if kid == self._key.kid else None


def _decode_claims(payload: bytes, kid: bytes) -> StatusListToken:
    claims = _cbor.loads_strict(payload, max_bytes=MAX_TOKEN_BYTES)
    if not isinstance(claims, dict) or tuple(claims) != _CLAIM_ORDER or not all(type(k) is int for k in claims):
        raise Malformed("status list claims must be exactly sub, exp, iat, status_list and ttl")
    sub, exp, iat, status_list, ttl = (claims[label] for label in _CLAIM_ORDER)
    if type(sub) is not str or not sub:
        raise Malformed("sub is not a non-empty text string")
    if not (_is_uint(iat, MAX_TIMESTAMP) and _is_uint(exp, MAX_TIMESTAMP) and iat < exp):
        raise Malformed("iat and exp must be times with iat before exp")
    if not (_is_uint(ttl, MAX_TIMESTAMP) and ttl > 0):
        raise Malformed("ttl must be a positive integer")
    if not isinstance(status_list, dict) or tuple(status_list) != ("lst", "bits"):
        raise StatusListMalformed("status_list must be exactly {bits, lst}")
    bits, lst = status_list["bits"], status_list["lst"]
    if type(bits) is not int or bits != STATUS_BITS:
        raise StatusListMalformed(f"bits {bits!r}: certseal lists have {STATUS_BITS}")
    decoded = StatusList.from_compressed(bits, lst, max_entries=LIST_SIZE)
    if decoded.size != LIST_SIZE:
        raise StatusListMalformed(f"{decoded.size} entries: certseal lists have {LIST_SIZE}")
    return StatusListToken(
        uri=sub,
        iat=datetime.fromtimestamp(iat, UTC),
        exp=datetime.fromtimestamp(exp, UTC),
        ttl=timedelta(seconds=ttl),
        status_list=decoded,
        kid=kid,
    )


def _is_uint(value: object, maximum: int) -> bool:
    return type(value) is int and 0 <= value <= maximum
