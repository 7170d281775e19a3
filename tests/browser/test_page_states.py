"""Every state of the /c1 screen in Chinese and English (issue 12): one verdict, what to do next, readable.

Each state at 360 px: only an accept shows green (computed colours of every visible element), no
sideways scroll at 320, 360 and 430 px and at 200 % zoom (a 180 px layout viewport, what 200 % browser
zoom gives a 360 px phone), axe-core serious/critical = 0. A separate Chromium profile with a 32 px
default font checks that the sizes follow the browser's font size. The offline list states (green,
red and amber from a signed status list) get the same checks in ``test_status_lists.py``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route

from crypto import CST

from .conftest import (
    ADMIN_HEADERS,
    CHROMIUM,
    ISSUER_CODE,
    SETTLED,
    AppServer,
    Certificates,
    chromium_args,
    reasons,
    seed,
    settled,
    tamper,
)
from .page_checks import assert_no_sideways_scroll, green_elements, screen_checks, serious_axe_violations

pytestmark = pytest.mark.browser

LOCALES = {"zh": "zh-CN", "en": "en-US"}
WIDTHS = (320, 360, 430)
ZOOM_200_WIDTH = 180
INTERIM = "#result[data-stage='local']"
AMBER_ADVICE = {"zh": "未确认前不得动火，请联系安全员", "en": "No hot work until confirmed: call the safety officer"}
DOC_SHOTS = {"interim": "verdict-interim.png", "error-no-keys": "verdict-error.png"}  # docs/img, Chinese


def hang(route: Route) -> None:
    """Never answer: the request stays pending (a server that does not reply)."""


@dataclass(frozen=True)
class State:
    """A screen: the card to open, how the network behaves, what to wait for and the panel's tone."""

    card: str
    tone: str
    verify: Callable[[Route], None] | None = None
    keys: Callable[[Route], None] | None = None
    wait: str = SETTLED


STATES = {
    "accept": State("valid", "accept"),
    "reject-revoked": State("revoked", "reject"),
    "reject-tampered": State("tampered", "reject"),
    "reject-unknown-key": State("unknown_key", "reject"),
    "interim": State("revoked", "checking", verify=hang, wait=INTERIM),
    "amber-no-server": State("valid_second", "offline", verify=lambda route: route.abort()),
    "reject-no-server": State("tampered", "reject", verify=lambda route: route.abort()),
    "error-no-keys": State("valid", "error", verify=lambda route: route.abort(), keys=lambda route: route.abort()),
    "malformed-422": State(
        "valid",
        "reject",
        verify=lambda route: route.fulfill(
            status=422, json={"error": {"code": "validation_error", "message": "qr: too long"}}
        ),
    ),
}


def card_url(certificates: Certificates, card: str) -> str:
    return tamper(certificates.valid) if card == "tampered" else getattr(certificates, card)


def open_state(context: BrowserContext, certificates: Certificates, state: State) -> Page:
    """A new page of ``context`` showing ``state``."""
    page = context.new_page()
    if state.verify:
        page.route("**/v1/verify", state.verify)
    if state.keys:
        page.route("**/v1/keys", state.keys)
    page.goto(card_url(certificates, state.card))
    page.wait_for_selector(state.wait, timeout=15_000)
    return page


def screen(page: Page) -> dict[str, Any]:
    """What the screen shows: tone, panel word, next step, hot-work row, reasons, clock warning."""
    return page.evaluate(
        """() => ({
      tone: document.getElementById('result').dataset.tone,
      word: document.getElementById('verdict-word').textContent,
      icon: document.getElementById('verdict-icon').textContent,
      next: document.getElementById('next').hidden ? null : document.getElementById('next').innerText,
      hotWork: [...document.querySelectorAll('#details dt')].some((dt) => /动火|Hot work/.test(dt.textContent)),
      reasons: [...document.querySelectorAll('#reasons li')].map((li) => li.dataset.reason),
      clock: !document.getElementById('clock-warning').hidden,
      text: document.body.innerText,
    })"""
    )


