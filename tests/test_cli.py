"""The ``certseal`` command line, run as a real subprocess: exit codes, output, files, no tracebacks."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import cbor2
import pytest
from conftest import TEST_ID_NUMBER, TEST_NOW, TEST_TODAY, high_s_twin_text, id_number_for
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from PIL import Image
from pycose.keys import EC2Key, OKPKey
from pycose.keys.curves import P256, Ed25519
from pycose.messages import CoseMessage, Sign1Message

import crypto
from api.settings import DEMO_SECRETS
from crypto.qrtext import unpack_digits

ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "cli tests: a long passphrase"
BASE_URL = "https://cert.example.gov.cn"
AT = TEST_NOW.isoformat()  # verify --at: the verdicts do not depend on when the tests run
INSIDE = "2027-01-01T08:00:00+08:00"
AFTER_REVIEW = "2029-06-01T08:00:00+08:00"  # review due 2029-01-05, valid until 2032-01-04
AFTER_EXPIRY = "2032-01-05T08:00:00+08:00"
MASKED = TEST_ID_NUMBER[:4] + "*" * 10 + TEST_ID_NUMBER[-4:]
PHOTO = b"\xff\xd8\xff\xe0 not really a JPEG, but its digest is signed all the same"
# Real-looking secrets for runs outside --demo (at least 16 characters, no demo_ prefix).
ENV_SECRETS = {
    "CERTSEAL_ADMIN_TOKEN": "cli-test-admin-token-5b1f0c2e",
    "CERTSEAL_KEY_PASSPHRASE": "cli-test-key-passphrase-77d1a9",
    "CERTSEAL_ID_HMAC_KEY": "cli-test-id-hmac-key-0e4c8b13",
    "CERTSEAL_URL_SIGNING_KEY": "cli-test-url-signing-key-9af2",
}


def clean_env(**extra):
    """The environment without any CERTSEAL_* variable, plus ``extra`` (a None value leaves it out)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CERTSEAL_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update({name: value for name, value in extra.items() if value is not None})
    return env


def run_certseal(*args, cwd, env=None, stdin=None):
    """Run ``python -m api.cli ARGS`` (passphrase set unless ``env`` says otherwise) and return the result."""
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=cwd,
        env=clean_env(CERTSEAL_KEY_PASSPHRASE=PASSPHRASE) if env is None else env,
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=60,
    )


def certseal(*args, cwd, env=None, stdin=None):
    """:func:`run_certseal`, asserting that nothing printed a traceback."""
    result = run_certseal(*args, cwd=cwd, env=env, stdin=stdin)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def certseal_sign(key, claims, *more, cwd, env=None, base_url=BASE_URL):
    """``certseal sign`` for issuer CN-44 with ``key`` and ``claims`` under ``base_url`` (None: the caller's own)."""
    url = ["--base-url", base_url] if base_url else []
    return certseal("sign", "--key", str(key), "--issuer", "CN-44", "--claims", claims, *url, *more, cwd=cwd, env=env)


def certseal_concurrently(calls):
    """Run many commands (name -> (args, keywords for :func:`run_certseal`)) in parallel; return results by name."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_certseal, *args, **keywords) for name, (args, keywords) in calls.items()}
        return {name: future.result() for name, future in futures.items()}


def verdict_of(result):
    """The JSON verdict ``verify`` printed."""
    return json.loads(result.stdout)


def spki_kid(public_key):
    """SHA-256 over the DER SubjectPublicKeyInfo, first 8 bytes, in hex (computed here, not by certseal)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()[:8].hex()


def write_claims(directory, name, **overrides):
    """Write a CLAIMS.json (README shape, photo beside it) and return its path."""
    (directory / "photo.jpg").write_bytes(PHOTO)
    claims = {
        "holder": {"name": "张伟", "id_number": TEST_ID_NUMBER, "photo": "photo.jpg"},
        "operation": "2.1",
        "valid_from": "2026-01-05",
        "valid_until": "2032-01-04",
        "review_due": "2029-01-05",
        "status_index": 17,
    }
    claims.update(overrides)
    path = directory / name
    path.write_text(json.dumps(claims, ensure_ascii=False), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Signed:
    """A key made with ``keygen``, its public key from ``pubkey`` and two certificates made with ``sign``."""

    directory: Path
    alg: str
    kid: str
    key: Path
    public: Path
    text: str
    sign_output: str
    png: Path
    svg: Path
    electrician_text: str


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """Return a function giving (once per algorithm) a key, its public key and signed certificates."""
    made = {}

    def get(alg):
        if alg not in made:
            directory = tmp_path_factory.mktemp(f"sign-{alg}")
            kid = certseal("keygen", "--alg", alg, "--out", "issuer.pem", cwd=directory).stdout.strip()
            certseal("pubkey", "issuer.pem", "--out", "issuer.pub.pem", cwd=directory)
            write_claims(directory, "claims.json")
            sign = certseal_sign(
                "issuer.pem", "claims.json", "--png", "card-qr.png", "--svg", "card-qr.svg", cwd=directory
            )
            write_claims(directory, "electrician.json", operation="1.2")
            electrician = certseal_sign("issuer.pem", "electrician.json", cwd=directory)
            assert sign.returncode == electrician.returncode == 0, sign.stderr + electrician.stderr
            made[alg] = Signed(
                directory=directory,
                alg=alg,
                kid=kid,
                key=directory / "issuer.pem",
                public=directory / "issuer.pub.pem",
                text=sign.stdout.strip(),
                sign_output=sign.stdout + sign.stderr,
                png=directory / "card-qr.png",
                svg=directory / "card-qr.svg",
                electrician_text=electrician.stdout.strip(),
            )
        return made[alg]

    return get


@pytest.fixture(scope="module")
def es256(signed):
    """The ES256 key and certificates."""
    return signed("ES256")


@pytest.fixture(scope="module")
def stranger_public(tmp_path_factory):
    """The public key PEM of another issuer's key, which signed none of the certificates here."""
    directory = tmp_path_factory.mktemp("stranger")
    certseal("keygen", "--out", "other.pem", cwd=directory)
    certseal("pubkey", "other.pem", "--out", "other.pub.pem", cwd=directory)
    return directory / "other.pub.pem"


# ---------------------------------------------------------------------------------------------------
# keygen and pubkey
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_keygen_prints_kid_and_writes_encrypted_private_key(tmp_path, alg):
    """``keygen`` prints a 16-hex kid and writes an encrypted PKCS#8 PEM, mode 0600, of that key."""

    result = certseal("keygen", "--alg", alg, "--out", "keys/issuer.pem", cwd=tmp_path)

    pem = (tmp_path / "keys" / "issuer.pem").read_bytes()
    private = serialization.load_pem_private_key(pem, password=PASSPHRASE.encode())
    assert result.returncode == 0
    assert re.fullmatch(r"[0-9a-f]{16}\n", result.stdout)
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE((tmp_path / "keys" / "issuer.pem").stat().st_mode) == 0o600
    assert isinstance(private, ec.EllipticCurvePrivateKey if alg == "ES256" else ed25519.Ed25519PrivateKey)
    assert spki_kid(private.public_key()) == result.stdout.strip()
    assert PASSPHRASE not in result.stdout + result.stderr


def test_keygen_refuses_to_overwrite_without_force(tmp_path):
    """An existing key file is kept (exit 2) unless ``--force`` is given."""
    first = certseal("keygen", "--out", "issuer.pem", cwd=tmp_path)
    before = (tmp_path / "issuer.pem").read_bytes()

    refused = certseal("keygen", "--out", "issuer.pem", cwd=tmp_path)
    kept = (tmp_path / "issuer.pem").read_bytes()
    forced = certseal("keygen", "--out", "issuer.pem", "--force", cwd=tmp_path)

    assert first.returncode == 0
    assert refused.returncode == 2
    assert "--force" in refused.stderr
    assert refused.stdout == ""
    assert kept == before
    assert forced.returncode == 0
    assert forced.stdout != first.stdout
    assert (tmp_path / "issuer.pem").read_bytes() != before


def test_keygen_without_passphrase_names_the_variable(tmp_path):
    """With no passphrase in the environment ``keygen`` exits 2 naming CERTSEAL_KEY_PASSPHRASE and writes nothing."""

    result = certseal("keygen", "--out", "issuer.pem", cwd=tmp_path, env=clean_env())

    assert result.returncode == 2
    assert "CERTSEAL_KEY_PASSPHRASE" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "issuer.pem").exists()


