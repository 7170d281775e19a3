"""A revocation made through the API reaches the phone offline, with the service's own trust and status lists.

No fixtures here: the app holds a trust anchor and signs its trust list itself, and serves the status
lists it keeps in step with the registry. The phone visits once online, goes offline (a site without
signal) and judges from what it cached; back online, one refresh brings the revocation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from api.settings import DEMO_SECRETS
from crypto import SigningKey

from .conftest import ADMIN_HEADERS, ISSUER_CODE, PHONE_VIEWPORT, AppServer, reasons, seed, settled

pytestmark = pytest.mark.browser

LIST_TTL_SECONDS = 10  # the smallest ttl the settings allow: the test waits it out once
LISTS_REFRESHED = "() => performance.getEntriesByName('certseal-lists-refreshed').length > 0"
REFRESH_NOW = """async () => {
  performance.clearMarks('certseal-lists-refreshed');
  const status = await import('/static/status.js');
  await status.refreshLists(JSON.parse(document.body.dataset.config).trust_anchor);
}"""


def verdict_of(context: BrowserContext, qr_url: str) -> dict[str, Any]:
    """Open a card and read the settled verdict, its reasons and where its status came from."""
    page = context.new_page()
    page.goto(qr_url)
    result = settled(page)
    found = {
        **result,
        "reasons": reasons(page),
        "status_source": page.get_attribute("#result", "data-status-source"),
    }
    page.close()
    return found


def online_with_lists(context: BrowserContext, qr_url: str) -> Page:
    """One online verdict, with the service worker in control and the lists fetched once."""
    page = context.new_page()
    page.goto(qr_url)
    settled(page)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=15_000)
    page.wait_for_function(LISTS_REFRESHED, timeout=15_000)
    return page


@pytest.fixture
def signing_server(tmp_path: Path, start_server: Callable[..., AppServer]) -> AppServer:
    """An app holding a trust anchor (it signs the trust list) with a 10-second status-list ttl."""
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(SigningKey.generate("ES256").to_pem(DEMO_SECRETS["trust_anchor_passphrase"].encode()))
    return start_server("--trust-anchor-key", str(anchor), "--status-list-ttl", str(LIST_TTL_SECONDS))


def test_revocation_through_the_api_reaches_the_phone_offline_after_one_refresh(
    browser: Browser, signing_server: AppServer
):
    """Accepted online and offline (green, from the list) before the revocation, red offline after one refresh."""
    certificates = seed(signing_server)
    context = browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True, locale="zh-CN")
    with httpx.Client(base_url=signing_server.base_url, timeout=30) as client:
        token = client.post(
            f"/v1/issuers/{ISSUER_CODE}/api-keys", headers=ADMIN_HEADERS, json={"label": "revoker"}
        ).json()["token"]
        card = client.post("/v1/verify", json={"qr": certificates.valid_second}).json()["certificate"]
        listing = client.get(
            "/v1/certificates", params={"limit": 50}, headers={"Authorization": f"Bearer {token}"}
        ).json()
    (certificate_id,) = [item["id"] for item in listing["items"] if item["serial"] == card["serial"]]
    page = online_with_lists(context, certificates.valid_second)
    online_before = verdict_of(context, certificates.valid_second)
    context.set_offline(True)
    offline_before = verdict_of(context, certificates.valid_second)
    offline_revoked_earlier = verdict_of(context, certificates.revoked)
    context.set_offline(False)

    revoked = httpx.post(
        f"{signing_server.base_url}/v1/certificates/{certificate_id}/revoke",
        headers={"Authorization": f"Bearer {token}"},
        json={"reason": "证件系伪造材料取得"},
        timeout=30,
    )
    page.wait_for_timeout((LIST_TTL_SECONDS + 1) * 1000)  # the cached list's ttl runs out
    page.evaluate(REFRESH_NOW)
    context.set_offline(True)
    offline_after = verdict_of(context, certificates.valid_second)
    context.close()

    assert (online_before["verdict"], online_before["status_source"]) == ("accept", "online")
    assert (offline_before["verdict"], offline_before["panel"], offline_before["status_source"]) == (
        "accept",
        "panel accept",
        "list",
    )
    assert (offline_revoked_earlier["verdict"], offline_revoked_earlier["reasons"]) == ("reject", ["revoked"])
    assert revoked.status_code == 200
    assert (offline_after["verdict"], offline_after["reasons"], offline_after["status_source"]) == (
        "reject",
        ["revoked"],
        "list",
    )