@pytest.mark.parametrize("lang", sorted(LOCALES))
@pytest.mark.parametrize("name", list(STATES))
def test_state_is_unambiguous_readable_and_accessible(
    browser: Browser, certificates: Certificates, name: str, lang: str, screenshot: Callable[..., Path]
):
    """One state in one language: its own tone, word and icon; green only on accept; fits 320-430 px and 200 %."""
    state = STATES[name]
    context = browser.new_context(
        viewport={"width": 360, "height": 780},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale=LOCALES[lang],
    )
    page = open_state(context, certificates, state)
    shown = screen(page)
    green = green_elements(page)
    axe = serious_axe_violations(page)
    screenshot(page, f"state-{name}-{lang}", doc_name=DOC_SHOTS.get(name) if lang == "zh" else None)
    fits = {}
    for width in (*WIDTHS, ZOOM_200_WIDTH):
        page.set_viewport_size({"width": width, "height": 780})
        assert_no_sideways_scroll(page, f"{name} {lang} {width}px")
        fits[width] = True
    context.close()

    assert shown["tone"] == state.tone
    assert shown["icon"] == {"accept": "✓", "reject": "✕", "offline": "!", "checking": "…", "error": "?"}[state.tone]
    if state.tone == "accept":
        assert green, "the detector finds the accept green"
        assert shown["hotWork"]
    else:
        assert green == [], green
        assert not shown["hotWork"], "hot work is a fact of an accept only"
    if state.tone == "checking":
        # The interim panel: not a final verdict's word, no reasons, no next step.
        assert shown["word"] in ("核验中…", "Checking…")
        assert (shown["reasons"], shown["next"]) == ([], None)
    words = {"accept": ("通过", "ACCEPT"), "reject": ("不通过", "REJECT"), "offline": ("待确认", "NOT CONFIRMED")}
    if state.tone in words:
        assert shown["word"] == words[state.tone][0 if lang == "zh" else 1]
    assert "（离线）（离线）" not in shown["text"]
    assert "离线核验（离线）" not in shown["text"]
    assert "Checked offline (offline)" not in shown["text"]
    assert axe == [], axe
    assert fits


def test_accept_says_what_to_do_and_offers_the_holder_check(phone: Page, certificates: Certificates):
    """Accept: "valid, may do <item>; check the photo and ID number", the ID check right below the card."""
    phone.goto(certificates.valid)
    settled(phone)

    order = phone.evaluate(
        """() => ['panel', 'next', 'card', 'holder-form', 'purpose']
                   .map((id) => document.getElementById(id).getBoundingClientRect().top)"""
    )
    hot_work = phone.evaluate(
        """() => { const dt = [...document.querySelectorAll('#details dt')].find((d) => d.textContent === '动火作业');
                   return [dt.nextElementSibling.textContent, getComputedStyle(dt.nextElementSibling).color]; }"""
    )

    assert phone.inner_text("#next-main") == "证件有效，可从事 2.1 熔化焊接与热切割作业；请核对本人照片和身份证号"
    assert phone.is_visible("#holder-form")
    assert phone.is_visible("#holder-id")
    assert order == sorted(order)
    assert hot_work == ["可从事", "rgb(17, 17, 17)"]  # a plain fact in the ink colour
    assert "准操项目" in phone.inner_text("#details")
    assert "应复审日期" in phone.inner_text("#details")
    assert "作业类别" not in phone.inner_text("#details")


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, migrated_sqlite_template: Path
) -> Iterator[tuple[AppServer, Certificates]]:
    """A private app with the site's amber rule set and the issuer's service phone (PATCH /v1/issuers/{code})."""
    server = AppServer.start(
        tmp_path_factory.mktemp("site"),
        migrated_sqlite_template,
        "--amber-advice-zh",
        AMBER_ADVICE["zh"],
        "--amber-advice-en",
        AMBER_ADVICE["en"],
    )
    issued = seed(server)
    patched = httpx.patch(
        f"{server.base_url}/v1/issuers/{ISSUER_CODE}",
        headers=ADMIN_HEADERS,
        json={"service_phone": "020-8888 1234"},
        timeout=30,
    )
    assert patched.status_code == 200, patched.text
    yield server, issued
    server.stop()


