"""Forged and damaged credentials: each is rejected with exactly the code of its defect.

Forgeries are built properly: re-encoded and re-signed with the genuine key wherever a signature is
involved, so that only the one defect under test (the signature, the key, the strict profile or the
digit packing) can reject them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import cbor2
import pytest
from conftest import INSIDE_VALIDITY, TEST_BASE_URL, high_s_twin, high_s_twin_text

import crypto
from crypto import CST, SigningKey, TrustStore, _cbor

ES256, EDDSA = -7, -8
PREFIX = f"{TEST_BASE_URL}/c1#"


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """``["Signature1", protected, h'', payload]`` encoded with cbor2."""
    return bytes(cbor2.dumps(["Signature1", protected, b"", payload]))


def sign1(protected: bytes, payload: bytes, key: SigningKey, *, unprotected: dict[int, Any] | None = None) -> bytes:
    """A tagged COSE_Sign1 whose signature by ``key`` is valid over exactly these bytes."""
    signature = key.sign(sig_structure(protected, payload))
    return bytes(cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected or {}, payload, signature])))


def header(alg: int, kid: bytes) -> bytes:
    """The deterministic protected header ``{1: alg, 4: kid}``."""
    return bytes(cbor2.dumps({1: alg, 4: kid}))


def code_of(text: str, trust: TrustStore, now: datetime = INSIDE_VALIDITY) -> str | None:
    """The verification code of a QR text, or None when it is accepted."""
    try:
        crypto.verify_qr_text(text, trust, now=now)
    except crypto.VerificationError as error:
        return error.code
    return None


def envelope_code(envelope: bytes, trust: TrustStore) -> str | None:
    """The code of an envelope verified as QR text, after checking the direct path agrees."""
    try:
        crypto.verify_signature(envelope, trust)
        direct = None
    except crypto.VerificationError as error:
        direct = error.code
    via_text = code_of(crypto.encode_qr_text(envelope, TEST_BASE_URL), trust)
    assert via_text == direct or direct is None
    return via_text


def flip(data: bytes, index: int, bit: int) -> bytes:
    """``data`` with one bit flipped."""
    return data[:index] + bytes([data[index] ^ (1 << bit)]) + data[index + 1 :]


@pytest.fixture(scope="module")
def payload(full_claims) -> bytes:
    """The genuine deterministic claims payload."""
    return _cbor.dumps(full_claims.to_cbor())


@pytest.fixture(scope="module")
def protected(es256_key) -> bytes:
    """The genuine protected header."""
    return header(ES256, es256_key.kid)


# --- the committed vectors ---


def test_reject_vector_has_exact_code(reject_vector, vector_trust):
    """Every committed reject vector is refused with exactly its expected code."""
    trust = vector_trust(reject_vector)
    now = datetime.fromisoformat(reject_vector["now"])

    code = code_of(reject_vector["qr_text"], trust, now)

    assert code == reject_vector["expected"]["code"]


# --- forgeries built here, one per row of the table ---

Builder = Callable[[SigningKey, SigningKey, SigningKey, bytes, bytes], bytes]


def _with_signature(protected: bytes, payload: bytes, signature: bytes) -> bytes:
    return bytes(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature])))


def _dup_claim_payload(payload: bytes) -> bytes:
    iss = b"\x01" + bytes(cbor2.dumps("CN-44"))
    assert payload.startswith(b"\xa6" + iss)
    return b"\xa7" + iss + b"\x01" + bytes(cbor2.dumps("CN-11")) + payload[1 + len(iss) :]


def _dup_certificate_field_payload(payload: bytes) -> bytes:
    name = b"\x01" + bytes(cbor2.dumps("欧阳晓峰"))
    at = payload.index(b"\xa6" + name)  # the certificate map of 6 fields starts with the holder name
    return payload[:at] + b"\xa7" + name + b"\x01" + bytes(cbor2.dumps("张三")) + payload[at + 1 + len(name) :]


def _indefinite_text_payload(payload: bytes) -> bytes:
    name = bytes(cbor2.dumps("欧阳晓峰"))
    chunks = b"\x7f" + bytes(cbor2.dumps("欧阳")) + bytes(cbor2.dumps("晓峰")) + b"\xff"
    return payload.replace(name, chunks, 1)


def _indefinite_certificate_map(payload: bytes) -> bytes:
    at = payload.index(b"\xa6\x01")  # the certificate map
    return payload[:at] + b"\xbf" + payload[at + 1 :] + b"\xff"


def _unknown_claim_payload(payload: bytes) -> bytes:
    value = cbor2.loads(payload)
    value[-65537][9] = 1
    return _cbor.dumps(value)


FORGERIES: dict[str, tuple[Builder, set[str]]] = {
    "other-key-signature-genuine-kid": (lambda es, ed, other, prot, pay: sign1(prot, pay, other), {"bad_signature"}),
    "alg-es256-swapped-to-eddsa": (
        lambda es, ed, other, prot, pay: sign1(header(EDDSA, es.kid), pay, es),
        {"bad_signature", "unsupported_algorithm"},
    ),
    "alg-eddsa-swapped-to-es256": (
        lambda es, ed, other, prot, pay: sign1(header(ES256, ed.kid), pay, ed),
        {"bad_signature", "unsupported_algorithm"},
    ),
    "eddsa-signature-under-es256-header": (
        lambda es, ed, other, prot, pay: _with_signature(prot, pay, ed.sign(sig_structure(prot, pay))),
        {"bad_signature"},
    ),
    "kid-only-unprotected": (
        lambda es, ed, other, prot, pay: sign1(bytes(cbor2.dumps({1: ES256})), pay, es, unprotected={4: es.kid}),
        {"malformed"},
    ),
    "kid-also-unprotected": (
        lambda es, ed, other, prot, pay: sign1(prot, pay, es, unprotected={4: es.kid}),
        {"malformed"},
    ),
    "alg-only-unprotected": (
        lambda es, ed, other, prot, pay: sign1(bytes(cbor2.dumps({4: es.kid})), pay, es, unprotected={1: ES256}),
        {"malformed"},
    ),
    "extra-protected-parameter": (
        lambda es, ed, other, prot, pay: sign1(bytes(cbor2.dumps({1: ES256, 3: 61, 4: es.kid})), pay, es),
        {"malformed"},
    ),
    "kid-not-in-trust-store": (
        lambda es, ed, other, prot, pay: sign1(header(ES256, b"\x00" * 8), pay, es),
        {"unknown_key"},
    ),
    "self-signed-untrusted-key": (
        lambda es, ed, other, prot, pay: sign1(header(ES256, other.kid), pay, other),
        {"unknown_key"},
    ),
    "untagged": (
        lambda es, ed, other, prot, pay: bytes(cbor2.dumps(cbor2.loads(sign1(prot, pay, es)).value)),
        {"malformed"},
    ),
    "wrong-tag-17": (
        lambda es, ed, other, prot, pay: bytes(cbor2.dumps(cbor2.CBORTag(17, cbor2.loads(sign1(prot, pay, es)).value))),
        {"malformed"},
    ),
    "trailing-bytes": (lambda es, ed, other, prot, pay: sign1(prot, pay, es) + b"\xf6", {"malformed"}),
    "two-envelopes-concatenated": (lambda es, ed, other, prot, pay: sign1(prot, pay, es) * 2, {"malformed"}),
    "duplicate-key-protected": (
        lambda es, ed, other, prot, pay: sign1(b"\xa3" + prot[1:] + b"\x01\x27", pay, es),
        {"malformed"},
    ),
    "duplicate-key-protected-same-value": (
        lambda es, ed, other, prot, pay: sign1(b"\xa3\x01\x26" + prot[1:], pay, es),
        {"malformed"},
    ),
    "duplicate-claim-payload": (
        lambda es, ed, other, prot, pay: sign1(prot, _dup_claim_payload(pay), es),
        {"malformed"},
    ),
    "duplicate-certificate-field-payload": (
        lambda es, ed, other, prot, pay: sign1(prot, _dup_certificate_field_payload(pay), es),
        {"malformed"},
    ),
    "indefinite-claims-map": (
        lambda es, ed, other, prot, pay: sign1(prot, b"\xbf" + pay[1:] + b"\xff", es),
        {"malformed"},
    ),
    "indefinite-certificate-map": (
        lambda es, ed, other, prot, pay: sign1(prot, _indefinite_certificate_map(pay), es),
        {"malformed"},
    ),
    "indefinite-text-string": (
        lambda es, ed, other, prot, pay: sign1(prot, _indefinite_text_payload(pay), es),
        {"malformed"},
    ),
    "indefinite-protected-map": (
        lambda es, ed, other, prot, pay: sign1(b"\xbf" + prot[1:] + b"\xff", pay, es),
        {"malformed"},
    ),
    "indefinite-outer-array": (
        lambda es, ed, other, prot, pay: b"\xd2\x9f" + sign1(prot, pay, es)[2:] + b"\xff",
        {"malformed"},
    ),
    "non-empty-unprotected": (
        lambda es, ed, other, prot, pay: sign1(prot, pay, es, unprotected={33: b"x"}),
        {"malformed"},
    ),
    "unknown-certificate-field": (
        lambda es, ed, other, prot, pay: sign1(prot, _unknown_claim_payload(pay), es),
        {"malformed"},
    ),
    "payload-not-a-map": (
        lambda es, ed, other, prot, pay: sign1(prot, bytes(cbor2.dumps([1, 2, 3])), es),
        {"malformed"},
    ),
    "empty-payload": (lambda es, ed, other, prot, pay: sign1(prot, b"", es), {"malformed"}),
    "high-s-signature": (lambda es, ed, other, prot, pay: high_s_twin(sign1(prot, pay, es)), {"malformed"}),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forgery_rejected_with_exact_code(name, es256_key, eddsa_key, other_key, protected, payload, trust):
    """A properly built forgery is refused with the code of its single defect."""
    build, expected = FORGERIES[name]
    envelope = build(es256_key, eddsa_key, other_key, protected, payload)

    code = envelope_code(envelope, trust)

    assert code in expected


def test_genuine_hand_built_envelope_is_accepted(protected, payload, es256_key, trust):
    """The hand-built envelope without any defect is accepted, so the forgeries above fail only by their defect."""
    envelope = sign1(protected, payload, es256_key)

    code = envelope_code(envelope, trust)

    assert code is None


def test_alg_swap_pins_bad_signature(es256_key, payload, trust):
    """With a supported alg that does not fit the key, the verdict is ``bad_signature`` (no algorithm fallback)."""
    envelope = sign1(header(EDDSA, es256_key.kid), payload, es256_key)

    code = envelope_code(envelope, trust)

    assert code == "bad_signature"


# --- signature malleability: the high-S twin ---


def test_high_s_twin_of_genuine_certificate_is_malformed(genuine_qr_text, trust):
    """The genuine certificate with ``s`` replaced by ``n - s`` is refused offline as ``malformed``."""
    twin = high_s_twin_text(genuine_qr_text)

    code = code_of(twin, trust)

    assert code == "malformed"


def test_high_s_twin_verifies_in_the_general_layer(genuine_envelope, trust):
    """The general RFC 9052 layer still accepts the high-S twin: only the profile refuses it."""
    message = crypto.cose.decode(high_s_twin(genuine_envelope))

    trusted = crypto.cose.verify(message, trust)

    assert trusted.kid == crypto.cose.decode(genuine_envelope).header(crypto.cose.HEADER_KID)


def test_high_s_twin_with_a_bad_signature_is_bad_signature(genuine_envelope, trust):
    """A high-S signature that does not verify is ``bad_signature``: the low-S rule is judged after the signature."""
    serial_at = genuine_envelope.index(bytes.fromhex("5a17c0de00000001"))
    forged = flip(high_s_twin(genuine_envelope), serial_at, 0)

    code = envelope_code(forged, trust)

    assert code == "bad_signature"


# --- bit-flip sweeps over a genuine envelope ---


def test_every_payload_bit_flip_is_bad_signature(genuine_envelope, trust):
    """Flipping any one bit of the payload content gives ``bad_signature``."""
    message = crypto.cose.decode(genuine_envelope)
    start = genuine_envelope.index(message.payload)

    codes = {
        envelope_code(flip(genuine_envelope, start + i, bit), trust)
        for i in range(len(message.payload))
        for bit in range(8)
    }

    assert codes == {"bad_signature"}


def test_every_signature_bit_flip_is_bad_signature(genuine_envelope, trust):
    """Flipping any one bit of the 64-byte signature gives ``bad_signature``."""
    start = len(genuine_envelope) - 64

    codes = {envelope_code(flip(genuine_envelope, start + i, bit), trust) for i in range(64) for bit in range(8)}

    assert codes == {"bad_signature"}


def test_protected_header_bit_flips(genuine_envelope, es256_key):
    """A protected-header bit flip that leaves a well-formed {alg, kid} for a trusted kid is ``bad_signature``."""
    protected = crypto.cose.decode(genuine_envelope).protected_bytes
    start = genuine_envelope.index(protected)
    results = []

    for i in range(len(protected)):
        for bit in range(8):
            forged_header = flip(protected, i, bit)
            store = TrustStore()
            store.add(es256_key.public_key)
            well_formed = _profile_header(forged_header)
            if well_formed:
                store.add(es256_key.public_key, kid=well_formed[4])  # the genuine key under the flipped kid too
            code = envelope_code(flip(genuine_envelope, start + i, bit), store)
            results.append((well_formed is not None and well_formed[1] in (ES256, EDDSA), code))

    assert {code for supported, code in results if supported} == {"bad_signature"}
    assert {code for supported, code in results if not supported} <= {"malformed", "unsupported_algorithm"}
    assert sum(supported for supported, _ in results) == 1 + 8 * 8  # the alg's low bit and every kid bit


def _profile_header(data: bytes) -> dict[int, Any] | None:
    try:
        value = _cbor.loads_strict(data)
    except crypto.Malformed:
        return None
    ok = isinstance(value, dict) and list(value) == [1, 4] and type(value[4]) is bytes and type(value[1]) is int
    return value if ok else None


def test_every_envelope_bit_flip_is_rejected(genuine_envelope, trust):
    """No single bit flip anywhere in the envelope is accepted, and every refusal has a verification code."""
    codes = {
        envelope_code(flip(genuine_envelope, i, bit), trust) for i in range(len(genuine_envelope)) for bit in range(8)
    }

    assert None not in codes
    assert codes <= {"malformed", "unsupported_algorithm", "unknown_key", "bad_signature"}


def test_every_truncation_is_malformed(genuine_envelope, trust):
    """Every proper prefix of the envelope is ``malformed``."""
    codes = {envelope_code(genuine_envelope[:n], trust) for n in range(len(genuine_envelope))}

    assert codes == {"malformed"}


# --- QR text level ---


def _digits(text: str) -> str:
    return text.partition("#")[2]


@pytest.mark.parametrize("groups", [0, 1, 3, 5])
def test_truncated_digits_are_malformed(groups, genuine_qr_text, trust):
    """Digits cut to whole 17-digit groups (a valid packing of a truncated envelope) are ``malformed``."""
    text = PREFIX + _digits(genuine_qr_text)[: 17 * groups]

    code = code_of(text, trust)

    assert code == "malformed"


def test_digits_cut_by_one_group_are_malformed(genuine_qr_text, trust):
    """Dropping the last full 17-digit group before the tail is ``malformed``."""
    digits = _digits(genuine_qr_text)
    tail = len(digits) % 17
    text = PREFIX + digits[: len(digits) - tail - 17] + digits[len(digits) - tail :]

    code = code_of(text, trust)

    assert code == "malformed"


@pytest.mark.parametrize("length", [4097, 5000, 100_000])
def test_over_long_text_is_malformed(length, genuine_qr_text, trust):
    """QR text longer than 4096 characters is ``malformed`` before any parsing."""
    text = genuine_qr_text + "0" * (length - len(genuine_qr_text))

    code = code_of(text, trust)

    assert code == "malformed"


@pytest.mark.parametrize("intruder", ["A", " ", "+", "-", "_", ".", "\uff10", "\u0660", "\u00b2", "\u0000"])
def test_non_digit_fragment_is_malformed(intruder, genuine_qr_text, trust):
    """A fragment with any non-ASCII-digit character inside (letters, signs, other scripts' digits) is ``malformed``."""
    digits = _digits(genuine_qr_text)
    text = PREFIX + digits[:40] + intruder + digits[41:]

    code = code_of(text, trust)

    assert code == "malformed"


@pytest.mark.parametrize("extra", [1, 2, 4, 6, 7, 9, 11, 12, 14, 16])
def test_bad_digit_count_is_malformed(extra, genuine_qr_text, trust):
    """A fragment whose length leaves an impossible final group is ``malformed``."""
    digits = _digits(genuine_qr_text)
    full = len(digits) - len(digits) % 17
    text = PREFIX + digits[:full] + "0" * extra

    code = code_of(text, trust)

    assert code == "malformed"


def test_every_full_group_overflow_is_malformed(genuine_qr_text, trust):
    """Any 17-digit group of value 256^7 or more is ``malformed``, wherever it is."""
    digits = _digits(genuine_qr_text)
    full_groups = len(digits) // 17

    codes = {
        code_of(PREFIX + digits[: 17 * g] + str(256**7) + digits[17 * (g + 1) :], trust) for g in range(full_groups)
    }

    assert codes == {"malformed"}


def test_tail_group_overflow_is_malformed(genuine_qr_text, trust):
    """A final group of 256^n for an n-byte tail is ``malformed``."""
    digits = _digits(genuine_qr_text)
    tail = len(digits) % 17
    n = {3: 1, 5: 2, 8: 3, 10: 4, 13: 5, 15: 6}[tail]
    text = PREFIX + digits[:-tail] + str(256**n).zfill(tail)

    code = code_of(text, trust)

    assert code == "malformed"


@pytest.mark.parametrize(
    "text",
    [
        "https://cert.example.gov.cn/c2#0",
        "https://cert.example.gov.cn/c1",
        "https://cert.example.gov.cn/#123",
        "HTTPS://CERT.EXAMPLE.GOV.CN/C1",
    ],
)
def test_unknown_url_shapes_are_unsupported_format(text, trust):
    """URLs without the /c1 path or without a fragment are ``unsupported_format``."""
    code = code_of(text, trust)

    assert code == "unsupported_format"


@pytest.mark.parametrize("text", ["", " ", "https://cert.example.gov.cn/c1#"])
def test_empty_inputs_are_malformed(text, trust):
    """Empty digits, alone or in a URL, are ``malformed``."""
    code = code_of(text, trust)

    assert code == "malformed"


# --- time ---


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2031, 5, 2, 0, 5, tzinfo=CST), "expired"),
        (datetime(2040, 1, 1, tzinfo=CST), "expired"),
        (datetime(2025, 5, 1, 23, 54, 59, tzinfo=CST), "not_yet_valid"),
        (datetime(2020, 1, 1, tzinfo=CST), "not_yet_valid"),
    ],
)
def test_time_window_codes(now, expected, genuine_qr_text, trust):
    """With the injected time outside the validity window, the code is ``expired`` or ``not_yet_valid``."""
    code = code_of(genuine_qr_text, trust, now)

    assert code == expected


