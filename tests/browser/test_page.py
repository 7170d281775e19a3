"""The page at /c1 in Debian's Chromium on a phone viewport: verdicts online and offline, language, bytes.

How fast the verdict comes is measured by ``bench/bench_page.py``, not asserted here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import high_s_twin_text
from playwright.sync_api import Browser, Page

from .conftest import AppServer, Certificates, id_number, phone_context, reasons, seed, settled, tamper

pytestmark = pytest.mark.browser

FIRST_VERDICT_BUDGET_BYTES = 150_000
NOT_COUNTED = ("/photo", "/static/qr-decoder.js", "/static/vendor/")


def test_valid_certificate_accepted_online(phone: Page, certificates: Certificates, screenshot: Callable[..., Path]):
    """A genuine, valid welder's certificate is accepted online, with the holder's name and photo."""
    problems: list[str] = []
    phone.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    phone.on("pageerror", lambda error: problems.append(str(error)))
    phone.goto(certificates.valid)

    result = settled(phone)

    assert result == {"verdict": "accept", "source": "online", "panel": "panel accept"}
    assert phone.get_attribute("#result", "data-status-source") == "online"
    assert (phone.get_attribute("#result", "data-status-as-of") or "").endswith("Z")
    assert phone.text_content("#holder-name") == certificates.holder_name
    assert phone.text_content("#verdict-word") == "通过"
    assert "熔化焊接与热切割作业" in phone.text_content("#details")
    assert "Fusion welding and thermal cutting" in phone.text_content("#details")
    assert phone.is_visible("#photo")
    assert phone.wait_for_function("() => document.getElementById('photo').naturalWidth > 0")
    assert problems == []
    screenshot(phone, "verdict-accept", doc_name="verdict-accept.png")


def test_wechat_rewritten_url_accepted_online(phone: Page, certificates: Certificates):
    """The link as WeChat opens it, with ?from=singlemessage&isappinstalled=0 before the fragment, is accepted."""
    base, _, digits = certificates.valid.partition("#")
    phone.goto(f"{base}?from=singlemessage&isappinstalled=0#{digits}")

    result = settled(phone)

    assert result == {"verdict": "accept", "source": "online", "panel": "panel accept"}
    assert phone.text_content("#holder-name") == certificates.holder_name


def test_revoked_certificate_rejected_with_reason(
    phone: Page, certificates: Certificates, screenshot: Callable[..., Path]
):
    """A revoked certificate still has a valid signature, but the online verdict rejects it as revoked."""
    phone.goto(certificates.revoked)

    result = settled(phone)

    assert result == {"verdict": "reject", "source": "online", "panel": "panel reject"}
    assert reasons(phone) == ["revoked"]
    assert "证书已被吊销" in phone.text_content("#reasons")
    screenshot(phone, "verdict-reject")


def test_tampered_digit_rejected(phone: Page, certificates: Certificates, screenshot: Callable[..., Path]):
    """One changed digit breaks the signature: rejected by the phone at once and by the server."""
    phone.goto(tamper(certificates.valid))

    result = settled(phone)

    assert result["verdict"] == "reject"
    assert result["source"] == "online"
    assert reasons(phone) == ["bad_signature"]
    assert not phone.is_visible("#card")
    screenshot(phone, "verdict-reject-tampered")


def test_high_s_twin_rejected_as_malformed(phone: Page, certificates: Certificates):
    """The genuine card's high-S twin verifies in WebCrypto, but the page and the server reject it as malformed."""
    phone.goto(high_s_twin_text(certificates.valid, allow_insecure_localhost=True))

    result = settled(phone)

    assert result["verdict"] == "reject"
    assert reasons(phone) == ["malformed"]
    assert not phone.is_visible("#card")


def test_high_s_twin_rejected_by_the_page_alone(phone: Page, certificates: Certificates):
    """With POST /v1/verify unreachable, the page's own verdict on the high-S twin is reject, malformed."""
    phone.route("**/v1/verify", lambda route: route.abort())
    phone.goto(high_s_twin_text(certificates.valid, allow_insecure_localhost=True))

    result = settled(phone)

    assert result == {"verdict": "reject", "source": "offline", "panel": "panel reject"}
    assert reasons(phone) == ["malformed"]


