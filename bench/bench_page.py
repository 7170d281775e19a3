"""Time to verdict on the phone page, on an emulated mid-range phone: cold and warm, Slow and Fast 3G.

Not part of the test run (the browser tests check what the page shows, not how fast). From the project
root, with the test extras and the ``chromium`` package installed:

    python3 bench/bench_page.py                 # 5 rounds of each row
    python3 bench/bench_page.py --rounds 10

The phone: Debian's Chromium, a 360x640 mobile viewport (Moto G4 class, DPR 3, touch), the page's CPU
slowed 4x (``Emulation.setCPUThrottlingRate``), and the network shaped through the DevTools protocol
(``Network.emulateNetworkConditions``) with current DevTools' presets:

    Fast 3G   562.5 ms latency, 1.44 Mbit/s down, 675 kbit/s up
    Slow 3G   400 ms latency, 400 kbit/s down and up (the profile issue 12 defines)
    old Fast 3G  150 ms latency, 1.6 Mbit/s down, 750 kbit/s up (older DevTools; for comparison)

The shaping applies to the page's own requests; the service worker is another target and is not shaped,
so "decoder cached after" is the worker's time on the unshaped loopback (on Slow 3G the decoder's ~410 KB
take about 8.5 s more), and a warm page's answers from the worker's cache are what a phone gets too.

Rows (every round runs each row once, interleaved, so a busy moment hits every row alike):

    cold            first visit in a fresh context: no cache, no service worker
    warm            a second card after one visit (service worker installed, key list and decoder cached)
    amber           warm, with POST /v1/verify held (a Playwright route): when the amber verdict settles
    keys held       first visit on Fast 3G with GET /v1/keys held: the online verdict does not wait for it
    offline         a second card with the network cut after one visit (service worker), no throttling
    decoder         after a cold visit, how long the service worker takes to cache the scanner's decoder

The milliseconds are the page's own ``performance.mark`` times from navigation start:
``certseal-verdict`` (the first settled verdict: online, or the phone's own when the server cannot answer
or is silent for 3 s), ``certseal-amber`` (settled before the server answered) and
``certseal-decoder-cached``. Targets (issue 12): warm median < 1 s on Fast 3G, cold < 3 s on Slow 3G,
amber at 3 s when /v1/verify hangs.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright  # noqa: E402 -- path setup
from playwright.sync_api import Error as PlaywrightError  # noqa: E402

from tests.browser.conftest import (  # noqa: E402
    CHROMIUM,
    AppServer,
    Certificates,
    chromium_args,
    seed,
    settled,
)

FAST_3G = {"offline": False, "latency": 562.5, "downloadThroughput": 1_440_000 / 8, "uploadThroughput": 675_000 / 8}
SLOW_3G = {"offline": False, "latency": 400, "downloadThroughput": 400_000 / 8, "uploadThroughput": 400_000 / 8}
# The preset older DevTools called "Fast 3G" (the page's earlier figures used it), for comparison.
OLD_FAST_3G = {"offline": False, "latency": 150, "downloadThroughput": 1_600_000 / 8, "uploadThroughput": 750_000 / 8}
NETWORKS = {"Slow 3G": SLOW_3G, "Fast 3G": FAST_3G, "old Fast 3G": OLD_FAST_3G}
CPU_SLOWDOWN = 4
PHONE = {"viewport": {"width": 360, "height": 640}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}
MARKS = ("certseal-signature-verdict", "certseal-verdict", "certseal-amber", "certseal-decoder-cached")
TARGETS = {"warm Fast 3G": 1000, "cold Slow 3G": 3000}
CONTROLLED = "() => navigator.serviceWorker.controller !== null"
DECODER_CACHED = "() => performance.getEntriesByName('certseal-decoder-cached').length > 0"


def marks(page: Page) -> dict[str, float | None]:
    """Milliseconds from navigation start to each of the page's marks (None when not reached)."""
    return page.evaluate(  # type: ignore[no-any-return]
        """(names) => Object.fromEntries(names.map((name) =>
             [name, (performance.getEntriesByName(name)[0] || {}).startTime ?? null]))""",
        list(MARKS),
    )


def phone_page(context: BrowserContext, network: dict[str, Any] | None) -> Page:
    """A new page in ``context`` with the phone's CPU slowdown and, if given, the network profile."""
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
    if network is not None:
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", network)
    return page


def new_context(browser: Browser) -> BrowserContext:
    """A fresh phone context (Chinese, as a site manager's phone)."""
    return browser.new_context(**PHONE, locale="zh-CN")  # type: ignore[arg-type]


def warmed(browser: Browser, certificates: Certificates) -> BrowserContext:
    """A context after one visit: service worker in control, key list saved, decoder cached."""
    context = new_context(browser)
    page = context.new_page()
    page.goto(certificates.valid)
    settled(page)
    page.wait_for_function(CONTROLLED, timeout=30_000)
    page.wait_for_function(DECODER_CACHED, timeout=60_000)
    page.close()
    return context


def drop(context: BrowserContext, pattern: str, held: list[Route]) -> None:
    """Stop holding requests: remove the route and abort what it held (a route handed back is skipped)."""
    context.unroute(pattern)
    for route in held:
        with contextlib.suppress(PlaywrightError):
            route.abort()


