"""Verify stays bounded while the database is locked; /healthz never waits for the database.

PostgreSQL: a test connection holds ``LOCK TABLE certificates IN ACCESS EXCLUSIVE MODE`` in an open
transaction. SQLite: a test connection holds the database's write lock (``BEGIN EXCLUSIVE``; WAL readers
still read, writers such as the holder-check counter wait). Either way every verify answers 200 or
503 ``registry_unavailable`` within its deadline plus slack, and /healthz answers fast throughout.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from .harness import (
    POSTGRES_HOST,
    POSTGRES_PORT,
    Deployment,
    Provisioner,
    database_name,
    describe,
    fire_while_sampling,
    poll_until,
    run_coroutine,
    tally,
)
from .outage import (
    CLIENT_TIMEOUT_SECONDS,
    HEALTHZ_BOUND_SECONDS,
    RECOVERY_WITHIN_SECONDS,
    VERIFY_BOUND_SECONDS,
    VERIFY_DEADLINE_MS,
    accepted,
    bounded_verify_problems,
    outage_calls,
    slow_healthz,
)

pytestmark = pytest.mark.slow

OUTAGE_ROUNDS = 3


@pytest.fixture(scope="module")
def deployment_options() -> dict[str, Any]:
    """The verify deadline under test, set explicitly (it is also the default)."""
    return {"settings": {"CERTSEAL_VERIFY_DB_DEADLINE_MS": str(VERIFY_DEADLINE_MS)}}


@contextlib.contextmanager
def database_locked(deployment: Deployment) -> Iterator[None]:
    """Hold the lock described in the module docstring until the block ends (then roll back)."""
    if deployment.backend == "postgresql":
        import psycopg

        with psycopg.connect(
            host=POSTGRES_HOST, port=POSTGRES_PORT, user="postgres", dbname=database_name(deployment.database_url)
        ) as held:
            held.execute("LOCK TABLE certificates IN ACCESS EXCLUSIVE MODE")
            try:
                yield
            finally:
                held.rollback()
    else:
        held = sqlite3.connect(deployment.sqlite_path, isolation_level=None, timeout=10)
        try:
            held.execute("BEGIN EXCLUSIVE")
            try:
                yield
            finally:
                held.execute("ROLLBACK")
        finally:
            held.close()


def test_verify_is_bounded_and_healthz_fast_while_the_database_is_locked(
    deployment: Deployment, provision: Provisioner, issuer_headers: dict[str, str], figure: Any
) -> None:
    """While the database is locked verify answers 200 or 503 in time and /healthz fast; unlocked, verify accepts."""
    certificates = [provision.issue(issuer_headers) for _ in range(OUTAGE_ROUNDS)]
    healthz = [f"{server.base_url}/healthz" for server in deployment.servers]
    problems: list[str] = []
    overall: Counter[str] = Counter()
    recoveries: list[float] = []

    for round_, certificate in enumerate(certificates):
        warm = provision.verify({"qr": certificate.qr_text}, server=round_)
        with database_locked(deployment):
            answers, samples = run_coroutine(
                fire_while_sampling(outage_calls(deployment, certificate), healthz, timeout=CLIENT_TIMEOUT_SECONDS)
            )
        recovered = [
            run_coroutine(
                poll_until(
                    f"{deployment.url(server)}/v1/verify",
                    {"qr": certificate.qr_text},
                    ok=accepted,
                    within=RECOVERY_WITHIN_SECONDS,
                )
            )
            for server in range(len(deployment.servers))
        ]

        overall.update(tally(answers, by_label=True))
        if not accepted(warm):
            problems.append(f"round {round_}: before the lock verify gave {warm.outcome}")
        problems += [
            f"round {round_}: verify {problem}" for problem in bounded_verify_problems(answers, allow_200=True)
        ]
        problems += [f"round {round_}: /healthz {problem}" for problem in slow_healthz(samples)]
        for server, (seconds, seen) in enumerate(recovered):
            if seconds is None:
                problems.append(f"round {round_}: server {server} no accept after the lock ended: {Counter(seen)}")
            else:
                recoveries.append(seconds)

    figure("verify under the lock", describe(overall))
    figure("recovery after release", f"max {max(recoveries, default=float('nan')):.2f} s")
    assert not problems, (
        f"{OUTAGE_ROUNDS} rounds with the database locked on {deployment.backend} (verify bound "
        f"{VERIFY_BOUND_SECONDS:.1f} s, /healthz bound {HEALTHZ_BOUND_SECONDS} s; verify answers: "
        f"{describe(overall)}):\n" + "\n".join(problems[:30])
    )
