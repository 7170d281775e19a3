"""The certseal envelope: its own vectors, claims round-trip, dates in China Standard Time, interop."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import unicodedata
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import cbor2
import cwt
import pytest
from pycose.headers import KID
from pycose.keys import CoseKey
from pycose.messages import CoseMessage

import crypto
from crypto import CLOCK_SKEW, CST, CertificateClaims, Operation, TrustStore, _cbor, _name_chars


def claims_fields(claims: CertificateClaims) -> dict[str, object]:
    """The vector ``claims`` object of decoded claims."""
    return {
        "issuer": claims.issuer,
        "serial": claims.serial.hex(),
        "holder_name": claims.holder_name,
        "masked_id": claims.masked_id,
        "operation": str(claims.operation),
        "valid_from": claims.valid_from.isoformat(),
        "valid_until": claims.valid_until.isoformat(),
        "review_due": claims.review_due.isoformat() if claims.review_due else None,
        "photo_digest": claims.photo_digest.hex() if claims.photo_digest else None,
        "status_index": claims.status_index,
        "issued_at": datetime.fromtimestamp(claims.issued_at, CST).isoformat(),
    }


def reference_unpack(digits: str) -> bytes:
    """An independent unpacking of the fragment digits (17 digits per 7 bytes, short final group)."""
    tail_bytes = {0: 0, 3: 1, 5: 2, 8: 3, 10: 4, 13: 5, 15: 6}[len(digits) % 17]
    full = len(digits) - len(digits) % 17
    out = b"".join(int(digits[i : i + 17]).to_bytes(7, "big") for i in range(0, full, 17))
    return out + (int(digits[full:]).to_bytes(tail_bytes, "big") if tail_bytes else b"")


# --- certseal's own vectors ---


def test_vector_qr_text_verdict(certseal_vector, vector_trust, verdict):
    """Verifying a vector's QR text at its time gives exactly the expected decision, code and claims."""
    trust = vector_trust(certseal_vector)
    now = datetime.fromisoformat(certseal_vector["now"])

    code, certificate = verdict(lambda: crypto.verify_qr_text(certseal_vector["qr_text"], trust, now=now))

    assert code == certseal_vector["expected"]["code"]
    assert (certificate is None) == (certseal_vector["expected"]["decision"] == "reject")
    if certificate is not None:
        assert claims_fields(certificate.claims) == certseal_vector["claims"]


def test_vector_envelope_verdict(envelope_vector, vector_trust, verdict):
    """Verifying a vector's envelope bytes directly gives the same verdict as its QR text."""
    trust = vector_trust(envelope_vector)
    now = datetime.fromisoformat(envelope_vector["now"])
    envelope = bytes.fromhex(envelope_vector["envelope_hex"])

    def run() -> crypto.SignedCertificate:
        certificate = crypto.verify_signature(envelope, trust)
        crypto.DEFAULT_POLICY.verify(certificate, now)
        return certificate

    code, _ = verdict(run)

    assert code == envelope_vector["expected"]["code"]


def test_vector_is_self_contained(certseal_vector):
    """Each vector carries its key, a kid that is SHA-256 of the key's SPKI, and a +08:00 time."""
    public_key = crypto.load_public_key(certseal_vector["public_key_pem"].encode())

    kid = crypto.key_id(public_key).hex()

    assert kid == certseal_vector["kid"]
    assert certseal_vector["alg"] in {"ES256", "EdDSA"}
    assert certseal_vector["now"].endswith("+08:00")
    assert set(certseal_vector["expected"]) == {"decision", "code"}


def test_vector_qr_text_carries_envelope(envelope_vector):
    """A vector's QR text unpacks to exactly its ``envelope_hex``."""
    digits = envelope_vector["qr_text"].partition("#")[2]

    envelope = reference_unpack(digits)

    assert envelope.hex() == envelope_vector["envelope_hex"]


