"""The certseal credential profile: a CWT (RFC 8392) in a tagged COSE_Sign1, read strictly.

The exact format is specified in ``docs/credential-format.md``; this module is its reference
implementation. Strict means: COSE_Sign1 tag 18 and nothing else, ``alg`` and ``kid`` in the
protected header and an empty unprotected header, deterministic CBOR everywhere with no duplicate
keys and no trailing bytes, only the claims the profile defines, each of its exact type and range,
and an ES256 signature only in its low-S form (one valid encoding: ``(r, n - s)`` is refused).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import struct
import unicodedata
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, NamedTuple

from . import _algorithms, _cbor, cose
from ._name_chars import NAME_CHAR_RANGES
from .errors import InvalidInput, Malformed
from .keys import ISSUER_PATTERN, SigningKey, TrustedKey

CST = timezone(timedelta(hours=8), "CST")  # China Standard Time: certificate dates are calendar dates here
EPOCH_DATE = date(1970, 1, 1)
_EPOCH_ORDINAL = EPOCH_DATE.toordinal()

CLAIM_ISS = 1
CLAIM_EXP = 4
CLAIM_NBF = 5
CLAIM_IAT = 6
CLAIM_CTI = 7
CLAIM_CERTIFICATE = -65537  # private use (RFC 8392 section 9.1: below -65536)

CERT_HOLDER_NAME = 1
CERT_MASKED_ID = 2
CERT_OPERATION = 3
CERT_REVIEW_DUE = 4
CERT_PHOTO_DIGEST = 5
CERT_STATUS_INDEX = 6

SERIAL_BYTES = 8
SERIAL_RANGE = range(8, 17)
PHOTO_DIGEST_BYTES = 16
MAX_HOLDER_NAME_CHARS = 32
MAX_STATUS_INDEX = 2**32 - 1
MAX_REVIEW_DAYS = 100_000  # review dates from 1970 to 2243
MAX_TIMESTAMP = 2**32 - 1  # unsigned 32-bit seconds: good until 2106, and keeps every time 5 bytes

MASKED_ID_PATTERN = re.compile(r"[0-9]{7}[0-9X]")
MASK_FILL = "*" * 10

# Keys in deterministic order (RFC 8949 section 4.2.1): non-negative integers first, then negative.
_CLAIM_ORDER = (CLAIM_ISS, CLAIM_EXP, CLAIM_NBF, CLAIM_IAT, CLAIM_CTI, CLAIM_CERTIFICATE)
_CERT_REQUIRED = frozenset({CERT_HOLDER_NAME, CERT_MASKED_ID, CERT_OPERATION})
_CERT_KEYS = _CERT_REQUIRED | {CERT_REVIEW_DUE, CERT_PHOTO_DIGEST, CERT_STATUS_INDEX}


class Operation(NamedTuple):
    """A special-operation catalogue item such as 2.1 (category 2, item 1)."""

    category: int
    item: int

    @classmethod
    def parse(cls, code: str) -> Operation:
        """Parse ``"2.1"``; raise :class:`InvalidInput` for anything else."""
        match = re.fullmatch(r"([1-9][0-9]?)\.([1-9][0-9]?)", code.strip()) if isinstance(code, str) else None
        if match is None:
            raise InvalidInput("operation code must look like 2.1")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.category}.{self.item}"


def start_of_day(day: date) -> int:
    """Return the Unix time of 00:00 China Standard Time on ``day``."""
    return int(datetime.combine(day, time(0), CST).timestamp())


def mask_visible(id_number: str) -> str:
    """Return the characters of an 18-character ID number that certseal may show: first 4 and last 4."""
    if len(id_number) != 18:
        raise InvalidInput("ID number must have 18 characters")
    return id_number[:4] + id_number[-4:]


def display_masked(visible: str) -> str:
    """Show the visible characters of an ID number as people read it, e.g. ``4401**********123X``."""
    return visible[:4] + MASK_FILL + visible[4:]


def photo_digest(photo: bytes) -> bytes:
    """Return the 16-byte photo digest the credential carries: SHA-256 truncated."""
    return hashlib.sha256(photo).digest()[:PHOTO_DIGEST_BYTES]


class _ClaimFields(NamedTuple):
    issuer: str
    serial: bytes
    issued_at: int
    not_before: int
    expires: int
    holder_name: str
    masked_id: str
    operation: Operation
    review_due: date | None = None
    photo_digest: bytes | None = None
    status_index: int | None = None


class CertificateClaims(_ClaimFields):
    """Everything a certseal credential asserts; an instance outside the profile cannot be made.

    An immutable named tuple rather than a frozen dataclass: one is built on every verification,
    and a frozen dataclass costs three times as much to construct.
    """

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> CertificateClaims:
        """Create claims, raising :class:`InvalidInput` if any field is outside the profile."""
        claims = super().__new__(cls, *args, **kwargs)
        problem = _claims_problem(claims)
        if problem:
            raise InvalidInput(problem)
        return claims

    @classmethod
    def issue(
        cls,
        *,
        issuer: str,
        holder_name: str,
        masked_id: str,
        operation: Operation,
        valid_from: date,
        valid_until: date,
        review_due: date | None = None,
        photo_digest: bytes | None = None,
        status_index: int | None = None,
        serial: bytes | None = None,
        issued_at: datetime | None = None,
    ) -> CertificateClaims:
        """Build the claims of a new certificate valid from the start of ``valid_from`` through the end
        of ``valid_until`` (both China Standard Time calendar dates)."""
        try:
            expires = start_of_day(valid_until + timedelta(days=1))
        except OverflowError:  # 9999-12-31 has no next day
            raise InvalidInput("valid_until is out of range") from None
        return cls(
            issuer=issuer,
            serial=secrets.token_bytes(SERIAL_BYTES) if serial is None else serial,
            issued_at=int((issued_at or datetime.now(CST)).timestamp()),
            not_before=start_of_day(valid_from),
            expires=expires,
            holder_name=unicodedata.normalize("NFC", holder_name.strip()),
            masked_id=masked_id,
            operation=operation,
            review_due=review_due,
            photo_digest=photo_digest,
            status_index=status_index,
        )

    @property
    def valid_from(self) -> date:
        """First calendar day (CST) of validity."""
        return datetime.fromtimestamp(self.not_before, CST).date()

    @property
    def valid_until(self) -> date:
        """Last calendar day (CST) of validity: ``exp`` is the first second after it."""
        return datetime.fromtimestamp(self.expires - 1, CST).date()

    @property
    def masked_id_display(self) -> str:
        """The masked ID number as shown to people, e.g. ``4401**********123X``."""
        return display_masked(self.masked_id)

    def to_cbor(self) -> dict[int, Any]:
        """Return the CWT claims map."""
        certificate: dict[int, Any] = {
            CERT_HOLDER_NAME: self.holder_name,
            CERT_MASKED_ID: self.masked_id,
            CERT_OPERATION: [self.operation.category, self.operation.item],
        }
        if self.review_due is not None:
            certificate[CERT_REVIEW_DUE] = (self.review_due - EPOCH_DATE).days
        if self.photo_digest is not None:
            certificate[CERT_PHOTO_DIGEST] = self.photo_digest
        if self.status_index is not None:
            certificate[CERT_STATUS_INDEX] = self.status_index
        return {
            CLAIM_ISS: self.issuer,
            CLAIM_EXP: self.expires,
            CLAIM_NBF: self.not_before,
            CLAIM_IAT: self.issued_at,
            CLAIM_CTI: self.serial,
            CLAIM_CERTIFICATE: certificate,
        }

    @classmethod
    def from_cbor(cls, claims: Any) -> CertificateClaims:
        """Read a CWT claims map that must follow the profile exactly; raise :class:`Malformed` otherwise."""
        # The type test matters: CBOR true or 1.0 as a key compares equal to 1 in Python.
        if not isinstance(claims, dict) or tuple(claims) != _CLAIM_ORDER or not all(type(k) is int for k in claims):
            raise Malformed("CWT claims are not exactly iss, exp, nbf, iat, cti and the certificate, in order")
        certificate = claims[CLAIM_CERTIFICATE]
        if not isinstance(certificate, dict):
            raise Malformed("certificate claim is not a map")
        fields = list(certificate)
        if (
            not all(type(k) is int for k in fields)
            or not (_CERT_REQUIRED <= set(fields) <= _CERT_KEYS)
            or fields != sorted(fields)
        ):
            raise Malformed("certificate claim has missing, unknown or unordered fields")
        operation = certificate[CERT_OPERATION]
        review_days = certificate.get(CERT_REVIEW_DUE)
        if not (
            isinstance(operation, list)
            and len(operation) == 2
            and all(type(part) is int for part in operation)
            and (review_days is None or (type(review_days) is int and 0 <= review_days < MAX_REVIEW_DAYS))
        ):
            raise Malformed("operation or review date has the wrong type")
        try:
            return cls(
                issuer=claims[CLAIM_ISS],
                serial=claims[CLAIM_CTI],
                issued_at=claims[CLAIM_IAT],
                not_before=claims[CLAIM_NBF],
                expires=claims[CLAIM_EXP],
                holder_name=certificate[CERT_HOLDER_NAME],
                masked_id=certificate[CERT_MASKED_ID],
                operation=Operation(*operation),
                review_due=None if review_days is None else date.fromordinal(_EPOCH_ORDINAL + review_days),
                photo_digest=certificate.get(CERT_PHOTO_DIGEST),
                status_index=certificate.get(CERT_STATUS_INDEX),
            )
        except InvalidInput as exc:
            raise Malformed(exc.detail) from None


def _head(data: bytes, pos: int, major: int) -> tuple[int, int]:
    """Read a CBOR head of ``major`` type at ``pos`` in shortest form; return its argument and the next position."""
    initial = data[pos]
    if initial >> 5 != major:
        raise Malformed(f"expected CBOR major type {major} at byte {pos}")
    info = initial & 0x1F
    if info < 24:
        return info, pos + 1
    width = _ARGUMENT_WIDTH.get(info)
    if width is None:
        raise Malformed("indefinite length or reserved CBOR head")
    end = pos + 1 + width
    if end > len(data):
        raise Malformed("truncated CBOR head")
    value = int.from_bytes(data[pos + 1 : end], "big")
    if value < _SHORTEST_FLOOR[width]:
        raise Malformed("CBOR head not in shortest form")
    return value, end


_ARGUMENT_WIDTH = {24: 1, 25: 2, 26: 4, 27: 8}
_SHORTEST_FLOOR = {1: 24, 2: 0x100, 4: 0x10000, 8: 0x100000000}
_MAJOR_UINT, _MAJOR_BSTR, _MAJOR_TSTR, _MAJOR_ARRAY, _MAJOR_MAP = 0, 2, 3, 4, 5
_CERTIFICATE_KEY = b"\x3a\x00\x01\x00\x00"  # -65537
# What every certificate certseal issues has between iss and the certificate map: exp, nbf and iat as
# 4-byte unsigned integers, an 8-byte cti, the certificate key and a one-byte map head. Read in one
# struct call; anything else takes the general path below it.
_COMMON_MIDDLE = struct.Struct(">2sI2sI2sI2s8s5sB")
# Then, in the certificate map: the masked ID (8 characters), the operation as two one-byte integers,
# and a review date after 1970-09-13 (a 2-byte integer) with the 16-byte photo digest.
_COMMON_CERTIFICATE = struct.Struct(">2s8s2sBB")
_COMMON_EXTRAS = struct.Struct(">2sH2s16s")
_COMMON_MARKERS = (b"\x04\x1a", b"\x05\x1a", b"\x06\x1a", b"\x07\x48", _CERTIFICATE_KEY)


def _bytes_at(data: bytes, pos: int, major: int) -> tuple[bytes, int]:
    length, pos = _head(data, pos, major)
    end = pos + length
    if end > len(data):
        raise Malformed("truncated string")
    return data[pos:end], end


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("text is not UTF-8") from None


def _text_at(data: bytes, pos: int) -> tuple[str, int]:
    head = data[pos]
    if 0x60 <= head < 0x78:  # a text string under 24 bytes: its length is in the head itself
        end = pos + 1 + head - 0x60
        if end > len(data):
            raise Malformed("truncated string")
        return _utf8(data[pos + 1 : end]), end
    raw, pos = _bytes_at(data, pos, _MAJOR_TSTR)
    return _utf8(raw), pos


def _key(data: bytes, pos: int, key: int) -> int:
    if data[pos] != key:
        raise Malformed(f"expected claim key {key} at byte {pos}")
    return pos + 1


def decode_claims(payload: bytes) -> CertificateClaims:
    """Read the CWT claims of the profile straight from their deterministic CBOR bytes.

    The reader accepts exactly the grammar of ``docs/credential-format.md`` (fixed keys in order,
    shortest heads, definite lengths, nothing after) and is equivalent to
    ``CertificateClaims.from_cbor(_cbor.loads_strict(payload))``, which the tests check; it runs on
    every verification, where it is three times faster than decoding and re-encoding.
    """
    try:
        if payload[0] != 0xA6:  # map of 6
            raise Malformed("CWT claims are not a map of exactly 6 claims")
        issuer, pos = _text_at(payload, _key(payload, 1, CLAIM_ISS))
        middle = _COMMON_MIDDLE.unpack_from(payload, pos) if len(payload) >= pos + _COMMON_MIDDLE.size else None
        if (
            middle is not None
            and (middle[0], middle[2], middle[4], middle[6], middle[8]) == _COMMON_MARKERS
            and min(middle[1], middle[3], middle[5]) >= 0x10000  # 4-byte heads in shortest form
            and 0xA0 <= middle[9] <= 0xB7  # a map with a one-byte head
        ):
            expires, not_before, issued_at, serial = middle[1], middle[3], middle[5], middle[7]
            fields, pos = middle[9] - 0xA0, pos + _COMMON_MIDDLE.size
        else:
            expires, pos = _head(payload, _key(payload, pos, CLAIM_EXP), _MAJOR_UINT)
            not_before, pos = _head(payload, _key(payload, pos, CLAIM_NBF), _MAJOR_UINT)
            issued_at, pos = _head(payload, _key(payload, pos, CLAIM_IAT), _MAJOR_UINT)
            serial, pos = _bytes_at(payload, _key(payload, pos, CLAIM_CTI), _MAJOR_BSTR)
            if payload[pos : pos + 5] != _CERTIFICATE_KEY:
                raise Malformed("expected the certificate claim -65537")
            fields, pos = _head(payload, pos + 5, _MAJOR_MAP)
        if not 3 <= fields <= 6:
            raise Malformed("certificate claim has missing or unknown fields")
        holder_name, pos = _text_at(payload, _key(payload, pos, CERT_HOLDER_NAME))
        head = _COMMON_CERTIFICATE.unpack_from(payload, pos) if len(payload) >= pos + _COMMON_CERTIFICATE.size else None
        if head is not None and head[0] == b"\x02\x68" and head[2] == b"\x03\x82" and max(head[3], head[4]) < 24:
            masked_id, category, item = _utf8(head[1]), head[3], head[4]
            pos += _COMMON_CERTIFICATE.size
        else:
            masked_id, pos = _text_at(payload, _key(payload, pos, CERT_MASKED_ID))
            pos = _key(payload, pos, CERT_OPERATION)
            if payload[pos] != 0x82:  # array of 2
                raise Malformed("operation is not a pair")
            category, pos = _head(payload, pos + 1, _MAJOR_UINT)
            item, pos = _head(payload, pos, _MAJOR_UINT)
        optional: dict[int, int | bytes] = {}
        previous = CERT_OPERATION
        extras = _COMMON_EXTRAS.unpack_from(payload, pos) if len(payload) >= pos + _COMMON_EXTRAS.size else None
        if (
            fields == 6
            and extras is not None
            and (extras[0], extras[2]) == (b"\x04\x19", b"\x05\x50")
            and extras[1] >= 0x100
        ):
            optional[CERT_REVIEW_DUE], optional[CERT_PHOTO_DIGEST] = extras[1], extras[3]
            previous, pos = CERT_PHOTO_DIGEST, pos + _COMMON_EXTRAS.size
        for _ in range(fields - 3 - len(optional)):
            key = payload[pos]
            if key <= previous or key > CERT_STATUS_INDEX:
                raise Malformed("certificate claim has unknown or unordered fields")
            if key == CERT_PHOTO_DIGEST:
                optional[key], pos = _bytes_at(payload, pos + 1, _MAJOR_BSTR)
            else:
                optional[key], pos = _head(payload, pos + 1, _MAJOR_UINT)
            previous = key
    except IndexError:
        raise Malformed("truncated CWT claims") from None
    if pos != len(payload):
        raise Malformed("trailing bytes after CWT claims")
    review_days = optional.get(CERT_REVIEW_DUE)
    if review_days is not None and not (isinstance(review_days, int) and review_days < MAX_REVIEW_DAYS):
        raise Malformed("review date out of range")
    photo = optional.get(CERT_PHOTO_DIGEST)
    index = optional.get(CERT_STATUS_INDEX)
    try:
        return CertificateClaims(
            issuer=issuer,
            serial=serial,
            issued_at=issued_at,
            not_before=not_before,
            expires=expires,
            holder_name=holder_name,
            masked_id=masked_id,
            operation=Operation(category, item),
            review_due=None if review_days is None else date.fromordinal(_EPOCH_ORDINAL + review_days),
            photo_digest=photo if isinstance(photo, bytes) else None,
            status_index=index if isinstance(index, int) else None,
        )
    except InvalidInput as exc:
        raise Malformed(exc.detail) from None


def _is_uint(value: object, maximum: int) -> bool:
    return type(value) is int and 0 <= value <= maximum


def _claims_problem(claims: CertificateClaims) -> str | None:
    """Return why ``claims`` break the profile, or None; shared by signing and strict reading."""
    # Plain sequential tests: this runs on every verification.
    if type(claims.issuer) is not str or not ISSUER_PATTERN.fullmatch(claims.issuer):
        return "invalid issuer code"
    if type(claims.serial) is not bytes or len(claims.serial) not in SERIAL_RANGE:
        return "invalid serial (cti must have 8-16 bytes)"
    issued_at, not_before, expires = claims.issued_at, claims.not_before, claims.expires
    if not (type(issued_at) is int and type(not_before) is int and type(expires) is int):
        return "invalid times"
    if not (0 <= issued_at <= MAX_TIMESTAMP and 0 <= not_before < expires <= MAX_TIMESTAMP):
        return "invalid times (exp must be after nbf)"
    if type(claims.holder_name) is not str:
        return "invalid holder name"
    if problem := holder_name_problem(claims.holder_name):
        return problem
    if type(claims.masked_id) is not str or not MASKED_ID_PATTERN.fullmatch(claims.masked_id):
        return "invalid masked ID"
    operation = claims.operation
    if not (isinstance(operation, Operation) and _is_uint(operation.category, 255) and _is_uint(operation.item, 255)):
        return "invalid operation"
    if operation.category == 0 or operation.item == 0:
        return "invalid operation"
    review_due = claims.review_due
    if review_due is not None and not (
        isinstance(review_due, date) and 0 <= (review_due - EPOCH_DATE).days < MAX_REVIEW_DAYS
    ):
        return "invalid review date"
    photo = claims.photo_digest
    if photo is not None and (type(photo) is not bytes or len(photo) != PHOTO_DIGEST_BYTES):
        return "invalid photo digest"
    if claims.status_index is not None and not _is_uint(claims.status_index, MAX_STATUS_INDEX):
        return "invalid status index"
    return None


def _name_class(ranges: tuple[tuple[int, int], ...], extra: str) -> str:
    """A regular-expression character class of the table's ranges and ``extra``."""
    parts = [f"\\U{first:08X}-\\U{last:08X}" if first != last else f"\\U{first:08X}" for first, last in ranges]
    return "[" + "".join(parts) + "".join(f"\\U{ord(c):08X}" for c in extra) + "]"


