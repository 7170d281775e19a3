"""Certificate batches: submission, idempotency, ownership, per-result refusals, leases and exactly-once issuance.

Exam rows are made directly in the database (:func:`seed_exam_session`): these tests do not need the exam
registry's API.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

import crypto
from api.cli import main
from api.models import Certificate, CertificateBatch, ExamPoint, ExamResult, ExamSession, Issuer, StatusEvent, new_id
from api.security import id_number_hmac
from api.services import batches
from api.services.signing_pool import SigningPool
from schemas.batches import MAX_BATCH_RESULTS
from tests.conftest import TEST_NOW, TEST_TODAY, ApiIssuer, id_number_for


@dataclass(frozen=True)
class SeededSession:
    """An exam session with its results' ids (passed ones first) and holders' ID numbers by result id."""

    id: str
    passed: list[str]
    failed: list[str]
    id_numbers: dict[str, str]


def seed_exam_session(
    engine: Any,
    hmac_key: bytes,
    *,
    issuer_code: str,
    passed: int,
    failed: int = 0,
    operation: str = "2.1",
    usable_until: date | None = None,
    first_sequence: int = 0,
    photo: tuple[bytes, str] | None = None,
) -> SeededSession:
    """Add an exam point, a session of ``operation`` and ``passed`` + ``failed`` results (distinct holders)."""
    with Session(engine, expire_on_commit=False) as session:
        issuer = session.exec(select(Issuer).where(Issuer.code == issuer_code)).one()
        point = ExamPoint(
            code=f"EP-{new_id()[:12]}",
            issuer_id=issuer.id,
            name="考试点",
            region="广东省",
            address="广州市",
            operations=[operation],
            capacity_per_session=100_000,
            accredited_from=date(2020, 1, 1),
        )
        exam = ExamSession(
            issuer_id=issuer.id, exam_point_id=point.id, operation=operation, exam_date=TEST_TODAY - timedelta(days=7)
        )
        session.add_all([point, exam])
        session.flush()
        passed_ids: list[str] = []
        failed_ids: list[str] = []
        numbers: dict[str, str] = {}
        for n in range(passed + failed):
            serial = first_sequence + n
            number = id_number_for(date(1980, 1, 1) + timedelta(days=serial // 1000), sequence=serial % 1000)
            ok = n < passed
            result = ExamResult(
                session_id=exam.id,
                issuer_id=issuer.id,
                holder_name="工人" + "".join("零一二三四五六七八九"[int(d)] for d in str(serial)),
                masked_id=crypto.mask_visible(number),
                id_hmac=id_number_hmac(number, hmac_key),
                id_hmac_version=1,
                birth_date=date(1980, 1, 1),
                theory_score=90 if ok else 50,
                practical_score=85,
                passed=ok,
                usable_until=usable_until or TEST_TODAY + timedelta(days=300),
                photo=photo[0] if photo else None,
                photo_type=photo[1] if photo else None,
            )
            session.add(result)
            (passed_ids if ok else failed_ids).append(result.id)
            numbers[result.id] = number
        session.commit()
        return SeededSession(exam.id, passed_ids, failed_ids, numbers)


def seed(app: FastAPI, issuer: ApiIssuer, **options: Any) -> SeededSession:
    """:func:`seed_exam_session` on the app's database with its current ID-number HMAC key."""
    settings = app.state.settings
    key = settings.id_hmac_keys[settings.id_hmac_key_version]
    return seed_exam_session(app.state.engine, key, issuer_code=issuer.code, **options)


def submit(client: TestClient, issuer: ApiIssuer, body: dict[str, Any], key: str | None = "k-1") -> Any:
    """POST /v1/certificate-batches with an optional Idempotency-Key."""
    headers = {**issuer.headers, **({"Idempotency-Key": key} if key else {})}
    return client.post("/v1/certificate-batches", json=body, headers=headers)


