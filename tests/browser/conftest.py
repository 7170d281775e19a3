"""Browser test fixtures: the real app in a subprocess (seeded over HTTP) and Debian's Chromium via Playwright.

The app runs on a copy of the session's migrated SQLite template (``migrated_sqlite_template`` in
``tests/conftest.py``): it refuses a database that is not at the newest schema revision.

Playwright never downloads a browser here: every launch uses ``/usr/bin/chromium`` (the ``chromium``
package; ``fonts-noto-cjk`` draws the Chinese text in screenshots).
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

import crypto
from api.settings import DEMO_SECRETS
from crypto import CST, CertificateClaims, Operation, SigningKey
from schemas.idnumber import check_character

ROOT = Path(__file__).resolve().parents[2]
SERVE = Path(__file__).with_name("serve.py")
OUTPUT_DIR = ROOT / "test-output" / "browser"
DOC_IMAGES = ROOT / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"
PHONE_VIEWPORT = {"width": 390, "height": 844}
ADMIN_HEADERS = {"Authorization": f"Bearer {DEMO_SECRETS['admin_token']}"}
ISSUER_CODE = "CN-44"
SETTLED = "#result[data-verdict][data-source]"


def chromium_args(*extra: str) -> list[str]:
    """Chromium flags for tests: no sandbox as root, no GPU, no background traffic, plus ``extra``."""
    args = [
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    if os.geteuid() == 0:
        args.insert(0, "--no-sandbox")
    return [*args, *extra]


def id_number(birth: str, sequence: str) -> str:
    """A fictitious Guangzhou ID number with a valid GB 11643 check character."""
    first17 = f"440106{birth}{sequence}"
    return first17 + check_character(first17)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class AppServer:
    """The certseal app running in a subprocess on a free local port."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: localhost is a secure context, so WebCrypto and service workers work."""
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, folder: Path, template: Path, *options: str) -> AppServer:
        """Start the app on a copy of the migrated ``template`` database in ``folder`` and wait until it answers.

        ``options`` go to ``serve.py`` (``--trust-anchor-pem FILE``, ``--fixtures DIR``).
        """
        port = _free_port()
        log = folder / "server.log"
        database = folder / "certseal.db"
        if not database.exists():
            shutil.copyfile(template, database)
        env = {name: value for name, value in os.environ.items() if not name.startswith("CERTSEAL_")}
        env["PYTHONPATH"] = str(ROOT)
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, str(SERVE), "--port", str(port), "--database", str(database), *options],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        server = cls(process, port, log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                    return server
            except httpx.TransportError:
                time.sleep(0.1)
        server.stop()
        raise RuntimeError("server did not start within 30 s")

    def stop(self) -> None:
        """Stop the server (the network is gone for every later request)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass(frozen=True)
class Certificates:
    """QR URLs of the seeded certificates."""

    valid: str
    valid_second: str
    revoked: str
    unknown_key: str
    holder_id: str
    holder_name: str


def holder_photo() -> str:
    """A small PNG portrait placeholder, base64."""
    image = Image.new("RGB", (120, 150), (214, 222, 232))
    draw = ImageDraw.Draw(image)
    draw.ellipse((35, 18, 85, 72), fill=(96, 110, 128))
    draw.rounded_rectangle((18, 80, 102, 160), radius=30, fill=(96, 110, 128))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def seed(server: AppServer) -> Certificates:
    """Create an issuer, its API key and the certificates through the HTTP API, plus one signed by an unknown key."""
    today = datetime.now(CST).date()
    issued = today - timedelta(days=365)
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        response = client.post(
            "/v1/issuers",
            headers=ADMIN_HEADERS,
            json={
                "code": ISSUER_CODE,
                "name": "广东省应急管理厅",
                "region": "广东省",
                "operations": ["2.1", "2.2", "1.2"],
            },
        )
        assert response.status_code == 201, response.text
        response = client.post(
            f"/v1/issuers/{ISSUER_CODE}/api-keys", headers=ADMIN_HEADERS, json={"label": "browser tests"}
        )
        assert response.status_code == 201, response.text
        issuer_headers = {"Authorization": f"Bearer {response.json()['token']}"}

        def issue(name: str, number: str, operation: str, **extra: Any) -> dict[str, Any]:
            body = {
                "holder_name": name,
                "holder_id_number": number,
                "operation": operation,
                "issue_date": issued.isoformat(),
            }
            created = client.post("/v1/certificates", headers=issuer_headers, json=body | extra)
            assert created.status_code == 201, created.text
            return created.json()  # type: ignore[no-any-return]

        holder_id = id_number("19900307", "123")
        valid = issue("张伟", holder_id, "2.1", photo_base64=holder_photo())
        second = issue("陈静", id_number("19920815", "246"), "2.2")
        revoked = issue("李强", id_number("19851120", "245"), "2.1")
        response = client.post(
            f"/v1/certificates/{revoked['id']}/revoke", headers=issuer_headers, json={"reason": "证件系伪造材料取得"}
        )
        assert response.status_code == 200, response.text
    stranger = SigningKey.generate("ES256")
    claims = CertificateClaims.issue(
        issuer=ISSUER_CODE,
        holder_name="赵六",
        masked_id=crypto.mask_visible(id_number("19880101", "135")),
        operation=Operation(2, 1),
        valid_from=issued,
        valid_until=issued + timedelta(days=6 * 365),
    )
    unknown = crypto.encode_qr_text(
        crypto.sign_certificate(claims, stranger), server.base_url, allow_insecure_localhost=True
    )
    return Certificates(valid["qr_text"], second["qr_text"], revoked["qr_text"], unknown, holder_id, "张伟")


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite_template: Path) -> Iterator[AppServer]:
    """The app for the whole browser session (the offline test starts its own, because it stops it)."""
    server = AppServer.start(tmp_path_factory.mktemp("app"), migrated_sqlite_template)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def certificates(app_server: AppServer) -> Certificates:
    """The seeded certificates of :func:`app_server`."""
    return seed(app_server)


@pytest.fixture
def start_server(tmp_path: Path, migrated_sqlite_template: Path) -> Iterator[Callable[..., AppServer]]:
    """Start a private app for one test (``serve.py`` options as arguments); stopped at the end if still running."""
    started: list[AppServer] = []

    def start(*options: str) -> AppServer:
        server = AppServer.start(tmp_path, migrated_sqlite_template, *options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """The Playwright driver."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    instance = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args())
    yield instance
    instance.close()


@pytest.fixture
def launch(playwright: Playwright) -> Iterator[Callable[..., Browser]]:
    """Launch a separate Chromium with extra flags (e.g. a fake camera); closed after the test."""
    launched: list[Browser] = []

    def start(*extra: str) -> Browser:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(*extra))
        launched.append(instance)
        return instance

    yield start
    for instance in launched:
        instance.close()