# Middle dots used in names: U+00B7 (Chinese renderings of minority and foreign names, as on ID cards)
# and U+30FB (the katakana middle dot, which full-width input methods type for it).
NAME_MIDDLE_DOTS = "\u00b7\u30fb"
_NAME_CHAR = _name_class(NAME_CHAR_RANGES, NAME_MIDDLE_DOTS)
# Words of letters, marks and middle dots, separated by single spaces: none leading, trailing or doubled.
_NAME_PATTERN = re.compile(f"{_NAME_CHAR}+(?: {_NAME_CHAR}+)*")
_NAME_CHAR_PATTERN = re.compile(f"{_NAME_CHAR}| ")


def holder_name_problem(name: str) -> str | None:
    """Why ``name`` breaks the holder-name rule (docs/credential-format.md section 5), or None.

    Signing checks it, and so does anything that takes names long before signing (an exam results import).

    The allowed characters come from the pinned table in ``crypto/_name_chars.py`` (Unicode
    14.0.0 letters and marks plus CJK Extensions H and I), never from the running Python's
    ``unicodedata``; NFC is checked only after every character is known to be in the table, where
    normalization is stable across Unicode versions.
    """
    if not 0 < len(name) <= MAX_HOLDER_NAME_CHARS:
        return f"holder name must have 1-{MAX_HOLDER_NAME_CHARS} characters"
    if not _NAME_PATTERN.fullmatch(name):
        for char in name:
            if not _NAME_CHAR_PATTERN.fullmatch(char):
                return (
                    f"holder name: U+{ord(char):04X} is not allowed "
                    "(only letters, marks, the middle dots U+00B7 and U+30FB, and spaces)"
                )
        return "holder name: a space must stand alone between two words (none leading, trailing or doubled)"
    if not unicodedata.is_normalized("NFC", name):
        return "holder name is not in Unicode NFC"
    return None