def test_keygen_with_short_passphrase_is_a_usage_error(tmp_path):
    """A passphrase under 8 bytes is refused with exit 2 and a message, not a traceback."""

    result = certseal("keygen", "--out", "issuer.pem", cwd=tmp_path, env=clean_env(CERTSEAL_KEY_PASSPHRASE="short"))

    assert result.returncode == 2
    assert "passphrase must have at least 8 bytes" in result.stderr
    assert not (tmp_path / "issuer.pem").exists()


def test_passphrase_file_is_used(tmp_path):
    """CERTSEAL_KEY_PASSPHRASE_FILE (trailing newline stripped) encrypts the key like the variable itself."""
    (tmp_path / "passphrase").write_text(PASSPHRASE + "\n", encoding="utf-8")
    env = clean_env(CERTSEAL_KEY_PASSPHRASE_FILE=str(tmp_path / "passphrase"))

    made = certseal("keygen", "--out", "issuer.pem", cwd=tmp_path, env=env)
    loaded = certseal("pubkey", "issuer.pem", cwd=tmp_path)

    assert made.returncode == loaded.returncode == 0
    assert loaded.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert spki_kid(serialization.load_pem_public_key(loaded.stdout.encode())) == made.stdout.strip()


def test_missing_passphrase_file_is_a_usage_error(tmp_path):
    """An unreadable passphrase file is exit 2 with a message, not a traceback."""
    env = clean_env(CERTSEAL_KEY_PASSPHRASE_FILE=str(tmp_path / "absent"))

    result = certseal("keygen", "--out", "issuer.pem", cwd=tmp_path, env=env)

    assert result.returncode == 2
    assert "passphrase file unreadable" in result.stderr


def test_pubkey_with_wrong_passphrase_is_a_clear_usage_error(es256, tmp_path):
    """A wrong passphrase is exit 2 saying the key cannot be decrypted, without echoing the passphrase."""
    wrong = "not the passphrase at all"

    result = certseal("pubkey", str(es256.key), cwd=tmp_path, env=clean_env(CERTSEAL_KEY_PASSPHRASE=wrong))

    assert result.returncode == 2
    assert "cannot be decrypted" in result.stderr
    assert wrong not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_pubkey_kid_is_sha256_of_spki(signed, alg):
    """The public PEM ``pubkey`` writes hashes (SPKI SHA-256, first 8 bytes) to the kid ``keygen`` printed."""
    made = signed(alg)

    to_stdout = certseal("pubkey", str(made.key), cwd=made.directory)

    public = serialization.load_pem_public_key(made.public.read_bytes())
    assert spki_kid(public) == made.kid
    assert to_stdout.returncode == 0
    assert to_stdout.stdout.encode() == made.public.read_bytes()
    assert b"PRIVATE" not in made.public.read_bytes()


# ---------------------------------------------------------------------------------------------------
# sign
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_sign_prints_qr_text_and_writes_images(signed, alg):
    """``sign`` prints only the https QR URL, never the full ID number, and writes a PNG and an SVG."""

    made = signed(alg)

    assert re.fullmatch(re.escape(BASE_URL) + r"/c1#[0-9]+", made.text)
    assert made.sign_output == made.text + "\n"
    assert TEST_ID_NUMBER not in made.sign_output
    assert made.png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert made.svg.read_text(encoding="utf-8").startswith("<svg")
    assert TEST_ID_NUMBER not in made.svg.read_text(encoding="utf-8")


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_png_decodes_to_printed_text(signed, alg):
    """zxing-cpp reads exactly the printed QR text back from the PNG (written with ``qrcode``)."""
    made = signed(alg)

    texts = crypto.read_qr_texts(made.png)

    assert texts == [made.text]


def pycose_key(public_pem):
    """A pycose key built from the public key's numbers (not from certseal's code)."""
    public = serialization.load_pem_public_key(public_pem)
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        return EC2Key(crv=P256, x=numbers.x.to_bytes(32, "big"), y=numbers.y.to_bytes(32, "big"))
    assert isinstance(public, ed25519.Ed25519PublicKey)
    return OKPKey(crv=Ed25519, x=public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_pycose_verifies_the_signed_envelope(signed, alg):
    """The digits after ``#`` unpack to a COSE_Sign1 that pycose verifies with the issuer's public key."""
    made = signed(alg)
    envelope = unpack_digits(made.text.partition("#")[2])

    message = CoseMessage.decode(envelope)
    message.key = pycose_key(made.public.read_bytes())
    tampered = Sign1Message.decode(envelope)
    tampered.key = message.key
    tampered.signature = bytes([message.signature[0] ^ 1]) + message.signature[1:]

    assert isinstance(message, Sign1Message)
    assert message.verify_signature() is True
    assert tampered.verify_signature() is False
    assert message.uhdr == {}
    assert cbor2.loads(message.payload)[1] == "CN-44"
    assert TEST_ID_NUMBER.encode() not in envelope
    assert TEST_ID_NUMBER[4:-4].encode() not in envelope


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"holder": {"name": "张伟", "id_number": TEST_ID_NUMBER[:-1] + "0"}}, "holder.id_number"),
        ({"operation": "99.1"}, "operation"),
        ({"holder": {"name": "张伟", "masked_id": "44012432", "photo": "absent.jpg"}}, "holder.photo"),
        ({"valid_from": None}, "valid_from is required"),
        ({"valid_from": "9999-12-31", "valid_until": None}, "valid_from"),
        ({"valid_until": "2025-01-01"}, "claims:"),
    ],
    ids=[
        "bad-check-character",
        "unknown-item",
        "missing-photo",
        "no-valid-from",
        "default-valid-until-past-9999",
        "ends-before-start",
    ],
)
def test_sign_refuses_bad_claims(es256, tmp_path, overrides, message):
    """Bad claims are exit 2 with a message naming the field; the ID number is never echoed."""
    write_claims(tmp_path, "claims.json", **overrides)

    result = certseal_sign(es256.key, "claims.json", cwd=tmp_path)

    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert TEST_ID_NUMBER[:-1] not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--base-url", "http://cert.example.gov.cn"], "base URL must be https"),
        (["--base-url", BASE_URL, "--png", "no/such/dir/qr.png"], "No such file or directory"),
        (["--base-url", BASE_URL, "--svg", "."], "Is a directory"),
    ],
    ids=["http-base-url", "png-in-missing-directory", "svg-onto-directory"],
)
def test_sign_output_problems_are_usage_errors(es256, tmp_path, args, message):
    """An insecure base URL or an unwritable image path is exit 2 with a message, not a traceback."""
    write_claims(tmp_path, "claims.json")

    result = certseal_sign(es256.key, "claims.json", *args, cwd=tmp_path, base_url=None)

    assert result.returncode == 2
    assert message in result.stderr