def test_unknown_key_rejected(phone: Page, certificates: Certificates, screenshot: Callable[..., Path]):
    """A certificate signed by a key the service does not know is rejected as unknown_key."""
    phone.goto(certificates.unknown_key)

    result = settled(phone)

    assert result["verdict"] == "reject"
    assert reasons(phone) == ["unknown_key"]
    screenshot(phone, "verdict-reject-unknown-key")


def test_operation_purpose_selector(phone: Page, certificates: Certificates):
    """Choosing another operation item than the certificate's turns the verdict into operation_not_covered."""
    phone.goto(certificates.valid)
    settled(phone)

    phone.select_option("#purpose", "1.2")
    phone.wait_for_selector("#result[data-verdict='reject'][data-source='online']", timeout=10_000)
    result = settled(phone)

    assert result["verdict"] == "reject"
    assert reasons(phone) == ["operation_not_covered"]
    assert "1.2 低压电工作业" in phone.text_content("#reasons")


def test_holder_id_number_confirms_the_holder(phone: Page, certificates: Certificates):
    """Typing the worker's full ID number asks the server to confirm the holder; another valid number is a mismatch."""
    phone.goto(certificates.valid)
    settled(phone)

    phone.fill("#holder-id", certificates.holder_id)
    phone.click("#holder-submit")
    phone.wait_for_selector("#holder-status.ok", timeout=10_000)
    confirmed = (phone.text_content("#holder-status"), phone.get_attribute("#result", "data-verdict"))
    phone.fill("#holder-id", id_number("19900307", "125"))
    phone.click("#holder-submit")
    phone.wait_for_selector("#holder-status.bad", timeout=10_000)
    phone.wait_for_selector("#result[data-verdict='reject']", timeout=10_000)

    assert confirmed == ("身份证号与持证人一致", "accept")
    assert phone.text_content("#holder-status") == "身份证号与持证人不符"
    assert reasons(phone) == ["holder_mismatch"]
    assert phone.input_value("#holder-id") == ""


def test_holder_id_number_with_a_wrong_check_digit_is_not_sent(phone: Page, certificates: Certificates):
    """An ID number whose GB 11643 check character is wrong is refused on the phone, without using up server checks."""
    phone.goto(certificates.valid)
    settled(phone)
    sent: list[str] = []
    phone.on("request", lambda request: sent.append(request.url) if request.method == "POST" else None)
    wrong = certificates.holder_id[:-1] + ("0" if certificates.holder_id[-1] != "0" else "1")

    phone.fill("#holder-id", wrong)
    phone.click("#holder-submit")
    phone.wait_for_selector("#holder-status.bad", timeout=5000)

    assert phone.text_content("#holder-status") == "身份证号位数或校验位不正确，请检查"
    assert sent == []
    assert phone.get_attribute("#result", "data-verdict") == "accept"


def test_english_by_toggle_and_by_accept_language(
    browser: Browser, phone: Page, certificates: Certificates, screenshot: Callable[..., Path]
):
    """The toggle switches every string to English; an English browser gets English from the start."""
    phone.goto(certificates.valid)
    settled(phone)

    phone.click("#lang-toggle")
    toggled = {
        "lang": phone.get_attribute("html", "lang"),
        "word": phone.text_content("#verdict-word"),
        "button": phone.text_content("#lang-toggle"),
        "scan": phone.text_content("#scan-next"),
    }
    screenshot(phone, "verdict-accept-en")
    context = phone_context(browser, locale="en-US")
    english = context.new_page()
    english.goto(certificates.revoked)
    settled(english)
    english_reasons = english.text_content("#reasons")
    context.close()

    assert toggled == {"lang": "en", "word": "ACCEPT", "button": "中文", "scan": "Scan next"}
    assert "The certificate has been revoked" in english_reasons


