"""Retention: old verification events counted per CST day then deleted, old idempotency records and ended
holder-check counters deleted; by the service with a fixed clock, by ``certseal db prune`` and by the
periodic task of ``serve``, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import cycle
from typing import Any

import pytest
from conftest import FixedClock
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import insert, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from api import pruner as pruner_module
from api.db import make_engine, write_transaction
from api.main import create_app
from api.models import (
    Certificate,
    HolderCheckCounter,
    IdempotencyRecord,
    Issuer,
    SigningKeyRow,
    VerificationEvent,
    new_id,
)
from api.pruner import PeriodicPruner
from api.services import retention, verify_store
from api.services.errors import HolderCheckLimited
from api.services.retention import PRUNE_LOCK_KEY, PruneResult, RetentionPolicy
from api.services.verify_store import HolderCheckLimits, VerifyStore
from api.settings import Settings
from tests.concurrency.harness import run_coroutine

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# 30 days before NOW is 2026-05-02 20:00 CST: events before 2026-05-02 00:00 CST (2026-05-01 16:00 UTC) go.
THIRTY_DAYS = RetentionPolicy(event_days=30, idempotency_hours=24)
CUTOFF = datetime(2026, 5, 1, 16, 0, tzinfo=UTC)
LIMITS = HolderCheckLimits(per_client=5, all_clients=30, all_clients_window_seconds=600)


@pytest.fixture
def engine(sqlite_or_postgres_url: str) -> Iterator[Engine]:
    """An engine on a fresh migrated database (SQLite, then PostgreSQL), disposed afterwards."""
    engine = make_engine(sqlite_or_postgres_url)
    yield engine
    engine.dispose()


def add_events(engine: Engine, *events: tuple[datetime, str | None, str, str]) -> None:
    """Insert verification events given as (at, issuer code, decision, reasons)."""
    rows = [
        {"id": new_id(), "at": at, "issuer_code": issuer, "decision": decision, "reasons": reasons}
        for at, issuer, decision, reasons in events
    ]
    with engine.begin() as connection:
        connection.execute(insert(VerificationEvent.__table__), rows)  # type: ignore[attr-defined]


def daily_counts(engine: Engine) -> dict[tuple[date, str, str, str], int]:
    """The verification_daily table as {(day, issuer code, decision, reasons): count}."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT day, issuer_code, decision, reasons, count FROM verification_daily"))
        return {(_date(day), issuer, decision, reasons): count for day, issuer, decision, reasons, count in rows}


def event_times(engine: Engine) -> list[datetime]:
    """The times of the verification events still held, oldest first."""
    with Session(engine) as session:
        return sorted(event.at for event in session.exec(select(VerificationEvent)).all())


def _date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value  # SQLite answers raw SQL with text


def make_certificate(engine: Engine) -> str:
    """Insert an issuer, a key and a certificate row (dummy values: only the keys matter here); its id."""
    with Session(engine) as session, write_transaction(session):
        issuer = Issuer(code="CN-44", name="广东省应急管理厅", region="广东省", operations=["2.1"])
        key = SigningKeyRow(
            kid="00" * 8, issuer_id=issuer.id, alg="ES256", public_key_pem="-", encrypted_private_key="-"
        )
        certificate = Certificate(
            serial="01" * 8,
            issuer_id=issuer.id,
            kid=key.kid,
            holder_name="张伟",
            masked_id="4401****",
            id_hmac=bytes(32),
            id_hmac_version=1,
            operation="2.1",
            issue_date=date(2026, 1, 5),
            valid_until=date(2032, 1, 4),
            status_index=1,
            envelope=b"-",
            envelope_sha256="0" * 64,
        )
        session.add(issuer)
        session.flush()
        session.add(key)
        session.flush()
        session.add(certificate)
        return certificate.id


def add_idempotency_records(engine: Engine, *created: datetime) -> None:
    """Insert one idempotency record created at each given time."""
    with Session(engine) as session, write_transaction(session):
        for number, at in enumerate(created):
            session.add(
                IdempotencyRecord(
                    principal="issuer:x",
                    key=f"k-{number}",
                    request_hash="0" * 64,
                    status_code=201,
                    response_body=b"{}",
                    created_at=at,
                )
            )