def test_vectors_cover_every_code():
    """The vector set has accept cases and a reject case for every verification code it names."""
    import json

    from conftest import CERTSEAL_VECTOR_DIR

    vectors = [json.loads(p.read_text(encoding="utf-8")) for p in CERTSEAL_VECTOR_DIR.glob("*.json")]

    codes = {v["expected"]["code"] for v in vectors}
    algs = {v["alg"] for v in vectors if v["expected"]["decision"] == "accept"}

    assert codes == {
        None,
        "malformed",
        "unsupported_format",
        "unsupported_algorithm",
        "unknown_key",
        "bad_signature",
        "not_yet_valid",
        "expired",
    }
    assert algs == {"ES256", "EdDSA"}


def test_vectors_are_reproducible(tmp_path):
    """``make_vectors.py`` regenerates the committed vector files byte for byte."""
    import os
    import shutil
    import subprocess
    import sys

    from conftest import CERTSEAL_VECTOR_DIR

    copy = tmp_path / "vectors"
    shutil.copytree(CERTSEAL_VECTOR_DIR.parent, copy, ignore=shutil.ignore_patterns("third_party"))
    root = CERTSEAL_VECTOR_DIR.parents[2]

    subprocess.run(
        [sys.executable, str(copy / "make_vectors.py")],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        cwd=root,
    )

    for original in sorted(CERTSEAL_VECTOR_DIR.glob("*.json")):
        assert (copy / "certseal" / original.name).read_bytes() == original.read_bytes(), original.name
    assert {p.name for p in (copy / "certseal").glob("*.json")} == {p.name for p in CERTSEAL_VECTOR_DIR.glob("*.json")}


# --- claims ---


def test_claims_round_trip(full_claims):
    """Claims encode to deterministic CBOR and decode, strictly, to equal claims."""
    encoded = _cbor.dumps(full_claims.to_cbor())

    decoded = CertificateClaims.from_cbor(_cbor.loads_strict(encoded))

    assert decoded == full_claims
    assert _cbor.dumps(decoded.to_cbor()) == encoded


def test_minimal_claims_round_trip(es256_key, trust):
    """A certificate with only the required fields signs, verifies and has no optional fields."""
    claims = CertificateClaims.issue(
        issuer="CN-11",
        holder_name="王磊",
        masked_id="11010018",
        operation=Operation(1, 2),
        valid_from=date(2024, 9, 1),
        valid_until=date(2030, 8, 31),
    )

    certificate = crypto.verify_signature(crypto.sign_certificate(claims, es256_key), trust)

    assert certificate.claims == claims
    assert (certificate.claims.review_due, certificate.claims.photo_digest, certificate.claims.status_index) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_sign_and_verify_with_library(alg, full_claims):
    """A freshly generated key signs a certificate that verifies under its kid and algorithm."""
    key = crypto.SigningKey.generate(alg)
    store = TrustStore()
    store.add(key.public_key)

    certificate = crypto.verify_signature(crypto.sign_certificate(full_claims, key), store)

    assert certificate.claims == full_claims
    assert certificate.kid == key.kid
    assert certificate.alg == key.alg


def test_masked_id_display(full_claims):
    """The masked ID shows the first 4 and last 4 characters around 10 asterisks."""
    display = full_claims.masked_id_display

    assert display == "4401**********2432"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("issuer", "cn-44"),
        ("holder_name", ""),
        ("holder_name", "张\u202e三"),
        ("holder_name", "x" * 33),
        ("masked_id", "440106198503122432"),
        ("serial", b"\x00" * 7),
        ("photo_digest", b"\x00" * 32),
        ("status_index", 2**32),
        ("operation", Operation(0, 1)),
    ],
)
def test_issue_refuses_out_of_profile_claims(field, value, full_claims):
    """Claims outside the profile (here one bad field) cannot be created."""
    fields = full_claims._asdict()
    fields[field] = value

    with pytest.raises(crypto.InvalidInput):
        CertificateClaims(**fields)


