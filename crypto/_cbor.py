"""Low-level CBOR helpers: deterministic encoding and a strict decoder.

``cbor2`` accepts duplicate map keys (the last wins), trailing bytes, indefinite lengths and
non-shortest integers. The strict decoder rejects all of them: it re-encodes what it decoded (maps
in the order read) and requires the result to equal the input byte for byte, then checks that every
map's keys are in the bytewise order of RFC 8949 section 4.2.1. The certseal profile's claims have
their own, faster reader (``crypto.envelope.decode_claims``), which the tests hold to this one.
"""

from __future__ import annotations

from typing import Any

import cbor2

from .errors import Malformed

# A QR code holds < 3 KB; anything longer is not ours and is refused before parsing.
MAX_ENVELOPE_BYTES = 4096
# ArithmeticError: cbor2's decimal-fraction and bigfloat tags (4, 5) raise decimal.InvalidOperation or
# decimal.Overflow for huge exponents, and these can sit in a protected header, parsed before the signature.
DECODE_ERRORS = (cbor2.CBORDecodeError, ValueError, TypeError, ArithmeticError, RecursionError, MemoryError)


def dumps(value: Any) -> bytes:
    """Encode ``value`` in deterministic CBOR (RFC 8949 section 4.2.1)."""
    return bytes(cbor2.dumps(_sorted_maps(value)))


def _sorted_maps(value: Any) -> Any:
    if isinstance(value, dict):
        keys = list(value)
        order = _int_key_order if all(type(k) is int for k in keys) else _encoded_key_order
        return {key: _sorted_maps(value[key]) for key in sorted(keys, key=order)}
    if isinstance(value, list):
        return [_sorted_maps(item) for item in value]
    if isinstance(value, cbor2.CBORTag):
        return cbor2.CBORTag(value.tag, _sorted_maps(value.value))
    return value


def bstr_head(length: int) -> bytes:
    """Return the deterministic CBOR head of a byte string of ``length`` bytes."""
    if length < 24:
        return bytes([0x40 | length])
    if length < 0x100:
        return bytes([0x58, length])
    if length < 0x10000:
        return b"\x59" + length.to_bytes(2, "big")
    return b"\x5a" + length.to_bytes(4, "big")


def loads_strict(data: bytes, *, max_bytes: int = MAX_ENVELOPE_BYTES) -> Any:
    """Decode one CBOR item that must be in deterministic encoding with nothing after it.

    ``max_bytes`` defaults to the QR envelope bound; a status list token (``crypto.statuslist``) is larger.
    """
    if len(data) > max_bytes:
        raise Malformed(f"{len(data)} bytes exceeds {max_bytes}")
    try:
        value = cbor2.loads(data)
        # Re-encoding keeps map order, so equality proves shortest-form heads, definite lengths,
        # no duplicate keys (they would collapse) and no trailing bytes; key order is checked after.
        reencoded = cbor2.dumps(value)
    except (*DECODE_ERRORS, cbor2.CBOREncodeError) as exc:
        raise Malformed(f"CBOR decode: {type(exc).__name__}") from None
    if reencoded != data or not _keys_in_order(value):
        raise Malformed("CBOR is not in deterministic encoding, has duplicate keys or trailing bytes")
    return value


def _int_key_order(key: int) -> tuple[bool, int]:
    # Bytewise order of encoded integer keys: 0, 1, 2, ... then -1, -2, -3, ...
    return (key < 0, abs(key))


def _encoded_key_order(key: Any) -> bytes:
    return bytes(cbor2.dumps(key, canonical=True))


def _keys_in_order(value: Any) -> bool:
    """Tell whether every map in ``value`` lists its keys in RFC 8949 section 4.2.1 order."""
    if isinstance(value, dict):
        keys = list(value)
        order = _int_key_order if all(type(k) is int for k in keys) else _encoded_key_order
        return keys == sorted(keys, key=order) and all(_keys_in_order(v) for v in value.values())
    if isinstance(value, list):
        return all(_keys_in_order(item) for item in value)
    if isinstance(value, cbor2.CBORTag):
        return _keys_in_order(value.value)
    return True
