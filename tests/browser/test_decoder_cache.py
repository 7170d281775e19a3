"""The scanner's decoder reaches the service worker's cache after the first verdict, so a first scan works offline.

The decoder (~0.4 MB gzip) is not part of the service worker's install nor of the first verdict: after a
verdict the page asks the worker to cache it in the background (``cache-decoder``), and asks again at every
load until the worker has it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route
from playwright.sync_api import Error as PlaywrightError

from api.routers.page import DECODER, STATIC_DIR, decoder_version

from .conftest import AppServer, phone_context, seed, settled
from .test_scanner import DESK_GREY, FRAME_SIZE, camera_browser, qr_video

pytestmark = pytest.mark.browser

DECODER_CACHED = "() => performance.getEntriesByName('certseal-decoder-cached').length > 0"
DECODER_FAILED = "() => performance.getEntriesByName('certseal-decoder-failed').length > 0"
CONTROLLED = "() => navigator.serviceWorker.controller !== null"
CACHES = """async () => {
  const out = {};
  for (const name of await caches.keys()) {
    out[name] = (await (await caches.open(name)).keys()).map((request) => new URL(request.url).pathname);
  }
  return out;
}"""


def blank_video(path: Path) -> Path:
    """A Y4M video of an empty grey desk (no QR code): the scanner keeps scanning."""
    width, height = FRAME_SIZE
    frame = bytes([DESK_GREY]) * (width * height) + bytes([128]) * (width * height // 2)
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F15:1 Ip A1:1 C420jpeg\n".encode() + b"FRAME\n" + frame)
    return path


def decoder_cache(page: Page) -> list[str] | None:
    """The paths in the service worker's decoder cache (None when there is no such cache)."""
    found = [paths for name, paths in page.evaluate(CACHES).items() if name.startswith("certseal-decoder-")]
    return sorted(found[0]) if found else None


def test_service_worker_script_names_the_decoder(app_server: AppServer):
    """/sw.js lists the decoder's files and names its cache by their hash; the page's byte count is the file's."""
    script = httpx.get(f"{app_server.base_url}/sw.js").text
    reader = (STATIC_DIR / "qr-decoder.js").read_text(encoding="utf-8")
    wasm = STATIC_DIR / "vendor" / "zxing-wasm" / "reader" / "zxing_reader.wasm"

    assert f'const DECODER_VERSION = "{decoder_version()}";' in script
    assert f"const DECODER = {json.dumps(list(DECODER))};" in script
    assert all((STATIC_DIR / path.removeprefix("/static/")).is_file() for path in DECODER)
    assert f"export const WASM_BYTES = {wasm.stat().st_size};" in reader


def test_first_scan_works_offline_after_one_verdict(
    launch: Callable[..., Browser],
    start_server: Callable[..., AppServer],
    tmp_path: Path,
    screenshot: Callable[..., Path],
):
    """One online verdict, no scan; then, offline, the very first scan decodes and gives the offline verdict."""
    server = start_server()
    issued = seed(server)
    browser = camera_browser(launch, qr_video(issued.valid_second, tmp_path / "second.y4m"))
    context = phone_context(browser)
    context.grant_permissions(["camera"], origin=server.base_url)
    page = context.new_page()
    page_requests: list[str] = []
    page.on("request", lambda request: page_requests.append(request.url))

    page.goto(issued.valid)
    first = settled(page)
    before_verdict = list(page_requests)
    page.wait_for_function(CONTROLLED, timeout=15_000)
    page.wait_for_function(DECODER_CACHED, timeout=60_000)
    cached = decoder_cache(page)

    server.stop()
    context.set_offline(True)
    page.click("#scan-next")
    page.wait_for_function(
        "(hash) => location.hash === hash", arg="#" + issued.valid_second.partition("#")[2], timeout=30_000
    )
    page.wait_for_selector("#result[data-source='offline']", timeout=30_000)
    offline = settled(page)
    screenshot(page, "scan-offline-first-scan")
    camera_off = page.evaluate("() => document.querySelector('#scanner-video').srcObject === null")

    assert first["source"] == "online"
    assert not any("qr-decoder" in url or "/vendor/" in url for url in before_verdict)
    assert cached == sorted(DECODER)
    assert offline == {"verdict": "accept", "source": "offline", "panel": "panel offline"}
    assert page.text_content("#holder-name") == "陈静"
    assert page.is_hidden("#scanner")
    assert camera_off


def test_decoder_download_failure_is_retried_at_the_next_load(browser: Browser, start_server: Callable[..., AppServer]):
    """A failed decoder download leaves the worker installed and in control; the next load downloads it."""
    server = start_server()
    issued = seed(server)
    context = phone_context(browser)
    refused: list[str] = []

    def refuse(route: Route) -> None:
        refused.append(route.request.url)
        route.abort()

    context.route("**/zxing_reader.wasm", refuse)
    page = context.new_page()
    page.goto(issued.valid)
    first = settled(page)
    page.wait_for_function(DECODER_FAILED, timeout=30_000)
    page.wait_for_function(CONTROLLED, timeout=15_000)
    after_failure = decoder_cache(page)
    shell = [paths for name, paths in page.evaluate(CACHES).items() if name.startswith("certseal-shell-")]

    context.unroute("**/zxing_reader.wasm")
    page.reload()
    second = settled(page)
    page.wait_for_function(DECODER_CACHED, timeout=60_000)
    after_retry = decoder_cache(page)

    context.set_offline(True)
    offline_page = context.new_page()
    offline_page.goto(issued.valid_second)
    offline = settled(offline_page)
    context.close()

    assert first["source"] == second["source"] == "online"
    assert refused
    assert all(url.endswith("/zxing_reader.wasm") for url in refused)
    assert after_failure is not None
    assert "/static/vendor/zxing-wasm/reader/zxing_reader.wasm" not in after_failure
    assert len(shell) == 1
    assert {"/c1", "/static/app.js", "/static/scanner.js"} <= set(shell[0])
    assert after_retry == sorted(DECODER)
    assert offline["source"] == "offline"


def test_scanner_shows_the_decoder_download(
    launch: Callable[..., Browser], app_server: AppServer, tmp_path: Path, screenshot: Callable[..., Path]
):
    """While the decoder downloads, the scanner shows how far it got (percent), then the scanning hint."""
    browser = camera_browser(launch, blank_video(tmp_path / "desk.y4m"))
    context = phone_context(browser)
    context.grant_permissions(["camera"], origin=app_server.base_url)
    held: list[Route] = []

    def hold(route: Route) -> None:  # the download waits until the progress has been seen
        held.append(route)

    context.route("**/zxing_reader.wasm", hold)
    page = context.new_page()
    page.goto(f"{app_server.base_url}/c1")

    page.click("#scan-next")
    page.wait_for_function("() => document.querySelector('#scanner').dataset.state === 'loading'", timeout=30_000)
    loading = {
        "progress": page.get_attribute("#scanner", "data-progress"),
        "status": page.text_content("#scanner-status"),
    }
    screenshot(page, "scan-decoder-loading")
    context.unroute("**/zxing_reader.wasm")  # the downloads held so far go on (Playwright hands them back)
    for route in held:
        with contextlib.suppress(PlaywrightError):
            route.continue_()
    page.wait_for_function("() => document.querySelector('#scanner').dataset.state === 'scanning'", timeout=60_000)
    scanning = page.text_content("#scanner-status")
    page.click("#scanner-close")
    context.close()

    assert loading["progress"] == "0"
    assert loading["status"] == "正在加载扫描组件… 0%"
    assert scanning == "将二维码放入框内"