NAME_CASES = json.loads((Path(__file__).parent / "vectors" / "name-cases.json").read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", NAME_CASES, ids=[case["why"] for case in NAME_CASES])
def test_holder_name_rule(case, full_claims):
    """Each name of the shared table (also run in the browser) is accepted, or refused with its exact message."""
    fields = full_claims._asdict() | {"holder_name": case["name"]}

    try:
        CertificateClaims(**fields)
        message = None
    except crypto.InvalidInput as error:
        message = error.detail

    assert message == case["message"]


def test_holder_name_rule_is_the_pinned_table_not_unicodedata(monkeypatch, full_claims):
    """The name check never asks the running Python's unicodedata for a category: a newer Python changes nothing."""
    monkeypatch.setattr(unicodedata, "category", lambda char: pytest.fail("unicodedata.category was consulted"))
    fields = full_claims._asdict() | {"holder_name": "阿沛·阿旺晋美\U00031350"}

    claims = CertificateClaims(**fields)

    assert claims.holder_name.endswith("\U00031350")


def test_name_tables_are_generated_from_the_pinned_unicode_version():
    """crypto/_name_chars.py and api/static/name-chars.js are exactly what tools/gen_name_chars.py writes."""
    tool = Path(__file__).resolve().parent.parent / "tools" / "gen_name_chars.py"

    result = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True, check=False)

    assert (result.returncode, result.stderr) == (0, "")
    assert _name_chars.UNICODE_VERSION == "14.0.0"


def test_holder_name_is_nfc_normalized():
    """A decomposed name is stored in NFC, so the signed name has one encoding."""
    claims = CertificateClaims.issue(
        issuer="CN-44",
        holder_name=" Zoe\u0301 ",
        masked_id="44012432",
        operation=Operation(2, 1),
        valid_from=date(2025, 1, 1),
        valid_until=date(2030, 1, 1),
    )

    name = claims.holder_name

    assert name == "Zo\u00e9"


# --- dates in China Standard Time ---


def _verdict_at(envelope: bytes, trust: TrustStore, now: datetime) -> str | None:
    try:
        crypto.verify_qr_text(crypto.encode_qr_text(envelope, "https://cert.example.gov.cn"), trust, now=now)
    except crypto.VerificationError as error:
        return error.code
    return None


def test_valid_until_is_a_cst_calendar_day(full_claims):
    """``exp`` is 2031-05-02T00:00:00+08:00 and the claims report 2031-05-01 as the last valid day."""
    expires = datetime.fromtimestamp(full_claims.expires, CST)

    last_day = full_claims.valid_until

    assert expires == datetime(2031, 5, 2, tzinfo=CST)
    assert last_day == date(2031, 5, 1)
    assert full_claims.valid_from == date(2025, 5, 2)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2031, 5, 1, 23, 59, 59, tzinfo=CST), None),
        (datetime(2031, 5, 2, tzinfo=CST) + CLOCK_SKEW - timedelta(seconds=1), None),
        (datetime(2031, 5, 2, tzinfo=CST) + CLOCK_SKEW, "expired"),
        (datetime(2031, 5, 2, tzinfo=CST) + CLOCK_SKEW + timedelta(microseconds=1), "expired"),
        (datetime(2031, 5, 1, 16, 4, 59, tzinfo=UTC), None),
        (datetime(2031, 5, 1, 16, 5, 0, tzinfo=UTC), "expired"),
        (datetime(2025, 5, 2, tzinfo=CST) - CLOCK_SKEW, None),
        (datetime(2025, 5, 2, tzinfo=CST) - CLOCK_SKEW - timedelta(seconds=1), "not_yet_valid"),
        (datetime(2025, 5, 1, 15, 55, tzinfo=UTC), None),
        (datetime(2025, 5, 1, 15, 54, 59, tzinfo=UTC), "not_yet_valid"),
    ],
    ids=lambda value: value.isoformat() if isinstance(value, datetime) else str(value),
)
def test_validity_boundaries_with_clock_skew(now, expected, genuine_envelope, trust):
    """Validity ends at the end of 2031-05-01 CST and starts at 2025-05-02 CST, each with CLOCK_SKEW slack."""
    code = _verdict_at(genuine_envelope, trust, now)

    assert code == expected


def test_clock_skew_is_five_minutes():
    """The documented tolerance is five minutes either way."""
    skew = CLOCK_SKEW

    assert skew == timedelta(minutes=5)


