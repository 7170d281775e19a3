"""Property-based tests: mutated or random input is never accepted and raises nothing but verification errors."""

from __future__ import annotations

import json
from datetime import date, datetime

import cbor2
import pytest
from conftest import (
    CERTSEAL_VECTOR_DIR,
    INSIDE_VALIDITY,
    P256_ORDER,
    TEST_KEY_DIR,
    TEST_KEY_PASSPHRASE,
    high_s_twin,
    signature_s,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crypto
from crypto import SigningKey, TrustStore, _cbor

ES256_KEY = SigningKey.from_pem((TEST_KEY_DIR / "es256-issuer.pem").read_bytes(), TEST_KEY_PASSPHRASE)
EDDSA_KEY = SigningKey.from_pem((TEST_KEY_DIR / "eddsa-issuer.pem").read_bytes(), TEST_KEY_PASSPHRASE)
TRUST = TrustStore()
TRUST.add(ES256_KEY.public_key)
TRUST.add(EDDSA_KEY.public_key)


def _vector(name: str) -> dict[str, str]:
    return json.loads((CERTSEAL_VECTOR_DIR / f"{name}.json").read_text(encoding="utf-8"))


GENUINE = {
    name: (bytes.fromhex(_vector(name)["envelope_hex"]), _vector(name)["qr_text"])
    for name in ("accept-es256-full", "accept-eddsa-full", "accept-es256-minimal")
}
ENVELOPES = [envelope for envelope, _ in GENUINE.values()]
QR_TEXTS = [text for _, text in GENUINE.values()]

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THOROUGH = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome_of_envelope(envelope: bytes) -> crypto.SignedCertificate | None:
    """Verify an envelope fully; return the certificate, or None for a verification error (anything else escapes)."""
    try:
        certificate = crypto.verify_signature(envelope, TRUST)
        crypto.DEFAULT_POLICY.verify(certificate, INSIDE_VALIDITY)
    except crypto.VerificationError:
        return None
    return certificate


def outcome_of_text(text: str) -> crypto.SignedCertificate | None:
    """Verify QR text fully; return the certificate, or None for a verification error (anything else escapes)."""
    try:
        return crypto.verify_qr_text(text, TRUST, now=INSIDE_VALIDITY)
    except crypto.VerificationError:
        return None


@st.composite
def mutated_bytes(draw: st.DrawFn, originals: list[bytes]) -> tuple[bytes, bytes]:
    """One of ``originals`` and a mutation of it: bit flips, insertion, deletion or splicing, 1-3 times."""
    original = draw(st.sampled_from(originals))
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "splice", "splice-other"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            index = min(at, len(data) - 1)
            data[index] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "splice":
            data[at : at + draw(st.integers(0, 8))] = draw(st.binary(min_size=1, max_size=8))
        else:  # a piece of another genuine envelope, as a cut-and-paste attacker would try
            donor = draw(st.sampled_from(originals))
            start = draw(st.integers(0, len(donor) - 1))
            data[at : at + draw(st.integers(0, 16))] = donor[start : start + draw(st.integers(1, 32))]
    return original, bytes(data)


@st.composite
def mutated_text(draw: st.DrawFn, originals: list[str], alphabet: st.SearchStrategy[str]) -> tuple[str, str]:
    """One of ``originals`` and a mutation of it: characters replaced, inserted, deleted or spliced."""
    original = draw(st.sampled_from(originals))
    text = original
    region = draw(st.sampled_from(["digits", "url", "anywhere"]))
    hash_at = text.index("#")
    low, high = {"digits": (hash_at + 1, len(text)), "url": (0, hash_at + 1), "anywhere": (0, len(text))}[region]
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(low, max(low, min(high, len(text)))))
        kind = draw(st.sampled_from(["replace", "insert", "delete", "splice"]))
        piece = draw(st.text(alphabet, min_size=1, max_size=6))
        if kind == "replace":
            text = text[:at] + piece[0] + text[at + 1 :]
        elif kind == "insert":
            text = text[:at] + piece + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        else:
            text = text[:at] + piece + text[at + draw(st.integers(0, 6)) :]
    return original, text


def _envelope_or_none(text: str) -> bytes | None:
    try:
        return crypto.envelope_from_qr_text(text)
    except crypto.VerificationError:
        return None


@pytest.mark.slow
@THOROUGH
@given(mutated_bytes(ENVELOPES))
def test_mutated_envelope_never_accepted(case):
    """A mutated envelope is accepted only if the mutation was a no-op; errors are only verification errors."""
    original, mutated = case

    certificate = outcome_of_envelope(mutated)

    assert certificate is None or mutated == original