def idempotency_times(engine: Engine) -> list[datetime]:
    """When the idempotency records still held were created, oldest first."""
    with Session(engine) as session:
        return sorted(record.created_at for record in session.exec(select(IdempotencyRecord)).all())


def counter_keys(engine: Engine) -> set[tuple[str, int]]:
    """(client, window start) of every holder-check counter held."""
    with Session(engine) as session:
        return {(row.client, row.window_start) for row in session.exec(select(HolderCheckCounter)).all()}


def test_old_events_are_counted_per_cst_day_issuer_decision_and_reasons_then_deleted(engine):
    """Events before the cutoff become daily counts split at CST midnight and are deleted; younger ones stay."""
    before_midnight_cst = datetime(2026, 4, 30, 15, 59, 59, tzinfo=UTC)  # 2026-04-30 23:59:59 CST
    add_events(
        engine,
        (before_midnight_cst, "CN-44", "accept", ""),
        (before_midnight_cst - timedelta(hours=3), "CN-44", "accept", ""),
        (before_midnight_cst + timedelta(seconds=1), "CN-44", "accept", ""),  # 2026-05-01 00:00 CST
        (datetime(2026, 4, 30, 17, 0, tzinfo=UTC), "CN-44", "reject", "revoked"),
        (datetime(2026, 4, 30, 18, 0, tzinfo=UTC), "CN-11", "reject", "revoked,expired"),
        (datetime(2026, 4, 30, 19, 0, tzinfo=UTC), None, "reject", "malformed"),
        (CUTOFF - timedelta(seconds=1), "CN-44", "accept", ""),
        (CUTOFF, "CN-44", "accept", ""),
        (NOW - timedelta(days=1), "CN-44", "reject", "expired"),
    )

    result = retention.prune(engine, now=NOW, policy=THIRTY_DAYS, batch_rows=2)

    assert result.verification_events == 7
    assert daily_counts(engine) == {
        (date(2026, 4, 30), "CN-44", "accept", ""): 2,
        (date(2026, 5, 1), "CN-44", "accept", ""): 2,
        (date(2026, 5, 1), "CN-44", "reject", "revoked"): 1,
        (date(2026, 5, 1), "CN-11", "reject", "revoked,expired"): 1,
        (date(2026, 5, 1), "", "reject", "malformed"): 1,
    }
    assert event_times(engine) == [CUTOFF, NOW - timedelta(days=1)]


def test_pruning_again_prunes_nothing_and_later_events_add_to_the_day(engine):
    """A second run as of the same time changes nothing; events of the same day pruned later add to its count."""
    day = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)
    add_events(engine, *[(day + timedelta(minutes=n), "CN-44", "accept", "") for n in range(5)])
    first = retention.prune(engine, now=NOW, policy=THIRTY_DAYS, batch_rows=2)

    again = retention.prune(engine, now=NOW, policy=THIRTY_DAYS, batch_rows=2)
    unchanged = daily_counts(engine)
    add_events(engine, (day + timedelta(hours=1), "CN-44", "accept", ""))
    later = retention.prune(engine, now=NOW, policy=THIRTY_DAYS)

    assert first.verification_events == 5
    assert again == PruneResult()
    assert unchanged == {(date(2026, 4, 1), "CN-44", "accept", ""): 5}
    assert later.verification_events == 1
    assert daily_counts(engine) == {(date(2026, 4, 1), "CN-44", "accept", ""): 6}


def test_event_retention_keeps_whole_cst_days_for_at_least_the_period():
    """The cutoff is the CST midnight starting the day the period reaches back to."""
    policy = RetentionPolicy(event_days=1095)

    cutoff = policy.event_cutoff(datetime(2026, 12, 1, 15, 30, tzinfo=UTC))  # 2026-12-01 23:30 CST

    assert cutoff == datetime(2023, 12, 1, 16, 0, tzinfo=UTC)  # 2023-12-02 00:00 CST


