"""HTTP benchmark: POST /v1/verify against GET /healthz on the same server, same load tool, one run.

Starts `certseal serve` on a fresh SQLite database holding >= 1,000 distinct certificates, drives
both endpoints with wrk at a fixed concurrency (32 connections, one thread), cycling through every
certificate (no verdict cache exists to hit), and prints the rates, p50/p99 latency and the ratio.

Run: python3 bench/bench_http.py [--certificates 1000] [--seconds 10]   (needs `wrk`: apt-get install wrk)
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
import urllib.request
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import free_port, parse_wrk  # noqa: E402
from sqlmodel import Session, select  # noqa: E402 -- after the path setup

from api.db import make_engine  # noqa: E402
from api.demo import demo_id_number, seed_demo  # noqa: E402
from api.migrate import upgrade  # noqa: E402
from api.models import Issuer  # noqa: E402
from api.runtime import load_settings, runtime  # noqa: E402
from api.services import issuance  # noqa: E402
from crypto import CST  # noqa: E402
from schemas.api import CertificateCreate  # noqa: E402

CONNECTIONS = 32
NAMES = ["张伟", "王芳", "李强", "刘洋", "陈杰", "杨静", "赵磊", "黄敏"]


def seed(database_url: str, base_url: str, count: int) -> list[str]:
    """Create the demo issuer and ``count`` more distinct certificates; return their QR texts."""
    settings = load_settings(demo=True, database_url=database_url, public_base_url=base_url)
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    texts = []
    with runtime(settings) as rt, Session(rt.engine, expire_on_commit=False) as session:
        seed_demo(rt)
        issuer = session.exec(select(Issuer).where(Issuer.code == "CN-44")).one()
        now = datetime.now(CST)
        for i in range(count):
            request = CertificateCreate(
                holder_name=NAMES[i % len(NAMES)],
                holder_id_number=demo_id_number(f"19{70 + i % 30:02d}0{1 + i % 9}1{i % 9}", f"{i % 1000:03d}"),
                operation="2.1",
                issue_date=date(2025, 1 + i % 12, 1 + i % 28),
            )
            certificate = issuance.issue_certificate(
                session, rt.keyring, issuer=issuer, request=request, settings=settings, catalogue=rt.catalogue, now=now
            )
            texts.append(issuance.qr_text_of(certificate, settings))
        session.commit()
    return texts


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its threads so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, seconds: int, script: Path | None, server_pid: int) -> dict[str, float]:
    """Run wrk and return requests/s, latency percentiles in ms and the server's CPU per request in µs."""
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    cpu_before = cpu_seconds(server_pid)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(server_pid) - cpu_before
    figures = parse_wrk(out)
    return {**figures, "cpu_us": cpu / max(figures["requests"], 1) * 1e6}


def main() -> int:
    """Seed, serve, load both endpoints, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certificates", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/bench.db"
        started = time.perf_counter()
        texts = seed(database_url, base, args.certificates)
        print(f"seeded {len(texts)} distinct certificates in {time.perf_counter() - started:.1f} s")
        bodies = [json.dumps({"qr": text, "purpose": "hot_work"}) for text in texts]
        script = Path(tmp) / "verify.lua"
        script.write_text(
            "local bodies = {\n"
            + ",\n".join(json.dumps(body) for body in bodies)
            + "\n}\nlocal i = 0\nrequest = function()\n  i = (i % #bodies) + 1\n"
            '  return wrk.format("POST", "/v1/verify", {["Content-Type"] = "application/json"}, bodies[i])\nend\n',
            encoding="utf-8",
        )
        env = {
            **os.environ,
            "CERTSEAL_VERIFY_RATE_PER_MINUTE": str(10**9),  # the limiter would stop one client
            "CERTSEAL_LOG_FORMAT": "json",  # as deployed (demo mode would log text): JSON access lines, metrics on
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--demo", "--database", database_url, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=1)  # noqa: S310 -- our own loopback server
                    break
                except OSError:
                    time.sleep(0.1)
            check = urllib.request.Request(  # noqa: S310 -- loopback
                f"{base}/v1/verify", data=bodies[0].encode(), headers={"Content-Type": "application/json"}
            )
            verdict = json.load(urllib.request.urlopen(check))  # noqa: S310 -- loopback
            assert verdict["decision"] == "accept", verdict
            wrk(f"{base}/healthz", 2, None, server.pid)  # warm-up
            wrk(base, 2, script, server.pid)
            health = wrk(f"{base}/healthz", args.seconds, None, server.pid)
            verify = wrk(base, args.seconds, script, server.pid)
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"\nwrk, 1 thread, {CONNECTIONS} connections, {args.seconds} s each, {len(texts)} distinct certificates")
    print(f"{'endpoint':<18}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}{'CPU µs/req':>12}")
    for name, f in (("GET /healthz", health), ("POST /v1/verify", verify)):
        print(f"{name:<18}{f['rate']:>10.0f}{f['p50']:>10.2f}{f['p99']:>10.2f}{f['non2xx']:>10.0f}{f['cpu_us']:>12.0f}")
    ratio = verify["rate"] / health["rate"]
    print(
        f"\nverify / healthz throughput: {ratio:.2f}  (goal >= 0.60); verify p99 {verify['p99']:.1f} ms (goal < 50 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
