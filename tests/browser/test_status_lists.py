"""The page's offline verdict from a signed trust list and IETF status lists (issue 11, part 7), in Chromium.

The service's endpoints (``GET /v1/trust-list``, ``GET /v1/status-lists[/{issuer}/{n}]``) are not this
branch's: ``serve.py --fixtures`` serves files this test writes, and ``--trust-anchor-pem`` pins the
test's anchor in the page. The trust list and the status list tokens are built here with ``cbor2``,
``zlib`` and ``cryptography`` directly, independently of ``crypto/``: a COSE_Sign1 (tag 18) with the
protected header ``{1: -7, 4: kid, 16: typ}``, ES256 with a low S, deterministic CBOR, the draft's
2-bit LSB-first array. After one online visit the page has fetched and cached them; the server is then
stopped and the browser goes offline, as a site without signal.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cbor2
import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from playwright.sync_api import Browser, BrowserContext

from crypto.qrtext import envelope_from_qr_text

from .conftest import ISSUER_CODE, PHONE_VIEWPORT, AppServer, Certificates, reasons, seed, settled
from .page_checks import screen_checks

pytestmark = pytest.mark.browser

TRUST_TYP = "application/vnd.certseal.trust-list+cbor"
STATUS_TYP = "application/statuslist+cwt"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
LIST_BYTES = 32_768  # 131,072 entries of 2 bits
REVOKED, SUSPENDED = 1, 2
TIMEZONE = "Asia/Shanghai"
FIRST_VERDICT_BUDGET_BYTES = 150_000
NOT_COUNTED = ("/photo", "/static/qr-decoder.js", "/static/vendor/")
LISTS_REFRESHED = "() => performance.getEntriesByName('certseal-lists-refreshed').length > 0"
CACHED_URLS = "async () => (await (await caches.open('certseal-lists')).keys()).map((request) => request.url)"


# --- independent COSE / CBOR / status list code ---


def dumps(value: Any) -> bytes:
    """Deterministic CBOR (cbor2's canonical order equals RFC 8949 section 4.2.1 for these keys)."""
    return cbor2.dumps(value, canonical=True)


def b64decode_url(text: str) -> bytes:
    """base64url without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def kid_of(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo, first 8 bytes."""
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()[:8]


def sign1(private_key: ec.EllipticCurvePrivateKey, typ: str, claims: Any) -> bytes:
    """A tagged COSE_Sign1 with protected {1: -7, 4: kid, 16: typ}, ES256 r || s with a low S."""
    protected = dumps({1: -7, 4: kid_of(private_key.public_key()), 16: typ})
    payload = dumps(claims)
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    r, s = decode_dss_signature(private_key.sign(to_sign, ec.ECDSA(hashes.SHA256())))
    s = min(s, P256_ORDER - s)
    return dumps(cbor2.CBORTag(18, [protected, {}, payload, r.to_bytes(32, "big") + s.to_bytes(32, "big")]))


def cose_key(public_key: ec.EllipticCurvePublicKey) -> dict[int, Any]:
    """COSE_Key EC2 P-256."""
    numbers = public_key.public_numbers()
    return {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}


def key_entry(public_key: ec.EllipticCurvePublicKey, use: str, **changes: Any) -> dict[str, Any]:
    """A trust list key: active, signing since a week ago, no end."""
    entry = {
        "kid": kid_of(public_key),
        "use": use,
        "key": cose_key(public_key),
        "not_before": int(time.time()) - 7 * 86_400,
        "not_after": None,
        "verify_until": None,
        "state": "active",
    }
    return entry | changes


def status_index(qr_text: str) -> int:
    """The certificate's status index (claim 6 of the certificate map, -65537)."""
    message = cbor2.loads(envelope_from_qr_text(qr_text))
    return int(cbor2.loads(message.value[2])[-65537][6])


def status_list_token(
    signer: ec.EllipticCurvePrivateKey, uri: str, statuses: dict[int, int], *, iat: int, exp: int, ttl: int = 600
) -> bytes:
    """A Status List Token: 2 bits per entry, entry i at bits 2*(i & 3) of byte i >> 2, ZLIB level 9."""
    array = bytearray(LIST_BYTES)
    for idx, value in statuses.items():
        array[idx >> 2] |= value << (2 * (idx & 3))
    lst = zlib.compress(bytes(array), 9)
    return sign1(signer, STATUS_TYP, {2: uri, 4: exp, 6: iat, 65533: {"bits": 2, "lst": lst}, 65534: ttl})


# --- the scenario: keys, server, lists ---


@dataclass
class Setup:
    """A private server with a pinned anchor, its seeded certificates and the fixture folder."""

    server: AppServer
    certificates: Certificates
    folder: Path
    anchor: ec.EllipticCurvePrivateKey
    status_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def status_base(self) -> str:
        return f"{self.server.base_url}/v1/status-lists/{ISSUER_CODE}"

    def certificate_keys(self) -> list[dict[str, Any]]:
        """The issuer's certificate keys as trust list entries, from the service's GET /v1/keys."""
        keys = httpx.get(f"{self.server.base_url}/v1/keys").json()["keys"]
        entries = []
        for key in keys:
            public = serialization.load_pem_public_key(key["pem"].encode())
            assert isinstance(public, ec.EllipticCurvePublicKey)
            assert kid_of(public).hex() == key["kid"]
            not_before = int(datetime.fromisoformat(key["not_before"]).timestamp())
            entries.append(key_entry(public, "certificate", not_before=not_before))
        return entries

    def write_trust_list(
        self,
        *,
        signer: ec.EllipticCurvePrivateKey | None = None,
        operations: tuple[str, ...] = ("1.2", "2.1", "2.2"),
        certificate_key: dict[str, Any] | None = None,
        age: int = 60,
        lifetime: int = 7 * 86_400,
        **key_changes: Any,
    ) -> int:
        """Sign and publish the trust list (issued ``age`` s ago) and return its iat.

        It lists the issuer's certificate keys and the status-list key, with the changes given.
        """
        now = int(time.time())
        status_entry = key_entry(self.status_key.public_key(), "status_list") | key_changes
        certificate_keys = [entry | (certificate_key or {}) for entry in self.certificate_keys()]
        issuer = {
            "code": ISSUER_CODE,
            "name": "广东省应急管理厅",
            "region": "广东省",
            "operations": list(operations),
            "status_base": self.status_base,
            "keys": [*certificate_keys, status_entry],
        }
        claims = {"seq": 1, "iat": now - age, "exp": now - age + lifetime, "issuers": [issuer]}
        (self.folder / "trust-list.cbor").write_bytes(sign1(signer or self.anchor, TRUST_TYP, claims))
        return now - age

    def write_status_list(
        self,
        *,
        signer: ec.EllipticCurvePrivateKey | None = None,
        age: int = 120,
        lifetime: int = 86_400,
        ttl: int = 600,
        also_revoked: tuple[str, ...] = (),
    ) -> int:
        """Publish the lists holding the seeded cards, issued ``age`` s ago, and return their iat.

        The revoked card is revoked, the first valid card (``valid``, whose online visit fetches the
        lists) suspended after that visit as far as the lists say, every other entry valid. Indexes are
        drawn at random over lists 1 and up, so the cards may sit in different lists.
        """
        seeded = (self.certificates.valid, self.certificates.valid_second, self.certificates.revoked)
        indexes = {status_index(qr) for qr in (*seeded, *also_revoked)}
        statuses = {status_index(self.certificates.revoked): REVOKED, status_index(self.certificates.valid): SUSPENDED}
        statuses |= {status_index(qr): REVOKED for qr in also_revoked}
        iat = int(time.time()) - age
        folder = self.folder / "status-lists" / ISSUER_CODE
        folder.mkdir(parents=True, exist_ok=True)
        uris = []
        for number in sorted({index >> 17 for index in indexes}):
            uri = f"{self.status_base}/{number}"
            entries = {index & 0x1FFFF: value for index, value in statuses.items() if index >> 17 == number}
            token = status_list_token(signer or self.status_key, uri, entries, iat=iat, exp=iat + lifetime, ttl=ttl)
            (folder / f"{number}.cwt").write_bytes(token)
            uris.append(uri)
        (self.folder / "status-lists.json").write_text(json.dumps({"status_lists": uris}))
        return iat

    def list_path(self, qr_text: str) -> str:
        """The path of the status list that holds a card's status."""
        return f"/v1/status-lists/{ISSUER_CODE}/{status_index(qr_text) >> 17}"

    def requested(self, *, with_etag: bool = False) -> list[str]:
        """The fixture paths the browser asked for, in order (with the If-None-Match sent, or ``-``)."""
        log = self.folder / "requests.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return lines if with_etag else [line.split()[0] for line in lines]


@pytest.fixture
def setup(tmp_path: Path, start_server: Callable[..., AppServer]) -> Setup:
    """A private app pinning a fresh trust anchor, serving lists from ``tmp_path/fixtures``."""
    anchor = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "anchor.pub.pem"
    pem.write_bytes(
        anchor.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    folder = tmp_path / "fixtures"
    folder.mkdir()
    server = start_server("--trust-anchor-pem", str(pem), "--fixtures", str(folder))
    return Setup(server, seed(server), folder, anchor)


def phone(browser: Browser) -> BrowserContext:
    """A fresh phone-sized context in China Standard Time."""
    return browser.new_context(
        viewport=PHONE_VIEWPORT,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
        timezone_id=TIMEZONE,
    )


def visit_online_then_go_offline(context: BrowserContext, setup: Setup) -> list[str]:
    """One online verdict (service worker installed, lists refreshed once), then no server and no network.

    Returns the URLs in the page's list cache.
    """
    first = context.new_page()
    first.goto(setup.certificates.valid)
    assert settled(first)["source"] == "online"
    assert first.get_attribute("#result", "data-status-source") == "online"
    first.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=15_000)
    first.wait_for_function(LISTS_REFRESHED, timeout=15_000)
    cached: list[str] = first.evaluate(CACHED_URLS)
    setup.server.stop()
    context.set_offline(True)
    return cached


def offline_verdict(context: BrowserContext, qr_url: str) -> dict[str, Any]:
    """Open ``qr_url`` offline and read the settled verdict, reasons, status attributes and panel text."""
    page = context.new_page()
    page.goto(qr_url)
    result = settled(page)
    return {
        **result,
        "reasons": reasons(page),
        "status_source": page.get_attribute("#result", "data-status-source"),
        "status_as_of": page.get_attribute("#result", "data-status-as-of"),
        "text": page.text_content("#panel"),
        "page": page,
    }


def as_of(iat: int) -> tuple[str, str]:
    """The ISO time the page reports and the HH:MM it shows, for a list's iat."""
    moment = datetime.fromtimestamp(iat, ZoneInfo(TIMEZONE))
    return datetime.fromtimestamp(iat, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%S.000Z"), moment.strftime("%H:%M")


# --- tests ---


def test_fresh_list_offline_green_for_valid_red_for_revoked(
    browser: Browser, setup: Setup, screenshot: Callable[..., Path]
):
    """With a current signed list cached, offline a valid card is green "as of" the list, revoked and suspended red."""
    setup.write_trust_list()
    iat = setup.write_status_list()
    context = phone(browser)

    cached = visit_online_then_go_offline(context, setup)
    valid = offline_verdict(context, setup.certificates.valid_second)
    pinned = valid["page"].evaluate("() => JSON.parse(document.body.dataset.config).trust_anchor")
    screenshot(valid["page"], "verdict-offline-list-accept", doc_name="verdict-offline-list-accept.png")
    revoked = offline_verdict(context, setup.certificates.revoked)
    screenshot(revoked["page"], "verdict-offline-list-reject")
    revoked_reasons = revoked["page"].text_content("#reasons")
    suspended = offline_verdict(context, setup.certificates.valid)
    # Green from the list, red from the list: only the accept is green; no overflow; axe clean.
    checks = {name: screen_checks(found["page"]) for name, found in (("green", valid), ("red", revoked))}
    context.close()

    assert checks["green"]["green"]
    assert (checks["green"]["axe"], checks["green"]["overflow"]) == ([], {})
    assert checks["red"] == {"green": [], "axe": [], "overflow": {}}
    iso, clock = as_of(iat)
    x, y = (
        n.to_bytes(32, "big")
        for n in (setup.anchor.public_key().public_numbers().x, setup.anchor.public_key().public_numbers().y)
    )
    assert pinned["kid"] == kid_of(setup.anchor.public_key()).hex()
    assert (pinned["jwk"]["kty"], pinned["jwk"]["crv"]) == ("EC", "P-256")
    assert (b64decode_url(pinned["jwk"]["x"]), b64decode_url(pinned["jwk"]["y"])) == (x, y)
    assert setup.server.base_url + setup.list_path(setup.certificates.valid) in cached
    assert {k: valid[k] for k in ("verdict", "source", "panel", "status_source", "status_as_of")} == {
        "verdict": "accept",
        "source": "offline",
        "panel": "panel accept",
        "status_source": "list",
        "status_as_of": iso,
    }
    assert valid["reasons"] == []
    assert f"状态截至 {clock}" in valid["text"]
    assert "通过" in valid["text"]
    assert {k: revoked[k] for k in ("verdict", "source", "panel", "status_source", "status_as_of")} == {
        "verdict": "reject",
        "source": "offline",
        "panel": "panel reject",
        "status_source": "list",
        "status_as_of": iso,
    }
    assert revoked["reasons"] == ["revoked"]
    assert "证书已被吊销" in revoked_reasons
    assert f"状态截至 {clock}" in revoked["text"]
    assert (suspended["verdict"], suspended["panel"], suspended["reasons"]) == ("reject", "panel reject", ["suspended"])


def test_stale_list_offline_amber_with_its_age(browser: Browser, setup: Setup, screenshot: Callable[..., Path]) -> None:
    """A list past its exp does not make a card green: amber, with the list's age and time."""
    setup.write_trust_list()
    iat = setup.write_status_list(age=30 * 3600, lifetime=24 * 3600)
    context = phone(browser)

    visit_online_then_go_offline(context, setup)
    valid = offline_verdict(context, setup.certificates.valid_second)
    screenshot(valid["page"], "verdict-offline-list-stale", doc_name="verdict-offline-list-stale.png")
    stale_zh = screen_checks(valid["page"])
    valid["page"].click("#lang-toggle")
    english = valid["page"].text_content("#panel")
    stale_en = screen_checks(valid["page"])
    revoked = offline_verdict(context, setup.certificates.revoked)
    stale_red = screen_checks(revoked["page"])
    context.close()

    # Amber from an expired list and red from it: no green, no overflow, axe clean, in both languages.
    assert stale_zh == stale_en == stale_red == {"green": [], "axe": [], "overflow": {}}

    iso, clock = as_of(iat)
    assert (valid["verdict"], valid["panel"], valid["status_source"], valid["status_as_of"]) == (
        "accept",
        "panel offline",
        "stale",
        iso,
    )
    assert "待确认" in valid["text"]
    assert "签名有效" in valid["text"]
    assert "30 小时前" in valid["text"]
    assert clock in valid["text"]
    assert "issued 30 h ago" in english
    # What an expired list already shows as revoked stays red (with its age): fail closed.
    assert (revoked["verdict"], revoked["panel"], revoked["reasons"], revoked["status_source"]) == (
        "reject",
        "panel reject",
        ["revoked"],
        "stale",
    )
    assert "issued 30 h ago" in revoked["text"]  # the language chosen above is remembered


def test_expired_trust_list_makes_a_current_list_stale(browser: Browser, setup: Setup) -> None:
    """Past the trust list's exp its keys may be outdated: a current status list no longer makes a card green."""
    trust_iat = setup.write_trust_list(age=9 * 86_400, lifetime=8 * 86_400)
    setup.write_status_list()
    context = phone(browser)

    visit_online_then_go_offline(context, setup)
    valid = offline_verdict(context, setup.certificates.valid_second)
    context.close()

    assert (valid["verdict"], valid["panel"], valid["status_source"]) == ("accept", "panel offline", "stale")
    assert valid["status_as_of"] == as_of(trust_iat)[0]
    assert "9 天前" in valid["text"]


def test_no_list_offline_amber_none(browser: Browser, setup: Setup) -> None:
    """Anchor pinned but no trust list published (404): offline stays amber, data-status-source none."""
    context = phone(browser)

    cached = visit_online_then_go_offline(context, setup)
    valid = offline_verdict(context, setup.certificates.valid_second)
    revoked = offline_verdict(context, setup.certificates.revoked)
    context.close()

    assert cached == []
    assert "/v1/trust-list" in setup.requested()
    for verdict in (valid, revoked):
        assert (verdict["verdict"], verdict["panel"], verdict["status_source"], verdict["status_as_of"]) == (
            "accept",
            "panel offline",
            "none",
            None,
        )


def _wrong_list_key(setup: Setup) -> None:
    setup.write_trust_list()
    setup.write_status_list(signer=ec.generate_private_key(ec.SECP256R1()))


def _list_key_listed_for_certificates(setup: Setup) -> None:
    setup.write_trust_list(use="certificate")
    setup.write_status_list()


def _compromised_list_key(setup: Setup) -> None:
    setup.write_trust_list(state="compromised", compromised_at=int(time.time()) - 3600)
    setup.write_status_list()


def _trust_list_not_pinned(setup: Setup) -> None:
    setup.write_trust_list(signer=ec.generate_private_key(ec.SECP256R1()))
    setup.write_status_list()


UNUSABLE = {
    "list-signed-by-a-key-not-in-the-trust-list": _wrong_list_key,
    "list-signed-by-a-certificate-key": _list_key_listed_for_certificates,
    "list-signed-by-a-compromised-key": _compromised_list_key,
    "trust-list-signed-by-a-non-pinned-key": _trust_list_not_pinned,
}


@pytest.mark.parametrize("name", sorted(UNUSABLE))
def test_unusable_lists_are_not_used(browser: Browser, setup: Setup, name: str) -> None:
    """A list the pinned anchor does not vouch for is never used: the revoked card stays amber, not red."""
    UNUSABLE[name](setup)
    context = phone(browser)

    cached = visit_online_then_go_offline(context, setup)
    revoked = offline_verdict(context, setup.certificates.revoked)
    valid = offline_verdict(context, setup.certificates.valid_second)
    context.close()

    pinned = name != "trust-list-signed-by-a-non-pinned-key"
    base = setup.server.base_url
    assert cached == ([f"{base}/v1/trust-list", f"{base}/v1/status-lists"] if pinned else [])
    assert (setup.list_path(setup.certificates.valid) in setup.requested()) == pinned
    for verdict in (valid, revoked):
        assert (verdict["verdict"], verdict["panel"], verdict["status_source"]) == ("accept", "panel offline", "none")


def test_first_verdict_under_150_kb_and_lists_only_after_it(browser: Browser, setup: Setup, output_dir: Path) -> None:
    """With the anchor pinned and lists published, the first verdict still transfers < 150 KB: lists come after."""
    setup.write_trust_list()
    setup.write_status_list()
    context = phone(browser)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    urls: dict[str, str] = {}
    sizes: dict[str, int] = {}
    cdp.on("Network.responseReceived", lambda event: urls.__setitem__(event["requestId"], event["response"]["url"]))
    cdp.on("Network.loadingFinished", lambda event: sizes.__setitem__(event["requestId"], event["encodedDataLength"]))

    page.goto(setup.certificates.valid)
    result = settled(page)
    counted = {
        urls.get(rid, rid): size
        for rid, size in dict(sizes).items()
        if not any(p in urls.get(rid, "") for p in NOT_COUNTED)
    }
    page.wait_for_function(LISTS_REFRESHED, timeout=15_000)
    timing = page.evaluate(
        """() => ({
          verdict: performance.getEntriesByName('certseal-verdict')[0].startTime,
          lists: performance.getEntriesByType('resource')
            .filter((entry) => /\\/v1\\/(trust-list|status-lists)|\\/static\\/status\\.js/.test(entry.name))
            .map((entry) => [entry.name, entry.startTime]),
        })"""
    )
    context.close()
    total = sum(counted.values())
    report = {"bytes": total, "responses": counted}
    (output_dir / "first-verdict-with-lists.json").write_text(json.dumps(report, indent=2))

    assert result["source"] == "online"
    assert total < FIRST_VERDICT_BUDGET_BYTES
    assert {name.split("127.0.0.1")[-1].split(":", 1)[-1].split("/", 1)[-1] for name, _ in timing["lists"]} >= {
        "static/status.js",
        "v1/trust-list",
        "v1/status-lists",
        setup.list_path(setup.certificates.valid)[1:],
    }
    assert all(start >= timing["verdict"] for _, start in timing["lists"])
    assert setup.requested()[:2] == ["/v1/trust-list", "/v1/status-lists"]
    assert setup.list_path(setup.certificates.valid) in setup.requested()


def _days(days: int) -> int:
    return int(time.time()) + days * 86_400


KEY_RULES = {
    "compromised-certificate-key": (
        {"certificate_key": {"state": "compromised", "compromised_at": _days(-1)}},
        ["key_revoked"],
    ),
    "issued-before-the-key-window": ({"certificate_key": {"not_before": _days(1)}}, ["key_not_valid_at_issue"]),
    "issued-after-the-key-window": (
        {"certificate_key": {"not_before": _days(-30), "not_after": _days(-20), "state": "retired"}},
        ["key_not_valid_at_issue"],
    ),
    "past-verify-until": ({"certificate_key": {"verify_until": _days(-1)}}, ["expired"]),
    "operation-outside-the-issuer-scope": ({"operations": ("1.2", "2.1")}, ["issuer_not_authorized"]),
}


@pytest.mark.parametrize("name", sorted(KEY_RULES))
def test_trust_list_key_rules_offline(browser: Browser, setup: Setup, name: str) -> None:
    """The trust list's key state, signing window and issuer scope reject offline (red) with their reason."""
    changes, expected = KEY_RULES[name]
    setup.write_trust_list(**changes)
    setup.write_status_list()
    context = phone(browser)

    visit_online_then_go_offline(context, setup)
    verdict = offline_verdict(context, setup.certificates.valid_second)
    context.close()

    assert (verdict["verdict"], verdict["panel"], verdict["reasons"]) == ("reject", "panel reject", expected)
    assert verdict["status_source"] == "list"


def test_without_decompression_stream_stays_amber(browser: Browser, setup: Setup) -> None:
    """A browser without DecompressionStream cannot read a list: amber as before, never an error."""
    setup.write_trust_list()
    setup.write_status_list()
    context = phone(browser)
    context.add_init_script("delete globalThis.DecompressionStream")
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))

    visit_online_then_go_offline(context, setup)
    revoked = offline_verdict(context, setup.certificates.revoked)
    context.close()

    assert (revoked["verdict"], revoked["panel"], revoked["status_source"]) == ("accept", "panel offline", "none")
    assert errors == []