def test_a_naive_time_is_refused(engine):
    """``now`` must be timezone-aware: a naive time would shift every cutoff by the machine's offset."""

    with pytest.raises(ValueError, match="timezone-aware"):
        retention.prune(engine, now=datetime(2026, 6, 1, 12, 0), policy=THIRTY_DAYS)


def test_idempotency_records_older_than_24_hours_are_deleted(engine):
    """Records created more than 24 h before ``now`` go; those at 24 h or younger stay."""
    add_idempotency_records(
        engine,
        NOW - timedelta(days=3),
        NOW - timedelta(hours=24, seconds=1),
        NOW - timedelta(hours=24),
        NOW - timedelta(hours=1),
    )

    result = retention.prune(engine, now=NOW, policy=THIRTY_DAYS, batch_rows=1)

    assert result.idempotency_records == 2
    assert idempotency_times(engine) == [NOW - timedelta(hours=24), NOW - timedelta(hours=1)]


def test_a_retry_after_its_record_is_pruned_is_a_new_request(app, app_client, issuer, certificate_body):
    """Expected: past the idempotency retention a retried Idempotency-Key issues a second certificate."""
    body = certificate_body()
    headers = {**issuer.headers, "Idempotency-Key": "exam-2026-001"}
    first = app_client.post("/v1/certificates", json=body, headers=headers)
    replay = app_client.post("/v1/certificates", json=body, headers=headers)

    result = retention.prune(app.state.engine, now=datetime.now(UTC) + timedelta(hours=25), policy=RetentionPolicy())
    retry = app_client.post("/v1/certificates", json=body, headers=headers)

    assert replay.json()["id"] == first.json()["id"]
    assert result.idempotency_records == 1
    assert retry.status_code == 201
    assert "Idempotent-Replay" not in retry.headers
    assert retry.json()["id"] != first.json()["id"]


def test_holder_check_counters_are_deleted_only_after_their_window(engine, monkeypatch):
    """Counters whose window ended go; the current windows' counters stay and still refuse the client."""
    monkeypatch.setattr(verify_store, "PRUNE_EVERY_SECONDS", 10**9)  # the verify path's own prune stays out
    certificate_id = make_certificate(engine)
    hour = int(NOW.timestamp())  # NOW is on the hour: the client window starts now, the 600 s window too
    store = VerifyStore(engine, deadline_ms=1000)
    count = functools.partial(store.count_holder_failure, certificate_id=certificate_id, limits=LIMITS)
    try:
        count(client="app:a", now=hour - 3595)  # the past hour; its 600 s all-clients window ended long ago
        count(client="app:b", now=hour - 1)  # the past hour; the all-clients window ending now
        for _ in range(LIMITS.per_client):
            count(client="app:a", now=hour + 10)  # the current windows, the client at its limit
        pruned = retention.prune_holder_check_counters(engine, now=NOW + timedelta(seconds=20))
        left = counter_keys(engine)
        with pytest.raises(HolderCheckLimited):
            store.check_holder_allowed(certificate_id=certificate_id, client="app:a", limits=LIMITS, now=hour + 30)
    finally:
        store.close()

    assert pruned == 4  # both clients' past-hour counters and two past all-clients windows
    assert left == {("app:a", hour), ("*", hour)}


def test_a_counter_whose_window_ends_exactly_now_is_kept(engine):
    """``expires_at`` equal to ``now`` is not yet past: the prune is strict, as the verify path's own."""
    certificate_id = make_certificate(engine)
    end = int(NOW.timestamp())
    with Session(engine) as session, write_transaction(session):
        session.add(
            HolderCheckCounter(
                certificate_id=certificate_id, client="app:a", window_start=end - 3600, failures=1, expires_at=end
            )
        )

    pruned = retention.prune_holder_check_counters(engine, now=NOW)

    assert pruned == 0
    assert counter_keys(engine) == {("app:a", end - 3600)}