def test_sign_reads_the_validity_setting(es256, tmp_path):
    """Without valid_until, ``sign`` makes the certificate valid for CERTSEAL_VALIDITY_YEARS years."""
    write_claims(tmp_path, "claims.json", valid_until=None)
    env = clean_env(CERTSEAL_KEY_PASSPHRASE=PASSPHRASE, CERTSEAL_VALIDITY_YEARS="3")

    signed = certseal_sign(es256.key, "claims.json", cwd=tmp_path, env=env)
    verified = certseal("verify", "--trust", str(es256.public), signed.stdout.strip(), "--at", INSIDE, cwd=tmp_path)

    assert signed.returncode == 0
    assert verdict_of(verified)["certificate"]["valid_until"] == "2029-01-04"


@pytest.mark.parametrize("value", ["0", "21", "six"])
def test_sign_refuses_a_bad_validity_setting(es256, tmp_path, value):
    """A CERTSEAL_VALIDITY_YEARS outside the service's rule (1 to 20 years) is exit 2 naming the variable."""
    write_claims(tmp_path, "claims.json", valid_until=None)
    env = clean_env(CERTSEAL_KEY_PASSPHRASE=PASSPHRASE, CERTSEAL_VALIDITY_YEARS=value)

    result = certseal_sign(es256.key, "claims.json", cwd=tmp_path, env=env)

    assert result.returncode == 2
    assert "CERTSEAL_VALIDITY_YEARS" in result.stderr
    assert result.stdout == ""


# ---------------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_verify_accepts_and_shows_the_certificate(signed, alg):
    """A genuine certificate is exit 0 with decision accept and its fields, the ID number masked 4+10*+4."""
    made = signed(alg)

    result = certseal("verify", "--trust", str(made.public), made.text, "--at", INSIDE, cwd=made.directory)

    verdict = verdict_of(result)
    certificate = verdict["certificate"]
    assert result.returncode == 0
    assert (verdict["decision"], verdict["reasons"]) == ("accept", [])
    assert verdict["checks"] == ["format", "signature", "validity", "review"]
    assert certificate["masked_id"] == MASKED
    assert re.fullmatch(r"[0-9]{4}\*{10}[0-9]{3}[0-9X]", certificate["masked_id"])
    assert certificate["holder_name"] == "张伟"
    assert certificate["issuer"] == "CN-44"
    assert certificate["kid"] == made.kid
    assert certificate["operation"]["code"] == "2.1"
    assert certificate["operation"]["covers_hot_work"] is True
    assert (certificate["valid_from"], certificate["valid_until"]) == ("2026-01-05", "2032-01-04")
    assert certificate["review_due"] == "2029-01-05"
    assert certificate["photo_digest"] == hashlib.sha256(PHOTO).digest()[:16].hex()
    assert certificate["status_index"] == 17
    assert TEST_ID_NUMBER not in result.stdout


def test_verify_after_expiry_rejects(es256):
    """After ``valid_until`` the verdict is reject, exit 1, with reasons ["expired"] (review rule off)."""

    result = certseal(
        "verify", "--trust", str(es256.public), es256.text, "--at", AFTER_EXPIRY, "--no-review", cwd=es256.directory
    )

    verdict = verdict_of(result)
    assert result.returncode == 1
    assert (verdict["decision"], verdict["reasons"]) == ("reject", ["expired"])
    assert verdict["certificate"]["serial"]


def test_verify_reports_every_failing_check(es256):
    """With the review rule on, an expired certificate past its review date gets both reasons."""

    result = certseal("verify", "--trust", str(es256.public), es256.text, "--at", AFTER_EXPIRY, cwd=es256.directory)

    assert result.returncode == 1
    assert verdict_of(result)["reasons"] == ["expired", "review_overdue"]


def test_verify_review_overdue_and_no_review(es256):
    """A past review date rejects with review_overdue; ``--no-review`` skips that check and accepts."""

    strict = certseal("verify", "--trust", str(es256.public), es256.text, "--at", AFTER_REVIEW, cwd=es256.directory)
    lenient = certseal(
        "verify", "--trust", str(es256.public), es256.text, "--at", AFTER_REVIEW, "--no-review", cwd=es256.directory
    )

    assert strict.returncode == 1
    assert verdict_of(strict)["reasons"] == ["review_overdue"]
    assert lenient.returncode == 0
    assert verdict_of(lenient)["decision"] == "accept"
    assert "review" not in verdict_of(lenient)["checks"]


def test_verify_with_another_trusted_key_is_unknown_key(es256, stranger_public):
    """Trusting only another issuer's key rejects with unknown_key and shows no certificate."""

    result = certseal("verify", "--trust", str(stranger_public), es256.text, "--at", INSIDE, cwd=es256.directory)

    verdict = verdict_of(result)
    assert result.returncode == 1
    assert verdict["reasons"] == ["unknown_key"]
    assert verdict["certificate"] is None


def test_verify_with_several_trusted_keys_finds_the_signer(es256, stranger_public):
    """``--trust`` is repeatable: the signer's key among others still accepts."""

    result = certseal(
        "verify",
        "--trust",
        str(stranger_public),
        "--trust",
        str(es256.public),
        es256.text,
        "--at",
        INSIDE,
        cwd=es256.directory,
    )

    assert result.returncode == 0


def tamper(text, position):
    """Change the digit at ``position`` (negative: from the end) so its group still fits its bytes."""
    index = position % len(text)
    digit = int(text[index])
    return text[:index] + str(digit - 1 if digit else 1) + text[index + 1 :]


@pytest.mark.parametrize("position", [-60, 80], ids=lambda p: f"digit{p}")
@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_verify_tampered_digit_rejects(signed, alg, position):
    """One changed digit (signature or payload) is exit 1 with bad_signature or malformed."""
    made = signed(alg)

    result = certseal("verify", "--trust", str(made.public), tamper(made.text, position), cwd=made.directory)

    verdict = verdict_of(result)
    assert result.returncode == 1
    assert verdict["reasons"] in (["bad_signature"], ["malformed"])
    assert verdict["certificate"] is None


