"""The JavaScript verifier (api/static/verify.js) in Chromium is held to the same cases as crypto/.

Every envelope vector of ``tests/vectors/certseal`` and every forgery of the envelope issue's table
(``tests/test_forgeries.py``) must get exactly the Python verdict: the same code, the same claims.
A few extra edge cases of the strict profile are compared with the Python library directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from playwright.sync_api import Browser, Page
from test_forgeries import FORGERIES, header, sig_structure, sign1

import crypto
from api.keyring import public_jwk
from crypto import _cbor, _name_chars
from schemas.api import REASON_CODES

from .conftest import AppServer

pytestmark = pytest.mark.browser

VECTOR_DIR = Path(__file__).resolve().parents[1] / "vectors" / "certseal"
TEST_KEY_PASSPHRASE = b"certseal-test-vectors-only"
TEST_BASE_URL = "https://cert.example.gov.cn"
VECTORS = sorted(VECTOR_DIR.glob("*.json"))

RUN_JS = """async ({ qr, envelopeHex, keys, now }) => {
  const verify = await import('/static/verify.js');
  const lookup = (kid) => keys.find((key) => key.kid === kid);
  const run = async (steps) => {
    try {
      const certificate = await steps();
      return { code: null, claims: verify.claimsJson(certificate.claims) };
    } catch (error) {
      if (!(error instanceof verify.VerifyError)) throw error;
      return { code: error.code, claims: null, browserLimit: !!error.browserLimit };
    }
  };
  const viaText = await run(() => verify.verifyQrText(qr, lookup, now));
  if (envelopeHex === null) return { viaText, viaEnvelope: null };
  const bytes = Uint8Array.from(envelopeHex.match(/../g) || [], (pair) => parseInt(pair, 16));
  const viaEnvelope = await run(async () => {
    const certificate = await verify.verifyEnvelope(bytes, lookup);
    const problem = verify.validityProblem(certificate.claims, now);
    if (problem) throw new verify.VerifyError(problem);
    return certificate;
  });
  return { viaText, viaEnvelope };
}"""


@pytest.fixture(scope="module")
def verifier_page(browser: Browser, app_server: AppServer) -> Iterator[Page]:
    """The real page (no credential in the fragment), whose modules the tests import."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{app_server.base_url}/c1")
    yield page
    context.close()


def key_entry(public_key: Any) -> dict[str, Any]:
    """A key as GET /v1/keys lists it (kid hex, alg, state, JWK)."""
    pem = crypto.public_key_pem(public_key).decode()
    alg = "ES256" if isinstance(public_key, ec.EllipticCurvePublicKey) else "EdDSA"
    return {
        "kid": crypto.key_id(public_key).hex(),
        "alg": alg,
        "state": "active",
        "issuer": None,
        "jwk": public_jwk(pem),
    }


def run_js(
    page: Page, qr: str, keys: list[dict[str, Any]], now: datetime, envelope: bytes | None = None
) -> dict[str, Any]:
    """Verify in the browser: QR text, and the envelope bytes directly when given."""
    return page.evaluate(  # type: ignore[no-any-return]
        RUN_JS,
        {"qr": qr, "envelopeHex": None if envelope is None else envelope.hex(), "keys": keys, "now": now.timestamp()},
    )


def python_code(qr: str, trust: crypto.TrustStore, now: datetime) -> str | None:
    """The Python library's verdict code for QR text (None when accepted)."""
    try:
        crypto.verify_qr_text(qr, trust, now=now)
    except crypto.VerificationError as error:
        return error.code
    return None