def expect(result: dict[str, str | None], source: str, verdict: str | None = "accept") -> None:
    if result["source"] != source or (verdict and result["verdict"] != verdict):
        raise RuntimeError(f"expected {verdict} {source}, got {result}")


def cold(browser: Browser, certificates: Certificates, network: dict[str, Any]) -> dict[str, float | None]:
    """First visit: the verdict, then (same page) how long until the decoder is cached in the background."""
    context = new_context(browser)
    page = phone_page(context, network)
    page.goto(certificates.valid, timeout=60_000)
    expect(settled(page, timeout=60_000), "online")
    page.wait_for_function(DECODER_CACHED, timeout=120_000)
    times = marks(page)
    context.close()
    return times


def warm(browser: Browser, certificates: Certificates, network: dict[str, Any]) -> dict[str, float | None]:
    """A second card after one visit."""
    context = warmed(browser, certificates)
    page = phone_page(context, network)
    page.goto(certificates.valid_second, timeout=60_000)
    expect(settled(page, timeout=60_000), "online")
    times = marks(page)
    context.close()
    return times


def amber(browser: Browser, certificates: Certificates, network: dict[str, Any]) -> dict[str, float | None]:
    """Warm, with POST /v1/verify held: the amber verdict's time."""
    context = warmed(browser, certificates)
    held: list[Route] = []
    context.route("**/v1/verify", lambda route: held.append(route))
    page = phone_page(context, network)
    page.goto(certificates.valid_second, timeout=60_000)
    expect(settled(page, timeout=60_000), "offline")
    times = marks(page)
    drop(context, "**/v1/verify", held)
    context.close()
    return times


def keys_held(browser: Browser, certificates: Certificates, network: dict[str, Any]) -> dict[str, float | None]:
    """First visit with GET /v1/keys held."""
    context = new_context(browser)
    held: list[Route] = []
    context.route("**/v1/keys", lambda route: held.append(route))
    page = phone_page(context, network)
    page.goto(certificates.valid, timeout=60_000)
    expect(settled(page, timeout=60_000), "online")
    times = marks(page)
    drop(context, "**/v1/keys", held)
    context.close()
    return times


def offline(browser: Browser, certificates: Certificates) -> dict[str, float | None]:
    """A second card after one visit, the network cut (no throttling: nothing goes to the network)."""
    context = warmed(browser, certificates)
    context.set_offline(True)
    page = phone_page(context, None)
    page.goto(certificates.valid_second)
    expect(settled(page), "offline")
    times = marks(page)
    context.close()
    return times


def summary(values: list[float]) -> str:
    """``median (min-max)`` in milliseconds."""
    if not values:
        return "-"
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def column(runs: list[dict[str, float | None]], mark: str, since: str | None = None) -> list[float]:
    values = []
    for run in runs:
        end, start = run.get(mark), run.get(since) if since else 0.0
        if end is not None and start is not None:
            values.append(end - start)
    return values


def main() -> None:
    """Start a server, seed certificates, run every row ``--rounds`` times and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows: dict[str, list[dict[str, float | None]]] = {}
    plan: dict[str, Callable[[Browser, Certificates], dict[str, float | None]]] = {}
    for name, network in NETWORKS.items():
        plan[f"cold {name}"] = lambda b, c, n=network: cold(b, c, n)
        plan[f"warm {name}"] = lambda b, c, n=network: warm(b, c, n)
        plan[f"amber {name}"] = lambda b, c, n=network: amber(b, c, n)
    plan["keys held Fast 3G"] = lambda b, c: keys_held(b, c, FAST_3G)
    plan["offline"] = offline
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
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args())
                for _ in range(args.rounds):
                    for name, run in plan.items():
                        rows.setdefault(name, []).append(run(browser, certificates))
                browser.close()
        finally:
            server.stop()
    print(
        f"emulated phone: 360x640, CPU {CPU_SLOWDOWN}x slower; ms from navigation start, "
        f"median (min-max) of {args.rounds} rounds"
    )
    print(f"{'':<12} {'cold (first visit)':>22} {'warm (2nd card)':>22} {'amber (verify held)':>22}")
    for name in NETWORKS:
        cells = [
            summary(column(rows[f"cold {name}"], "certseal-verdict")),
            summary(column(rows[f"warm {name}"], "certseal-verdict")),
            summary(column(rows[f"amber {name}"], "certseal-amber")),
        ]
        print(f"{name:<12} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22}")
    print()
    print(f"{'row':<22} {'signature verdict':>22} {'settled verdict':>22} {'decoder cached +ms':>22}")
    for name, runs in rows.items():
        decoder = summary(column(runs, "certseal-decoder-cached", "certseal-verdict")) if "cold" in name else ""
        verdict_mark = "certseal-amber" if name.startswith("amber") else "certseal-verdict"
        print(
            f"{name:<22} {summary(column(runs, 'certseal-signature-verdict')):>22} "
            f"{summary(column(runs, verdict_mark)):>22} {decoder:>22}"
        )
    for name, target in TARGETS.items():
        median = statistics.median(column(rows[name], "certseal-verdict"))
        print(f"target {name} < {target:,} ms: median {median:,.0f} ms, {'met' if median < target else 'NOT met'}")


if __name__ == "__main__":
    main()