def finished(client: TestClient, issuer: ApiIssuer, batch_id: str, *, timeout: float = 30) -> dict[str, Any]:
    """Poll the batch until it is done or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/v1/certificate-batches/{batch_id}", headers=issuer.headers).json()
        if body["status"] in ("done", "failed"):
            return body  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not finish: {body}")


def certificates_per_result(app: FastAPI) -> dict[str, int]:
    """How many certificates each exam result has."""
    with Session(app.state.engine) as session:
        rows = session.exec(
            select(Certificate.exam_result_id, func.count())
            .where(Certificate.exam_result_id.is_not(None))  # type: ignore[union-attr]
            .group_by(Certificate.exam_result_id)
        ).all()
    return {result_id: count for result_id, count in rows if result_id is not None}


def issuer_of(app: FastAPI, issuer: ApiIssuer) -> Issuer:
    """The issuer's row."""
    with Session(app.state.engine, expire_on_commit=False) as session:
        return session.exec(select(Issuer).where(Issuer.code == issuer.code)).one()


def batch_row(app: FastAPI, batch_id: str) -> CertificateBatch:
    """The batch's row as the database has it now."""
    with Session(app.state.engine, expire_on_commit=False) as session:
        batch = session.get(CertificateBatch, batch_id)
    assert batch is not None
    return batch


def batch_worker(app: FastAPI, clock: Any, owner: str) -> batches.BatchWorker:
    """A worker of the test's own (in-process signing) with the app's engine, keys and clock."""
    pool = SigningPool(app.state.keyring, b"unused-without-processes", processes=1)
    return batches.BatchWorker(
        app.state.engine, app.state.keyring, pool, settings=app.state.settings, clock=clock, owner=owner
    )


def test_a_session_batch_issues_every_passed_result_once(
    app: FastAPI, app_client: TestClient, issuer: ApiIssuer, verify: Callable[..., dict[str, Any]]
) -> None:
    """A session batch certifies each passed result exactly once, records its provenance and verifies."""
    exam = seed(app, issuer, passed=30, failed=5)

    accepted = submit(app_client, issuer, {"session": exam.id})
    body = finished(app_client, issuer, accepted.json()["id"])

    assert accepted.status_code == 202
    assert accepted.json()["links"]["self"] == f"/v1/certificate-batches/{accepted.json()['id']}"
    assert (body["status"], body["total"], body["done"], body["errors"]) == ("done", 30, 30, [])
    assert len(body["certificate_ids"]) == 30
    assert certificates_per_result(app) == {result_id: 1 for result_id in exam.passed}
    with Session(app.state.engine) as session:
        certificate = session.get(Certificate, body["certificate_ids"][0])
        assert certificate is not None
        assert (certificate.basis, certificate.batch_id, certificate.exam_session_id) == ("exam", body["id"], exam.id)
        assert certificate.issue_date == TEST_TODAY
        events = session.exec(select(func.count()).select_from(StatusEvent).where(StatusEvent.action == "issued")).one()
        indexes = session.exec(select(Certificate.status_index)).all()
        drawn = session.exec(select(Issuer.random_indexes_drawn).where(Issuer.code == issuer.code)).one()
    assert events == 30
    assert len(set(indexes)) == 30
    assert drawn == 30
    qr = app_client.get(f"/v1/certificates/{certificate.id}", headers=issuer.headers).json()["qr_text"]
    assert verify(qr)["decision"] == "accept"


def test_the_same_key_and_request_answer_the_same_batch(
    app: FastAPI, app_client: TestClient, issuer: ApiIssuer
) -> None:
    """A retried submission with the same Idempotency-Key and body gets the same batch, never a second one."""
    exam = seed(app, issuer, passed=3)

    first = submit(app_client, issuer, {"session": exam.id}, key="same")
    finished(app_client, issuer, first.json()["id"])
    second = submit(app_client, issuer, {"session": exam.id}, key="same")

    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json()["id"] == first.json()["id"]
    with Session(app.state.engine) as session:
        assert session.exec(select(func.count()).select_from(CertificateBatch)).one() == 1


