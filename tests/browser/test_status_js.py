"""api/static/status.js in Chromium against tokens built independently (cbor2, zlib, cryptography).

Each malformed, forged or oversized list or trust list is refused with its reason code, and a good
list reads every entry exactly as the draft's bit order (checked with plain Python) says.
"""

from __future__ import annotations

import base64
import random
import time
import zlib
from collections.abc import Iterator
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import Browser, Page

from .conftest import AppServer
from .test_status_lists import LIST_BYTES, P256_ORDER, STATUS_TYP, TRUST_TYP, dumps, key_entry, kid_of, sign1

pytestmark = pytest.mark.browser

URI = "https://cert.example.gov.cn/v1/status-lists/CN-44/3"

RUN_STATUS = """async ({ token, issuer, uri, now, indexes }) => {
  const status = await import('/static/status.js');
  const bytes = Uint8Array.from(atob(token), (c) => c.charCodeAt(0));
  try {
    const list = await status.verifyStatusList(bytes, issuer, uri, now);
    const values = indexes.map((i) => status.statusAt(list.list, i));
    return { code: null, iat: list.iat, exp: list.exp, ttl: list.ttl, values };
  } catch (error) {
    if (!error.code) throw error;
    return { code: error.code };
  }
}"""

RUN_TRUST = """async ({ token, anchor }) => {
  const status = await import('/static/status.js');
  const bytes = Uint8Array.from(atob(token), (c) => c.charCodeAt(0));
  try {
    const list = await status.verifyTrustList(bytes, anchor);
    const keys = (issuer) => issuer.keys.map((k) => [k.kid, k.use, k.state]);
    return { code: null, seq: list.seq, issuers: list.issuers.map((i) => [i.code, i.statusBase, keys(i)]) };
  } catch (error) {
    if (!error.code) throw error;
    return { code: error.code };
  }
}"""


@pytest.fixture(scope="module")
def js_page(browser: Browser, app_server: AppServer) -> Iterator[Page]:
    """The real page, whose status.js the tests import."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{app_server.base_url}/c1")
    yield page
    context.close()


def jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The JWK of a P-256 key."""
    numbers = public_key.public_numbers()

    def b64(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode()

    return {"kty": "EC", "crv": "P-256", "x": b64(numbers.x), "y": b64(numbers.y)}


def issuer_for(key: ec.EllipticCurvePrivateKey, use: str = "status_list", **changes: Any) -> dict[str, Any]:
    """The issuer as status.js holds it after reading a trust list, with one key."""
    entry = {
        "kid": kid_of(key.public_key()).hex(),
        "use": use,
        "jwk": jwk(key.public_key()),
        "notBefore": 0,
        "notAfter": None,
        "verifyUntil": None,
        "state": "active",
    } | changes
    return {"code": "CN-44", "operations": ["2.1"], "statusBase": URI.rsplit("/", 1)[0], "keys": [entry]}


def token_with(key: ec.EllipticCurvePrivateKey, lst: bytes, *, sub: str = URI, typ: str = STATUS_TYP) -> bytes:
    now = int(time.time())
    return sign1(key, typ, {2: sub, 4: now + 3600, 6: now - 60, 65533: {"bits": 2, "lst": lst}, 65534: 600})


def run(page: Page, token: bytes, issuer: dict[str, Any], indexes: tuple[int, ...] = (), uri: str = URI) -> Any:
    return page.evaluate(
        RUN_STATUS,
        {
            "token": base64.b64encode(token).decode(),
            "issuer": issuer,
            "uri": uri,
            "now": time.time(),
            "indexes": list(indexes),
        },
    )


@pytest.fixture(scope="module")
def status_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_good_list_reads_every_status_in_the_drafts_bit_order(js_page: Page, status_key: ec.EllipticCurvePrivateKey):
    """Random statuses at random indexes (and the ends) read back exactly; the decode is checked in plain Python."""
    rng = random.Random(11)  # noqa: S311 -- positions for a test, not a secret
    statuses = {idx: rng.randrange(1, 4) for idx in rng.sample(range(131_072), 400)} | {0: 1, 131_071: 3}
    array = bytearray(LIST_BYTES)
    for idx, value in statuses.items():
        array[idx >> 2] |= value << (2 * (idx & 3))
    indexes = (*statuses, 1, 2, 65_536)
    expected = [(array[i >> 2] >> (2 * (i & 3))) & 3 for i in indexes]

    outcome = run(js_page, token_with(status_key, zlib.compress(bytes(array), 9)), issuer_for(status_key), indexes)

    assert outcome["code"] is None
    assert outcome["ttl"] == 600
    assert outcome["values"] == expected
    assert expected[: len(statuses)] == list(statuses.values())


def _high_s(token: bytes) -> bytes:
    message = cbor2.loads(token).value
    signature = message[3]
    s = int.from_bytes(signature[32:], "big")
    message[3] = signature[:32] + (P256_ORDER - s).to_bytes(32, "big")
    return dumps(cbor2.CBORTag(18, message))


def _flip_signature(token: bytes) -> bytes:
    message = cbor2.loads(token).value
    message[3] = bytes([message[3][0] ^ 1]) + message[3][1:]
    return dumps(cbor2.CBORTag(18, message))


EMPTY = zlib.compress(bytes(LIST_BYTES), 9)
OTHER = ec.generate_private_key(ec.SECP256R1())
REFUSED: dict[str, tuple[Any, str]] = {
    "zlib-bomb": (lambda key: token_with(key, zlib.compress(bytes(64 * LIST_BYTES), 9)), "status_list_too_large"),
    "one-byte-too-many": (
        lambda key: token_with(key, zlib.compress(bytes(LIST_BYTES + 1), 9)),
        "status_list_too_large",
    ),
    "truncated-lst": (lambda key: token_with(key, EMPTY[:-5]), "status_list_malformed"),
    "short-list": (lambda key: token_with(key, zlib.compress(bytes(LIST_BYTES - 4), 9)), "status_list_malformed"),
    "raw-deflate-not-zlib": (lambda key: token_with(key, EMPTY[2:-4]), "status_list_malformed"),
    "bytes-after-the-stream": (lambda key: token_with(key, EMPTY + b"\0"), "status_list_malformed"),
    "sub-of-another-list": (lambda key: token_with(key, EMPTY, sub=URI[:-1] + "4"), "status_list_subject_mismatch"),
    "trust-list-typ": (lambda key: token_with(key, EMPTY, typ=TRUST_TYP), "wrong_type"),
    "signed-by-another-key": (lambda key: token_with(OTHER, EMPTY), "unknown_key"),
    "bad-signature": (lambda key: _flip_signature(token_with(key, EMPTY)), "bad_signature"),
    "high-s": (lambda key: _high_s(token_with(key, EMPTY)), "malformed"),
    "untagged": (lambda key: dumps(cbor2.loads(token_with(key, EMPTY)).value), "malformed"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_bad_status_lists_refused_with_their_reason(js_page: Page, status_key: ec.EllipticCurvePrivateKey, name: str):
    """Each broken or foreign Status List Token is refused with a clear reason code."""
    build, code = REFUSED[name]

    assert run(js_page, build(status_key), issuer_for(status_key))["code"] == code


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"use": "certificate"}, "unknown_key"),
        ({"state": "compromised"}, "unknown_key"),
        ({"verifyUntil": 1_000}, "unknown_key"),
        ({"notBefore": int(time.time()) + 86_400}, "unknown_key"),
        ({"state": "retired"}, None),
    ],
    ids=["certificate-key", "compromised-key", "past-verify-until", "list-before-key-window", "retired-key-still-ok"],
)
def test_status_list_key_rules(
    js_page: Page, status_key: ec.EllipticCurvePrivateKey, changes: dict[str, Any], code: str | None
):
    """Only a status_list key of the issuer, not compromised, in its window and verify_until, vouches for a list."""
    assert run(js_page, token_with(status_key, EMPTY), issuer_for(status_key, **changes))["code"] == code


