"""Soak: steady verify and issuance on two workers with PostgreSQL and Redis, watched for errors, memory and drops.

One run prints one table (not a test). It starts ``certseal serve --workers 2`` on a fresh PostgreSQL
database (127.0.0.1:5432) with rate limits in Redis (127.0.0.1:6379, database 5, emptied first), then for
``--seconds`` (default 60) keeps ``--verifiers`` clients verifying (each waits for its answer, then sends
the next; every tenth with the holder's ID number) and one client issuing a certificate every
``--issue-every`` seconds. Measured:

* answers by outcome: every verify must be 200 and every issuance 201 (zero errors);
* resident memory (RSS) of the server's processes (parent and workers) after a warm-up and at the end:
  growth must stay under 10 %;
* ``certseal_verification_events_dropped_total`` from ``/metrics``: must be 0 (the event writer kept up);
* verify p50/p99 and throughput, for the record.

Run: python3 bench/bench_soak.py [--seconds 60] [--verifiers 8] [--issue-every 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402 -- after the path setup
import redis  # noqa: E402
from benchlib import process_tree  # noqa: E402

from tests.concurrency.harness import (  # noqa: E402
    REDIS_PORT,
    Deployment,
    Provisioner,
    certificate_body,
    deploy,
    holder_name_for,
    id_number,
    percentile,
)

REDIS_BENCH_DB = 5
WARM_UP_SECONDS = 10.0
RSS_GROWTH_LIMIT = 0.10


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, MiB."""
    total_kib = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        total_kib += int(match.group(1)) if match else 0
    return total_kib / 1024


def metric(deployment: Deployment, name: str) -> float:
    """The summed value of a counter family in ``/metrics`` (all workers; 0 if absent)."""
    text = httpx.get(f"{deployment.url()}/metrics", timeout=10).text
    return sum(float(value) for value in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


async def soak(deployment: Deployment, qr_texts: list[tuple[str, str]], issuer_headers: dict[str, str], args):
    """Run the load; return (verify outcomes, issue outcomes, verify latencies, RSS after warm-up)."""
    stop_at = time.monotonic() + args.seconds
    verifies: Counter[str] = Counter()
    issues: Counter[str] = Counter()
    latencies: list[float] = []
    server_pid = deployment.servers[0].process.pid
    url = deployment.url()

    async def verifier(client: httpx.AsyncClient, seed: int) -> None:
        chooser = random.Random(seed)
        count = 0
        while time.monotonic() < stop_at:
            qr, holder = chooser.choice(qr_texts)
            body = {"qr": qr, "purpose": "hot_work"}
            if count % 10 == 0:
                body["holder_id_number"] = holder
            count += 1
            started = time.perf_counter()
            try:
                response = await client.post(f"{url}/v1/verify", json=body)
                outcome = f"{response.status_code} {response.json().get('decision', '')}".strip()
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            latencies.append(time.perf_counter() - started)
            verifies[outcome] += 1

    async def issuer(client: httpx.AsyncClient) -> None:
        number = 10_000
        while time.monotonic() < stop_at:
            number += 1
            body = certificate_body(id_number(sequence=number % 1000), name=holder_name_for(number))
            try:
                response = await client.post(f"{url}/v1/certificates", json=body, headers=issuer_headers)
                issues[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                issues[type(exc).__name__] += 1
            await asyncio.sleep(args.issue_every)

    async def warm_rss() -> float:
        await asyncio.sleep(WARM_UP_SECONDS)
        return rss_mib(server_pid)

    limits = httpx.Limits(max_connections=args.verifiers + 2)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        tasks = [verifier(client, seed) for seed in range(args.verifiers)]
        *_, warm = await asyncio.gather(*tasks, issuer(client), warm_rss())
    return verifies, issues, latencies, warm


def main() -> None:
    """Deploy, provision, soak, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--verifiers", type=int, default=8)
    parser.add_argument("--issue-every", type=float, default=0.5)
    args = parser.parse_args()
    redis.Redis(port=REDIS_PORT, db=REDIS_BENCH_DB).flushdb()
    settings = {
        "CERTSEAL_REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/{REDIS_BENCH_DB}",
        "CERTSEAL_ACCESS_LOG": "true",
        "CERTSEAL_LOG_FORMAT": "json",
    }
    with (
        tempfile.TemporaryDirectory(prefix="certseal-soak-") as folder,
        deploy("postgresql", Path(folder), settings=settings, server_count=1, workers=2) as deployment,
    ):
        with Provisioner(deployment) as provision:
            provision.create_issuer("CN-44")
            headers = provision.issuer_key("CN-44")
            issued = [provision.issue(headers, holder_id_number=id_number(sequence=n)) for n in range(50)]
        texts = [(certificate.qr_text, certificate.holder_id_number) for certificate in issued]
        started_rss = rss_mib(deployment.servers[0].process.pid)
        verifies, issues, latencies, warm_rss = asyncio.run(soak(deployment, texts, headers, args))
        end_rss = rss_mib(deployment.servers[0].process.pid)
        time.sleep(1.0)  # the last event batches are written (flush interval 0.25 s)
        dropped = metric(deployment, "certseal_verification_events_dropped_total")
        workers = len(process_tree(deployment.servers[0].process.pid)) - 1
    total = sum(verifies.values())
    errors = sum(count for outcome, count in verifies.items() if not outcome.startswith("200")) + sum(
        count for outcome, count in issues.items() if outcome != "201"
    )
    growth = end_rss / warm_rss - 1
    print(f"soak: {args.seconds:.0f} s, 2 workers ({workers} processes under the server), PostgreSQL + Redis")
    print(f"{'figure':<44} {'measured':>22}   goal")
    print(f"{'verify answers':<44} {total:>22,}   all 200")
    print(f"{'verify outcomes':<44} {dict(verifies)!s:>22}")
    print(f"{'issuances':<44} {dict(issues)!s:>22}   all 201")
    print(f"{'errors (non-200 verify, non-201 issue)':<44} {errors:>22}   0")
    print(f"{'verify throughput':<44} {total / args.seconds:>18,.0f} /s")
    p50, p99 = (percentile(latencies, fraction) * 1000 for fraction in (0.5, 0.99))
    print(f"{'verify p50 / p99':<44} {p50:>11.1f} / {p99:.1f} ms")
    print(f"{'RSS at start / after warm-up / at end':<44} {started_rss:>6.0f} / {warm_rss:.0f} / {end_rss:.0f} MiB")
    print(f"{'RSS growth after warm-up':<44} {growth * 100:>21.1f}%   < {RSS_GROWTH_LIMIT * 100:.0f} %")
    print(f"{'event-queue drops (/metrics)':<44} {dropped:>22.0f}   0")


if __name__ == "__main__":
    main()