def test_verify_high_s_twin_is_malformed(es256):
    """The genuine certificate's high-S twin (``s`` replaced by ``n - s``) is exit 1 with reasons ["malformed"]."""
    twin = high_s_twin_text(es256.text)

    result = certseal("verify", "--trust", str(es256.public), twin, "--at", INSIDE, cwd=es256.directory)

    verdict = verdict_of(result)
    assert result.returncode == 1
    assert (verdict["decision"], verdict["reasons"]) == ("reject", ["malformed"])
    assert verdict["certificate"] is None


def test_verify_image_of_png_accepts(es256):
    """``--image`` reads the QR code from the PNG ``sign`` wrote and accepts it."""

    result = certseal(
        "verify", "--trust", str(es256.public), "--image", str(es256.png), "--at", INSIDE, cwd=es256.directory
    )
    direct = certseal("verify", "--trust", str(es256.public), es256.text, "--at", INSIDE, cwd=es256.directory)

    assert result.returncode == 0
    assert verdict_of(result) == verdict_of(direct)


def test_verify_image_of_non_image_is_usage_error(es256):
    """``--image`` of a file that is no image is exit 2 with a message."""

    result = certseal("verify", "--trust", str(es256.public), "--image", "claims.json", cwd=es256.directory)

    assert result.returncode == 2
    assert "not a readable image" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("kind", ["blank-qr-grid", "plain-photo"])
def test_verify_image_without_qr_code_is_no_qr_code(es256, tmp_path, kind):
    """An image with no QR code is reject ``no_qr_code`` (not malformed), exit 1, no check run, its own message."""
    if kind == "plain-photo":
        Image.new("RGB", (640, 480), (182, 170, 150)).save(tmp_path / "photo.jpg", quality=85)
    else:
        (tmp_path / "photo.jpg").write_bytes(crypto.render_png(crypto.QrSymbol(1, "Q", ((False,) * 21,) * 21)))

    result = certseal("verify", "--trust", str(es256.public), "--image", "photo.jpg", cwd=tmp_path)

    verdict = verdict_of(result)
    assert result.returncode == 1
    assert (verdict["decision"], verdict["reasons"], verdict["checks"]) == ("reject", ["no_qr_code"], [])
    assert verdict["certificate"] is None
    assert "no QR code found in photo.jpg" in result.stderr


def test_verify_accepts_the_wechat_rewritten_url(es256):
    """The URL as WeChat opens it (a query before the fragment, a zero-width space after it) is accepted."""
    base, _, digits = es256.text.partition("#")
    wechat = f"{base}?from=singlemessage&isappinstalled=0#{digits}\u200b"

    result = certseal("verify", "--trust", str(es256.public), wechat, "--at", INSIDE, cwd=es256.directory)

    assert result.returncode == 0
    assert (verdict_of(result)["decision"], verdict_of(result)["reasons"]) == ("accept", [])


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (lambda text: text.replace("/c1#", "/C1#"), "unsupported_format", "the version path is case-sensitive"),
        (lambda text: text.replace("#", "%23"), "unsupported_format", "%23 is not a fragment"),
        (lambda text: text + "7", "malformed", "is not a valid packing"),
    ],
    ids=["uppercase-version", "percent-23", "digit-count"],
)
def test_verify_refused_text_says_what_is_wrong(es256, change, code, message):
    """A refused QR text is exit 1 with its reason, only the format check listed, and a message naming the problem."""
    text = change(es256.text)

    result = certseal("verify", "--trust", str(es256.public), text, "--at", INSIDE, cwd=es256.directory)

    verdict = verdict_of(result)
    assert result.returncode == 1
    assert (verdict["reasons"], verdict["checks"]) == ([code], ["format"])
    assert message in verdict["message"]


def test_hot_work_purpose_on_electrician_certificate(es256):
    """``--purpose hot_work`` rejects a 1.2 (electrician) certificate with operation_not_covered."""

    result = certseal(
        "verify",
        "--trust",
        str(es256.public),
        es256.electrician_text,
        "--at",
        INSIDE,
        "--purpose",
        "hot_work",
        cwd=es256.directory,
    )

    verdict = verdict_of(result)
    assert result.returncode == 1
    assert verdict["reasons"] == ["operation_not_covered"]
    assert verdict["certificate"]["operation"]["covers_hot_work"] is False


def test_hot_work_purpose_on_welder_certificate(es256):
    """``--purpose hot_work`` accepts the 2.1 (welding) certificate and lists the check."""

    result = certseal(
        "verify", "--trust", str(es256.public), es256.text, "--at", INSIDE, "--purpose", "hot_work", cwd=es256.directory
    )

    assert result.returncode == 0
    assert verdict_of(result)["checks"][-1] == "hot_work"


def test_operation_option_requires_that_item(es256):
    """``--operation 2.2`` rejects a 2.1 certificate with operation_not_covered."""

    result = certseal(
        "verify", "--trust", str(es256.public), es256.text, "--at", INSIDE, "--operation", "2.2", cwd=es256.directory
    )

    assert result.returncode == 1
    assert verdict_of(result)["reasons"] == ["operation_not_covered"]


@pytest.mark.parametrize(
    ("bound_to", "decision", "reasons", "issuer_checked"),
    [
        ("CN-44", "accept", [], True),
        ("CN-45", "reject", ["issuer_not_authorized"], True),
        (None, "accept", [], False),
    ],
    ids=["bound-to-the-signer", "bound-to-another-issuer", "bare-file"],
)
def test_verify_trust_code_binds_the_key_to_an_issuer(es256, bound_to, decision, reasons, issuer_checked):
    """``--trust CODE=FILE`` checks ``iss`` against CODE (issuer_not_authorized); a bare FILE checks no issuer."""
    trust = str(es256.public) if bound_to is None else f"{bound_to}={es256.public}"

    result = certseal("verify", "--trust", trust, es256.text, "--at", INSIDE, cwd=es256.directory)

    verdict = verdict_of(result)
    assert result.returncode == (0 if decision == "accept" else 1)
    assert (verdict["decision"], verdict["reasons"]) == (decision, reasons)
    assert verdict["issuer_checked"] is issuer_checked
    assert ("issuer" in verdict["checks"]) is issuer_checked
    assert verdict["certificate"]["issuer"] == "CN-44"


ISSUER_RULE = "issuer code must match `[A-Z0-9][A-Z0-9-]{0,15}`"
BAD_ID_NUMBER = TEST_ID_NUMBER[:-1] + "0"


def issue_args(*, issuer, id_number, operation, issue_date):
    """The arguments of ``certseal issue`` for holder 张伟 with these fields."""
    fields = {"--issuer": issuer, "--name": "张伟", "--id-number": id_number}
    fields |= {"--operation": operation, "--issue-date": issue_date}
    return ["issue", *(part for option, value in fields.items() for part in (option, value))]