def test_signature_is_judged_before_time(genuine_envelope, trust):
    """An expired credential with a bad signature is reported as ``bad_signature``, not ``expired``."""
    forged = flip(genuine_envelope, len(genuine_envelope) - 1, 0)
    text = crypto.encode_qr_text(forged, TEST_BASE_URL)

    code = code_of(text, trust, datetime(2040, 1, 1, tzinfo=CST) + timedelta(days=1))

    assert code == "bad_signature"


@pytest.mark.parametrize(
    "tagged",
    [
        bytes.fromhex("d804821b7fffffffffffffff01"),  # decimal fraction 1e(2^63-1): decimal.InvalidOperation
        bytes.fromhex("d805821b000000ffffffffff01"),  # bigfloat 1*2^(2^40-1): decimal.Overflow
        bytes.fromhex("d8238161"),  # a regular expression tag around a non-string
        bytes.fromhex("d81e820100"),  # rational with a zero denominator
    ],
    ids=["decimal-fraction-huge-exponent", "bigfloat-huge-exponent", "regex-tag", "rational-zero-denominator"],
)
def test_hostile_tag_in_protected_header_is_malformed(tagged, es256_key, payload, trust):
    """A semantic tag that makes cbor2 raise (parsed before the signature is checked) is ``malformed``, not a crash."""
    protected = b"\xa2\x01" + tagged + b"\x04\x48" + es256_key.kid
    envelope = bytes(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, b"\x00" * 64])))

    code = envelope_code(envelope, trust)

    assert code == "malformed"