def test_trust_list_only_from_the_pinned_anchor(js_page: Page, status_key: ec.EllipticCurvePrivateKey):
    """The pinned anchor's trust list reads; another anchor's, a status list, or a bad key kid is refused."""
    anchor = ec.generate_private_key(ec.SECP256R1())
    pinned = {"kid": kid_of(anchor.public_key()).hex(), "jwk": jwk(anchor.public_key())}
    now = int(time.time())
    entry = key_entry(status_key.public_key(), "status_list")
    issuer = {
        "code": "CN-44",
        "name": "广东省应急管理厅",
        "region": "广东省",
        "operations": ["2.1"],
        "status_base": "https://cert.example.gov.cn/v1/status-lists/CN-44",
        "keys": [entry],
    }
    claims = {"seq": 7, "iat": now, "exp": now + 86_400, "issuers": [issuer]}
    bad_kid = claims | {"issuers": [issuer | {"keys": [entry | {"kid": bytes(8)}]}]}
    compromised = entry | {"state": "compromised"}
    no_time = claims | {"issuers": [issuer | {"keys": [compromised]}]}

    def trust(token: bytes) -> Any:
        return js_page.evaluate(RUN_TRUST, {"token": base64.b64encode(token).decode(), "anchor": pinned})

    good = trust(sign1(anchor, TRUST_TYP, claims))

    assert good == {
        "code": None,
        "seq": 7,
        "issuers": [["CN-44", issuer["status_base"], [[entry["kid"].hex(), "status_list", "active"]]]],
    }
    assert trust(sign1(OTHER, TRUST_TYP, claims))["code"] == "unknown_key"
    assert trust(sign1(anchor, STATUS_TYP, claims))["code"] == "wrong_type"
    assert trust(sign1(anchor, TRUST_TYP, bad_kid))["code"] == "malformed"
    assert trust(sign1(anchor, TRUST_TYP, no_time))["code"] == "malformed"
    assert trust(_flip_signature(sign1(anchor, TRUST_TYP, claims)))["code"] == "bad_signature"


def test_list_entry_of_large_status_indexes(js_page: Page):
    """uri = <status_base>/<index >> 17>, idx = index & 0x1FFFF, also for indexes at and above 2^31."""
    indexes = [0, 131_071, 131_072, 2**31, 2**32 - 1]
    entries = js_page.evaluate(
        """async (indexes) => {
          const status = await import('/static/status.js');
          return indexes.map((i) => status.listEntry('b', i));
        }""",
        indexes,
    )

    assert entries == [{"uri": f"b/{i >> 17}", "idx": i & 0x1FFFF} for i in indexes]


def test_no_anchor_no_trust_anchor_in_the_page(js_page: Page):
    """Without a configured anchor the page config has none, so the page never fetches lists."""
    assert js_page.evaluate("() => JSON.parse(document.body.dataset.config).trust_anchor") is None