# Each case: (arguments after ``certseal`` given the ES256 fixture, CLAIMS.json overrides, expected message fragment).
def _sign_claims_json(made):
    """``certseal sign`` of the claims.json the case writes, as issuer CN-44."""
    return ["sign", "--key", str(made.key), "--issuer", "CN-44", "--claims", "claims.json"]


USAGE_ERRORS = {
    "sign-issuer-lowercase": (
        lambda made: ["sign", "--key", str(made.key), "--issuer", "gd-test", "--claims", "claims.json"],
        {},
        f"--issuer: {ISSUER_RULE}",
    ),
    "sign-id-number": (
        _sign_claims_json,
        {"holder": {"name": "张伟", "id_number": BAD_ID_NUMBER}},
        "claims: holder.id_number: ID number check character does not match",
    ),
    "sign-operation": (
        _sign_claims_json,
        {"operation": "2"},
        "claims: operation must be a catalogue code such as 2.1",
    ),
    "sign-valid-from": (
        _sign_claims_json,
        {"valid_from": "2026/01/05"},
        "claims: valid_from must be a date YYYY-MM-DD",
    ),
    "sign-serial": (
        _sign_claims_json,
        {"serial": "xyz"},
        "claims: serial must be 16 to 32 hex digits",
    ),
    "sign-status-index": (
        _sign_claims_json,
        {"status_index": -1},
        "claims: status_index must be an integer from 0 to 4294967295",
    ),
    "sign-holder-name": (
        _sign_claims_json,
        {"holder": {"name": 7, "id_number": TEST_ID_NUMBER}},
        "claims: holder.name must be a string",
    ),
    "sign-masked-id": (
        _sign_claims_json,
        {"holder": {"name": "张伟", "masked_id": "4401"}},
        "claims: holder.masked_id must be 7 digits then a digit or X",
    ),
    "sign-holder-name-spaces": (
        _sign_claims_json,
        {"holder": {"name": "张  伟", "id_number": TEST_ID_NUMBER}},
        "claims: holder.name: a space must stand alone between two words",
    ),
    "sign-holder-name-bidi": (
        _sign_claims_json,
        {"holder": {"name": "张\u202e伟", "id_number": TEST_ID_NUMBER}},
        "claims: holder.name: U+202E is not allowed",
    ),
    "sign-ends-before-start": (
        _sign_claims_json,
        {"valid_until": "2025-01-01"},
        "claims: valid_until must be on or after valid_from",
    ),
    "sign-review-due": (
        _sign_claims_json,
        {"review_due": "1960-01-01"},
        "claims: review_due must be a date from 1970-01-01 to 2243-10-16",
    ),
    "sign-claims-not-json": (
        lambda made: ["sign", "--key", str(made.key), "--issuer", "CN-44", "--claims", "photo.jpg"],
        {},
        "--claims photo.jpg: cannot read UTF-8 JSON",
    ),
    "sign-base-url": (
        lambda made: [
            *("sign", "--key", str(made.key), "--issuer", "CN-44", "--claims", "claims.json"),
            *("--base-url", "ftp://cert.example.gov.cn"),
        ],
        {},
        "--base-url: base URL must be https://host[/path]",
    ),
    "sign-key-not-private": (
        lambda made: ["sign", "--key", str(made.public), "--issuer", "CN-44", "--claims", "claims.json"],
        {},
        "key {made.public}: signing key is unavailable",
    ),
    "issuer-create-code": (
        lambda made: ["issuer", "create", "--code", "gd-x", "--name", "n", "--region", "r", "--operations", "2.1"],
        {},
        f"--code: {ISSUER_RULE}",
    ),
    "issuer-create-operations": (
        lambda made: ["issuer", "create", "--code", "CN-1", "--name", "n", "--region", "r", "--operations", "2.1,x"],
        {},
        "--operations: each item code must look like 2.1",
    ),
    "issuer-create-name": (
        lambda made: ["issuer", "create", "--code", "CN-1", "--name", "", "--region", "r", "--operations", "2.1"],
        {},
        "--name: String should have at least 1 character",
    ),
    "issue-issuer": (
        lambda made: issue_args(issuer="gd", id_number=TEST_ID_NUMBER, operation="2.1", issue_date="2026-01-05"),
        {},
        f"--issuer: {ISSUER_RULE}",
    ),
    "issue-id-number": (
        lambda made: issue_args(issuer="CN-44", id_number=BAD_ID_NUMBER, operation="2.1", issue_date="2026-01-05"),
        {},
        "--id-number: ID number check character does not match",
    ),
    "issue-operation": (
        lambda made: issue_args(issuer="CN-44", id_number=TEST_ID_NUMBER, operation="2", issue_date="2026-01-05"),
        {},
        "--operation: String should match pattern",
    ),
    "issue-date": (
        lambda made: issue_args(issuer="CN-44", id_number=TEST_ID_NUMBER, operation="2.1", issue_date="2026/01/05"),
        {},
        "--issue-date: Input should be a valid date",
    ),
    "verify-trust-code": (
        lambda made: ["verify", "--trust", f"cn-44={made.public}", made.text],
        {},
        f"--trust CODE=FILE: {ISSUER_RULE}",
    ),
    "verify-trust-missing": (
        lambda made: ["verify", "--trust", "absent.pem", made.text],
        {},
        "--trust: cannot read the public key file absent.pem",
    ),
    "verify-trust-not-a-key": (
        lambda made: ["verify", "--trust", "claims.json", made.text],
        {},
        "--trust claims.json: must be a public key (PEM or DER SubjectPublicKeyInfo)",
    ),
    "verify-at": (
        lambda made: ["verify", "--trust", str(made.public), made.text, "--at", "next tuesday"],
        {},
        "--at must be an ISO 8601 time",
    ),
    "verify-operation": (
        lambda made: ["verify", "--trust", str(made.public), made.text, "--operation", "welding"],
        {},
        "--operation must look like 2.1",
    ),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS), ids=list(USAGE_ERRORS))
def test_usage_errors_name_the_field_and_the_rule(es256, tmp_path, case):
    """Each bad input is exit 2 with a message naming the field and its rule, never echoing an ID number."""
    build, overrides, fragment = USAGE_ERRORS[case]
    write_claims(tmp_path, "claims.json", **overrides)
    args = build(es256)
    if args[0] == "sign" and "--base-url" not in args:
        args += ["--base-url", BASE_URL]
    fragment = fragment.replace("{made.public}", str(es256.public))

    result = certseal(*args, cwd=tmp_path)

    assert result.returncode == 2
    assert fragment in result.stderr
    assert result.stdout == ""
    assert TEST_ID_NUMBER[4:-4] not in result.stderr


@pytest.mark.parametrize("extra", [[], ["QR", "--image", "card-qr.png"]], ids=["neither", "both"])
def test_verify_needs_exactly_one_input(es256, extra):
    """``verify`` wants either QR_TEXT or ``--image``: none or both is exit 2."""

    result = certseal("verify", "--trust", str(es256.public), *extra, cwd=es256.directory)

    assert result.returncode == 2
    assert "either QR_TEXT or --image" in result.stderr


