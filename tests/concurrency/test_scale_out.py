"""Scale-out on PostgreSQL and Redis: two workers behind one port, two instances on two ports.

A rate limit hit through one process holds on the others (the count lives in Redis), a key revoked
through one instance is refused by the other at once (every verify reads key state from the database),
and a Redis that is down or frozen costs no verification: limits fall back to each process's own count.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from .harness import (
    REDIS_PORT,
    Call,
    Deployment,
    FreezableProxy,
    Provisioner,
    deploy,
    describe,
    fire_together,
    free_port,
    tally,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LIMIT = 12  # anonymous verifies per minute per client address
REDIS_TEST_DB = 7  # a database of its own on the shared Redis, flushed before each test
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/{REDIS_TEST_DB}"
REVOCATION_BOUND_SECONDS = 2.0
MAX_BURSTS = 5  # bursts of 3 x LIMIT within one minute window until both workers have served some
SHARED_LIMIT = {"CERTSEAL_REDIS_URL": REDIS_URL, "CERTSEAL_VERIFY_RATE_PER_MINUTE": str(LIMIT)}


@pytest.fixture(autouse=True)
def empty_redis() -> Iterator[None]:
    """Start every test with no counts in the test's Redis database."""
    client = redis.Redis(port=REDIS_PORT, db=REDIS_TEST_DB)
    client.flushdb()
    yield
    client.close()


def wait_for_a_fresh_minute_window(margin: float = 15.0) -> None:
    """Sleep past the minute boundary if fewer than ``margin`` seconds remain (limits count per minute)."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


def worker_pids(server_pid: int) -> list[int]:
    """The worker processes uvicorn spawned under ``server_pid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == server_pid and b"spawn_main" in command:
            pids.append(int(entry.name))
    return pids


def cpu_ticks(pid: int) -> int:
    """User plus system CPU ticks a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def accepted_verifications(metrics_text: str) -> float:
    """``certseal_verifications_total{decision="accept"}`` from a /metrics page."""
    match = re.search(r'^certseal_verifications_total\{decision="accept"\} (\S+)$', metrics_text, re.M)
    return float(match.group(1)) if match else 0.0


def anonymous_verifies(deployment: Deployment, qr_text: str, count: int, *, server: int = 0) -> list[Any]:
    """``count`` anonymous verifies at once, each on its own connection, to one server."""
    url = f"{deployment.url(server)}/v1/verify"
    return fire_together([Call("POST", url, json={"qr": qr_text}, label="verify") for _ in range(count)])


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """One instance with two worker processes on one port, on PostgreSQL and Redis."""
    folder = tmp_path_factory.mktemp("two-workers")
    with deploy("postgresql", folder, settings=SHARED_LIMIT, server_count=1, workers=2) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def two_instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Two instances (two workers each) on two ports, on one PostgreSQL database and one Redis."""
    folder = tmp_path_factory.mktemp("two-instances")
    with deploy("postgresql", folder, settings=SHARED_LIMIT, server_count=2, workers=2) as deployment:
        yield deployment


def issued_qr(deployment: Deployment, code: str = "CN-44") -> tuple[Provisioner, dict[str, str], str]:
    """A provisioner, issuer headers and the QR text of a fresh certificate on ``deployment``."""
    provision = Provisioner(deployment)
    provision.create_issuer(code)
    headers = provision.issuer_key(code)
    return provision, headers, provision.issue(headers).qr_text


def test_a_limit_counts_once_across_two_workers_on_one_port(two_workers: Deployment):
    """Bursts of three times the limit through one port, served by both workers, let exactly the limit through.

    One burst may land wholly on one worker (the kernel hands a burst to whichever worker accepts first,
    and a worker answering a few 429s may not use one CPU tick), so bursts repeat within one minute
    window until both workers have worked. And /metrics, whichever worker answers it, counts both.
    """
    provision, _headers, qr = issued_qr(two_workers)
    workers = worker_pids(two_workers.servers[0].process.pid)
    wait_for_a_fresh_minute_window(margin=40.0)
    before = {pid: cpu_ticks(pid) for pid in workers}
    answers: list[Any] = []
    busy: list[int] = []

    for _burst in range(MAX_BURSTS):
        answers += anonymous_verifies(two_workers, qr, 3 * LIMIT)
        busy = [pid for pid in workers if cpu_ticks(pid) > before[pid]]
        if len(busy) == len(workers):
            break

    scrapes = [provision.client.get(f"{two_workers.url()}/metrics").text for _ in range(4)]
    provision.close()
    counts = tally(answers)
    assert len(workers) == 2
    assert len(busy) == 2, f"one worker took every request: {describe(counts)}"
    assert counts == {"200 accept": LIMIT, "429 rate_limited": len(answers) - LIMIT}, describe(counts)
    # Whichever worker answers /metrics, it reports both workers' verifications together.
    assert {accepted_verifications(scrape) for scrape in scrapes} == {LIMIT}