def test_page_headers(app_server: AppServer):
    """The page sends a strict CSP and its language; assets revalidate by ETag; the wasm is application/wasm."""
    page = httpx.get(f"{app_server.base_url}/c1", headers={"Accept-Language": "en-GB,en;q=0.9,zh-CN;q=0.8"})
    chinese = httpx.get(f"{app_server.base_url}/c1", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    wasm = httpx.get(f"{app_server.base_url}/static/vendor/zxing-wasm/reader/zxing_reader.wasm")
    script = httpx.get(f"{app_server.base_url}/static/verify.js")
    again = httpx.get(f"{app_server.base_url}/static/verify.js", headers={"If-None-Match": script.headers["etag"]})
    worker = httpx.get(f"{app_server.base_url}/sw.js")

    inline = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert len(inline) == 1  # the boot guard, allowed by its hash and nothing else
    assert f"script-src 'self' 'sha256-{digest}' 'wasm-unsafe-eval';" in page.headers["content-security-policy"]
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    assert (page.headers["content-language"], chinese.headers["content-language"]) == ("en", "zh-CN")
    assert '<html lang="en" data-lang="en">' in page.text
    assert wasm.headers["content-type"] == "application/wasm"
    assert wasm.headers["content-encoding"] == "gzip"
    assert script.headers["content-type"].startswith("text/javascript")
    assert again.status_code == 304
    assert 'const VERSION = "dev"' not in worker.text


def test_first_verdict_transfers_under_150_kb(browser: Browser, certificates: Certificates, output_dir: Path):
    """A first visit in a fresh context transfers under 150 KB until the verdict shows (photo and decoder excluded)."""
    context = phone_context(browser)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    urls: dict[str, str] = {}
    sizes: dict[str, int] = {}
    cdp.on("Network.responseReceived", lambda event: urls.__setitem__(event["requestId"], event["response"]["url"]))
    cdp.on("Network.loadingFinished", lambda event: sizes.__setitem__(event["requestId"], event["encodedDataLength"]))

    page.goto(certificates.valid)
    result = settled(page)
    counted = {
        urls.get(rid, rid): size
        for rid, size in dict(sizes).items()
        if not any(p in urls.get(rid, "") for p in NOT_COUNTED)
    }
    context.close()
    total = sum(counted.values())
    (output_dir / "first-verdict.json").write_text(json.dumps({"bytes": total, "responses": counted}, indent=2))

    assert result["source"] == "online"
    assert any(url.endswith("/v1/keys") for url in counted)
    assert any(url.endswith("/static/verify.js") for url in counted)
    assert total < FIRST_VERDICT_BUDGET_BYTES


def test_offline_signature_verdict_after_one_visit(
    browser: Browser, start_server: Callable[[], AppServer], output_dir: Path, screenshot: Callable[..., Path]
):
    """With the network cut after one visit, another card gets the amber offline verdict, a tampered one reject."""
    server = start_server()
    issued = seed(server)
    context = phone_context(browser)
    first = context.new_page()
    first.goto(issued.valid)
    settled(first)
    first.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=15_000)

    server.stop()
    context.set_offline(True)
    second = context.new_page()
    second.goto(issued.valid_second)
    offline = settled(second)
    offline_status = (
        second.get_attribute("#result", "data-status-source"),
        second.get_attribute("#result", "data-status-as-of"),
    )
    offline_text = second.text_content("#panel")
    screenshot(second, "verdict-offline", doc_name="verdict-offline.png")
    third = context.new_page()
    third.goto(tamper(issued.valid_second))
    tampered = settled(third)
    tampered_reasons = reasons(third)
    screenshot(third, "verdict-offline-tampered")
    context.close()

    assert offline == {"verdict": "accept", "source": "offline", "panel": "panel offline"}
    assert offline_status == ("none", None)
    assert "签名有效" in offline_text
    assert "未核验状态（离线），密钥列表日期 20" in offline_text
    assert tampered == {"verdict": "reject", "source": "offline", "panel": "panel reject"}
    assert tampered_reasons == ["bad_signature"]