def test_the_same_key_with_another_request_is_a_conflict(
    app: FastAPI, app_client: TestClient, issuer: ApiIssuer
) -> None:
    """An Idempotency-Key reused with a different body answers 409 batch_conflict."""
    exam = seed(app, issuer, passed=2)
    submit(app_client, issuer, {"session": exam.id}, key="once")

    reused = submit(app_client, issuer, {"results": exam.passed[:1]}, key="once")

    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "batch_conflict"


def test_another_issuers_batch_and_session_are_not_found(
    app: FastAPI, app_client: TestClient, issuer: ApiIssuer, other_issuer: ApiIssuer, admin_headers: dict[str, str]
) -> None:
    """Another issuer's batch reads as 404 and its session cannot be batched; the admin reads any batch."""
    exam = seed(app, issuer, passed=2)
    batch_id = submit(app_client, issuer, {"session": exam.id}).json()["id"]

    foreign_read = app_client.get(f"/v1/certificate-batches/{batch_id}", headers=other_issuer.headers)
    foreign_session = submit(app_client, other_issuer, {"session": exam.id})
    missing = app_client.get("/v1/certificate-batches/not-an-id", headers=issuer.headers)
    admin_read = app_client.get(f"/v1/certificate-batches/{batch_id}", headers=admin_headers)

    assert (foreign_read.status_code, foreign_read.json()["error"]["code"]) == (404, "batch_not_found")
    assert (foreign_session.status_code, foreign_session.json()["error"]["code"]) == (404, "exam_session_not_found")
    assert missing.status_code == 404
    assert admin_read.status_code == 200


def test_each_ineligible_result_is_refused_with_its_code(
    app: FastAPI, app_client: TestClient, issuer: ApiIssuer, other_issuer: ApiIssuer, clock: Any
) -> None:
    """Failed, expired, certified, barred, not-allowed and foreign results become per-result errors; the rest issue."""
    good = seed(app, issuer, passed=2, failed=1, first_sequence=0)
    expired = seed(app, issuer, passed=1, usable_until=TEST_TODAY - timedelta(days=1), first_sequence=100)
    not_allowed = seed(app, issuer, passed=1, operation="3.1", first_sequence=200)
    foreign = seed(app, other_issuer, passed=1, first_sequence=300)
    revoked_first = seed(app, issuer, passed=2, operation="2.2", first_sequence=400)
    earlier = finished(
        app_client, issuer, submit(app_client, issuer, {"session": revoked_first.id}, key="e").json()["id"]
    )
    for certificate_id in earlier["certificate_ids"]:
        revoked = app_client.post(
            f"/v1/certificates/{certificate_id}/revoke", json={"reason": "fraud"}, headers=issuer.headers
        )
        assert revoked.status_code == 200, revoked.text
    again = seed(app, issuer, passed=2, operation="2.2", first_sequence=400)  # the same two holders
    with Session(app.state.engine) as session:
        overridden = session.get(ExamResult, again.passed[1])
        assert overridden is not None
        overridden.bar_override_reason, overridden.bar_override_by = "court ruling", "admin"
        session.add(overridden)
        session.commit()
    listed = [
        good.passed[0],
        good.failed[0],
        expired.passed[0],
        earlier_result := revoked_first.passed[0],
        not_allowed.passed[0],
        foreign.passed[0],
        "0" * 32,
        "not an id",
        again.passed[0],
        again.passed[1],
    ]

    body = finished(app_client, issuer, submit(app_client, issuer, {"results": listed}, key="mixed").json()["id"])

    codes = {error["result_id"]: error["code"] for error in body["errors"]}
    assert codes == {
        good.failed[0]: "exam_not_passed",
        expired.passed[0]: "exam_result_expired",
        earlier_result: "exam_result_certified",
        not_allowed.passed[0]: "operation_not_allowed",
        foreign.passed[0]: "exam_result_not_found",
        "0" * 32: "exam_result_not_found",
        "not an id": "exam_result_not_found",
        again.passed[0]: "reapplication_barred",
    }
    assert (body["status"], body["total"], body["done"], len(body["certificate_ids"])) == ("done", 10, 10, 2)
    assert all(set(error) == {"result_id", "code", "message"} for error in body["errors"])