# Random-looking but reproducible bytes (no NUL, which argv cannot hold), read as Latin-1.
RANDOM_LATIN1 = b"".join(hashlib.sha512(bytes([n])).digest() for n in range(4)).replace(b"\0", b"").decode("latin-1")

# Each case builds the arguments after ``verify`` from (QR text, trusted public key file).
HOSTILE = {
    "empty": lambda text, trust: ["--trust", trust, ""],
    "whitespace": lambda text, trust: ["--trust", trust, " \t \n "],
    "10kb-digits": lambda text, trust: ["--trust", trust, "1" * 10240],
    "arabic-indic-digits": lambda text, trust: ["--trust", trust, "١٢٣"],
    "fullwidth-digits": lambda text, trust: ["--trust", trust, text.replace("1", "１")],
    "control-characters": lambda text, trust: ["--trust", trust, "\x01\x02\x1b[31m\x7f\x08\r"],
    "url-without-fragment": lambda text, trust: ["--trust", trust, text.partition("#")[0]],
    "unknown-version": lambda text, trust: ["--trust", trust, "https://x/c2#123"],
    "oversized-group": lambda text, trust: ["--trust", trust, "9" * 17],
    "truncated": lambda text, trust: ["--trust", trust, text[:-17]],
    "random-latin1": lambda text, trust: ["--trust", trust, RANDOM_LATIN1],
    "undecodable-bytes": lambda text, trust: ["--trust", trust, text.encode() + b"\xff\xfe\x80"],
    "bad-at": lambda text, trust: ["--trust", trust, text, "--at", "next tuesday"],
    "at-year-one": lambda text, trust: ["--trust", trust, text, "--at", "0001-01-01T00:00:00+08:00"],
    "at-year-9999": lambda text, trust: ["--trust", trust, text, "--at", "9999-12-31T23:59:59-12:00"],
    "trust-not-pem": lambda text, trust: ["--trust", "claims.json", text],
    "trust-missing": lambda text, trust: ["--trust", "absent.pem", text],
    "trust-directory": lambda text, trust: ["--trust", ".", text],
    "image-directory": lambda text, trust: ["--trust", trust, "--image", "."],
    "image-svg": lambda text, trust: ["--trust", trust, "--image", "card-qr.svg"],
    "image-undecodable-name": lambda text, trust: ["--trust", trust, "--image", b"\xff\xfe.png"],
}


@pytest.fixture(scope="module")
def hostile_results(es256):
    """Every HOSTILE case, run in parallel against the ES256 certificate, by case name."""
    calls = {
        case: (["verify", *build(es256.text, str(es256.public))], {"cwd": es256.directory})
        for case, build in HOSTILE.items()
    }
    return certseal_concurrently(calls)


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_verify_input_never_prints_a_traceback(hostile_results, case):
    """Hostile input to ``verify`` is a reject (1) or usage error (2), never a traceback or an accept."""

    result = hostile_results[case]

    assert result.returncode in {1, 2}, result.stdout
    assert "Traceback" not in result.stderr
    if result.returncode == 1:
        assert verdict_of(result)["decision"] == "reject"
    else:
        assert result.stdout == ""
        assert result.stderr.startswith(("certseal: error:", "usage:"))


# ---------------------------------------------------------------------------------------------------
# issuer create / api-key / rotate-key, issue (temporary SQLite database)
# ---------------------------------------------------------------------------------------------------


def query(database, sql, *params):
    """Rows of ``sql`` in the SQLite database file."""
    with sqlite3.connect(database) as connection:
        return connection.execute(sql, params).fetchall()


def active_public_key(database, tmp_path, code="CN-44"):
    """Export the issuer's active public key from the database to a PEM file; return (kid, path)."""
    ((kid, pem),) = query(
        database,
        "SELECT k.kid, k.public_key_pem FROM signing_keys k JOIN issuers i ON i.id = k.issuer_id"
        " WHERE i.code = ? AND k.state = 'active' AND k.use = 'certificate'",
        code,
    )
    path = tmp_path / f"{kid}.pub.pem"
    path.write_text(pem, encoding="utf-8")
    return kid, path


@dataclass(frozen=True)
class AdminDatabase:
    """A SQLite database holding issuer CN-44 (created with ``--demo``) and how it was created."""

    path: Path
    url: str
    env: dict[str, str]
    create: subprocess.CompletedProcess[str]


def demo_env():
    """An environment for ``--demo`` admin commands with an https public base URL."""
    return clean_env(CERTSEAL_PUBLIC_BASE_URL=BASE_URL)


@pytest.fixture(scope="module")
def admin_db(tmp_path_factory, migrated_sqlite_template):
    """Issuer CN-44 (items 2.1, 1.2) created by ``certseal issuer create --demo`` in a freshly migrated database."""
    directory = tmp_path_factory.mktemp("admin")
    path = Path(shutil.copyfile(migrated_sqlite_template, directory / "certseal.db"))
    url = f"sqlite:///{path}"
    create = certseal(
        "issuer",
        "create",
        "--code",
        "CN-44",
        "--name",
        "广东省应急管理厅",
        "--region",
        "广东省",
        "--operations",
        "2.1, 1.2",
        "--database",
        url,
        "--demo",
        cwd=directory,
        env=demo_env(),
    )
    return AdminDatabase(path, url, demo_env(), create)


def test_issuer_create_prints_kid_of_stored_key(admin_db):
    """``issuer create`` prints the kid of the issuer's first, active ES256 key, as stored."""

    match = re.fullmatch(r"issuer CN-44 created; signing key ([0-9a-f]{16})\n", admin_db.create.stdout)

    assert admin_db.create.returncode == 0
    assert match is not None
    rows = query(admin_db.path, "SELECT k.kid, k.alg, k.state FROM signing_keys k JOIN issuers i ON i.id = k.issuer_id")
    assert (match.group(1), "ES256", "active") in rows
    assert query(admin_db.path, "SELECT operations FROM issuers WHERE code = 'CN-44'") == [('["2.1", "1.2"]',)]


def test_issuer_create_refuses_a_duplicate_code(admin_db, tmp_path):
    """Creating CN-44 twice is exit 2 (issuer_exists) and leaves one issuer."""

    result = certseal(
        "issuer",
        "create",
        "--code",
        "CN-44",
        "--name",
        "x",
        "--region",
        "x",
        "--operations",
        "2.1",
        "--database",
        admin_db.url,
        "--demo",
        cwd=tmp_path,
        env=admin_db.env,
    )

    assert result.returncode == 2
    assert "issuer_exists" in result.stderr
    assert query(admin_db.path, "SELECT count(*) FROM issuers WHERE code = 'CN-44'") == [(1,)]


def test_issuer_create_applies_the_api_rules(admin_db, tmp_path):
    """An issuer code or name ``POST /v1/issuers`` would refuse is refused here too (exit 2, nothing stored)."""

    result = certseal(
        "issuer",
        "create",
        "--code",
        "cn 44/x",
        "--name",
        "",
        "--region",
        "x",
        "--operations",
        "2.1",
        "--database",
        admin_db.url,
        "--demo",
        cwd=tmp_path,
        env=admin_db.env,
    )

    assert result.returncode == 2
    assert f"invalid issuer fields: --code: {ISSUER_RULE}" in result.stderr
    assert "--name: String should have at least 1 character" in result.stderr
    assert query(admin_db.path, "SELECT count(*) FROM issuers") == [(1,)]


