"""What the HTTP benchmarks share: a free port, waiting for a server, wrk runs and their figures, /proc CPU."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    wait_until_healthy(server, base)
    return server, base


def wait_until_healthy(server: subprocess.Popen[bytes], base: str, *, seconds: float = 60) -> None:
    """Wait until ``base``/healthz answers 200; kill the server and raise if it exits or stays silent."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            if server.poll() is not None:
                break
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"the server at {base} did not start")


def check_accepts(base: str, body: dict[str, Any]) -> None:
    """One verify of a genuine certificate must answer accept, or the figures would measure rejects."""
    verdict = httpx.post(f"{base}/v1/verify", json=body, timeout=10).json()
    if verdict.get("decision") != "accept":
        raise RuntimeError(f"a genuine certificate was not accepted: {verdict}")


def write_verify_script(path: Path, bodies: Sequence[dict[str, Any]]) -> Path:
    """A wrk Lua script at ``path`` posting each verify body to /v1/verify in turn."""
    encoded = [json.dumps(body) for body in bodies]
    path.write_text(
        "local bodies = {\n"
        + ",\n".join(json.dumps(body) for body in encoded)
        + "\n}\nlocal i = 0\nrequest = function()\n  i = (i % #bodies) + 1\n"
        '  return wrk.format("POST", "/v1/verify", {["Content-Type"] = "application/json"}, bodies[i])\nend\n',
        encoding="utf-8",
    )
    return path


def process_tree(root: int) -> list[int]:
    """``root`` and every live descendant (from the parent ids in /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    pids, pending = [], [root]
    while pending:
        pid = pending.pop()
        pids.append(pid)
        pending.extend(children.get(pid, ()))
    return pids


def tree_cpu_seconds(root: int) -> float:
    """User plus system CPU time (all threads) so far, summed over a process and its live descendants."""
    ticks = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    script: Path | None = None,
    threads: int = 1,
    server_pid: int | None = None,
) -> dict[str, float]:
    """One wrk run: :func:`parse_wrk`'s figures, plus the server tree's CPU µs per request with ``server_pid``."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    before = tree_cpu_seconds(server_pid) if server_pid is not None else 0.0
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    figures = parse_wrk(out)
    if server_pid is not None:
        figures["cpu_us"] = (tree_cpu_seconds(server_pid) - before) / max(figures["requests"], 1) * 1e6
    return figures


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