REFRESH_NOW = """async () => {
  performance.clearMarks('certseal-lists-refreshed');
  const status = await import('/static/status.js');
  await status.refreshLists(JSON.parse(document.body.dataset.config).trust_anchor);
}"""


def test_refresh_respects_ttl_and_etag_and_brings_a_new_revocation(browser: Browser, setup: Setup) -> None:
    """A list is refetched only after its ttl, with its ETag (304 when unchanged); a new revocation then reaches
    the phone, which rejects the card offline that it accepted online before."""
    setup.write_trust_list()
    setup.write_status_list(ttl=1)
    list_path = setup.list_path(setup.certificates.valid_second)
    context = phone(browser)
    first = context.new_page()
    first.goto(setup.certificates.valid_second)
    before = settled(first)
    first.wait_for_function(LISTS_REFRESHED, timeout=15_000)
    first.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=15_000)
    token = (setup.folder / list_path.removeprefix("/v1/")).with_suffix(".cwt").read_bytes()
    etag = f'"{hashlib.sha256(token).hexdigest()[:16]}"'

    first.wait_for_timeout(1_500)
    first.evaluate(REFRESH_NOW)
    unchanged = setup.requested(with_etag=True)
    setup.write_status_list(ttl=1, also_revoked=(setup.certificates.valid_second,))
    first.wait_for_timeout(1_500)
    first.evaluate(REFRESH_NOW)
    changed = setup.requested(with_etag=True)
    setup.server.stop()
    context.set_offline(True)
    after = offline_verdict(context, setup.certificates.valid_second)
    context.close()

    assert before["verdict"] == "accept"
    assert unchanged == ["/v1/trust-list -", "/v1/status-lists -", f"{list_path} -", f"{list_path} {etag}"]
    assert changed == [*unchanged, f"{list_path} {etag}"]
    assert (after["verdict"], after["panel"], after["reasons"], after["status_source"]) == (
        "reject",
        "panel reject",
        ["revoked"],
        "list",
    )
