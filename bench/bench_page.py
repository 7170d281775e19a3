"""Time to verdict on the phone page, in Debian's Chromium on a phone viewport: fast network and 3G.

Not part of the test run (the browser tests check what the page shows, not how fast). From the project
root, with the test extras and the ``chromium`` package installed:

    python3 bench/bench_page.py                 # 5 rounds of each row
    python3 bench/bench_page.py --rounds 10

Every row is a first visit in a fresh browser context (empty cache, no service worker) except "offline",
which is a second card after one visit with the network cut. The milliseconds are the page's own
``performance.mark`` times from navigation start: ``certseal-signature-verdict`` (the phone verified the
signature itself and shows it) and ``certseal-verdict`` (the settled verdict, online or offline). "3G" is
DevTools' "Fast 3G" preset (150 ms added latency, 1.6 Mbit/s down, 750 kbit/s up) applied through the
DevTools protocol. The target the page was built to: a settled verdict within one
second on a fast network, and the first visit's transfer under 150 KB (the browser tests assert the bytes).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402 -- after the path setup

from tests.browser.conftest import (  # noqa: E402
    CHROMIUM,
    AppServer,
    chromium_args,
    phone_context,
    seed,
    settled,
)

# DevTools' "Fast 3G": 150 ms added latency, about 1.6 Mbit/s down and 750 kbit/s up.
FAST_3G = {"offline": False, "latency": 150, "downloadThroughput": 1_600_000 / 8, "uploadThroughput": 750_000 / 8}
VERDICT_TARGET_MS = 1000


def verdict_times(page: Page) -> dict[str, float]:
    """Milliseconds from navigation start to the phone's own verdict, its display (if shown) and the settled one."""
    return page.evaluate(  # type: ignore[no-any-return]
        """() => Object.fromEntries(['certseal-local-verdict', 'certseal-verdict']
             .concat(['certseal-signature-verdict'])
             .map((name) => [name, (performance.getEntriesByName(name)[0] || {}).startTime ?? null]))"""
    )


def first_visit(browser: Browser, url: str, *, network: dict[str, object] | None) -> dict[str, float]:
    """Open ``url`` in a fresh phone context (optionally throttled) and return the page's verdict times."""
    context = phone_context(browser)
    page = context.new_page()
    if network is not None:
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", network)
    page.goto(url, timeout=60_000)
    result = settled(page, timeout=60_000)
    times = verdict_times(page)
    context.close()
    if result["source"] != "online" or result["verdict"] != "accept":
        raise RuntimeError(f"expected an online accept, got {result}")
    return times


def offline_second_card(browser: Browser, server: AppServer, first_url: str, second_url: str) -> dict[str, float]:
    """Visit one card, cut the network, open another: the service worker's offline verdict times."""
    context = phone_context(browser)
    first = context.new_page()
    first.goto(first_url)
    settled(first)
    first.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=15_000)
    context.set_offline(True)
    second = context.new_page()
    second.goto(second_url)
    result = settled(second)
    times = verdict_times(second)
    context.set_offline(False)
    context.close()
    if result["source"] != "offline":
        raise RuntimeError(f"expected an offline verdict, got {result}")
    return times


def summary(values: list[float]) -> str:
    """``median (min-max)`` in milliseconds."""
    return f"{statistics.median(values):6.0f} ({min(values):.0f}-{max(values):.0f})"


def main() -> None:
    """Start a server, seed certificates, run every row ``--rounds`` times and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="certseal-bench-page-") as folder:
        template = Path(folder) / "template.db"
        subprocess.run(
            [sys.executable, "-m", "api.cli", "db", "upgrade", "--database", f"sqlite:///{template}"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        server = AppServer.start(Path(folder), template)
        try:
            certificates = seed(server)
            rows: dict[str, list[dict[str, float]]] = {"fast network": [], "3G": [], "offline (2nd card)": []}
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args())
                for _ in range(args.rounds):  # interleaved, so a busy moment hits every row alike
                    rows["fast network"].append(first_visit(browser, certificates.valid, network=None))
                    rows["3G"].append(first_visit(browser, certificates.valid, network=FAST_3G))
                    rows["offline (2nd card)"].append(
                        offline_second_card(browser, server, certificates.valid, certificates.valid_second)
                    )
                browser.close()
        finally:
            server.stop()
    print(f"time to verdict on the phone page, ms from navigation start: median (min-max) of {args.rounds} rounds")
    print(f"{'row':<20} {'signature verdict':>22} {'settled verdict':>22}   target {VERDICT_TARGET_MS} ms (fast)")
    for name, runs in rows.items():
        signature = [run["certseal-signature-verdict"] for run in runs if run.get("certseal-signature-verdict")]
        verdict = [run["certseal-verdict"] for run in runs]
        print(f"{name:<20} {summary(signature) if signature else '-':>22} {summary(verdict):>22}")


if __name__ == "__main__":
    main()
