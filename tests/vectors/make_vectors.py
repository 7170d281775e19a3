"""Regenerate certseal's own envelope test vectors in ``tests/vectors/certseal/*.json``.

Run from the project root: ``PYTHONPATH=. python3 tests/vectors/make_vectors.py``. The output is
byte-for-byte reproducible: the keys are fixed, every claim and time is fixed, and ES256 signatures
use deterministic ECDSA (RFC 6979), normalised to low S as the profile requires; Ed25519 is
deterministic anyway.

Keys: ``tests/vectors/certseal/keys/*.pem`` are TEST-ONLY keys, encrypted PKCS#8 under the public
passphrase ``TEST_PASSPHRASE`` below. They sign nothing but these vectors and must never be trusted
by a deployment. ``--new-keys`` replaces them (and so changes every vector); only do that on purpose.

Forgeries are built properly: each is re-encoded and re-signed with the genuine key wherever a
signature is involved, so that only the one defect the vector names can reject it. Before writing,
every vector is checked against ``crypto.verify_qr_text`` and, where it has one, against
``crypto.verify_signature`` on ``envelope_hex``; a disagreement stops the script.

The JSON format is described in ``tests/vectors/certseal/README.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import crypto  # noqa: E402
from crypto import CST, CertificateClaims, Operation, SigningKey, TrustStore, _cbor, cose  # noqa: E402

OUT = Path(__file__).resolve().parent / "certseal"
KEY_DIR = OUT / "keys"
# Public, test-only passphrase of the committed test keys. Not a secret; do not reuse it anywhere.
TEST_PASSPHRASE = b"certseal-test-vectors-only"
KEY_FILES = {"es256-issuer": "ES256", "es256-other": "ES256", "eddsa-issuer": "EdDSA"}

BASE_URL = "https://cert.example.gov.cn"
# Synthetic resident ID number with a valid GB 11643 check character; only its mask is signed.
FULL_ID_NUMBER = "440106198503122432"
MINIMAL_ID_NUMBER = "110105199212070018"
NOW = datetime(2027, 3, 15, 9, 30, tzinfo=CST)  # well inside every validity period below
ISSUED_AT = datetime(2025, 4, 28, 10, 0, tzinfo=CST)
VALID_FROM = date(2025, 5, 2)
VALID_UNTIL = date(2031, 5, 1)
REVIEW_DUE = date(2028, 5, 1)
SIG_STRUCTURE_CONTEXT = "Signature1"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # n of P-256


@dataclass(frozen=True)
class VectorKey:
    """A fixed test key: the library's view (alg, kid, public key) plus deterministic signing."""

    name: str
    private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    alg: int
    kid: bytes
    public_key: Any

    @classmethod
    def load(cls, name: str) -> VectorKey:
        """Load ``keys/<name>.pem`` through the library's own loader and directly for signing."""
        pem = (KEY_DIR / f"{name}.pem").read_bytes()
        library_key = SigningKey.from_pem(pem, TEST_PASSPHRASE)
        private = serialization.load_pem_private_key(pem, password=TEST_PASSPHRASE)
        assert isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
        return cls(name, private, library_key.alg, library_key.kid, library_key.public_key)

    def sign(self, message: bytes) -> bytes:
        """Sign as certseal does (raw ``r || s`` with low S for ES256), deterministically."""
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            der = self.private.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
            r, s = decode_dss_signature(der)
            return r.to_bytes(32, "big") + min(s, P256_ORDER - s).to_bytes(32, "big")
        return self.private.sign(message)

    @property
    def public_pem(self) -> str:
        """The SubjectPublicKeyInfo PEM."""
        return crypto.public_key_pem(self.public_key).decode("ascii")


def make_keys() -> None:
    """Write fresh test keys (only with ``--new-keys``)."""
    KEY_DIR.mkdir(parents=True, exist_ok=True)
    for name, alg in KEY_FILES.items():
        (KEY_DIR / f"{name}.pem").write_bytes(SigningKey.generate(alg).to_pem(TEST_PASSPHRASE))