@pytest.mark.slow
@THOROUGH
@given(mutated_text(QR_TEXTS, st.sampled_from("0123456789")))
def test_digit_mutations_never_accepted(case):
    """QR text with digits replaced, inserted, deleted or spliced is accepted only if it holds the genuine envelope."""
    original, mutated = case

    certificate = outcome_of_text(mutated)

    assert certificate is None or certificate.envelope == crypto.envelope_from_qr_text(original)


@pytest.mark.slow
@THOROUGH
@given(mutated_text(QR_TEXTS, st.characters(codec="utf-8") | st.sampled_from("#/:.?%c1 0")))
def test_text_mutations_never_accepted(case):
    """Any character mutation of the URL or digits is accepted only if the envelope it yields is the genuine one."""
    original, mutated = case

    certificate = outcome_of_text(mutated)

    if certificate is not None:
        assert _envelope_or_none(mutated) == crypto.envelope_from_qr_text(original)


@FAST
@given(st.sampled_from(ENVELOPES), st.integers(0, 2**16))
def test_digits_of_mutated_envelope_round_trip(envelope, seed):
    """The digits of any byte string unpack to exactly that byte string."""
    data = envelope[: seed % len(envelope) + 1] + seed.to_bytes(3, "big")

    unpacked = crypto.envelope_from_qr_text(crypto.qrtext.pack_digits(data))

    assert unpacked == data


@pytest.mark.slow
@THOROUGH
@given(mutated_bytes([_cbor.dumps(cbor2.loads(crypto.cose.decode(e).payload)) for e in ENVELOPES]))
def test_resigned_mutated_payload_is_strict(case):
    """A mutated payload signed with the genuine key is accepted only as the one canonical encoding of valid claims."""
    _, payload = case
    envelope = crypto.cose.sign(payload, ES256_KEY)

    certificate = outcome_of_envelope(envelope)

    if certificate is not None:
        assert _cbor.dumps(certificate.claims.to_cbor()) == payload


@FAST
@given(mutated_bytes([crypto.cose.decode(ENVELOPES[0]).protected_bytes]))
def test_resigned_mutated_protected_header_never_accepted(case):
    """A mutated protected header, signed with the genuine key, is never accepted unless unchanged."""
    original, protected = case
    payload = crypto.cose.decode(ENVELOPES[0]).payload
    signature = ES256_KEY.sign(bytes(cbor2.dumps(["Signature1", protected, b"", payload])))
    envelope = bytes(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature])))

    certificate = outcome_of_envelope(envelope)

    assert certificate is None or protected == original


@FAST
@given(st.binary(max_size=600))
def test_random_bytes_never_accepted(data):
    """Random bytes are never a credential and only ever raise verification errors."""
    certificate = outcome_of_envelope(data)

    assert certificate is None


@FAST
@given(st.binary(max_size=300).map(lambda b: b"\xd2\x84" + b))
def test_random_bytes_after_cose_sign1_head_never_accepted(data):
    """Random bytes behind the COSE_Sign1 head (tag 18, array of 4) are never accepted."""
    certificate = outcome_of_envelope(data)

    assert certificate is None


@FAST
@given(st.text(max_size=600) | st.text("0123456789", max_size=700))
def test_random_strings_never_accepted(text):
    """Random strings, digits only or not, are never accepted and only raise verification errors."""
    certificate = outcome_of_text(text)

    assert certificate is None


@FAST
@given(st.from_type(object).filter(lambda value: not isinstance(value, str)))
def test_non_string_input_is_malformed(value):
    """Non-string QR input is ``malformed``, not a type error."""
    with pytest.raises(crypto.Malformed):
        crypto.verify_qr_text(value, TRUST, now=INSIDE_VALIDITY)


@FAST
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.binary(max_size=20) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.integers(-70000, 10), inner, max_size=7),
        max_leaves=20,
    )
)
def test_signed_arbitrary_cbor_payload_never_crashes(value):
    """Any CBOR value signed as payload by the genuine key is either valid claims or a verification error."""
    payload = bytes(cbor2.dumps(value))

    certificate = outcome_of_envelope(crypto.cose.sign(payload, EDDSA_KEY))

    assert certificate is None


CBOR_SEMANTIC_TAGS = [0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 100, 256, 258, 260, 261, 1004, 55799]
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.binary(max_size=20)
    | st.text(max_size=10)
)
CBOR_VALUES = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.integers() | st.text(max_size=3), inner, max_size=3)
        | st.builds(cbor2.CBORTag, st.sampled_from(CBOR_SEMANTIC_TAGS), inner)
    ),
    max_leaves=8,
)