class SignedCertificate(NamedTuple):
    """A credential whose signature verified with a trusted key; its time and status are not yet judged."""

    claims: CertificateClaims
    kid: bytes
    alg: int
    trusted_key: TrustedKey
    envelope: bytes


def sign_certificate(claims: CertificateClaims, key: SigningKey) -> bytes:
    """Return the tagged COSE_Sign1 envelope of ``claims`` signed with ``key``."""
    return cose.sign(_cbor.dumps(claims.to_cbor()), key)


_PROFILE_HEAD = b"\xd2\x84"  # tag 18 (COSE_Sign1), array of 4
_EMPTY_MAP = 0xA0
# Deterministic protected header {1: alg, 4: kid} for a one-byte alg (ES256 -7, EdDSA -8) and 8-byte kid.
_PROTECTED_PREFIX = b"\xa2\x01"
_PROTECTED_KID = b"\x04\x48"


def _parse_envelope(data: bytes) -> tuple[object, object, bytes, bytes, bytes]:
    """Parse the only shape the profile allows: ``18([bstr protected, {}, bstr payload, bstr signature])``.

    Returns ``alg``, ``kid``, the payload, the signature and the Sig_structure to verify.
    """
    if len(data) > _cbor.MAX_ENVELOPE_BYTES or data[:2] != _PROFILE_HEAD:
        raise Malformed("not a tagged COSE_Sign1 of at most 4096 bytes")
    try:
        protected_bytes, protected_end = _bytes_at(data, 2, _MAJOR_BSTR)
        if data[protected_end] != _EMPTY_MAP:
            raise Malformed("profile requires an empty unprotected header")
        payload, payload_end = _bytes_at(data, protected_end + 1, _MAJOR_BSTR)
        signature, pos = _bytes_at(data, payload_end, _MAJOR_BSTR)
    except IndexError:
        raise Malformed("truncated COSE_Sign1") from None
    if pos != len(data):
        raise Malformed("trailing bytes after COSE_Sign1")
    alg, kid = _protected_header(protected_bytes)
    signed = cose.sig_structure(protected_bytes, b"", payload)
    return alg, kid, payload, signature, signed