def test_a_limit_used_up_on_one_instance_holds_on_the_other(two_instances: Deployment):
    """After the limit is used through instance A, the first anonymous verify through instance B is 429."""
    provision, _headers, qr = issued_qr(two_instances)
    wait_for_a_fresh_minute_window()
    through_a = anonymous_verifies(two_instances, qr, LIMIT, server=0)

    through_b = provision.verify({"qr": qr}, server=1)

    provision.close()
    assert tally(through_a) == {"200 accept": LIMIT}, describe(tally(through_a))
    assert (through_b.status, through_b.code) == (429, "rate_limited")


def test_a_signing_key_revoked_through_one_instance_is_refused_by_the_other(two_instances: Deployment, figure):
    """A key compromised through instance A since before the issuance: instance B says key_revoked within 2 s."""
    provision, headers, qr = issued_qr(two_instances, "CN-11")
    kid = next(key["kid"] for key in provision.issuer("CN-11")["keys"] if key["use"] == "certificate")
    before = provision.client.post(f"{two_instances.url(1)}/v1/verify", json={"qr": qr}, headers=headers).json()[
        "decision"
    ]

    revoked = provision.client.post(
        f"{two_instances.url(0)}/v1/issuers/CN-11/keys/{kid}/compromise",
        json={"reason": "key compromise", "compromised_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
        headers=two_instances.admin_headers,
    )
    started = time.monotonic()
    reasons: list[str] = []
    while time.monotonic() - started < REVOCATION_BOUND_SECONDS:
        reasons = provision.client.post(f"{two_instances.url(1)}/v1/verify", json={"qr": qr}, headers=headers).json()[
            "reasons"
        ]
        if "key_revoked" in reasons:
            break
        time.sleep(0.05)
    seen_after = time.monotonic() - started

    provision.close()
    figure("revoked key refused by the other instance after", f"{seen_after * 1000:.0f} ms")
    assert before == "accept"
    assert revoked.status_code == 200, revoked.text
    assert "key_revoked" in reasons


def test_an_api_key_revoked_through_one_instance_is_refused_by_the_other(two_instances: Deployment):
    """An app API key revoked through instance A is 401 on instance B's very next request."""
    provision, _headers, qr = issued_qr(two_instances, "CN-31")
    app_key = provision.app_key("site platform")
    prefix = app_key["Authorization"].split("_")[1]
    before = provision.client.post(f"{two_instances.url(1)}/v1/verify", json={"qr": qr}, headers=app_key)

    revoked = provision.client.delete(
        f"{two_instances.url(0)}/v1/apps/api-keys/{prefix}", headers=two_instances.admin_headers
    )
    after = provision.client.post(f"{two_instances.url(1)}/v1/verify", json={"qr": qr}, headers=app_key)

    provision.close()
    assert before.status_code == 200
    assert revoked.status_code == 200, revoked.text
    assert after.status_code == 401


@pytest.mark.parametrize("outage", ["refused", "frozen"])
def test_redis_down_falls_back_to_per_process_limits(tmp_path: Path, outage: str, figure):
    """With Redis refusing or frozen, verify answers promptly, the limit holds per process, /readyz says degraded."""
    proxy = None
    if outage == "refused":
        url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    else:
        proxy = FreezableProxy(upstream_port=REDIS_PORT).start()
        proxy.freeze()
        url = f"redis://127.0.0.1:{proxy.port}/{REDIS_TEST_DB}"
    settings = {"CERTSEAL_REDIS_URL": url, "CERTSEAL_VERIFY_RATE_PER_MINUTE": str(LIMIT)}
    try:
        with deploy("postgresql", tmp_path, settings=settings, server_count=1) as deployment:
            provision, _headers, qr = issued_qr(deployment)
            wait_for_a_fresh_minute_window()

            answers = anonymous_verifies(deployment, qr, 2 * LIMIT)
            readiness = provision.client.get(f"{deployment.url()}/readyz", timeout=10)

            provision.close()
            logs = deployment.logs()
    finally:
        if proxy is not None:
            proxy.close()
    slowest = max(answer.seconds for answer in answers)
    figure(f"slowest verify with Redis {outage}", f"{slowest * 1000:.0f} ms")
    assert tally(answers) == {"200 accept": LIMIT, "429 rate_limited": LIMIT}, describe(tally(answers))
    assert slowest < 2.0
    assert "Redis unavailable" in logs
    assert (readiness.status_code, readiness.json()) == (200, {"status": "degraded", "degraded": ["redis"]})