# --- raw COSE building blocks (cbor2 directly, so forgeries do not depend on the library's encoder) ---


def protected_header(alg: int, kid: bytes) -> bytes:
    """The deterministic protected header ``{1: alg, 4: kid}``."""
    return bytes(cbor2.dumps({cose.HEADER_ALG: alg, cose.HEADER_KID: kid}))


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """``["Signature1", protected, h'', payload]`` (RFC 9052 section 4.4)."""
    return bytes(cbor2.dumps([SIG_STRUCTURE_CONTEXT, protected, b"", payload]))


def sign1(protected: bytes, payload: bytes, key: VectorKey, *, unprotected: dict[int, Any] | None = None) -> bytes:
    """A tagged COSE_Sign1 whose signature is valid over exactly these (possibly malformed) bytes."""
    signature = key.sign(sig_structure(protected, payload))
    return bytes(cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected or {}, payload, signature])))


def parts(envelope: bytes) -> tuple[bytes, bytes, bytes]:
    """Protected header bytes, payload and signature of a well-formed envelope."""
    tag = cbor2.loads(envelope)
    protected, _unprotected, payload, signature = tag.value
    return protected, payload, signature


def high_s_twin(envelope: bytes) -> bytes:
    """The envelope with its low-S ES256 signature ``r || s`` replaced by ``r || n - s``: it verifies too."""
    r, s = envelope[-64:-32], int.from_bytes(envelope[-32:], "big")
    assert s <= P256_ORDER // 2, "certseal signs low S"
    return envelope[:-64] + r + (P256_ORDER - s).to_bytes(32, "big")


def flip_bit(data: bytes, index: int, bit: int = 0) -> bytes:
    """``data`` with one bit flipped."""
    return data[:index] + bytes([data[index] ^ (1 << bit)]) + data[index + 1 :]


def genuine_claims(**changes: Any) -> CertificateClaims:
    """The full certificate every forgery starts from."""
    fields: dict[str, Any] = {
        "issuer": "CN-44",
        "holder_name": "欧阳晓峰",
        "masked_id": crypto.mask_visible(FULL_ID_NUMBER),
        "operation": Operation(2, 1),
        "valid_from": VALID_FROM,
        "valid_until": VALID_UNTIL,
        "review_due": REVIEW_DUE,
        "photo_digest": crypto.photo_digest(b"certseal test vector: holder photo 0001"),
        "status_index": 1_048_577,
        "serial": bytes.fromhex("5a17c0de00000001"),
        "issued_at": ISSUED_AT,
    }
    fields.update(changes)
    return CertificateClaims.issue(**fields)


def minimal_claims() -> CertificateClaims:
    """Only the required fields."""
    return CertificateClaims.issue(
        issuer="CN-11",
        holder_name="王磊",
        masked_id=crypto.mask_visible(MINIMAL_ID_NUMBER),
        operation=Operation(1, 2),
        valid_from=date(2024, 9, 1),
        valid_until=date(2030, 8, 31),
        serial=bytes.fromhex("00000000000000000000000000000002"),
        issued_at=datetime(2024, 8, 20, 15, 0, tzinfo=CST),
    )


def signed_payload(claims: CertificateClaims) -> bytes:
    """The deterministic CWT claims map, as the library encodes it."""
    return _cbor.dumps(claims.to_cbor())


def claims_json(claims: CertificateClaims) -> dict[str, Any]:
    """The decoded fields an accepting verifier must show."""
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


# --- the vectors ---