def test_an_explicit_list_over_the_limit_is_refused(app_client: TestClient, issuer: ApiIssuer) -> None:
    """10,001 result ids are a 422; so is a body naming both a session and results."""
    too_many = [f"{n:032x}" for n in range(MAX_BATCH_RESULTS + 1)]

    listed = submit(app_client, issuer, {"results": too_many})
    both = submit(app_client, issuer, {"session": "0" * 32, "results": ["0" * 32]}, key="k-2")

    assert (listed.status_code, listed.json()["error"]["code"]) == (422, "validation_error")
    assert (both.status_code, both.json()["error"]["code"]) == (422, "validation_error")


def test_a_concurrent_double_submit_makes_one_batch(
    app: FastAPI, app_client: TestClient, issuer: ApiIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two submissions with the same key at the same moment both answer with the one batch the database keeps."""
    exam = seed(app, issuer, passed=3)
    barrier = threading.Barrier(2, timeout=10)
    both_looked = threading.Barrier(2, timeout=10)
    ids: list[str] = []
    lookup = batches._by_key
    looked: set[int] = set()

    def after_both_looked(*args: Any) -> Any:
        found = lookup(*args)
        if threading.get_ident() not in looked:  # the first lookup of each: both find nothing, both insert
            looked.add(threading.get_ident())
            both_looked.wait()
        return found

    monkeypatch.setattr(batches, "_by_key", after_both_looked)

    def submit_directly() -> None:
        with Session(app.state.engine, expire_on_commit=False, autobegin=False) as session:
            # The issuer row in the submitting session, as the request's authentication loads it: the loser's
            # rollback expires it (the submission once read its id afterwards and failed outside a transaction).
            with session.begin():
                issuer_row = session.exec(select(Issuer).where(Issuer.code == issuer.code)).one()
            barrier.wait()
            batch = batches.submit_batch(
                session,
                issuer=issuer_row,
                request=batches.BatchRequest(session_id=exam.id),
                idempotency_key="twice",
                actor="issuer:CN-44",
                now=TEST_NOW,
            )
            ids.append(batch.id)

    threads = [threading.Thread(target=submit_directly) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(ids) == 2
    assert ids[0] == ids[1]
    with Session(app.state.engine) as session:
        assert session.exec(select(func.count()).select_from(CertificateBatch)).one() == 1


def test_a_result_certified_meanwhile_is_not_issued_twice(
    app: FastAPI, app_client: TestClient, issuer: ApiIssuer, clock: Any
) -> None:
    """A result certified after the batch was submitted is refused as certified when the batch reaches it."""
    exam = seed(app, issuer, passed=4)
    issuer_row = issuer_of(app, issuer)
    with Session(app.state.engine, expire_on_commit=False, autobegin=False) as session:
        held = batches.submit_batch(
            session,
            issuer=issuer_row,
            request=batches.BatchRequest(session_id=exam.id),
            idempotency_key="held",
            actor="issuer:CN-44",
            now=clock.now(),
            lease_owner="test-worker",
        )
    single = submit(app_client, issuer, {"results": exam.passed[:1]}, key="single").json()["id"]
    finished(app_client, issuer, single)

    progress = batch_worker(app, clock, "test-worker").run(held.id)
    body = finished(app_client, issuer, held.id)

    assert progress is not None
    assert progress.status == "done"
    assert [(e["result_id"], e["code"]) for e in body["errors"]] == [(exam.passed[0], "exam_result_certified")]
    assert certificates_per_result(app) == {result_id: 1 for result_id in exam.passed}


def test_an_expired_lease_is_taken_over_and_the_old_holder_stops(
    app: FastAPI, app_client: TestClient, issuer: ApiIssuer, clock: Any
) -> None:
    """A running batch whose lease ran out is claimed by another worker; the old holder's next chunk does nothing."""
    exam = seed(app, issuer, passed=5)
    issuer_row = issuer_of(app, issuer)
    with Session(app.state.engine, expire_on_commit=False, autobegin=False) as session:
        held = batches.submit_batch(
            session,
            issuer=issuer_row,
            request=batches.BatchRequest(session_id=exam.id),
            idempotency_key="dead",
            actor="issuer:CN-44",
            now=clock.now(),
            lease_owner="dead-worker",
        )
    dead, alive = batch_worker(app, clock, "dead-worker"), batch_worker(app, clock, "alive-worker")
    dead.chunk_size = alive.chunk_size = 2

    early = alive.claim(held.id)
    clock.advance(seconds=app.state.settings.batch_lease_seconds + 1)
    late = alive.claim(held.id)
    stale = dead.run_chunk(held.id)
    progress = alive.run(held.id)

    assert early is None
    assert late == held.id
    assert stale is None
    assert progress is not None
    assert (progress.status, progress.done) == ("done", 5)
    assert certificates_per_result(app) == {result_id: 1 for result_id in exam.passed}
    batch = batch_row(app, held.id)
    assert batch.attempts == 2
    assert batch.lease_owner is None


def test_a_runner_stopped_mid_batch_hands_it_on_at_once(
    app: FastAPI, app_client: TestClient, issuer: ApiIssuer, clock: Any
) -> None:
    """A runner stopped mid-batch releases its lease: the server's runner finishes the batch without waiting it out."""
    exam = seed(app, issuer, passed=300)
    with Session(app.state.engine, expire_on_commit=False, autobegin=False) as session:
        held = batches.submit_batch(
            session,
            issuer=issuer_of(app, issuer),
            request=batches.BatchRequest(session_id=exam.id),
            idempotency_key="stopping",
            actor="issuer:CN-44",
            now=clock.now(),
            lease_owner="stopping-worker",
        )
    stopping = batch_worker(app, clock, "stopping-worker")
    stopping.chunk_size = 1
    runner = batches.BatchRunner(stopping)
    runner.start()
    deadline = time.monotonic() + 10
    while batch_row(app, held.id).done == 0 and time.monotonic() < deadline:
        time.sleep(0.01)

    runner.stop()
    left = batch_row(app, held.id)
    body = finished(app_client, issuer, held.id, timeout=30)

    assert 0 < left.done < 300
    assert (left.status, left.lease_owner) == ("running", None)
    assert (body["status"], body["done"]) == ("done", 300)
    assert certificates_per_result(app) == {result_id: 1 for result_id in exam.passed}


@pytest.mark.parametrize("settings", [{"batch_signing_processes": 2}], indirect=True)
def test_the_signing_pool_signs_what_verifies(
    app: FastAPI, app_client: TestClient, issuer: ApiIssuer, verify: Callable[..., dict[str, Any]]
) -> None:
    """With two signing processes the batch's certificates verify like those signed in-process."""
    exam = seed(app, issuer, passed=40)

    body = finished(app_client, issuer, submit(app_client, issuer, {"session": exam.id}).json()["id"], timeout=60)

    assert (body["status"], len(body["certificate_ids"])) == ("done", 40)
    for certificate_id in body["certificate_ids"][::13]:
        qr = app_client.get(f"/v1/certificates/{certificate_id}", headers=issuer.headers).json()["qr_text"]
        assert verify(qr)["decision"] == "accept"


def test_the_command_line_issues_a_session_and_reports_it(
    app: FastAPI, app_client: TestClient, issuer: ApiIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`certseal batch issue --session` issues in-process and prints the counts; `batch status` prints them again."""
    exam = seed(app, issuer, passed=12, usable_until=date.today() + timedelta(days=300))
    database = ["--database", app.state.settings.database_url, "--demo"]

    issued = main(["batch", "issue", "--session", exam.id, "--idempotency-key", "cli-1", *database])
    issue_output = capsys.readouterr().out
    batch_id = issue_output.split()[1].rstrip(":")
    status = main(["batch", "status", batch_id, *database])
    status_output = capsys.readouterr().out

    assert issued == 0
    assert f"batch {batch_id}: done, 12 of 12 results, 12 certificates, 0 errors" in issue_output
    assert status == 0
    assert status_output.strip() == f"batch {batch_id}: done, 12 of 12 results, 12 certificates, 0 errors"
    assert certificates_per_result(app) == dict.fromkeys(exam.passed, 1)