def test_issuer_api_key_is_printed_once_and_stored_hashed(admin_db, tmp_path):
    """``issuer api-key`` prints a new issuer key; the database keeps only its SHA-256."""

    result = certseal(
        "issuer",
        "api-key",
        "CN-44",
        "--label",
        "cli",
        "--database",
        admin_db.url,
        "--demo",
        cwd=tmp_path,
        env=admin_db.env,
    )

    token = result.stdout.strip()
    rows = query(admin_db.path, "SELECT prefix, secret_hash, scope, label FROM api_keys WHERE label = 'cli'")
    assert result.returncode == 0
    assert re.fullmatch(r"cs_[0-9a-f]{12}_\S{20,}", token)
    assert len(rows) == 1
    assert rows[0][0] == token.split("_")[1]
    assert rows[0][2] == "issuer"
    assert token not in repr(query(admin_db.path, "SELECT * FROM api_keys"))


def test_issuer_rotate_key_retires_the_old_key(admin_db, tmp_path):
    """``issuer rotate-key --alg EdDSA`` prints a new kid that is now active; the old key is retired."""
    old_kid, _ = active_public_key(admin_db.path, tmp_path)

    result = certseal(
        "issuer",
        "rotate-key",
        "CN-44",
        "--alg",
        "EdDSA",
        "--database",
        admin_db.url,
        "--demo",
        cwd=tmp_path,
        env=admin_db.env,
    )

    new_kid = result.stdout.strip()
    states = dict(query(admin_db.path, "SELECT kid, state || ' ' || alg FROM signing_keys"))
    assert result.returncode == 0
    assert re.fullmatch(r"[0-9a-f]{16}", new_kid)
    assert new_kid != old_kid
    assert states[new_kid] == "active EdDSA"
    assert states[old_kid] == "retired ES256"


def test_issue_reads_id_number_from_stdin_and_verifies_offline(admin_db, tmp_path):
    """``issue --id-number -`` prints QR text that ``verify --trust`` accepts with the issuer's exported key."""
    id_number = id_number_for(date(1985, 3, 12))
    issue_date = TEST_TODAY.isoformat()

    issued = certseal(
        "issue",
        "--issuer",
        "CN-44",
        "--name",
        "张伟",
        "--id-number",
        "-",
        "--operation",
        "2.1",
        "--issue-date",
        issue_date,
        "--database",
        admin_db.url,
        "--demo",
        cwd=tmp_path,
        env=admin_db.env,
        stdin=id_number + "\n",
    )
    kid, public = active_public_key(admin_db.path, tmp_path)
    verified = certseal(
        "verify", "--trust", str(public), issued.stdout.strip(), "--purpose", "hot_work", "--at", AT, cwd=tmp_path
    )

    verdict = verdict_of(verified)
    assert issued.returncode == 0
    assert re.fullmatch(re.escape(BASE_URL) + r"/c1#[0-9]+\n", issued.stdout)
    assert id_number not in issued.stdout + issued.stderr
    assert verified.returncode == 0
    assert verdict["certificate"]["kid"] == kid
    assert verdict["certificate"]["masked_id"] == id_number[:4] + "*" * 10 + id_number[-4:]
    assert verdict["certificate"]["valid_from"] == issue_date
    assert id_number not in verified.stdout


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("440106198503122431\n", "--id-number: ID number check character does not match"),
        ("", "invalid certificate fields: --id-number: String should have at least 15 characters"),
    ],
    ids=["bad-check-character", "empty-stdin"],
)
def test_issue_refuses_bad_id_number_without_echoing_it(admin_db, tmp_path, stdin, message):
    """A bad ID number on stdin is exit 2 naming the field, and the number is not echoed."""

    result = certseal(
        "issue",
        "--issuer",
        "CN-44",
        "--name",
        "张伟",
        "--id-number",
        "-",
        "--operation",
        "2.1",
        "--issue-date",
        TEST_TODAY.isoformat(),
        "--database",
        admin_db.url,
        "--demo",
        cwd=tmp_path,
        env=admin_db.env,
        stdin=stdin,
    )

    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
    if stdin.strip():
        assert stdin.strip() not in result.stderr


def test_issue_without_a_basis_is_refused_outside_demo_mode(tmp_path, migrated_sqlite):
    """Outside demo mode ``certseal issue`` without an exam result needs ``--basis``: else exit 2 and the code."""
    env = clean_env(CERTSEAL_PUBLIC_BASE_URL=BASE_URL, **ENV_SECRETS)
    url = f"sqlite:///{migrated_sqlite(tmp_path / 'real.db')}"
    certseal("issuer", "create", "--code", "CN-11", "--name", "北京", "--region", "北京", "--operations", "2.1",
             "--database", url, cwd=tmp_path, env=env)  # fmt: skip
    fields = issue_args(issuer="CN-11", id_number=id_number_for(date(1990, 7, 1)), operation="2.1",
                        issue_date=TEST_TODAY.isoformat())  # fmt: skip

    result = certseal(*fields, "--database", url, cwd=tmp_path, env=env)

    assert result.returncode == 2
    assert "direct_issuance_refused" in result.stderr
    assert result.stdout == ""


def test_admin_with_secrets_from_environment(tmp_path, migrated_sqlite):
    """Without ``--demo``, CERTSEAL_* secrets from the environment create an issuer and issue verifiable QR text."""
    env = clean_env(CERTSEAL_PUBLIC_BASE_URL=BASE_URL, **ENV_SECRETS)
    database = migrated_sqlite(tmp_path / "real.db")
    url = f"sqlite:///{database}"
    id_number = id_number_for(date(1990, 7, 1))

    created = certseal(
        "issuer",
        "create",
        "--code",
        "CN-11",
        "--name",
        "北京市应急管理局",
        "--region",
        "北京市",
        "--operations",
        "2.1",
        "--alg",
        "EdDSA",
        "--database",
        url,
        cwd=tmp_path,
        env=env,
    )
    issued = certseal(
        "issue",
        "--issuer",
        "CN-11",
        "--name",
        "李强",
        "--id-number",
        id_number,
        "--operation",
        "2.1",
        "--issue-date",
        TEST_TODAY.isoformat(),
        "--basis",  # outside demo mode a certificate without an exam result names why
        "legacy_migration",
        "--database",
        url,
        cwd=tmp_path,
        env=env,
    )
    _kid, public = active_public_key(database, tmp_path, "CN-11")
    verified = certseal("verify", "--trust", str(public), issued.stdout.strip(), "--at", AT, cwd=tmp_path)

    outputs = created.stdout + created.stderr + issued.stdout + issued.stderr + verified.stdout
    assert (created.returncode, issued.returncode, verified.returncode) == (0, 0, 0)
    assert issued.stdout.startswith(f"{BASE_URL}/c1#")
    assert verdict_of(verified)["certificate"]["issuer"] == "CN-11"
    assert not [value for value in ENV_SECRETS.values() if value in outputs]
    assert ENV_SECRETS["CERTSEAL_KEY_PASSPHRASE"] not in database.read_bytes().decode("latin-1")