def build(keys: dict[str, VectorKey]) -> dict[str, dict[str, Any]]:
    """Return every vector by file stem."""
    es256, other, eddsa = keys["es256-issuer"], keys["es256-other"], keys["eddsa-issuer"]
    vectors: dict[str, dict[str, Any]] = {}

    def add(
        stem: str,
        description: str,
        *,
        signer: VectorKey,
        envelope: bytes | None,
        qr_text: str | None = None,
        code: str | None = None,
        claims: CertificateClaims | None = None,
        now: datetime = NOW,
        trust: VectorKey | None = None,
    ) -> None:
        if qr_text is None:
            assert envelope is not None
            qr_text = crypto.encode_qr_text(envelope, BASE_URL)
        vector: dict[str, Any] = {
            "description": description,
            "public_key_pem": signer.public_pem,
            "kid": signer.kid.hex(),
            "alg": crypto._algorithms.ALGORITHM_NAMES[signer.alg],
            "qr_text": qr_text,
            "envelope_hex": None if envelope is None else envelope.hex(),
            "now": now.isoformat(),
            "expected": {"decision": "reject" if code else "accept", "code": code},
            "claims": None if claims is None else claims_json(claims),
        }
        if trust is not None and trust is not signer:
            vector["trust_public_key_pem"] = trust.public_pem
        vectors[stem] = vector

    full = genuine_claims()
    full_payload = signed_payload(full)
    full_protected = protected_header(es256.alg, es256.kid)
    genuine = sign1(full_protected, full_payload, es256)
    assert genuine == crypto.cose.sign(full_payload, es256)  # the library's encoding, byte for byte
    genuine_text = crypto.encode_qr_text(genuine, BASE_URL)
    digits = genuine_text.partition("#")[2]

    # Accepted credentials.
    add(
        "accept-es256-full",
        "valid ES256 certificate with every field, 4-character Chinese name",
        signer=es256,
        envelope=genuine,
        claims=full,
    )
    ed_claims = genuine_claims(
        holder_name="司马春兰", serial=bytes.fromhex("5a17c0de00000003"), operation=Operation(2, 3), status_index=0
    )
    add(
        "accept-eddsa-full",
        "valid EdDSA (Ed25519) certificate with every field",
        signer=eddsa,
        envelope=sign1(protected_header(eddsa.alg, eddsa.kid), signed_payload(ed_claims), eddsa),
        claims=ed_claims,
    )
    minimal = minimal_claims()
    add(
        "accept-es256-minimal",
        "valid ES256 certificate with only the required fields",
        signer=es256,
        envelope=sign1(full_protected, signed_payload(minimal), es256),
        claims=minimal,
    )

    # Validity boundaries in China Standard Time with the 5-minute clock skew.
    for stem, description, now, code in (
        (
            "accept-last-second-of-valid-until",
            "valid until 2031-05-01: still valid at 23:59:59 CST that day",
            datetime(2031, 5, 1, 23, 59, 59, tzinfo=CST),
            None,
        ),
        (
            "accept-within-skew-after-expiry",
            "4 min 59 s after exp, still within the 5-minute clock skew",
            datetime(2031, 5, 2, 0, 4, 59, tzinfo=CST),
            None,
        ),
        (
            "reject-expired",
            "exp in the past: 2031-05-02 00:05:00 CST is exp + the 5-minute skew",
            datetime(2031, 5, 2, 0, 5, tzinfo=CST),
            "expired",
        ),
        (
            "accept-within-skew-before-nbf",
            "valid from 2025-05-02: accepted from 5 minutes before (skew)",
            datetime(2025, 5, 1, 23, 55, tzinfo=CST),
            None,
        ),
        (
            "reject-not-yet-valid",
            "nbf in the future: one second before nbf minus the 5-minute skew",
            datetime(2025, 5, 1, 23, 54, 59, tzinfo=CST),
            "not_yet_valid",
        ),
    ):
        add(
            stem, description, signer=es256, envelope=genuine, now=now, code=code, claims=full if code is None else None
        )

    # Bit flips; the CBOR stays well-formed (checked below), only the signature can catch them.
    serial_at = full_payload.index(full.serial)
    flipped_payload = flip_bit(full_payload, serial_at + 3, 2)
    assert CertificateClaims.from_cbor(_cbor.loads_strict(flipped_payload)).serial != full.serial
    add(
        "reject-bitflip-payload",
        "one bit flipped in the payload (in the serial), CBOR still well-formed",
        signer=es256,
        code="bad_signature",
        envelope=bytes(cbor2.dumps(cbor2.CBORTag(18, [full_protected, {}, flipped_payload, parts(genuine)[2]]))),
    )
    add(
        "reject-bitflip-signature",
        "one bit flipped in the signature (in s)",
        signer=es256,
        code="bad_signature",
        envelope=bytes(
            cbor2.dumps(cbor2.CBORTag(18, [full_protected, {}, full_payload, flip_bit(parts(genuine)[2], 40, 5)]))
        ),
    )
    flipped_protected = flip_bit(full_protected, 2, 0)  # alg -7 (0x26) becomes -8 (0x27): still {1: alg, 4: kid}
    add(
        "reject-bitflip-protected-header",
        "one bit flipped in the protected header (alg -7 -> -8), header still well-formed",
        signer=es256,
        code="bad_signature",
        envelope=bytes(cbor2.dumps(cbor2.CBORTag(18, [flipped_protected, {}, full_payload, parts(genuine)[2]]))),
    )

    # Signature malleability: (r, n - s) verifies too, but the profile allows only the low-S form.
    add(
        "reject-high-s-signature",
        "the genuine ES256 signature's high-S twin (s replaced by n - s): it verifies, but is not the one encoding",
        signer=es256,
        code="malformed",
        envelope=high_s_twin(genuine),
    )

    # Wrong keys.
    add(
        "reject-other-key-genuine-kid",
        "signed by another ES256 key under the genuine issuer's kid",
        signer=other,
        trust=es256,
        code="bad_signature",
        envelope=sign1(full_protected, full_payload, other),
    )
    add(
        "reject-alg-swapped-es256-as-eddsa",
        "ES256 key signs a header that claims EdDSA",
        signer=es256,
        code="bad_signature",
        envelope=sign1(protected_header(eddsa.alg, es256.kid), full_payload, es256),
    )
    add(
        "reject-alg-swapped-eddsa-as-es256",
        "Ed25519 key signs a header that claims ES256",
        signer=eddsa,
        code="bad_signature",
        envelope=sign1(protected_header(es256.alg, eddsa.kid), signed_payload(ed_claims), eddsa),
    )
    add(
        "reject-unsupported-algorithm",
        "alg -47 (ES256K), which certseal does not implement",
        signer=es256,
        code="unsupported_algorithm",
        envelope=sign1(protected_header(-47, es256.kid), full_payload, es256),
    )
    add(
        "reject-kid-unknown",
        "a kid no trust-store entry has, signed by the genuine key",
        signer=es256,
        code="unknown_key",
        envelope=sign1(protected_header(es256.alg, bytes.fromhex("00112233445566ff")), full_payload, es256),
    )
    add(
        "reject-key-not-in-trust-store",
        "a correctly self-signed credential of a key the verifier does not trust",
        signer=other,
        trust=es256,
        code="unknown_key",
        envelope=sign1(protected_header(other.alg, other.kid), full_payload, other),
    )

    # Strict profile: kid placement and CBOR strictness (each signed with the genuine key).
    alg_only = bytes(cbor2.dumps({cose.HEADER_ALG: es256.alg}))
    add(
        "reject-kid-unprotected-only",
        "kid only in the unprotected header, alg alone protected",
        signer=es256,
        code="malformed",
        envelope=sign1(alg_only, full_payload, es256, unprotected={cose.HEADER_KID: es256.kid}),
    )
    untagged_sig = es256.sign(sig_structure(full_protected, full_payload))
    add(
        "reject-untagged",
        "COSE_Sign1 array without tag 18, signature valid",
        signer=es256,
        code="malformed",
        envelope=bytes(cbor2.dumps([full_protected, {}, full_payload, untagged_sig])),
    )
    add(
        "reject-cwt-tag-wrapped",
        "tag 61 (CWT) around tag 18: the profile allows tag 18 only",
        signer=es256,
        code="malformed",
        envelope=bytes(cbor2.dumps(cbor2.CBORTag(61, cbor2.loads(genuine)))),
    )
    add(
        "reject-trailing-bytes",
        "one zero byte after the COSE_Sign1",
        signer=es256,
        code="malformed",
        envelope=genuine + b"\x00",
    )
    add(
        "reject-truncated-envelope",
        "the last byte of the signature missing",
        signer=es256,
        code="malformed",
        envelope=genuine[:-1],
    )
    dup_protected = b"\xa3" + full_protected[1:] + b"\x01\x27"  # alg twice: -7 then -8
    add(
        "reject-duplicate-key-protected",
        "alg twice in the protected header (-7, then -8)",
        signer=es256,
        code="malformed",
        envelope=sign1(dup_protected, full_payload, es256),
    )
    iss_entry = b"\x01" + bytes(cbor2.dumps(full.issuer))
    assert full_payload[1 : 1 + len(iss_entry)] == iss_entry
    dup_payload = b"\xa7" + iss_entry + b"\x01" + bytes(cbor2.dumps("CN-11")) + full_payload[1 + len(iss_entry) :]
    add(
        "reject-duplicate-key-payload",
        "iss twice in the claims map (CN-44, then CN-11)",
        signer=es256,
        code="malformed",
        envelope=sign1(full_protected, dup_payload, es256),
    )
    add(
        "reject-indefinite-map-payload",
        "claims map with indefinite length (0xbf ... 0xff)",
        signer=es256,
        code="malformed",
        envelope=sign1(full_protected, b"\xbf" + full_payload[1:] + b"\xff", es256),
    )
    add(
        "reject-indefinite-map-protected",
        "protected header map with indefinite length",
        signer=es256,
        code="malformed",
        envelope=sign1(b"\xbf" + full_protected[1:] + b"\xff", full_payload, es256),
    )
    protected, payload, signature = parts(genuine)
    chunked_signature = b"\x5f\x58\x20" + signature[:32] + b"\x58\x20" + signature[32:] + b"\xff"
    add(
        "reject-indefinite-bstr-signature",
        "signature as an indefinite-length byte string of two chunks",
        signer=es256,
        code="malformed",
        envelope=b"\xd2\x84"
        + bytes(cbor2.dumps(protected))
        + b"\xa0"
        + bytes(cbor2.dumps(payload))
        + chunked_signature,
    )
    indefinite_array = b"\xd2\x9f" + genuine[2:] + b"\xff"
    add(
        "reject-indefinite-array-envelope",
        "COSE_Sign1 array with indefinite length",
        signer=es256,
        code="malformed",
        envelope=indefinite_array,
    )
    exp_at = full_payload.index(b"\x04\x1a")
    long_exp = full_payload[: exp_at + 1] + b"\x1b\x00\x00\x00\x00" + full_payload[exp_at + 2 :]
    add(
        "reject-non-shortest-integer",
        "exp encoded in 9 bytes instead of 5 (not deterministic CBOR)",
        signer=es256,
        code="malformed",
        envelope=sign1(full_protected, long_exp, es256),
    )

    # QR text level.
    prefix = f"{BASE_URL}{crypto.VERSION_PATH}#"
    cut = 5 * crypto.qrtext.GROUP_DIGITS  # the first five 17-digit groups: a valid packing of 35 bytes
    add(
        "reject-digits-truncated",
        "digits cut after the fifth 17-digit group (the envelope's first 35 bytes)",
        signer=es256,
        code="malformed",
        envelope=genuine[: 5 * crypto.qrtext.GROUP_BYTES],
        qr_text=prefix + digits[:cut],
    )
    add(
        "reject-over-long-text",
        "QR text of 4097 characters (limit 4096)",
        signer=es256,
        code="malformed",
        envelope=None,
        qr_text=genuine_text + "0" * (4097 - len(genuine_text)),
    )
    add(
        "reject-non-digit-fragment",
        "one digit of the fragment replaced by 'A'",
        signer=es256,
        code="malformed",
        envelope=None,
        qr_text=prefix + digits[:20] + "A" + digits[21:],
    )
    add(
        "reject-fullwidth-digit-fragment",
        "one digit replaced by the full-width digit U+FF10",
        signer=es256,
        code="malformed",
        envelope=None,
        qr_text=prefix + digits[:20] + "\uff10" + digits[21:],
    )
    add(
        "reject-bad-digit-count",
        "one extra digit: the final group has an impossible length",
        signer=es256,
        code="malformed",
        envelope=None,
        qr_text=genuine_text + "0",
    )
    add(
        "reject-full-group-overflow",
        "first 17-digit group 99999999999999999 >= 256^7",
        signer=es256,
        code="malformed",
        envelope=None,
        qr_text=prefix + "9" * 17 + digits[17:],
    )
    tail = len(digits) % 17
    assert tail, "the genuine envelope's length should not be a multiple of 7"
    add(
        "reject-tail-group-overflow",
        f"final {tail}-digit group all nines >= 256^{len(genuine) % 7}",
        signer=es256,
        code="malformed",
        envelope=None,
        qr_text=prefix + digits[:-tail] + "9" * tail,
    )
    add(
        "reject-unknown-version-path",
        "path /c2 instead of /c1",
        signer=es256,
        code="unsupported_format",
        envelope=None,
        qr_text=f"{BASE_URL}/c2#{digits}",
    )
    add(
        "reject-url-without-fragment",
        "a certseal URL with no credential fragment",
        signer=es256,
        code="unsupported_format",
        envelope=None,
        qr_text=f"{BASE_URL}{crypto.VERSION_PATH}",
    )
    return vectors


