"""Races on the chain from exam to card, on real servers: batches, single issuance, imports, exam points, cards.

Every round sets up its own exam session over HTTP, fires its requests at once (released by one event),
split over every server of the deployment (two on PostgreSQL), then checks what the service answered
and what the database holds. Rounds: ``CERTSEAL_RACE_ROUNDS`` (default 5).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from api.db import make_engine
from api.models import Certificate, CertificateBatch, ExamPoint, ExamResult, ExamSession

from .harness import (
    CST,
    Answer,
    Call,
    Deployment,
    Provisioner,
    describe,
    fire_together,
    holder_name_for,
    id_number,
    race_rounds,
    run_coroutine,
    tally,
)

pytestmark = pytest.mark.slow

ROUNDS = race_rounds(5)
ISSUER = "CN-45"
SAME_KEY_RACERS = 6
IMPORT_RACERS = 4
IMPORT_WINDOW = 12
SESSION_CREATORS = 4
BATCH_TIMEOUT_SECONDS = 60.0

_candidates = itertools.count()


def _candidate_rows(count: int) -> list[dict[str, Any]]:
    """``count`` passing result rows of holders never used before in this run (no reapplication bar reaches them)."""
    rows = []
    for _ in range(count):
        n = next(_candidates)
        birth = date(1975, 1, 1) + timedelta(days=n // 900)
        rows.append(
            {
                "id_number": id_number(birth, 100 + n % 900),
                "name": holder_name_for(n),
                "theory_score": 90,
                "practical_score": 88,
            }
        )
    return rows


@dataclass
class Chain:
    """One issuer's exam point and the HTTP calls that set up exam sessions there."""

    deployment: Deployment
    client: httpx.Client
    headers: dict[str, str]
    point: str

    def session(self) -> str:
        """A new exam session at the point, held a week ago (its results can be imported)."""
        exam_date = datetime.now(CST).date() - timedelta(days=7)
        response = self.client.post(
            f"{self.deployment.url()}/v1/exam-sessions",
            json={"exam_point": self.point, "operation": "2.1", "exam_date": exam_date.isoformat()},
            headers=self.headers,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def import_rows(self, session_id: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Import result rows (JSON) into a session; expects 200."""
        response = self.client.post(
            f"{self.deployment.url()}/v1/exam-sessions/{session_id}/results", json=list(rows), headers=self.headers
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def passed_session(self, passed: int) -> tuple[str, list[str]]:
        """A new session with ``passed`` passing results: its id and the result ids."""
        session_id = self.session()
        self.import_rows(session_id, _candidate_rows(passed))
        return session_id, self.result_ids(session_id)

    def result_ids(self, session_id: str) -> list[str]:
        """The ids of a session's results, in the order they were recorded."""
        response = self.client.get(
            f"{self.deployment.url()}/v1/exam-sessions/{session_id}/results",
            params={"limit": 500},
            headers=self.headers,
        )
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    def batch(self, batch_id: str, *, finished: bool = True) -> dict[str, Any]:
        """A batch's progress; with ``finished``, polled until it is done or failed."""
        deadline = time.monotonic() + BATCH_TIMEOUT_SECONDS
        while True:
            response = self.client.get(
                f"{self.deployment.url()}/v1/certificate-batches/{batch_id}", headers=self.headers
            )
            assert response.status_code == 200, response.text
            body = dict(response.json())
            if not finished or body["status"] in ("done", "failed"):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"batch {batch_id} still {body['status']} after {BATCH_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.05)

    def submit(self, body: dict[str, Any], key: str | None = None) -> str:
        """Submit a batch (expects 202) and return its id."""
        headers = {**self.headers, **({"Idempotency-Key": key} if key else {})}
        response = self.client.post(f"{self.deployment.url()}/v1/certificate-batches", json=body, headers=headers)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])