def test_concurrent_prunes_count_every_event_exactly_once(engine):
    """Four pruners at once, in small batches, delete every old event once and the daily totals are exact."""
    issuers, decisions = cycle(["CN-44", "CN-11", None]), cycle([("accept", ""), ("reject", "revoked")])
    events = []
    for n in range(1500):
        decision, reasons = next(decisions)
        events.append((datetime(2026, 4, 1, tzinfo=UTC) + timedelta(minutes=37 * n), next(issuers), decision, reasons))
    add_events(engine, *events)
    expected = Counter(
        ((at + timedelta(hours=8)).date(), issuer or "", decision, reasons) for at, issuer, decision, reasons in events
    )
    start = threading.Barrier(4)
    results: list[PruneResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            results.append(retention.prune(engine, now=NOW, policy=THIRTY_DAYS, batch_rows=50))
        except BaseException as exc:  # noqa: BLE001 -- reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sum(result.verification_events for result in results) == sum(1 for at, *_ in events if at < CUTOFF)
    assert daily_counts(engine) == {key: count for key, count in expected.items() if key[0] < date(2026, 5, 2)}
    assert min(event_times(engine)) == min(at for at, *_ in events if at >= CUTOFF)


def test_dry_run_counts_without_changing_anything(engine):
    """``count_prunable`` gives what ``prune`` then deletes, and deletes nothing itself."""
    add_events(engine, (CUTOFF - timedelta(days=1), "CN-44", "accept", ""), (NOW, "CN-44", "accept", ""))
    add_idempotency_records(engine, NOW - timedelta(days=2))

    counted = retention.count_prunable(engine, now=NOW, policy=THIRTY_DAYS)
    held = len(event_times(engine))
    pruned = retention.prune(engine, now=NOW, policy=THIRTY_DAYS)

    assert counted == PruneResult(verification_events=1, idempotency_records=1)
    assert held == 2
    assert (pruned.verification_events, pruned.idempotency_records) == (1, 1)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("event_retention_days", 0),
        ("idempotency_retention_hours", 0),
        ("prune_interval_seconds", 59),
    ],
)
def test_retention_settings_out_of_range_are_refused(setting, value):
    """Periods under a day or an hour and a pruning interval under a minute are refused at start."""

    with pytest.raises(ValidationError, match=setting):
        Settings.for_demo(**{setting: value})


def test_retention_settings_have_their_documented_defaults(monkeypatch):
    """Three years of events, 24 hours of idempotency records, pruning every hour."""
    for name in ("EVENT_RETENTION_DAYS", "IDEMPOTENCY_RETENTION_HOURS", "PRUNE_INTERVAL_SECONDS"):
        monkeypatch.delenv(f"CERTSEAL_{name}", raising=False)

    settings = Settings.for_demo()

    assert (settings.event_retention_days, settings.idempotency_retention_hours) == (1095, 24)
    assert settings.prune_interval_seconds == 3600


# ---------------------------------------------------------------------------------------------------
# certseal db prune
# ---------------------------------------------------------------------------------------------------


def test_db_prune_command_prunes_a_migrated_database(sqlite_or_postgres_url, run_cli):
    """``db prune --dry-run`` counts and keeps; ``db prune`` deletes with the periods from the environment."""
    engine = make_engine(sqlite_or_postgres_url)
    now = datetime.now(UTC)
    try:
        add_events(
            engine, (now - timedelta(days=40), "CN-44", "accept", ""), (now - timedelta(days=2), "CN-44", "accept", "")
        )
        add_idempotency_records(engine, now - timedelta(hours=30), now - timedelta(hours=1))
        env = {"CERTSEAL_EVENT_RETENTION_DAYS": "30"}

        dry = run_cli("db", "prune", "--dry-run", "--database", sqlite_or_postgres_url, env=env)
        held = len(event_times(engine))
        pruned = run_cli("db", "prune", "--database", sqlite_or_postgres_url, env=env)
        counted = sum(daily_counts(engine).values())
        left = len(event_times(engine)), len(idempotency_times(engine))
    finally:
        engine.dispose()

    assert dry[0] == 0
    assert "would prune (dry run, nothing changed):" in dry[1]
    assert "verification events:   1 " in dry[1]
    assert held == 2
    assert pruned[0] == 0
    assert pruned[1].startswith("pruned:\n")
    assert "verification events:   1 " in pruned[1]
    assert "idempotency records:   1 (older than 24 h)" in pruned[1]
    assert counted == 1
    assert left == (1, 1)