def check(stem: str, vector: dict[str, Any]) -> None:
    """Verify a vector with the library; stop on any disagreement with its expected verdict."""
    trust_pem = vector.get("trust_public_key_pem", vector["public_key_pem"]).encode("ascii")
    trust = TrustStore()
    trust.add(crypto.load_public_key(trust_pem))
    now = datetime.fromisoformat(vector["now"])
    outcomes = [("qr_text", lambda: crypto.verify_qr_text(vector["qr_text"], trust, now=now))]
    if vector["envelope_hex"] is not None:
        envelope = bytes.fromhex(vector["envelope_hex"])

        def by_envelope() -> Any:
            certificate = crypto.verify_signature(envelope, trust)
            crypto.DEFAULT_POLICY.verify(certificate, now)
            return certificate

        outcomes.append(("envelope_hex", by_envelope))
    for what, run in outcomes:
        try:
            certificate = run()
            code, claims = None, claims_json(certificate.claims)
        except crypto.VerificationError as error:
            code, claims = error.code, None
        if code != vector["expected"]["code"] or claims != vector["claims"]:
            raise SystemExit(f"{stem} ({what}): library says {code!r}, vector expects {vector['expected']['code']!r}")


def main() -> None:
    """Regenerate the vector files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-keys", action="store_true", help="replace the committed test keys first")
    args = parser.parse_args()
    if args.new_keys or not all((KEY_DIR / f"{name}.pem").exists() for name in KEY_FILES):
        make_keys()
    keys = {name: VectorKey.load(name) for name in KEY_FILES}
    vectors = build(keys)
    for stem, vector in vectors.items():
        check(stem, vector)
    for stale in OUT.glob("*.json"):
        if stale.stem not in vectors:
            stale.unlink()
    for stem, vector in vectors.items():
        text = json.dumps(vector, ensure_ascii=False, indent=2) + "\n"
        (OUT / f"{stem}.json").write_text(text, encoding="utf-8")
    print(f"wrote {len(vectors)} vectors to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
