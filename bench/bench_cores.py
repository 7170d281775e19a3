"""Cores benchmark: verify throughput on 1 and 2 workers, and server CPU per verify against a raw ES256 verify.

Seeds a fresh SQLite database with the demo data and >= 1,000 distinct certificates, starts two
`certseal serve --demo --workers N` servers on it (N = 1 and N = 2), and drives `POST /v1/verify`
(cycling every certificate, `purpose: hot_work`) with wrk, alternating the two servers round by round
and measuring a raw ES256 verify in this process between rounds, so every figure comes from the same
run. The server's CPU is utime + stime of every process of the server (the uvicorn parent and its
workers, from /proc), divided by the requests wrk completed. The raw ES256 verify is cryptography's
`public_key.verify(der_signature, data, ECDSA(SHA256()))` on a P-256 key, best of the rounds.

Run: python3 bench/bench_cores.py [--certificates 1000] [--seconds 8] [--rounds 3]   (needs `wrk`)
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_http import seed  # noqa: E402 -- after the path setup
from benchlib import check_accepts, free_port, run_wrk, wait_until_healthy, write_verify_script  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402


def raw_es256_us(count: int = 2000) -> float:
    """µs per cryptography ES256 verify (P-256, SHA-256, DER signature) over a Sig_structure-sized message."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    messages = [os.urandom(260) for _ in range(50)]
    signatures = [key.sign(m, ec.ECDSA(hashes.SHA256())) for m in messages]
    pairs = [(signatures[i % 50], messages[i % 50]) for i in range(count)]
    algorithm = ec.ECDSA(hashes.SHA256())
    gc.disable()
    try:
        started = time.perf_counter()
        for signature, message in pairs:
            public.verify(signature, message, algorithm)
        return (time.perf_counter() - started) / count * 1e6
    finally:
        gc.enable()


def start(
    database_url: str, workers: int, env: dict[str, str], extra: list[str], tree: Path = ROOT
) -> tuple[subprocess.Popen[bytes], str]:
    """``certseal serve --demo --workers N`` (from source ``tree``) on a free port; waits until every worker answers."""
    env = {**env, "PYTHONPATH": str(tree)}
    port = free_port()
    command = [sys.executable, "-m", "api.cli", "serve", "--demo", "--database", database_url, "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--workers", str(workers), *extra],
        env=env,
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_healthy(server, base)
    time.sleep(2.0 if workers > 1 else 0.2)  # every worker up (the first to answer is not the last)
    return server, base


def main() -> int:
    """Seed, serve on 1 and 2 workers, alternate wrk runs with raw ES256 rounds, print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certificates", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--server-args", default="", help="extra `certseal serve` arguments for every server")
    parser.add_argument("--no-pinned", action="store_true", help="skip the two --pin-cpus servers")
    parser.add_argument("--compare-tree", help="also serve from this source tree (1 and 2 workers), e.g. an old commit")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/bench.db"
        started = time.perf_counter()
        texts = seed(database_url, "http://127.0.0.1:8000", args.certificates)
        print(f"seeded {len(texts)} distinct certificates (SQLite) in {time.perf_counter() - started:.1f} s")
        bodies = [{"qr": text, "purpose": "hot_work"} for text in texts]
        script = write_verify_script(Path(tmp) / "verify.lua", bodies)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CERTSEAL_VERIFY_RATE_PER_MINUTE": str(10**9),  # the limiter would stop one client
            "CERTSEAL_PUBLIC_BASE_URL": "http://127.0.0.1:8000",
            "CERTSEAL_LOG_FORMAT": "json",  # as deployed (demo mode would log text): JSON access lines, metrics on
        }
        extra = args.server_args.split()
        plural = {1: "1 worker", 2: "2 workers"}
        sides = [(plural[n], n, extra, ROOT) for n in (1, 2)]
        if not args.no_pinned:
            sides += [(f"{plural[n]}, --pin-cpus", n, [*extra, "--pin-cpus"], ROOT) for n in (1, 2)]
        if args.compare_tree:  # the same bench against another checkout (e.g. `git archive` of an older commit)
            sides = [(f"before: {plural[n]}", n, extra, Path(args.compare_tree)) for n in (1, 2)] + sides
        servers = {label: start(database_url, n, env, more, tree) for label, n, more, tree in sides}
        results: dict[str, list[dict[str, float]]] = {label: [] for label in servers}
        raw: list[float] = []
        try:
            for server, base in servers.values():
                check_accepts(base, bodies[0])
                run_wrk(base, seconds=2, script=script, connections=args.connections, server_pid=server.pid)
            labels = list(servers)
            for round_ in range(args.rounds):
                for label in labels if round_ % 2 == 0 else labels[::-1]:
                    server, base = servers[label]
                    results[label].append(
                        run_wrk(
                            base,
                            seconds=args.seconds,
                            script=script,
                            connections=args.connections,
                            server_pid=server.pid,
                        )
                    )
                    raw.append(raw_es256_us())
        finally:
            for server, _ in servers.values():
                server.terminate()
            for server, _ in servers.values():
                server.wait(timeout=15)
    es256 = min(raw)
    median = sorted(raw)[len(raw) // 2]
    print(
        f"\nwrk, 1 thread, {args.connections} connections, {args.seconds} s x {args.rounds} rounds per side, "
        f"sides interleaved; SQLite; {len(texts)} distinct certificates; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"raw ES256 verify (best of {len(raw)} rounds of 2,000): {es256:.1f} µs (median {median:.1f})\n")
    print(f"{'server':<26}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'non-2xx':>8}{'CPU µs/verify':>15}{'÷ ES256':>9}")
    best: dict[str, dict[str, float]] = {}
    for label, runs in results.items():
        cpus = sorted(r["cpu_us"] for r in runs)
        best[label] = {"rate": max(r["rate"] for r in runs), "cpu": cpus[0]}
        p50 = min(r["p50"] for r in runs)
        p99 = min(r["p99"] for r in runs)
        errors = sum(r["non2xx"] for r in runs)
        print(
            f"{label:<26}{best[label]['rate']:>8.0f}{p50:>8.2f}{p99:>8.2f}{errors:>8.0f}"
            f"{cpus[0]:>15.0f}{cpus[0] / es256:>9.2f}"
        )
        rates = ", ".join(f"{r['rate']:.0f}" for r in runs)
        cpu_runs = ", ".join(f"{r['cpu_us']:.0f}" for r in runs)
        print(f"{'':<4}rounds: req/s {rates}; CPU µs {cpu_runs} (median {cpus[len(cpus) // 2]:.0f})")
    print("\nbest round per side (highest req/s, lowest CPU µs); ratio = CPU µs per verify / raw ES256 µs")
    print("(must be <= 5, goal <= 4; JSON access log and metrics on, as deployed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