@pytest.mark.slow
@THOROUGH
@given(st.sampled_from(CBOR_SEMANTIC_TAGS), CBOR_VALUES, st.sampled_from([1, 4, 5]))
def test_tagged_values_in_protected_header_never_crash(tag, content, label):
    """Semantic tags (dates, decimals, regexes, sets...) in the protected header only give verification errors."""
    try:
        value = cbor2.CBORTag(tag, content)
        header = {1: -7, 4: ES256_KEY.kid} | {label: value}
        protected = bytes(cbor2.dumps(header))
    except (cbor2.CBOREncodeError, TypeError, ValueError):
        return  # cbor2 cannot even encode this combination
    payload = crypto.cose.decode(ENVELOPES[0]).payload
    envelope = bytes(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, b"\x00" * 64])))

    certificate = outcome_of_envelope(envelope)

    assert certificate is None


@FAST
@given(st.datetimes(timezones=st.timezones()))
def test_any_aware_time_gives_a_verdict(now):
    """Any aware verification time gives accept, ``expired`` or ``not_yet_valid``, never another error."""
    envelope, text = GENUINE["accept-es256-full"]

    try:
        crypto.verify_qr_text(text, TRUST, now=now)
        code = None
    except (crypto.Expired, crypto.NotYetValid) as error:
        code = error.code

    instant = now.timestamp()
    claims = crypto.verify_signature(envelope, TRUST).claims
    inside = claims.not_before - 300 <= instant < claims.expires + 300
    assert (code is None) == inside


def test_any_aware_time_examples_exist():
    """The validity window used above lies where hypothesis' default datetimes reach."""
    window = crypto.verify_signature(GENUINE["accept-es256-full"][0], TRUST).claims

    assert datetime(2000, 1, 1).timestamp() < window.not_before < window.expires < datetime(9999, 1, 1).timestamp()


def _generic_strict_read(payload: bytes) -> crypto.CertificateClaims | None:
    try:
        return crypto.CertificateClaims.from_cbor(_cbor.loads_strict(payload))
    except crypto.VerificationError:
        return None


def _fast_read(payload: bytes) -> crypto.CertificateClaims | None:
    try:
        return crypto.envelope.decode_claims(payload)
    except crypto.VerificationError:
        return None


PAYLOADS = [crypto.cose.decode(e).payload for e in ENVELOPES]


@THOROUGH
@given(mutated_bytes(PAYLOADS))
def test_fast_claims_reader_agrees_with_generic_strict_decoding(case):
    """The hand-written claims reader accepts exactly what decode, re-encode and compare accepts, with equal claims."""
    _original, mutated = case

    fast, generic = _fast_read(mutated), _generic_strict_read(mutated)

    assert fast == generic


@FAST
@given(
    st.recursive(
        st.integers(-(2**64), 2**64) | st.binary(max_size=20) | st.text(max_size=12) | st.booleans() | st.none(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.integers(-70000, 10), inner, max_size=7),
        max_leaves=20,
    )
)
def test_fast_claims_reader_agrees_on_arbitrary_cbor(value):
    """On any deterministic CBOR value the two claims readers give the same verdict."""
    payload = _cbor.dumps(value)

    fast, generic = _fast_read(payload), _generic_strict_read(payload)

    assert fast == generic


# --- low-S ES256 signatures ---


@THOROUGH
@given(st.binary(max_size=400))
def test_every_es256_signature_is_low_s(message):
    """Every ES256 signature the library makes has ``0 < s <= n / 2`` (and still verifies)."""
    signature = ES256_KEY.sign(message)

    s = int.from_bytes(signature[32:], "big")

    assert 0 < s <= P256_ORDER // 2
    assert crypto._algorithms.ES256_ALG.verify(ES256_KEY.public_key, signature, message) is None


@FAST
@given(st.binary(min_size=8, max_size=16), st.sampled_from(["张伟", "欧阳晓峰", "Li Na", "阿卜杜·热合曼"]))
def test_every_signed_certificate_is_low_s_and_its_twin_malformed(serial, holder_name):
    """A certificate signed with a fresh ES256 key is low-S and accepted; its high-S twin is ``malformed``."""
    key = SigningKey.generate("ES256")
    trust = TrustStore()
    trust.add(key.public_key)
    claims = crypto.CertificateClaims.issue(
        issuer="CN-44",
        holder_name=holder_name,
        masked_id="44012432",
        operation=crypto.Operation(2, 1),
        valid_from=date(2026, 1, 5),
        valid_until=date(2032, 1, 4),
        serial=serial,
    )

    envelope = crypto.sign_certificate(claims, key)

    assert signature_s(envelope) <= P256_ORDER // 2
    assert crypto.verify_signature(envelope, trust).claims == claims
    with pytest.raises(crypto.Malformed):
        crypto.verify_signature(high_s_twin(envelope), trust)