@pytest.mark.parametrize("path", VECTORS, ids=[path.name for path in VECTORS])
def test_js_verifier_matches_vector(verifier_page: Page, path: Path):
    """The browser gives each envelope vector exactly its expected code and claims, via the text and the bytes."""
    vector = json.loads(path.read_text(encoding="utf-8"))
    trusted = crypto.load_public_key(vector.get("trust_public_key_pem", vector["public_key_pem"]).encode())
    envelope = bytes.fromhex(vector["envelope_hex"]) if vector["envelope_hex"] is not None else None

    outcome = run_js(
        verifier_page, vector["qr_text"], [key_entry(trusted)], datetime.fromisoformat(vector["now"]), envelope
    )

    expected = {"code": vector["expected"]["code"], "claims": vector["claims"], "browserLimit": False}
    assert {"browserLimit": False, **outcome["viaText"]} == expected
    if envelope is not None:
        assert {"browserLimit": False, **outcome["viaEnvelope"]} == expected


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_js_verifier_matches_forgery_table(
    verifier_page: Page, name: str, es256_key, eddsa_key, other_key, full_claims
):
    """Every forgery of the envelope issue's table gets the Python library's exact code in the browser."""
    build, allowed = FORGERIES[name]
    payload = _cbor.dumps(full_claims.to_cbor())
    envelope = build(es256_key, eddsa_key, other_key, header(-7, es256_key.kid), payload)
    qr = crypto.encode_qr_text(envelope, TEST_BASE_URL)
    trust = crypto.TrustStore()
    for key in (es256_key, eddsa_key):
        trust.add(key.public_key)
    now = datetime.fromisoformat("2027-03-15T09:30:00+08:00")

    outcome = run_js(
        verifier_page, qr, [key_entry(es256_key.public_key), key_entry(eddsa_key.public_key)], now, envelope
    )

    assert outcome["viaText"]["code"] == python_code(qr, trust, now)
    assert outcome["viaText"]["code"] in allowed
    assert outcome["viaEnvelope"]["code"] == outcome["viaText"]["code"]


def _es384_with_p256(key_pem: bytes, protected: bytes, payload: bytes) -> bytes:
    """ES384 header, signed by the P-256 issuer key with SHA-384, r and s padded to 48 bytes: the curve is wrong."""
    private = serialization.load_pem_private_key(key_pem, password=TEST_KEY_PASSPHRASE)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    r, s = decode_dss_signature(private.sign(sig_structure(protected, payload), ec.ECDSA(hashes.SHA384())))
    signature = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    return bytes(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature])))


def _edge_cases(es256_key, payload: bytes) -> dict[str, bytes]:
    kid = es256_key.kid
    claims = cbor2.loads(payload)
    claims[-65537][5] = None  # the photo digest as an explicit null
    return {
        "alg-float64": sign1(b"\xa2\x01" + bytes(cbor2.dumps(-7.0)) + b"\x04\x48" + kid, payload, es256_key),
        "alg-true": sign1(b"\xa2\x01\xf5\x04\x48" + kid, payload, es256_key),
        "alg-text": sign1(bytes(cbor2.dumps({1: "ES256", 4: kid})), payload, es256_key),
        "alg-ps256-with-ec-key": sign1(header(-37, kid), payload, es256_key),
        "alg-es384-with-p256-key": _es384_with_p256(
            (VECTOR_DIR / "keys" / "es256-issuer.pem").read_bytes(), header(-35, kid), payload
        ),
        "kid-text": sign1(bytes(cbor2.dumps({1: -7, 4: "kid"})), payload, es256_key),
        "kid-tagged": sign1(b"\xa2\x01\x26\x04\xd9\x03\xe8\x48" + kid, payload, es256_key),
        "header-half-float-value": sign1(b"\xa2\x01\x26\x04\xf9\x3c\x00", payload, es256_key),
        "payload-claim-key-true": sign1(header(-7, kid), b"\xa6\xf5" + payload[2:], es256_key),
        "payload-null-photo": sign1(header(-7, kid), _cbor.dumps(claims), es256_key),
        "payload-trailing-byte": sign1(header(-7, kid), payload + b"\x00", es256_key),
        "payload-empty-map": sign1(header(-7, kid), b"\xa0", es256_key),
    }


EDGE_CASE_NAMES = sorted(
    [
        "alg-float64",
        "alg-true",
        "alg-text",
        "alg-ps256-with-ec-key",
        "alg-es384-with-p256-key",
        "kid-text",
        "kid-tagged",
        "header-half-float-value",
        "payload-claim-key-true",
        "payload-null-photo",
        "payload-trailing-byte",
        "payload-empty-map",
    ]
)


@pytest.mark.parametrize("name", EDGE_CASE_NAMES)
def test_js_verifier_matches_python_on_edge_cases(verifier_page: Page, name: str, es256_key, full_claims):
    """Unusual but well-formed CBOR in the header or the signed claims gets the Python library's code in the browser."""
    envelope = _edge_cases(es256_key, _cbor.dumps(full_claims.to_cbor()))[name]
    qr = crypto.encode_qr_text(envelope, TEST_BASE_URL)
    trust = crypto.TrustStore()
    trust.add(es256_key.public_key)
    now = datetime.fromisoformat("2027-03-15T09:30:00+08:00")

    outcome = run_js(verifier_page, qr, [key_entry(es256_key.public_key)], now)

    assert outcome["viaText"]["code"] == python_code(qr, trust, now)