@pytest.mark.parametrize("lang", sorted(LOCALES))
def test_reject_says_do_not_start_with_date_issuer_and_phone(
    browser: Browser, site: tuple[AppServer, Certificates], lang: str, screenshot: Callable[..., Path]
):
    """Reject: "不得从事该作业", the reason from its code, the revocation date, the issuer and a tel: link.

    The issuer's service phone comes from ``PATCH /v1/issuers/{code}`` through the verify answer's
    ``certificate.issuer.service_phone``; the issuer's own free-text reason is never shown.
    """
    _, issued = site
    today = datetime.now(CST).date().isoformat()
    context = browser.new_context(viewport={"width": 360, "height": 780}, locale=LOCALES[lang])
    page = context.new_page()
    page.goto(issued.revoked)
    settled(page)
    next_text = page.inner_text("#next")
    link = page.get_attribute("#next-lines a", "href")
    body = page.inner_text("body")
    checks = screen_checks(page)
    page.set_viewport_size({"width": 360, "height": 780})
    screenshot(page, f"reject-next-steps-{lang}", doc_name="verdict-reject.png" if lang == "zh" else None)
    context.close()

    assert reasons_in(next_text, lang)
    assert link == "tel:02088881234"
    assert "020-8888 1234" in next_text
    assert "证件系伪造材料取得" not in body
    assert checks == {"green": [], "axe": [], "overflow": {}}
    if lang == "zh":
        assert next_text.startswith("不得从事该作业")
        assert f"吊销日期：{today}" in next_text
        assert "发证机关：广东省应急管理厅" in next_text
    else:
        assert next_text.startswith("Do not let this worker start this work")
        assert f"Revoked on {today}" in next_text
        assert "Issuer: 广东省应急管理厅" in next_text


def reasons_in(text: str, lang: str) -> bool:
    return ("证书已被吊销" if lang == "zh" else "The certificate has been revoked") in text


def test_amber_says_what_was_checked_and_the_site_rule(browser: Browser, site: tuple[AppServer, Certificates]):
    """Amber: what was and was not checked, and the site's own rule (CERTSEAL_PAGE_AMBER_ADVICE_ZH/_EN)."""
    server, issued = site
    config = json.loads(httpx.get(f"{server.base_url}/c1").text.split("data-config='")[1].split("'")[0])
    context = browser.new_context(viewport={"width": 360, "height": 780}, locale="zh-CN")
    page = context.new_page()
    page.route("**/v1/verify", lambda route: route.abort())
    page.goto(issued.valid_second)
    result = settled(page)
    zh = page.inner_text("#next")
    page.click("#lang-toggle")
    en = page.inner_text("#next")
    checks = screen_checks(page)
    context.close()

    assert config["amber_advice"] == AMBER_ADVICE
    assert result == {"verdict": "accept", "source": "offline", "panel": "panel offline"}
    assert zh.startswith("尚未确认证件有效")
    assert "已核验：签名、有效期、准操项目" in zh
    assert "未核验：是否已被吊销或暂扣" in zh
    assert f"本工地规定：{AMBER_ADVICE['zh']}" in zh
    assert "Not checked: whether the certificate was revoked or suspended" in en
    assert f"Site rule: {AMBER_ADVICE['en']}" in en
    assert checks == {"green": [], "axe": [], "overflow": {}}


def test_a_4xx_on_the_qr_is_a_malformed_code_not_an_unavailable_server(phone: Page, app_server: AppServer):
    """A 5,000-digit fragment (the server answers 4xx, or the phone finds it malformed) is shown as malformed."""
    phone.goto(f"{app_server.base_url}/c1#{'1' * 5000}")
    result = settled(phone)

    assert result["verdict"] == "reject"
    assert reasons(phone) == ["malformed"]
    assert "服务器不可用" not in phone.inner_text("body")


# --- clock ---


def test_clock_one_year_behind_online_warns(browser: Browser, certificates: Certificates):
    """Online, a phone clock a year behind the answer's checked_at gets "手机时间可能不正确"; the server decides."""
    context = browser.new_context(viewport={"width": 360, "height": 780}, locale="zh-CN")
    page = context.new_page()
    page.clock.set_fixed_time(datetime.now(UTC) - timedelta(days=365))
    page.goto(certificates.valid)
    result = settled(page)
    shown = screen(page)
    context.close()

    assert result == {"verdict": "accept", "source": "online", "panel": "panel accept"}
    assert shown["clock"]
    assert "手机时间可能不正确" in shown["text"]


def test_right_clock_gives_no_warning(phone: Page, certificates: Certificates):
    """A phone clock that agrees with the server shows no clock warning."""
    phone.goto(certificates.valid)
    settled(phone)

    assert phone.is_hidden("#clock-warning")
    assert phone.get_attribute("#result", "data-clock") is None