def _protected_header(protected_bytes: bytes) -> tuple[object, object]:
    """Return ``alg`` and ``kid`` of a protected header that must be exactly ``{1: alg, 4: kid}``, deterministic."""
    if (
        len(protected_bytes) == 13
        and protected_bytes[:2] == _PROTECTED_PREFIX
        and 0x20 <= protected_bytes[2] <= 0x37  # alg -1 .. -24 in one byte
        and protected_bytes[3:5] == _PROTECTED_KID
    ):
        return -1 - (protected_bytes[2] - 0x20), protected_bytes[5:]
    header = _cbor.loads_strict(protected_bytes)  # e.g. PS256 (-37) takes a two-byte alg
    # The type test matters: CBOR true as a key compares equal to 1 in Python.
    if (
        not isinstance(header, dict)
        or tuple(header) != (cose.HEADER_ALG, cose.HEADER_KID)
        or not all(type(label) is int for label in header)
    ):
        raise Malformed("profile requires exactly alg and kid, both protected")
    return header[cose.HEADER_ALG], header[cose.HEADER_KID]


def verify_signature(envelope: bytes, keys: cose.KeyLookup) -> SignedCertificate:
    """Check ``envelope`` against the strict profile and its signature against ``keys``.

    Raises :class:`Malformed`, :class:`UnsupportedAlgorithm`, :class:`UnknownKey` or
    :class:`BadSignature`. Time and status are judged separately (``crypto.policy``). A high-S ES256
    signature is :class:`Malformed`, judged only after it verifies, so a forgery with a signature
    that does not verify is still :class:`BadSignature`.
    """
    alg, kid, payload, signature, signed = _parse_envelope(envelope)
    trusted = cose.verify_parts(alg, kid, signature, signed, keys)
    assert type(alg) is int  # verify_parts accepted it as a COSE algorithm
    if alg == _algorithms.ES256 and not _algorithms.ES256_ALG.is_low_s(signature):
        raise Malformed("ES256 signature with a high s: the profile allows only its low-S twin")
    return SignedCertificate(decode_claims(payload), trusted.kid, alg, trusted, envelope)