def test_every_reason_code_and_string_in_both_languages(verifier_page: Page):
    """i18n.js has every UI string and every reason code of schemas/api.py in Chinese and English."""
    strings = verifier_page.evaluate(
        "async () => { const i18n = await import('/static/i18n.js'); return i18n.STRINGS; }"
    )

    assert set(strings) == {"zh", "en"}
    assert set(strings["zh"]) == set(strings["en"])
    assert {f"reason.{code}" for code in REASON_CODES} <= set(strings["en"])
    assert all(text.strip() for language in strings.values() for text in language.values())


OFFLINE_CASES = {
    "valid-hot-work": ({}, {}, []),
    "key-revoked": ({}, {"key": {"state": "revoked"}}, ["key_revoked"]),
    "key-of-another-issuer": ({}, {"key": {"issuer": "CN-11"}}, ["issuer_not_authorized"]),
    "not-hot-work": ({"operation": {"category": 1, "item": 2}}, {}, ["operation_not_covered"]),
    "other-operation-asked": ({}, {"purpose": {"operation": "2.2"}}, ["operation_not_covered"]),
    "asked-operation-matches": ({}, {"purpose": {"operation": "2.1"}}, []),
    "review-overdue": ({"reviewDays": 20000}, {}, ["review_overdue"]),
    "review-rule-switched-off": ({"reviewDays": 20000}, {"reviewRequired": False}, []),
    "expired-and-key-revoked": ({"expires": 1_700_000_000}, {"key": {"state": "revoked"}}, ["expired", "key_revoked"]),
}


@pytest.mark.parametrize("name", sorted(OFFLINE_CASES))
def test_offline_reasons(verifier_page: Page, name: str):
    """Without the server the phone still judges validity, key revocation, key issuer, review date and purpose."""
    claims_change, options, expected = OFFLINE_CASES[name]
    claims = {
        "issuer": "CN-44",
        "notBefore": 1_600_000_000,
        "expires": 2_000_000_000,
        "reviewDays": None,
        "operation": {"category": 2, "item": 1},
    } | claims_change
    key = {"state": "active", "issuer": "CN-44"} | options.get("key", {})
    settings = {"purpose": {"hotWork": True}, "reviewRequired": True} | {k: v for k, v in options.items() if k != "key"}

    found = verifier_page.evaluate(
        """async ({ claims, key, settings }) => {
             const verify = await import('/static/verify.js');
             return verify.offlineReasons({ claims, key }, { now: 1_800_000_000, hotWorkCategory: 2, ...settings });
           }""",
        {"claims": claims, "key": key, "settings": settings},
    )

    assert found == expected


URL_CASES = json.loads((VECTOR_DIR.parent / "url-cases.json").read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", URL_CASES, ids=[case["name"] for case in URL_CASES])
def test_js_url_rule(verifier_page: Page, case: dict[str, Any]):
    """The page's digits.js gets each case of the shared URL table exactly as crypto.qrtext does."""
    text = case["text"]

    outcome = verifier_page.evaluate(
        """async (text) => {
             const digits = await import('/static/digits.js');
             try {
               const bytes = digits.envelopeFromQrText(text);
               return [null, null, Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')];
             } catch (error) {
               if (!error.code) throw error;
               return [error.code, error.message, null];
             }
           }""",
        text,
    )

    assert outcome == [case["code"], case["message"], case["envelope_hex"]]


NAME_CASES = json.loads((VECTOR_DIR.parent / "name-cases.json").read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", NAME_CASES, ids=[case["why"] for case in NAME_CASES])
def test_js_holder_name_rule(verifier_page: Page, case: dict[str, Any]):
    """The page's verify.js judges each name of the shared table exactly as crypto does, with the same message."""
    name = case["name"]

    message = verifier_page.evaluate(
        "async (name) => (await import('/static/verify.js')).nameProblem(name)",
        name,
    )

    assert message == case["message"]


def test_js_name_table_is_the_python_table(verifier_page: Page):
    """name-chars.js holds the same pinned ranges and Unicode version as crypto/_name_chars.py."""
    table = verifier_page.evaluate(
        "async () => { const t = await import('/static/name-chars.js'); "
        "return [t.UNICODE_VERSION, t.NAME_CHAR_RANGES]; }"
    )

    assert table == [_name_chars.UNICODE_VERSION, [list(pair) for pair in _name_chars.NAME_CHAR_RANGES]]