@pytest.fixture(scope="module")
def engine(deployment: Deployment) -> Iterator[Any]:
    """An engine on the deployment's database, to count what the races stored."""
    engine = make_engine(deployment.database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def chain(deployment: Deployment, provision: Provisioner) -> Iterator[Chain]:
    """Issuer CN-45 (operation 2.1) with an exam point of capacity 1,000 per session."""
    provision.create_issuer(ISSUER)
    headers = provision.issuer_key(ISSUER)
    with httpx.Client(timeout=60) as client:
        point = f"EP-{uuid.uuid4().hex[:10].upper()}"
        response = client.post(
            f"{deployment.url()}/v1/exam-points",
            json=_point_body(point),
            headers=headers,
        )
        assert response.status_code == 201, response.text
        yield Chain(deployment, client, headers, point)


def _point_body(code: str) -> dict[str, Any]:
    return {
        "code": code,
        "name": "广州市特种作业考试点",
        "region": "广东省广州市",
        "address": "广州市黄埔区",
        "operations": ["2.1"],
        "capacity_per_session": 1000,
        "accredited_from": "2020-01-01",
    }


def _certificates_per_result(engine: Any, result_ids: Sequence[str]) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.exec(
            select(Certificate.exam_result_id, func.count())
            .where(Certificate.exam_result_id.in_(list(result_ids)))  # type: ignore[union-attr]
            .group_by(Certificate.exam_result_id)  # type: ignore[arg-type]
        ).all()
    counts = dict.fromkeys(result_ids, 0)
    counts.update({result_id: count for result_id, count in rows if result_id is not None})
    return counts


def _not_once(engine: Any, result_ids: Sequence[str]) -> dict[str, int]:
    """Results that do not have exactly one certificate, with their certificate count."""
    return {result_id: count for result_id, count in _certificates_per_result(engine, result_ids).items() if count != 1}


def _batch_call(deployment: Deployment, chain: Chain, body: dict[str, Any], n: int, key: str | None) -> Call:
    headers = {**chain.headers, **({"Idempotency-Key": key} if key else {})}
    return Call("POST", f"{deployment.url(n)}/v1/certificate-batches", json=body, headers=headers, label="batch")


def _report(deployment: Deployment, overall: Counter[str], problems: Sequence[str]) -> str:
    """What a failed race test says: the rounds' tally, the first problems and the servers' logs."""
    return (
        f"{ROUNDS} rounds on {deployment.backend} (overall {describe(overall)}):\n"
        + "\n".join(problems[:20])
        + f"\n{deployment.logs()}"
    )


def _unexpected(answers: Sequence[Answer], allowed: set[str]) -> list[str]:
    """Outcomes (``label: outcome``) outside ``allowed``: any 5xx, 503 included, any transport error."""
    return [f"{answer.label}: {answer.outcome}" for answer in answers if answer.outcome not in allowed]


def test_one_batch_submitted_at_once_with_one_key_is_made_once(
    deployment: Deployment, chain: Chain, engine: Any, figure: Any
) -> None:
    """Six simultaneous submissions of one batch with one Idempotency-Key all answer 202 with the one batch made."""
    problems: list[str] = []
    overall: Counter[str] = Counter()

    for round_ in range(ROUNDS):
        session_id, results = chain.passed_session(3)
        key = f"autumn-{uuid.uuid4().hex[:8]}"
        answers = fire_together(
            [_batch_call(deployment, chain, {"session": session_id}, n, key) for n in range(SAME_KEY_RACERS)]
        )
        ids = {answer.body.get("id") for answer in answers if isinstance(answer.body, dict)}
        with Session(engine) as session:
            stored = session.exec(
                select(func.count()).select_from(CertificateBatch).where(CertificateBatch.session_id == session_id)
            ).one()
        final = chain.batch(next(iter(ids))) if len(ids) == 1 else None
        twice = _not_once(engine, results)

        counts = tally(answers)
        overall.update(counts)
        if counts["202"] != SAME_KEY_RACERS:
            problems.append(f"round {round_}: {describe(counts)}")
        if len(ids) != 1 or stored != 1:
            problems.append(f"round {round_}: {len(ids)} batch ids answered, {stored} batches stored")
        if final is not None and (final["status"], len(final["certificate_ids"]), final["errors"]) != ("done", 3, []):
            problems.append(f"round {round_}: batch ended {final['status']} with {final['errors']}")
        if twice:
            problems.append(f"round {round_}: certificates per result {twice}")

    figure(f"same batch x{SAME_KEY_RACERS}, same key ({deployment.backend})", describe(overall))
    assert not problems, _report(deployment, overall, problems)


def test_two_batches_of_one_session_certify_each_result_once(
    deployment: Deployment, chain: Chain, engine: Any, figure: Any
) -> None:
    """A session batch and a result-list batch raced: every result certified once, the rest refused as certified."""
    problems: list[str] = []
    overall: Counter[str] = Counter()
    refusals: Counter[str] = Counter()

    for round_ in range(ROUNDS):
        session_id, results = chain.passed_session(6)
        answers = fire_together(
            [
                _batch_call(deployment, chain, {"session": session_id}, 0, f"session-{uuid.uuid4().hex[:8]}"),
                _batch_call(deployment, chain, {"results": results}, 1, None),
            ]
        )
        counts = tally(answers)
        overall.update(counts)
        if counts["202"] != 2:
            problems.append(f"round {round_}: {describe(counts)}")
            continue
        finals = [chain.batch(answer.body["id"]) for answer in answers]
        issued = [set(final["certificate_ids"]) for final in finals]
        twice = _not_once(engine, results)
        with Session(engine) as session:
            by_batch = Counter(
                session.exec(
                    select(Certificate.batch_id).where(Certificate.exam_result_id.in_(results))  # type: ignore[union-attr]
                ).all()
            )

        for final in finals:
            refusals.update(error["code"] for error in final["errors"])
            if final["status"] != "done" or len(final["certificate_ids"]) + len(final["errors"]) != final["total"]:
                problems.append(f"round {round_}: batch {final['status']}, {final['done']}/{final['total']}")
            if any(error["code"] != "exam_result_certified" for error in final["errors"]):
                problems.append(f"round {round_}: refusals {[error['code'] for error in final['errors']]}")
        if issued[0] & issued[1] or len(issued[0] | issued[1]) != len(results):
            problems.append(f"round {round_}: batches issued {len(issued[0])} + {len(issued[1])} certificates")
        if twice:
            problems.append(f"round {round_}: certificates per result {twice}")
        if sum(by_batch.values()) != len(results):
            problems.append(f"round {round_}: stored certificates by batch {dict(by_batch)}")

    figure(
        f"session batch vs result-list batch ({deployment.backend})",
        f"{describe(overall)}; refusals: {describe(refusals) or 'none'}",
    )
    assert not problems, _report(deployment, overall, problems)


def test_single_issuance_raced_with_a_batch_certifies_each_result_once(
    deployment: Deployment, chain: Chain, engine: Any, figure: Any
) -> None:
    """Direct issuance of each result raced with a batch of them: one certificate each, never a 5xx or deadlock."""
    problems: list[str] = []
    overall: Counter[str] = Counter()
    winners: Counter[str] = Counter()

    for round_ in range(ROUNDS):
        _session_id, results = chain.passed_session(4)
        singles = [
            Call(
                "POST",
                f"{deployment.url(n + 1)}/v1/certificates",
                json={"exam_result_id": result_id},
                headers=chain.headers,
                label="single",
            )
            for n, result_id in enumerate(results)
        ]
        answers = fire_together([_batch_call(deployment, chain, {"results": results}, 0, None), *singles])
        final = chain.batch(answers[0].body["id"]) if answers[0].status == 202 else None
        twice = _not_once(engine, results)

        counts = tally(answers, by_label=True)
        overall.update(counts)
        if unexpected := _unexpected(answers, {"202", "201", "409 exam_result_certified"}):
            problems.append(f"round {round_}: unexpected answers {unexpected}")
        if final is None or final["status"] != "done":
            problems.append(f"round {round_}: batch {final and final['status']} ({describe(counts)})")
        else:
            certified_singly = {a.body["exam_result_id"] for a in answers[1:] if a.status == 201}
            refused = {error["result_id"] for error in final["errors"]}
            winners.update(batch=len(final["certificate_ids"]), single=len(certified_singly))
            if refused != certified_singly or any(e["code"] != "exam_result_certified" for e in final["errors"]):
                problems.append(f"round {round_}: batch refused {final['errors']}, singles won {certified_singly}")
        if twice:
            problems.append(f"round {round_}: certificates per result {twice}")

    figure(
        f"single issuance vs batch ({deployment.backend})",
        f"{describe(overall)}; certified by {describe(winners)}",
    )
    assert not problems, _report(deployment, overall, problems)


def test_retries_of_one_issuance_with_one_key_answer_one_certificate(
    deployment: Deployment, chain: Chain, engine: Any, figure: Any
) -> None:
    """Five simultaneous retries of one issuance with one Idempotency-Key all answer 201 with the one certificate."""
    problems: list[str] = []
    overall: Counter[str] = Counter()
    _session_id, results = chain.passed_session(ROUNDS)

    for round_, result_id in enumerate(results):
        headers = {**chain.headers, "Idempotency-Key": f"retry-{uuid.uuid4().hex[:8]}"}
        answers = fire_together(
            [
                Call(
                    "POST",
                    f"{deployment.url(n)}/v1/certificates",
                    json={"exam_result_id": result_id},
                    headers=headers,
                    label="issue",
                )
                for n in range(SAME_KEY_RACERS - 1)
            ]
        )
        ids = {answer.body.get("id") for answer in answers if answer.status == 201}
        replays = sum(answer.status == 201 and answer.body.get("id") in ids for answer in answers)
        stored = _certificates_per_result(engine, [result_id])[result_id]

        counts = tally(answers)
        overall.update(counts)
        if counts["201"] != SAME_KEY_RACERS - 1 or len(ids) != 1 or replays != SAME_KEY_RACERS - 1:
            problems.append(f"round {round_}: {describe(counts)}, {len(ids)} certificate ids")
        if stored != 1:
            problems.append(f"round {round_}: {stored} certificates stored for the result")

    figure(f"issuance x{SAME_KEY_RACERS - 1}, same key ({deployment.backend})", describe(overall))
    assert not problems, _report(deployment, overall, problems)


def test_concurrent_imports_into_one_session_record_each_candidate_once(
    deployment: Deployment, chain: Chain, engine: Any, figure: Any
) -> None:
    """Four overlapping imports into one session at once: each candidate recorded once, reported accepted once."""
    problems: list[str] = []
    overall: Counter[str] = Counter()
    step = IMPORT_WINDOW // 2

    for round_ in range(ROUNDS):
        session_id = chain.session()
        rows = _candidate_rows(step * (IMPORT_RACERS + 1))
        windows = [rows[n * step : n * step + IMPORT_WINDOW] for n in range(IMPORT_RACERS)]
        answers = fire_together(
            [
                Call(
                    "POST",
                    f"{deployment.url(n)}/v1/exam-sessions/{session_id}/results",
                    json=window,
                    headers=chain.headers,
                    label="import",
                )
                for n, window in enumerate(windows)
            ]
        )
        with Session(engine) as session:
            stored = session.exec(
                select(ExamResult.id_hmac, func.count())
                .where(ExamResult.session_id == session_id)
                .group_by(ExamResult.id_hmac)  # type: ignore[arg-type]
            ).all()
        reports = [answer.body for answer in answers if answer.status == 200]

        counts = tally(answers)
        overall.update(counts)
        if counts["200"] != IMPORT_RACERS:
            problems.append(f"round {round_}: {describe(counts)}")
        elif sum(r["accepted"] for r in reports) != len(rows) or any(
            (r["accepted"] + r["unchanged"], r["rejected"]) != (IMPORT_WINDOW, 0) for r in reports
        ):
            problems.append(
                f"round {round_}: reports {[(r['accepted'], r['unchanged'], r['rejected']) for r in reports]}"
            )
        if len(stored) != len(rows) or any(count != 1 for _hmac, count in stored):
            problems.append(f"round {round_}: {len(stored)} candidates stored of {len(rows)}")

    figure(f"imports x{IMPORT_RACERS} into one session ({deployment.backend})", describe(overall))
    assert not problems, _report(deployment, overall, problems)


@dataclass(frozen=True)
class _Timed:
    """An answer with when its request was sent and when the answer came (monotonic seconds)."""

    answer: Answer
    sent: float
    answered: float


async def _suspend_amid_creates(
    deployment: Deployment, headers: dict[str, str], point: str, *, creators: int, linger: float
) -> tuple[_Timed, list[_Timed]]:
    """Suspend the point while ``creators`` loops open sessions there, until ``linger`` s after the suspension."""
    exam_date = (datetime.now(CST).date() - timedelta(days=1)).isoformat()
    body = {"exam_point": point, "operation": "2.1", "exam_date": exam_date}
    suspended_at: list[float] = []
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)

    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def send(label: str, url: str, json: Any) -> _Timed:
            sent = time.monotonic()
            try:
                response = await client.post(url, json=json, headers=headers)
                answer = Answer.of(label, response, time.monotonic() - sent)
            except httpx.HTTPError as exc:
                answer = Answer(label, None, None, None, time.monotonic() - sent, type(exc).__name__)
            return _Timed(answer, sent, time.monotonic())

        async def create_loop(n: int) -> list[_Timed]:
            seen: list[_Timed] = []
            while not suspended_at or time.monotonic() < suspended_at[0] + linger:
                seen.append(await send("create", f"{deployment.url(n)}/v1/exam-sessions", body))
            return seen

        async def suspend() -> _Timed:
            await asyncio.sleep(0.05)  # the creators are under way
            timed = await send(
                "suspend", f"{deployment.url(1)}/v1/exam-points/{point}/suspend", {"reason": "race: inspection"}
            )
            suspended_at.append(timed.answered)
            return timed

        loops = [asyncio.create_task(create_loop(n)) for n in range(creators)]
        suspension = await suspend()
        creates = [timed for loop in loops for timed in await loop]
    return suspension, creates