def phone_context(browser: Browser, *, locale: str = "zh-CN") -> BrowserContext:
    """A fresh phone-sized context (390x844, touch), as a first visit sees it."""
    return browser.new_context(
        viewport=PHONE_VIEWPORT, device_scale_factor=2, is_mobile=True, has_touch=True, locale=locale
    )


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A page in a fresh phone context with Chinese as the browser language."""
    context = phone_context(browser)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """``test-output/browser`` at the repository root (gitignored): screenshots and measurements."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUTPUT_DIR


@pytest.fixture(scope="session")
def screenshot(output_dir: Path) -> Callable[..., Path]:
    """Save a phone screenshot in the output folder; with CERTSEAL_UPDATE_DOC_IMAGES=1 also in ``docs/img``."""

    def save(page: Page, name: str, *, doc_name: str | None = None) -> Path:
        path = output_dir / f"{name}.png"
        page.screenshot(path=str(path))
        if doc_name and os.environ.get("CERTSEAL_UPDATE_DOC_IMAGES") == "1":
            DOC_IMAGES.mkdir(parents=True, exist_ok=True)
            (DOC_IMAGES / doc_name).write_bytes(path.read_bytes())
        return path

    return save


def settled(page: Page, timeout: float = 10_000) -> dict[str, str | None]:
    """Wait for a settled verdict and return the result element's verdict, source and panel class."""
    result = page.wait_for_selector(SETTLED, timeout=timeout)
    assert result is not None
    return {
        "verdict": result.get_attribute("data-verdict"),
        "source": result.get_attribute("data-source"),
        "panel": page.get_attribute("#panel", "class"),
    }


def reasons(page: Page) -> list[str]:
    """The reason codes listed on the result screen."""
    return page.eval_on_selector_all("#reasons li", "items => items.map((item) => item.dataset.reason)")  # type: ignore[no-any-return]


def tamper(qr_url: str) -> str:
    """Change one digit inside the signature (the last 64 bytes): the second-to-last full 17-digit group."""
    location, _, digits = qr_url.partition("#")
    position = (len(digits) // 17 - 2) * 17 + 10
    changed = str((int(digits[position]) + 1) % 10)
    return f"{location}#{digits[:position]}{changed}{digits[position + 1 :]}"