def test_naive_time_is_refused(genuine_qr_text, trust):
    """A verification time without a time zone fails closed with ``policy_error``."""
    naive = datetime(2027, 1, 1)

    with pytest.raises(crypto.PolicyError) as caught:
        crypto.verify_qr_text(genuine_qr_text, trust, now=naive)

    assert caught.value.code == "policy_error"


# --- independent COSE implementations ---


def spec_verifier() -> dict[str, object]:
    """The independent pycose verifier printed in ``docs/credential-format.md`` section 10, executed."""
    spec = (Path(__file__).resolve().parents[1] / "docs" / "credential-format.md").read_text(encoding="utf-8")
    section = spec[spec.index("## 10. Interoperability") :]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "credential-format.md section 10", "exec"), namespace)  # noqa: S102 -- our own spec
    return namespace


def test_spec_section_10_verifier_gives_every_vector_its_code(certseal_vector):
    """The spec's own independent verifier reproduces each vector's expected code, the high-S twin included."""
    verifier = spec_verifier()
    trusted_pem = certseal_vector.get("trust_public_key_pem", certseal_vector["public_key_pem"])
    now = datetime.fromisoformat(certseal_vector["now"]).timestamp()

    try:
        verifier["verify"](certseal_vector["qr_text"], trusted_pem, now)
        code = None
    except verifier["Reject"] as rejected:
        code = str(rejected)

    assert code == certseal_vector["expected"]["code"]


def test_cwt_package_verifies_envelope(accept_vector):
    """The ``cwt`` package verifies the envelope unpacked from the digits and reads the same claims."""
    envelope = reference_unpack(accept_vector["qr_text"].partition("#")[2])
    key = cwt.COSEKey.from_pem(
        accept_vector["public_key_pem"], alg=accept_vector["alg"], kid=bytes.fromhex(accept_vector["kid"])
    )

    payload = cwt.COSE.new().decode(envelope, key)

    claims = cbor2.loads(payload)
    assert claims[1] == accept_vector["claims"]["issuer"]
    assert claims[7].hex() == accept_vector["claims"]["serial"]
    assert claims[-65537][1] == accept_vector["claims"]["holder_name"]


def test_cwt_package_rejects_tampered_envelope(full_claims, es256_key):
    """The ``cwt`` package refuses the envelope once a signature bit is flipped, as certseal does."""
    envelope = bytearray(crypto.sign_certificate(full_claims, es256_key))
    envelope[-1] ^= 1
    key = cwt.COSEKey.from_pem(es256_key.public_pem().decode(), alg="ES256", kid=es256_key.kid)

    with pytest.raises(cwt.VerifyError):
        cwt.COSE.new().decode(bytes(envelope), key)


def test_pycose_verifies_envelope(accept_vector):
    """``pycose`` decodes the envelope as COSE_Sign1 with alg and kid protected and verifies it."""
    envelope = reference_unpack(accept_vector["qr_text"].partition("#")[2])
    message = CoseMessage.decode(envelope)
    message.key = CoseKey.from_pem_public_key(accept_vector["public_key_pem"])

    valid = message.verify_signature()

    assert valid is True
    assert message.uhdr == {}
    assert message.get_attr(KID) == bytes.fromhex(accept_vector["kid"])


def test_pycose_rejects_other_key_signature(other_key, full_claims, es256_key):
    """``pycose`` also refuses a signature by another key under the genuine kid."""
    envelope = crypto.cose.sign(_cbor.dumps(full_claims.to_cbor()), other_key)
    forged = CoseMessage.decode(envelope)
    forged.key = CoseKey.from_pem_public_key(es256_key.public_pem().decode())

    valid = forged.verify_signature()

    assert valid is False


def test_photo_digest_is_truncated_sha256():
    """The photo digest is the first 16 bytes of SHA-256 of the photo."""
    photo = b"\xff\xd8\xff\xe0 not really a jpeg"

    digest = crypto.photo_digest(photo)

    assert digest == hashlib.sha256(photo).digest()[:16]