def test_no_session_is_opened_at_an_exam_point_after_its_suspension_answered(
    deployment: Deployment, chain: Chain, engine: Any, figure: Any
) -> None:
    """Sessions opened in a loop while the point is suspended: none sent after the suspension's 200 is accepted."""
    problems: list[str] = []
    overall: Counter[str] = Counter()

    for round_ in range(ROUNDS):
        point = f"EP-{uuid.uuid4().hex[:10].upper()}"
        created = chain.client.post(
            f"{deployment.url()}/v1/exam-points", json=_point_body(point), headers=chain.headers
        )
        assert created.status_code == 201, created.text
        suspension, creates = run_coroutine(
            _suspend_amid_creates(deployment, chain.headers, point, creators=SESSION_CREATORS, linger=0.3)
        )
        late = [timed for timed in creates if timed.sent > suspension.answered]
        opened = {timed.answer.body["id"] for timed in creates if timed.answer.status == 201}
        with Session(engine) as session:
            stored = set(
                session.exec(select(ExamSession.id).where(ExamSession.exam_point_id == _point_id(session, point))).all()
            )

        counts = tally([suspension.answer, *(timed.answer for timed in creates)], by_label=True)
        overall.update(counts)
        if suspension.answer.status != 200:
            problems.append(f"round {round_}: suspend answered {suspension.answer.outcome}")
        if unexpected := _unexpected([t.answer for t in creates], {"201", "409 exam_point_not_active"}):
            problems.append(f"round {round_}: unexpected answers {unexpected}")
        if accepted_late := [timed.answer.outcome for timed in late if timed.answer.status != 409]:
            problems.append(f"round {round_}: after the suspension answered: {accepted_late}")
        if not late:
            problems.append(f"round {round_}: no session was requested after the suspension answered")
        if stored != opened:
            problems.append(f"round {round_}: {len(opened)} sessions answered 201, {len(stored)} stored")

    figure(f"suspension amid session creation ({deployment.backend})", describe(overall))
    assert not problems, _report(deployment, overall, problems)