def test_db_prune_refuses_a_database_behind_head(tmp_path, run_cli):
    """On an empty database ``db prune`` changes nothing and names ``certseal db upgrade``."""

    code, out, err = run_cli("db", "prune", "--database", f"sqlite:///{tmp_path / 'empty.db'}")

    assert code == 2
    assert out == ""
    assert "certseal db upgrade" in err


# ---------------------------------------------------------------------------------------------------
# The periodic task of serve
# ---------------------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], Any], *, seconds: float = 20) -> None:
    """Poll ``condition`` until it is true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_serve_prunes_in_the_background_with_the_app_clock(settings, monkeypatch):
    """The lifespan's task prunes as of ``app.state.clock`` (not the system's) and is gone after shutdown."""
    monkeypatch.setattr(pruner_module, "FIRST_RUN_DELAY_SECONDS", 0.0)
    today = datetime.now(UTC)
    engine = make_engine(settings.database_url)
    add_events(engine, (today, "CN-44", "accept", ""))
    engine.dispose()
    app = create_app(settings, clock=FixedClock(today + timedelta(days=3 * 365 + 10)))  # past three years then

    with TestClient(app):
        wait_for(lambda: app.state.pruner.runs >= 1)
        counted = daily_counts(app.state.engine)
        held = len(event_times(app.state.engine))
        pruner = app.state.pruner
        running = pruner.running

    assert held == 0
    assert counted == {((today + timedelta(hours=8)).date(), "CN-44", "accept", ""): 1}
    assert pruner.failures == 0
    assert running
    assert not pruner.running


def test_a_failed_round_is_logged_and_retried_at_the_next_interval(tmp_path, migrated_sqlite, caplog):
    """An error in one round is logged, not raised; the next round prunes; stop() ends the task."""
    engine = make_engine(f"sqlite:///{migrated_sqlite(tmp_path / 'certseal.db')}")
    add_events(engine, (CUTOFF - timedelta(days=1), "CN-44", "accept", ""))
    times = iter([None, NOW])

    class FlakyClock:
        def now(self) -> datetime:
            at = next(times, NOW)
            if at is None:
                raise RuntimeError("clock unavailable")
            return at

    pruner = PeriodicPruner(
        engine, policy=THIRTY_DAYS, clock=FlakyClock(), interval_seconds=0.05, first_delay_seconds=0
    )

    async def run() -> None:
        pruner.start()
        for _ in range(400):
            if pruner.runs:
                break
            await asyncio.sleep(0.01)
        await pruner.stop()

    try:
        run_coroutine(run())
        held = len(event_times(engine))
    finally:
        engine.dispose()

    assert pruner.failures == 1
    assert pruner.runs >= 1
    assert held == 0
    assert "pruning failed (RuntimeError: clock unavailable)" in caplog.text


@pytest.mark.postgres
def test_the_periodic_task_skips_while_another_instance_holds_the_lock(postgres_url):
    """While another session holds the pruning lock a round prunes nothing; once it is free, it prunes."""
    engine = make_engine(postgres_url)
    add_events(engine, (CUTOFF - timedelta(days=1), "CN-44", "accept", ""))
    pruner = PeriodicPruner(engine, policy=THIRTY_DAYS, clock=FixedClock(NOW), interval_seconds=60)
    try:
        with engine.connect() as other:
            assert other.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": PRUNE_LOCK_KEY}).scalar()
            other.commit()

            skipped = pruner.run_once()
            held = len(event_times(engine))

            other.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PRUNE_LOCK_KEY})
            other.commit()
        ran = pruner.run_once()
        with engine.connect() as connection:
            lock_left = connection.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :low"),
                {"low": PRUNE_LOCK_KEY & 0xFFFFFFFF},
            ).scalar()
    finally:
        engine.dispose()

    assert skipped is None
    assert held == 1
    assert pruner.skipped == 1
    assert ran is not None
    assert ran.verification_events == 1
    assert lock_left == 0
