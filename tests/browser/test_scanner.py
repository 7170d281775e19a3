"""The in-page scanner with Chromium's fake camera fed a video of a real QR code (crypto.render_png).

Debian's Chromium has no BarcodeDetector, so these tests exercise the vendored zxing-wasm decoder.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser

import crypto

from .conftest import AppServer, Certificates, phone_context, settled

pytestmark = pytest.mark.browser

FRAME_SIZE = (640, 480)
DESK_GREY = 190
UNOFFICIAL_ORIGIN = "https://certseal-verify.example.com"


def qr_video(text: str, path: Path, *, frames: int = 6) -> Path:
    """Write a Y4M video (4:2:0) of the QR code of ``text`` on a grey desk, for --use-file-for-fake-video-capture."""
    code = Image.open(io.BytesIO(crypto.render_png(crypto.make_symbol(text), scale=4))).convert("L")
    limit = FRAME_SIZE[1] - 40
    if code.width > limit:
        code = code.resize((limit, limit), Image.Resampling.NEAREST)
    frame = Image.new("L", FRAME_SIZE, DESK_GREY)
    frame.paste(code, ((FRAME_SIZE[0] - code.width) // 2, (FRAME_SIZE[1] - code.height) // 2))
    chroma = bytes([128]) * (FRAME_SIZE[0] // 2 * FRAME_SIZE[1] // 2)
    with path.open("wb") as video:
        video.write(f"YUV4MPEG2 W{FRAME_SIZE[0]} H{FRAME_SIZE[1]} F15:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            video.write(b"FRAME\n" + frame.tobytes() + chroma + chroma)
    return path


def camera_browser(launch: Callable[..., Browser], video: Path) -> Browser:
    """Chromium whose camera plays ``video``."""
    return launch(
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    )


def test_scanner_reads_the_code_and_shows_the_verdict(
    launch: Callable[..., Browser],
    app_server: AppServer,
    certificates: Certificates,
    tmp_path: Path,
    screenshot: Callable[..., Path],
):
    """ "Scan next" opens the rear camera, the JavaScript decoder finds the code, and the verdict is shown."""
    browser = camera_browser(launch, qr_video(certificates.valid, tmp_path / "valid.y4m"))
    context = phone_context(browser)
    context.grant_permissions(["camera"], origin=app_server.base_url)
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{app_server.base_url}/c1")
    idle_decoder = any("qr-decoder" in url for url in requested)

    page.click("#scan-next")
    result = settled(page, timeout=30_000)

    assert result == {"verdict": "accept", "source": "online", "panel": "panel accept"}
    assert page.text_content("#holder-name") == certificates.holder_name
    assert page.evaluate("() => 'BarcodeDetector' in window") is False
    assert not idle_decoder
    assert any(url.endswith("/static/qr-decoder.js") for url in requested)
    assert any(url.endswith("/zxing_reader.wasm") for url in requested)
    assert page.is_hidden("#scanner")
    assert page.is_hidden("#phishing")
    assert page.evaluate("() => location.hash") == "#" + certificates.valid.partition("#")[2]
    screenshot(page, "scan-accept")


def test_scanner_warns_about_an_unofficial_origin(
    launch: Callable[..., Browser],
    app_server: AppServer,
    certificates: Certificates,
    tmp_path: Path,
    screenshot: Callable[..., Path],
):
    """A QR URL on another origin gets a phishing warning first and is still checked against this origin's keys."""
    phishing = f"{UNOFFICIAL_ORIGIN}/c1#{certificates.revoked.partition('#')[2]}"
    browser = camera_browser(launch, qr_video(phishing, tmp_path / "phishing.y4m"))
    context = phone_context(browser)
    context.grant_permissions(["camera"], origin=app_server.base_url)
    page = context.new_page()
    page.goto(f"{app_server.base_url}/c1")

    page.click("#scan-next")
    result = settled(page, timeout=30_000)

    assert page.is_visible("#phishing")
    assert UNOFFICIAL_ORIGIN in page.text_content("#phishing")
    assert page.evaluate(
        "() => document.querySelector('#phishing').compareDocumentPosition(document.querySelector('#panel'))"
        " & Node.DOCUMENT_POSITION_FOLLOWING"
    )
    assert result["verdict"] == "reject"
    assert page.eval_on_selector_all("#reasons li", "items => items.map((item) => item.dataset.reason)") == ["revoked"]
    assert page.evaluate("() => location.hash") == ""
    screenshot(page, "scan-phishing-warning")


# Every stream the page opens, so a test can see that all its tracks were stopped.
RECORD_STREAMS = """(() => {
  window.__streams = [];
  const devices = navigator.mediaDevices;
  if (!devices) return;
  const open = devices.getUserMedia.bind(devices);
  devices.getUserMedia = async (constraints) => {
    const stream = await open(constraints);
    window.__streams.push(stream);
    return stream;
  };
})();"""
NO_CAMERA = """(() => {
  navigator.mediaDevices.getUserMedia = async () => {
    throw new DOMException("Requested device not found", "NotFoundError");
  };
})();"""
FAILED = "() => document.querySelector('#scanner').dataset.state === 'failed'"
TRACKS = "() => window.__streams.flatMap((stream) => stream.getTracks().map((track) => track.readyState))"


def test_decoder_failure_stops_the_camera_and_offers_the_way_out(
    launch: Callable[..., Browser],
    app_server: AppServer,
    certificates: Certificates,
    tmp_path: Path,
    screenshot: Callable[..., Path],
):
    """Camera on, decoder unavailable: every track stops and the page names the phone camera and WeChat instead."""
    browser = camera_browser(launch, qr_video(certificates.valid, tmp_path / "valid.y4m"))
    context = phone_context(browser)
    context.grant_permissions(["camera"], origin=app_server.base_url)
    context.add_init_script(RECORD_STREAMS)
    context.route("**/zxing_reader.wasm", lambda route: route.abort())
    page = context.new_page()
    page.goto(f"{app_server.base_url}/c1")

    page.click("#scan-next")
    page.wait_for_function(FAILED, timeout=30_000)
    status = page.text_content("#scanner-status") or ""
    tracks = page.evaluate(TRACKS)
    video_detached = page.evaluate("() => document.querySelector('#scanner-video').srcObject === null")
    screenshot(page, "scan-decoder-failed")

    assert tracks
    assert set(tracks) == {"ended"}
    assert video_detached
    assert "扫描组件没有下载成功" in status
    assert "微信“扫一扫”" in status
    assert "手机相机" in status
    assert "Error" not in status
    assert page.is_visible("#scanner-close")


@pytest.mark.parametrize(
    ("locale", "words", "way_out"),
    [("zh-CN", "这部手机上没有可用的摄像头", "微信“扫一扫”"), ("en", "No camera is available", "WeChat")],
)
def test_no_camera_is_said_in_plain_words(
    browser: Browser, app_server: AppServer, locale: str, words: str, way_out: str, screenshot: Callable[..., Path]
):
    """getUserMedia's NotFoundError becomes plain words and the way out, never the exception's name."""
    context = phone_context(browser, locale=locale)
    context.add_init_script(NO_CAMERA)
    page = context.new_page()
    page.goto(f"{app_server.base_url}/c1")

    page.click("#scan-next")
    page.wait_for_function(FAILED, timeout=30_000)
    status = page.text_content("#scanner-status") or ""
    screenshot(page, f"scan-no-camera-{locale}")
    context.close()

    assert words in status
    assert way_out in status
    assert "NotFound" not in status
    assert "Error" not in status
