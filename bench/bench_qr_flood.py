"""Verify under a QR-image flood: POST /v1/verify's rate alone and while public qr.png requests flood the server.

Starts `certseal serve --demo` on a fresh, migrated SQLite database, reads the demo certificates through
the demo issuer's API key, and drives POST /v1/verify with wrk (one thread, 32 connections) for
``--seconds``: once alone, and once while a second wrk (one thread, 32 connections) floods GET
/v1/certificates/{id}/qr.png cycling through every certificate and every allowed scale (4, 8, 12, 16).
Then the same again on a server whose QR image cache is switched off (patched into the server process
by this script, for comparison only): every image request renders its PNG, as before the cache.
Prints verify's rate and latency for each case side by side, with the flood's own rate.

Run: python3 bench/bench_qr_flood.py [--seconds 10]   (needs `wrk`: apt-get install wrk)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402 -- after the path setup
from benchlib import parse_wrk, start_demo_server  # noqa: E402

from api.services.qrcache import QR_SCALES  # noqa: E402
from api.settings import DEMO_ISSUER_API_KEY  # noqa: E402

CONNECTIONS = 32
# The server process, started as `python3 -c BOOT <mode> <cli arguments>`; "uncached" turns the cache off.
BOOT = """
import sys
if sys.argv[1] == "uncached":
    from api.services.qrcache import qr_images
    qr_images.max_entries = 0  # every image is evicted as soon as it is stored: each request renders
from api.cli import main
sys.exit(main(sys.argv[2:]))
"""


def lua_cycle(path: Path, requests: list[tuple[str, str, str | None]]) -> Path:
    """A wrk script cycling through ``(method, path, JSON body or None)`` requests."""
    entries = ",\n".join(
        "{" + json.dumps(method) + ", " + json.dumps(target) + ", " + (json.dumps(body) if body else "nil") + "}"
        for method, target, body in requests
    )
    path.write_text(
        "local requests = {\n" + entries + "\n}\nlocal i = 0\nrequest = function()\n"
        "  i = (i % #requests) + 1\n  local r = requests[i]\n"
        '  if r[3] then return wrk.format(r[1], r[2], {["Content-Type"] = "application/json"}, r[3]) end\n'
        "  return wrk.format(r[1], r[2])\nend\n",
        encoding="utf-8",
    )
    return path


def wrk_command(base: str, script: Path, seconds: int) -> list[str]:
    """wrk with one thread and CONNECTIONS connections, latency percentiles on."""
    return ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(script), base]


def start_server(mode: str, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Migrate a fresh database and start the server (verify limit off); return it and its base URL."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CERTSEAL_")}
    env |= {"PYTHONPATH": str(ROOT), "CERTSEAL_VERIFY_RATE_PER_MINUTE": str(10**9)}
    return start_demo_server(BOOT, mode, folder, env)


def measure(mode: str, folder: Path, seconds: int) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Verify alone, then verify during the flood; returns (alone, during, flood) figures."""
    server, base = start_server(mode, folder)
    try:
        listed = httpx.get(f"{base}/v1/certificates", headers={"Authorization": f"Bearer {DEMO_ISSUER_API_KEY}"})
        items = listed.json()["items"]
        verify_script = lua_cycle(
            folder / "verify.lua",
            [("POST", "/v1/verify", json.dumps({"qr": item["qr_text"], "purpose": "hot_work"})) for item in items],
        )
        flood_script = lua_cycle(
            folder / "flood.lua",
            [("GET", f"{item['links']['qr_png']}?scale={scale}", None) for item in items for scale in QR_SCALES],
        )
        subprocess.run(wrk_command(base, verify_script, 2), check=True, capture_output=True)  # warm-up
        alone = parse_wrk(
            subprocess.run(wrk_command(base, verify_script, seconds), check=True, capture_output=True, text=True).stdout
        )
        flood = subprocess.Popen(wrk_command(base, flood_script, seconds + 2), stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        during = parse_wrk(
            subprocess.run(wrk_command(base, verify_script, seconds), check=True, capture_output=True, text=True).stdout
        )
        flooded = parse_wrk(flood.communicate(timeout=seconds + 60)[0])
    finally:
        server.terminate()
        server.wait(timeout=30)
    return alone, during, flooded


def main() -> int:
    """Measure both servers; print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        cached = measure("cached", Path(tmp), args.seconds)
        uncached = measure("uncached", Path(tmp), args.seconds)
    print(f"\nwrk, 1 thread, {CONNECTIONS} connections each, {args.seconds} s; flood: qr.png at scales {QR_SCALES}")
    print(f"{'POST /v1/verify':<44}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'flood req/s':>13}")
    rows = [
        ("alone (cache on)", cached[0], None),
        ("during the qr.png flood (cache on, shipped)", cached[1], cached[2]),
        ("alone (cache off)", uncached[0], None),
        ("during the qr.png flood (cache off)", uncached[1], uncached[2]),
    ]
    for name, figures, flood in rows:
        flood_rate = f"{flood['rate']:>13.0f}" if flood else f"{'-':>13}"
        print(
            f"{name:<44}{figures['rate']:>9.0f}{figures['p50']:>9.1f}{figures['p99']:>9.1f}"
            f"{figures['non2xx']:>9.0f}{flood_rate}"
        )
    print(
        f"\nverify during the flood / alone: {cached[1]['rate'] / cached[0]['rate']:.2f} with the cache, "
        f"{uncached[1]['rate'] / uncached[0]['rate']:.2f} without"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
