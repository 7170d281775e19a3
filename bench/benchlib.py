"""What the HTTP benchmarks share: a free port, a demo server on a fresh migrated database, wrk's figures."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Ask the kernel for a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_demo_server(boot: str, mode: str, folder: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """Migrate a fresh SQLite database, start ``certseal serve --demo`` on it through ``boot``; return it and its URL.

    ``boot`` is a ``python -c`` program that receives ``mode`` and then the CLI arguments, so a bench can
    patch the server (e.g. an older code path) before the CLI runs.
    """
    database = f"sqlite:///{folder / f'{mode}.db'}"
    subprocess.run(
        [sys.executable, "-m", "api.cli", "db", "upgrade", "--database", database],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", boot, mode, "serve", "--demo", "--database", database, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return server, base
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("server did not start")


def parse_wrk(out: str) -> dict[str, float]:
    """Requests/s, request count, p50 and p99 in ms and non-2xx answers from wrk's ``--latency`` output."""
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rate": rate,
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "p50": percentile("50"),
        "p99": percentile("99"),
        "non2xx": float(errors.group(1)) if errors else 0,
    }