@pytest.mark.parametrize("lang", sorted(LOCALES))
def test_clock_behind_the_cached_key_list_offline_is_amber_not_red(
    browser: Browser, certificates: Certificates, lang: str, screenshot: Callable[..., Path]
):
    """Offline, a clock before the cached key list's time gives no time-based reject: amber with the warning."""
    context = browser.new_context(viewport={"width": 360, "height": 780}, locale=LOCALES[lang])
    first = context.new_page()
    first.goto(certificates.valid)
    settled(first)
    first.close()
    page = context.new_page()
    page.clock.set_fixed_time(datetime.now(UTC) - timedelta(days=366))  # before the card's valid_from
    page.route("**/v1/verify", lambda route: route.abort())
    page.goto(certificates.valid_second)
    result = settled(page)
    shown = screen(page)
    green = green_elements(page)
    screenshot(page, f"clock-wrong-offline-{lang}", doc_name="verdict-clock.png" if lang == "zh" else None)
    context.close()

    assert result == {"verdict": "accept", "source": "offline", "panel": "panel offline"}
    assert "not_yet_valid" not in shown["reasons"]
    assert shown["clock"]
    assert green == []
    assert ("手机时间可能不正确" if lang == "zh" else "The phone's clock may be wrong") in shown["text"]


def test_clock_right_offline_still_rejects_by_date(browser: Browser, certificates: Certificates):
    """The clock rule only spares a phone whose clock is provably behind: a right clock judges dates as before."""
    context = browser.new_context(viewport={"width": 360, "height": 780}, locale="zh-CN")
    page = context.new_page()
    page.route("**/v1/verify", lambda route: route.abort())
    page.goto(certificates.valid_second)
    settled(page)
    shown = screen(page)
    context.close()

    assert not shown["clock"]


# --- fails visibly ---


def test_module_that_fails_to_load_shows_a_retry(
    browser: Browser, certificates: Certificates, screenshot: Callable[..., Path]
):
    """A page module answered 404: "page failed to load, retry" with a retry button, not a blank page."""
    context = browser.new_context(viewport={"width": 360, "height": 780}, locale="zh-CN")
    page = context.new_page()
    page.route("**/static/verify.js", lambda route: route.fulfill(status=404, body="not found"))
    page.goto(certificates.valid)
    page.wait_for_selector("#boot-fail", state="visible", timeout=10_000)
    text = page.inner_text("#boot-fail")
    focused = page.evaluate("() => document.activeElement.id")
    screenshot(page, "load-failed", doc_name="verdict-load-failed.png")
    axe = serious_axe_violations(page)
    page.unroute("**/static/verify.js")
    page.click("#boot-retry")
    result = settled(page)
    context.close()

    assert "页面加载失败，请重试" in text
    assert "Try again" in text
    assert focused == "boot-retry"
    assert axe == []
    assert result["verdict"] == "accept"  # the retry loads the page


def test_engine_without_webcrypto_gets_the_same_message(browser: Browser, certificates: Certificates):
    """An engine lacking a feature the page needs (here WebCrypto's subtle) gets the message, not a blank page."""
    context = browser.new_context(viewport={"width": 360, "height": 780}, locale="zh-CN")
    context.add_init_script("Object.defineProperty(Crypto.prototype, 'subtle', { get: () => undefined });")
    page = context.new_page()
    page.goto(certificates.valid)
    page.wait_for_selector("#boot-fail", state="visible", timeout=10_000)
    context.close()


def test_healthy_page_shows_no_failure(phone: Page, certificates: Certificates):
    """A page that loads keeps the failure message hidden and marks itself started."""
    phone.goto(certificates.valid)
    settled(phone)
    phone.wait_for_load_state("load")

    assert phone.is_hidden("#boot-fail")
    assert phone.get_attribute("html", "data-app") == "started"


# --- readable ---


@pytest.fixture
def big_font_context(playwright: Playwright, tmp_path: Path) -> Iterator[Callable[[str], BrowserContext]]:
    """A Chromium profile whose default font size is 32 px (Settings > Appearance > Font size), per locale."""
    opened: list[BrowserContext] = []

    def open_context(locale: str) -> BrowserContext:
        profile = tmp_path / f"profile-{locale}"
        shutil.rmtree(profile, ignore_errors=True)
        (profile / "Default").mkdir(parents=True)
        (profile / "Default" / "Preferences").write_text(
            json.dumps({"webkit": {"webprefs": {"default_font_size": 32}}})
        )
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=chromium_args(),
            viewport={"width": 360, "height": 780},
            locale=locale,
        )
        opened.append(context)
        return context

    yield open_context
    for context in opened:
        context.close()


