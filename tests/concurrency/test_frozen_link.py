"""A frozen TCP link to PostgreSQL: verify fails fast with 503, /healthz stays fast, and verify recovers after thaw.

Both servers reach PostgreSQL through a :class:`harness.FreezableProxy`. Frozen, it forwards no byte in
either direction and closes nothing, so pooled connections look alive and every statement or new
connection simply waits; only the service's own bounds can end the wait.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from .harness import (
    Answer,
    Call,
    Deployment,
    Provisioner,
    describe,
    fire_while_sampling,
    poll_until,
    run_coroutine,
    tally,
)
from .outage import (
    CLIENT_TIMEOUT_SECONDS,
    RECOVERY_WITHIN_SECONDS,
    VERIFY_BOUND_SECONDS,
    VERIFY_DEADLINE_MS,
    accepted,
    bounded_verify_problems,
    outage_calls,
    slow_healthz,
)

pytestmark = pytest.mark.slow

# How long each freeze lasts beyond its first burst of verifies: a short one, and one longer than the
# TCP user timeout, the statement timeout and the connect timeout (5 s each by default).
FREEZES_SECONDS = (0.0, 7.0)
WAVE_EVERY_SECONDS = 1.0


@pytest.fixture(scope="module", params=[pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """PostgreSQL only: SQLite has no network link to freeze."""
    return str(request.param)


@pytest.fixture(scope="module")
def deployment_options() -> dict[str, Any]:
    """Two servers behind one freezable proxy, with the database bounds under test set explicitly."""
    return {
        "via_proxy": True,
        "settings": {
            "CERTSEAL_VERIFY_DB_DEADLINE_MS": str(VERIFY_DEADLINE_MS),
            "CERTSEAL_DB_TCP_USER_TIMEOUT_MS": "5000",
            "CERTSEAL_DB_CONNECT_TIMEOUT_SECONDS": "5",
            "CERTSEAL_DB_STATEMENT_TIMEOUT_MS": "5000",
            "CERTSEAL_DB_LOCK_TIMEOUT_MS": "2000",
        },
    }


async def _waves(calls: list[Call], healthz: list[str], hold: float) -> tuple[list[Answer], list[Answer]]:
    """Fire the verify calls (/healthz sampled alongside), then again every WAVE_EVERY_SECONDS for ``hold`` s."""
    answers, samples = await fire_while_sampling(calls, healthz, timeout=CLIENT_TIMEOUT_SECONDS)
    started = time.perf_counter()
    while time.perf_counter() - started < hold:
        await asyncio.sleep(WAVE_EVERY_SECONDS)
        more, more_samples = await fire_while_sampling(calls, healthz, timeout=CLIENT_TIMEOUT_SECONDS)
        answers += more
        samples += more_samples
    return answers, samples


@pytest.mark.parametrize("hold", FREEZES_SECONDS, ids=lambda hold: f"frozen+{hold:.0f}s")
def test_verify_fails_fast_while_the_link_is_frozen_and_recovers_after_thaw(
    deployment: Deployment, provision: Provisioner, issuer_headers: dict[str, str], hold: float, figure: Any
) -> None:
    """With the PostgreSQL link frozen verify is 503 within its bound and /healthz fast; thawed, verify accepts."""
    assert deployment.proxy is not None
    certificate = provision.issue(issuer_headers)
    healthz = [f"{server.base_url}/healthz" for server in deployment.servers]
    warm = [provision.verify({"qr": certificate.qr_text}, server=server) for server in range(len(deployment.servers))]

    deployment.proxy.freeze()
    try:
        answers, samples = run_coroutine(_waves(outage_calls(deployment, certificate), healthz, hold))
    finally:
        deployment.proxy.thaw()
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

    counts = tally(answers)
    slowest = max(answer.seconds for answer in answers)
    recovery = [seconds for seconds, _ in recovered]
    figure("verify while frozen", f"{describe(counts)}; slowest {slowest:.2f} s")
    figure("recovery after thaw", ", ".join("never" if s is None else f"{s:.2f} s" for s in recovery))
    assert all(accepted(answer) for answer in warm), f"before the freeze: {[answer.outcome for answer in warm]}"
    late_or_wrong = bounded_verify_problems(answers, allow_200=False)
    assert not late_or_wrong, (
        f"frozen link ({hold:.0f} s past the first burst): verify must be 503 registry_unavailable within "
        f"{VERIFY_BOUND_SECONDS:.1f} s; {len(late_or_wrong)} of {len(answers)} were not "
        f"({describe(counts)}):\n" + "\n".join(late_or_wrong[:20]) + f"\n{deployment.logs()}"
    )
    slow = slow_healthz(samples)
    assert not slow, f"/healthz with the link frozen: {len(slow)} of {len(samples)} samples slow or failed: {slow[:10]}"
    assert None not in recovery, (
        f"no accept within {RECOVERY_WITHIN_SECONDS:.0f} s of thawing: "
        f"{[describe(Counter(seen)) for _, seen in recovered]}\n{deployment.logs()}"
    )
