"""The online verdict never waits for the key list, and a silent /v1/verify gives amber, then the real verdict.

Requests are held with Playwright routes, so nothing here depends on how fast the machine is: the tests say
which verdict comes while which request is still held. How fast it comes is ``bench/bench_page.py``'s job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Route
from playwright.sync_api import Error as PlaywrightError

from .conftest import Certificates, phone_context, settled

pytestmark = pytest.mark.browser

MARKS = "() => performance.getEntriesByType('mark').map((mark) => mark.name)"


def release(held: list[Route]) -> None:
    """Let held requests go on (a route Playwright already handed back is skipped)."""
    for route in held:
        with contextlib.suppress(PlaywrightError):
            route.continue_()


@pytest.mark.parametrize("saved_keys", [False, True], ids=["first-visit", "saved-key-list"])
def test_verdict_comes_from_verify_while_the_key_list_hangs(
    browser: Browser, certificates: Certificates, saved_keys: bool
):
    """GET /v1/keys held: the server's verdict is shown without it (first visit, and with a saved key list)."""
    context = phone_context(browser)
    if saved_keys:
        warm = context.new_page()
        warm.goto(certificates.valid_second)
        settled(warm)
        warm.close()
    held: list[Route] = []
    context.route("**/v1/keys", lambda route: held.append(route))
    page = context.new_page()
    page.goto(certificates.valid)
    result = settled(page)
    waiting = len(held)
    marks = page.evaluate(MARKS)
    holder = page.text_content("#holder-name")
    context.unroute("**/v1/keys")
    release(held)
    context.close()

    assert result == {"verdict": "accept", "source": "online", "panel": "panel accept"}
    assert holder == certificates.holder_name
    assert waiting >= 1
    assert "certseal-online-verdict" in marks
    assert "certseal-amber" not in marks
    if saved_keys:
        assert "certseal-signature-verdict" in marks  # the saved list verified the signature meanwhile


def test_silent_verify_gives_amber_then_the_online_verdict(
    browser: Browser, certificates: Certificates, screenshot: Callable[..., Path]
):
    """POST /v1/verify held: after ~3 s the phone's amber verdict settles; released, the online verdict replaces it."""
    context = phone_context(browser)
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    context.route("**/v1/verify", hold)
    page = context.new_page()
    page.goto(certificates.revoked)
    amber = settled(page)
    amber_text = page.text_content("#panel") or ""
    amber_marks = page.evaluate(MARKS)
    screenshot(page, "verdict-amber-verify-silent")
    context.unroute("**/v1/verify")
    release(held)
    page.wait_for_selector("#result[data-source='online']", timeout=15_000)
    online = settled(page)
    online_reasons = page.eval_on_selector_all("#reasons li", "items => items.map((item) => item.dataset.reason)")
    context.close()

    assert len(held) == 1
    assert amber == {"verdict": "accept", "source": "offline", "panel": "panel offline"}
    assert "服务器响应慢，仍在等待" in amber_text
    assert "certseal-amber" in amber_marks
    assert "certseal-online-verdict" not in amber_marks
    assert online == {"verdict": "reject", "source": "online", "panel": "panel reject"}
    assert online_reasons == ["revoked"]