PUBLIC_ENV = {"CERTSEAL_PUBLIC_BASE_URL": BASE_URL}
# name -> (arguments, "{database}" = the admin database, "{tmp}" = a temporary directory; environment; message)
ADMIN_ERRORS = {
    "no-passphrase-outside-demo": (
        "issuer create --code CN-45 --name x --region x --operations 2.1 --database {database}",
        PUBLIC_ENV,
        "CERTSEAL_KEY_PASSPHRASE is not set",
    ),
    "unknown-issuer": ("issuer api-key CN-99 --demo --database {database}", {}, "no issuer CN-99"),
    "wrong-passphrase": (
        "issuer rotate-key CN-44 --database {database}",
        PUBLIC_ENV | ENV_SECRETS,
        "cannot be decrypted",
    ),
    "unopenable-database": (
        "issuer api-key CN-44 --demo --database sqlite:///{tmp}/no/such/directory/x.db",
        {},
        "CERTSEAL_DATABASE_URL",
    ),
    "unknown-dialect": (
        "issuer api-key CN-44 --demo --database nosuchdialect://user:hunter2hunter2@db.example/certseal",
        {},
        "CERTSEAL_DATABASE_URL",
    ),
    # Admin commands never create or change the schema: an empty database, or one made by the code before
    # migrations ({legacy}: a copy of tests/fixtures/legacy-7b6b110.sqlite), needs `certseal db upgrade` first.
    "unmigrated-database": (
        "issuer create --code CN-45 --name x --region x --operations 2.1 --demo --database sqlite:///{tmp}/empty.db",
        {},
        "is empty (no certseal schema): run `certseal db upgrade`",
    ),
    "legacy-database": (
        "issuer rotate-key CN-44 --demo --database sqlite:///{legacy}",
        {},
        "created before schema migrations (no revision recorded): run `certseal db upgrade`",
    ),
}
SECRET_VALUES = [*ENV_SECRETS.values(), "hunter2hunter2"]


@pytest.fixture(scope="module")
def admin_error_results(admin_db, tmp_path_factory):
    """Every ADMIN_ERRORS case, run in parallel, by name."""
    directory = tmp_path_factory.mktemp("admin-errors")
    legacy = shutil.copyfile(ROOT / "tests" / "fixtures" / "legacy-7b6b110.sqlite", directory / "legacy.sqlite")
    calls = {
        name: (
            [word.format(database=admin_db.url, tmp=directory, legacy=legacy) for word in args.split(" ")],
            {"cwd": directory, "env": clean_env(**env)},
        )
        for name, (args, env, _message) in ADMIN_ERRORS.items()
    }
    return certseal_concurrently(calls)


@pytest.mark.parametrize("case", list(ADMIN_ERRORS), ids=list(ADMIN_ERRORS))
def test_admin_errors_are_usage_errors(admin_error_results, case):
    """Missing secrets, wrong passphrases, bad databases and refused requests are exit 2 with a message only."""

    result = admin_error_results[case]

    assert result.returncode == 2
    assert ADMIN_ERRORS[case][2] in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not [value for value in SECRET_VALUES if value in result.stderr]


# ---------------------------------------------------------------------------------------------------
# serve settings, openapi
# ---------------------------------------------------------------------------------------------------


def free_port():
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# name -> (environment, variables the message must name)
SERVE_REFUSALS = {
    "nothing-set": ({}, ["CERTSEAL_PUBLIC_BASE_URL"]),
    "no-secrets": (PUBLIC_ENV, list(ENV_SECRETS)),
    "demo-secret": (
        PUBLIC_ENV | ENV_SECRETS | {"CERTSEAL_ADMIN_TOKEN": DEMO_SECRETS["admin_token"]},
        ["CERTSEAL_ADMIN_TOKEN"],
    ),
    "empty-secret": (PUBLIC_ENV | ENV_SECRETS | {"CERTSEAL_URL_SIGNING_KEY": ""}, ["CERTSEAL_URL_SIGNING_KEY"]),
}


@pytest.fixture(scope="module")
def serve_results(tmp_path_factory):
    """``certseal serve`` (no --demo) under every SERVE_REFUSALS environment, run in parallel, by name."""
    directory = tmp_path_factory.mktemp("serve")
    database = f"sqlite:///{directory / 'x.db'}"
    calls = {
        name: (
            ["serve", "--port", str(free_port()), "--database", database],
            {"cwd": directory, "env": clean_env(**env)},
        )
        for name, (env, _named) in SERVE_REFUSALS.items()
    }
    return certseal_concurrently(calls)


@pytest.mark.parametrize("case", list(SERVE_REFUSALS), ids=list(SERVE_REFUSALS))
def test_serve_refuses_unsafe_settings(serve_results, case):
    """Outside ``--demo``, ``serve`` with missing or unsafe settings exits 2 naming them, printing no secret value."""
    env, named = SERVE_REFUSALS[case]

    result = serve_results[case]

    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "Traceback" not in output
    assert [name for name in named if name not in result.stderr] == []
    assert [value for value in env.values() if len(value) > 8 and value != BASE_URL and value in output] == []
    assert "Uvicorn running" not in output


def test_openapi_check_passes_on_committed_file(tmp_path):
    """``openapi --check`` exits 0 on the committed ``openapi.yaml``."""

    result = certseal("openapi", "--check", "--out", str(ROOT / "openapi.yaml"), cwd=tmp_path, env=clean_env())

    assert result.returncode == 0, result.stderr


def test_openapi_check_fails_on_drift(tmp_path):
    """``openapi --check`` exits 1 naming the file when it differs from the app's schema."""
    stale = tmp_path / "openapi.yaml"
    stale.write_text((ROOT / "openapi.yaml").read_text(encoding="utf-8") + "# drift\n", encoding="utf-8")

    checked = certseal("openapi", "--check", cwd=tmp_path, env=clean_env())

    assert checked.returncode == 1
    assert "openapi.yaml is out of date" in checked.stderr


def test_issuer_update_sets_and_removes_the_service_phone(admin_db, tmp_path):
    """``issuer update --service-phone`` sets the phone, an empty value removes it, a bad one is refused."""

    def update(phone):
        return certseal(
            "issuer", "update", "CN-44", "--service-phone", phone, "--database", admin_db.url, "--demo",
            cwd=tmp_path, env=admin_db.env,
        )  # fmt: skip

    set_phone, bad, removed = update("020-12345678"), update("not a phone"), update("")

    assert set_phone.returncode == 0, set_phone.stderr
    assert "service phone 020-12345678" in set_phone.stdout
    assert (bad.returncode, "--service-phone" in bad.stderr) == (2, True)
    assert (removed.returncode, "service phone -" in removed.stdout) == (0, True)
