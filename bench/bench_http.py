"""HTTP benchmark: POST /v1/verify against GET /healthz on the same server, same load tool, one run.

Starts `certseal serve` on a fresh SQLite database holding >= 1,000 distinct certificates, drives
both endpoints with wrk at a fixed concurrency (32 connections, one thread), cycling through every
certificate (no verdict cache exists to hit), and prints the rates, p50/p99 latency and the ratio.

Run: python3 bench/bench_http.py [--certificates 1000] [--seconds 10]   (needs `wrk`: apt-get install wrk)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import check_accepts, free_port, run_wrk, wait_until_healthy, write_verify_script  # noqa: E402
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
        bodies = [{"qr": text, "purpose": "hot_work"} for text in texts]
        script = write_verify_script(Path(tmp) / "verify.lua", bodies)
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
            wait_until_healthy(server, base)
            check_accepts(base, bodies[0])
            load = {"connections": CONNECTIONS, "server_pid": server.pid}
            run_wrk(f"{base}/healthz", seconds=2, **load)  # warm-up
            run_wrk(base, seconds=2, script=script, **load)
            health = run_wrk(f"{base}/healthz", seconds=args.seconds, **load)
            verify = run_wrk(base, seconds=args.seconds, script=script, **load)
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
