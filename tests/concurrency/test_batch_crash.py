"""A certificate batch survives its server being killed half-way: every result certified exactly once.

A real ``certseal serve`` issues a batch of 2,500 passed results; the test SIGKILLs it while ``done`` is
between 0 and the total, starts a new server on the same database, resubmits with the same
Idempotency-Key (the same batch answers) and waits: the new server takes the batch over once the dead
process's lease runs out (3 s here) and finishes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from api.db import make_engine
from api.models import Certificate, CertificateBatch
from tests.test_batches import seed_exam_session

from .harness import Deployment, Provisioner, Server, server_environment

RESULTS = 2_500
LEASE_SECONDS = "3"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def deployment_options() -> dict[str, Any]:
    """One server per database, with a short batch lease so the takeover comes quickly."""
    return {"settings": {"CERTSEAL_BATCH_LEASE_SECONDS": LEASE_SECONDS}, "server_count": 1}


@pytest.fixture
def engine(deployment: Deployment) -> Iterator[Any]:
    """An engine on the deployment's database, to seed exam results and count certificates."""
    engine = make_engine(deployment.database_url)
    yield engine
    engine.dispose()


def _batch(client: httpx.Client, base_url: str, headers: dict[str, str], batch_id: str) -> dict[str, Any]:
    response = client.get(f"{base_url}/v1/certificate-batches/{batch_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_batch_killed_half_way_is_finished_exactly_once_after_a_restart(
    deployment: Deployment, provision: Provisioner, engine: Any, figure: Any
) -> None:
    """SIGKILL mid-batch, restart, resubmit: the same batch finishes and each result has exactly one certificate."""
    provision.create_issuer("CN-44")
    headers = {**provision.issuer_key("CN-44"), "Idempotency-Key": "season-2026-autumn"}
    exam = seed_exam_session(
        engine,
        deployment.secrets.id_hmac_key.encode(),
        issuer_code="CN-44",
        passed=RESULTS,
        usable_until=date.today() + timedelta(days=300),
    )
    client = httpx.Client(timeout=30)
    first = deployment.servers[0]
    submitted = client.post(f"{first.base_url}/v1/certificate-batches", json={"session": exam.id}, headers=headers)
    assert submitted.status_code == 202, submitted.text
    batch_id = submitted.json()["id"]
    deadline = time.monotonic() + 60
    while (progress := _batch(client, first.base_url, headers, batch_id))["done"] == 0:
        assert time.monotonic() < deadline, deployment.logs()
        time.sleep(0.01)
    first.process.kill()
    first.process.wait()
    killed_at = progress["done"]
    env = server_environment(deployment.secrets, deployment.settings)
    assert deployment.folder is not None
    second = Server.start(deployment.database_url, env, deployment.folder / "server-restarted.log")
    try:
        started = time.monotonic()
        resubmitted = client.post(
            f"{second.base_url}/v1/certificate-batches", json={"session": exam.id}, headers=headers
        )
        while (final := _batch(client, second.base_url, headers, batch_id))["status"] not in ("done", "failed"):
            assert time.monotonic() < started + 60, second.log_tail()
            time.sleep(0.1)
        figure(f"batch finished after restart ({deployment.backend})", f"{time.monotonic() - started:.1f} s")
        samples = final["certificate_ids"][:: len(final["certificate_ids"]) // 8]
        verdicts = []
        for certificate_id in samples:
            certificate = client.get(f"{second.base_url}/v1/certificates/{certificate_id}", headers=headers).json()
            verdict = client.post(f"{second.base_url}/v1/verify", json={"qr": certificate["qr_text"]})
            verdicts.append(verdict.json()["decision"])
    finally:
        second.stop()
        client.close()
    with Session(engine) as session:
        per_result = dict(
            session.exec(
                select(Certificate.exam_result_id, func.count()).group_by(Certificate.exam_result_id)  # type: ignore[arg-type]
            ).all()
        )
        batch = session.get(CertificateBatch, batch_id)
    assert batch is not None

    assert 0 < killed_at < RESULTS
    assert (resubmitted.status_code, resubmitted.json()["id"]) == (202, batch_id)
    assert (final["status"], final["done"], final["total"], final["errors"]) == ("done", RESULTS, RESULTS, [])
    assert per_result == dict.fromkeys(exam.passed, 1)
    assert (batch.done, batch.attempts) == (RESULTS, 2)
    assert len(final["certificate_ids"]) == RESULTS
    assert verdicts == ["accept"] * len(samples)