@pytest.mark.parametrize("lang", sorted(LOCALES))
def test_32px_default_font_fits_and_grows(
    big_font_context: Callable[[str], BrowserContext], certificates: Certificates, lang: str
):
    """With a 32 px default font the text doubles (rem sizes) and still fits 320 and 360 px without sideways scroll."""
    context = big_font_context(LOCALES[lang])
    sizes = {}
    for name in ("accept", "reject-revoked", "amber-no-server", "interim"):
        page = open_state(context, certificates, STATES[name])
        sizes[name] = page.evaluate(
            "() => [parseFloat(getComputedStyle(document.body).fontSize),"
            " parseFloat(getComputedStyle(document.querySelector('#next-main, #verdict-sub')).fontSize)]"
        )
        for width in (320, 360):
            page.set_viewport_size({"width": width, "height": 780})
            assert_no_sideways_scroll(page, f"{name} {lang} {width}px 32px font")
        page.close()

    assert all(body >= 32 for body, _ in sizes.values()), sizes


def test_detail_text_is_at_least_16px(phone: Page, certificates: Certificates):
    """Detail labels, values and the serial are at least 16 px."""
    phone.goto(certificates.valid)
    settled(phone)

    sizes = phone.eval_on_selector_all(
        "#details dt, #details dd, #masked-id, #next-main, #next-lines li",
        "items => items.map((item) => parseFloat(getComputedStyle(item).fontSize))",
    )

    assert sizes
    assert min(sizes) >= 16, sizes


def test_photo_taps_to_full_width(phone: Page, certificates: Certificates):
    """Tapping the holder photo shows it at the card's full width; tapping again shrinks it."""
    phone.goto(certificates.valid)
    settled(phone)
    phone.wait_for_function("() => document.getElementById('photo').naturalWidth > 0")
    small = phone.eval_on_selector("#photo", "img => img.getBoundingClientRect().width")
    card = phone.eval_on_selector("#card", "card => card.clientWidth")

    phone.click("#photo-button")
    big = phone.eval_on_selector("#photo", "img => img.getBoundingClientRect().width")
    expanded = phone.get_attribute("#photo-button", "aria-expanded")
    phone.click("#photo-button")

    assert small < 150
    assert big > card - 40
    assert expanded == "true"
    assert phone.get_attribute("#photo-button", "aria-expanded") == "false"


def test_language_button_name_is_its_text_and_scanner_is_a_dialog(phone: Page, certificates: Certificates):
    """The language button is named by what it shows (in its language); the scanner overlay is a labelled dialog."""
    phone.goto(certificates.valid)
    settled(phone)

    button = phone.evaluate(
        "() => { const b = document.getElementById('lang-toggle');"
        " return [b.textContent, b.lang, b.getAttribute('aria-label')]; }"
    )
    dialog = phone.evaluate(
        """() => { const d = document.getElementById('scanner');
                   return [d.getAttribute('role'), d.getAttribute('aria-modal'),
                           document.getElementById(d.getAttribute('aria-labelledby')).textContent]; }"""
    )

    assert button == ["English", "en", None]
    assert dialog == ["dialog", "true", "扫描二维码"]


def test_camera_errors_have_plain_words_in_both_languages(phone: Page, app_server: AppServer):
    """Each scanner failure cause has a plain sentence, and the way out names WeChat, in Chinese and English."""
    phone.goto(f"{app_server.base_url}/c1")
    strings = phone.evaluate("async () => (await import('/static/i18n.js')).STRINGS")
    causes = ["noPermission", "noCamera", "cameraBusy", "decoderFailed", "failed"]

    for lang in ("zh", "en"):
        for cause in causes:
            assert "Error" not in strings[lang][f"scanner_{cause}"]
        assert ("微信" if lang == "zh" else "WeChat") in strings[lang]["scanner_failure"]


def test_page_config_has_no_amber_advice_unless_set(app_server: AppServer):
    """Without CERTSEAL_PAGE_AMBER_ADVICE_ZH/_EN the page's configuration has amber_advice null."""
    page = httpx.get(f"{app_server.base_url}/c1").text

    assert '"amber_advice":null' in page