def _point_id(session: Session, code: str) -> str:
    point = session.exec(select(ExamPoint).where(ExamPoint.code == code)).one()
    return point.id


def test_reissue_revoke_and_cards_of_a_batch_certificate_end_consistent(
    deployment: Deployment, chain: Chain, engine: Any, figure: Any
) -> None:
    """Reissue, two revokes and both card PDFs of one batch certificate at once: one change wins, the rest agree."""
    session_id, _results = chain.passed_session(ROUNDS)
    final = chain.batch(chain.submit({"session": session_id}))
    assert (final["status"], len(final["certificate_ids"])) == ("done", ROUNDS), final
    problems: list[str] = []
    overall: Counter[str] = Counter()
    ends: Counter[str] = Counter()

    for round_, certificate_id in enumerate(final["certificate_ids"]):
        base = f"/v1/certificates/{certificate_id}"
        answers = fire_together(
            [
                Call(
                    "POST", f"{deployment.url(0)}{base}/reissue", {"reason": "证件遗失补发"}, chain.headers, "reissue"
                ),
                Call("POST", f"{deployment.url(1)}{base}/revoke", {"reason": "违规作业"}, chain.headers, "revoke"),
                Call("POST", f"{deployment.url(2)}{base}/revoke", {"reason": "违规作业"}, chain.headers, "revoke"),
                Call(
                    "GET",
                    f"{deployment.url(3)}/v1/certificate-batches/{final['id']}/cards.pdf",
                    None,
                    chain.headers,
                    "sheets",
                ),
                Call("GET", f"{deployment.url(4)}{base}/card.pdf", None, chain.headers, "card"),
            ]
        )
        status = chain.client.get(f"{deployment.url()}{base}", headers=chain.headers).json()["status"]
        with Session(engine) as session:
            replacements = session.exec(select(Certificate).where(Certificate.supersedes_id == certificate_id)).all()
        sheets_after = chain.client.get(
            f"{deployment.url()}/v1/certificate-batches/{final['id']}/cards.pdf", headers=chain.headers
        )

        counts = tally(answers, by_label=True)
        overall.update(counts)
        ends[status] += 1
        allowed = {
            "reissue: 201",
            "reissue: 409 invalid_transition",
            "revoke: 200",
            "revoke: 409 invalid_transition",
            "sheets: 200",
            "card: 200",
            "card: 409 certificate_not_valid",
        }
        if unexpected := [f"{a.label}: {a.outcome}" for a in answers if f"{a.label}: {a.outcome}" not in allowed]:
            problems.append(f"round {round_}: unexpected answers {unexpected}")
        won = counts["reissue: 201"] + counts["revoke: 200"]
        if won != 1:
            problems.append(f"round {round_}: {won} status changes won ({describe(counts)})")
        expected = ("superseded", 1) if counts["reissue: 201"] else ("revoked", 0)
        if (status, len(replacements)) != expected:
            problems.append(f"round {round_}: ends {status} with {len(replacements)} replacements ({describe(counts)})")
        if counts["reissue: 201"] and replacements and replacements[0].id != answers[0].body["id"]:
            problems.append(f"round {round_}: the stored replacement is not the one answered")
        if sheets_after.status_code != 200:
            problems.append(f"round {round_}: card sheets after the race: {sheets_after.status_code}")

    figure(
        f"reissue vs 2 revokes vs card PDFs ({deployment.backend})",
        f"{describe(overall)}; end states {describe(ends)}",
    )
    assert not problems, _report(deployment, overall, problems)
