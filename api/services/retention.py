"""Retention: verification events, holder-check counters and idempotency records pruned after their periods.

- **Verification events** older than ``event_days`` are counted per China Standard Time day, issuer,
  decision and reasons into ``verification_daily`` and deleted, whole CST days at a time (the cutoff is
  the CST midnight at the start of the oldest day kept, so a day's count is complete once written).
- **Idempotency records** older than ``idempotency_hours`` are deleted: a retry with the same
  ``Idempotency-Key`` after that is a new request and issues a new certificate.
- **Holder-check counters** are deleted once their window has ended (``expires_at`` before now): the
  verify path only ever reads and counts the windows that hold the current time, so no row that a
  limit still depends on is removed.

Each kind is pruned in batches of at most ``batch_rows`` rows, each batch one write transaction: the
rows are selected (oldest first), counted and deleted by their keys in that transaction, so a batch is
either counted and gone or untouched, and a huge backlog never holds a lock for long. Running again
prunes nothing twice. Concurrent pruners never count a row twice: on PostgreSQL the batch is selected
``FOR UPDATE SKIP LOCKED`` (another pruner's batch is skipped, and a row deleted by a committed batch is
not returned), and the daily counts are added with ``INSERT … ON CONFLICT DO UPDATE SET count = count +
excluded.count`` in key order (no deadlock between two pruners); on SQLite a write transaction takes the
write lock when it begins (``BEGIN IMMEDIATE``), so batches run one after the other.

Time is a parameter: every function takes ``now`` (timezone-aware) and never reads a clock.
:func:`prune_if_elected` is what the periodic task of ``certseal serve`` runs: on PostgreSQL only the
instance holding a session advisory lock prunes, the others skip the round.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, delete, func, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from crypto import CST

from ..db import mark_writer
from ..models import HolderCheckCounter, IdempotencyRecord, VerificationDaily, VerificationEvent

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger("certseal.retention")

BATCH_ROWS = 1000
# pg_try_advisory_lock key of the pruning instance: "cs-prune" in ASCII, as a signed 64-bit integer
# (not the migrations' key: a prune never waits for, or holds up, a migration's lock).
PRUNE_LOCK_KEY = int.from_bytes(b"cs-prune", "big", signed=True)
NO_ISSUER = ""  # verification_daily.issuer_code of events whose credential named no issuer

_EVENTS: Table = VerificationEvent.__table__  # type: ignore[attr-defined]
_DAILY: Table = VerificationDaily.__table__  # type: ignore[attr-defined]
_COUNTERS: Table = HolderCheckCounter.__table__  # type: ignore[attr-defined]
_IDEMPOTENCY: Table = IdempotencyRecord.__table__  # type: ignore[attr-defined]
_DAILY_KEY = ("day", "issuer_code", "decision", "reasons")


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind of row is kept (``CERTSEAL_EVENT_RETENTION_DAYS``, ``…_IDEMPOTENCY_RETENTION_HOURS``)."""

    event_days: int = 1095
    idempotency_hours: int = 24

    def __post_init__(self) -> None:
        if self.event_days < 1 or self.idempotency_hours < 1:
            raise ValueError("retention periods must be at least one day / one hour")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """The periods the settings give."""
        return cls(event_days=settings.event_retention_days, idempotency_hours=settings.idempotency_retention_hours)

    def event_cutoff(self, now: datetime) -> datetime:
        """Events before this moment are pruned: CST midnight starting the day ``event_days`` before ``now``."""
        first_kept = (_aware(now) - timedelta(days=self.event_days)).astimezone(CST).date()
        return datetime.combine(first_kept, time(0), CST)

    def idempotency_cutoff(self, now: datetime) -> datetime:
        """Idempotency records created before this moment are pruned."""
        return _aware(now) - timedelta(hours=self.idempotency_hours)


@dataclass(frozen=True)
class PruneResult:
    """Rows pruned (or, for a dry run, that would be) per kind, and daily count rows written."""

    verification_events: int = 0
    holder_check_counters: int = 0
    idempotency_records: int = 0
    daily_rows: int = 0  # verification_daily rows created or added to (0 in a dry run)

    @property
    def total(self) -> int:
        """Rows deleted (or to delete) over all kinds."""
        return self.verification_events + self.holder_check_counters + self.idempotency_records

    def describe(self) -> str:
        """One line, e.g. for the log."""
        return (
            f"{self.verification_events} verification events ({self.daily_rows} daily count rows written), "
            f"{self.holder_check_counters} holder-check counters, {self.idempotency_records} idempotency records"
        )


def prune(
    bind: Engine | Connection,
    *,
    now: datetime,
    policy: RetentionPolicy,
    batch_rows: int = BATCH_ROWS,
    stop: threading.Event | None = None,
) -> PruneResult:
    """Prune every kind past its period as of ``now``, in batches; return what was pruned.

    ``stop``, once set, ends the run after the batch in progress (it stays consistent; the rest is pruned
    next time). A ``Connection`` must not be in a transaction: each batch is one of its own.
    """
    with _connected(bind) as connection:
        events, daily = prune_verification_events(
            connection, now=now, retention_days=policy.event_days, batch_rows=batch_rows, stop=stop
        )
        counters = prune_holder_check_counters(connection, now=now, batch_rows=batch_rows, stop=stop)
        records = prune_idempotency_records(
            connection, now=now, retention_hours=policy.idempotency_hours, batch_rows=batch_rows, stop=stop
        )
    return PruneResult(
        verification_events=events, holder_check_counters=counters, idempotency_records=records, daily_rows=daily
    )


def prune_verification_events(
    bind: Engine | Connection,
    *,
    now: datetime,
    retention_days: int,
    batch_rows: int = BATCH_ROWS,
    stop: threading.Event | None = None,
) -> tuple[int, int]:
    """Count events older than the period into ``verification_daily`` and delete them; (events, daily rows)."""
    cutoff = RetentionPolicy(event_days=retention_days).event_cutoff(now)
    written = 0

    def batch(connection: Connection) -> int:
        nonlocal written
        rows = connection.execute(
            select(_EVENTS.c.id, _EVENTS.c.at, _EVENTS.c.issuer_code, _EVENTS.c.decision, _EVENTS.c.reasons)
            .where(_EVENTS.c.at < cutoff)
            .order_by(_EVENTS.c.at, _EVENTS.c.id)
            .limit(batch_rows)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return 0
        counts = Counter(
            (_aware(row.at).astimezone(CST).date(), row.issuer_code or NO_ISSUER, row.decision, row.reasons or "")
            for row in rows
        )
        _add_daily_counts(connection, counts)
        written += len(counts)
        return _delete_exactly(connection, delete(_EVENTS).where(_EVENTS.c.id.in_([row.id for row in rows])), rows)

    with _connected(bind) as connection:
        pruned = _in_batches(connection, batch, batch_rows=batch_rows, stop=stop)
    return pruned, written


def prune_idempotency_records(
    bind: Engine | Connection,
    *,
    now: datetime,
    retention_hours: int,
    batch_rows: int = BATCH_ROWS,
    stop: threading.Event | None = None,
) -> int:
    """Delete idempotency records created more than ``retention_hours`` before ``now``; return how many."""
    cutoff = RetentionPolicy(idempotency_hours=retention_hours).idempotency_cutoff(now)

    def batch(connection: Connection) -> int:
        ids = (
            connection.execute(
                select(_IDEMPOTENCY.c.id)
                .where(_IDEMPOTENCY.c.created_at < cutoff)
                .order_by(_IDEMPOTENCY.c.created_at)
                .limit(batch_rows)
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )
        if not ids:
            return 0
        return _delete_exactly(connection, delete(_IDEMPOTENCY).where(_IDEMPOTENCY.c.id.in_(ids)), ids)

    with _connected(bind) as connection:
        return _in_batches(connection, batch, batch_rows=batch_rows, stop=stop)


def prune_holder_check_counters(
    bind: Engine | Connection, *, now: datetime, batch_rows: int = BATCH_ROWS, stop: threading.Event | None = None
) -> int:
    """Delete holder-check counters whose window ended before ``now``; return how many."""
    seconds = int(_aware(now).timestamp())
    key = (_COUNTERS.c.certificate_id, _COUNTERS.c.client, _COUNTERS.c.window_start)

    def batch(connection: Connection) -> int:
        rows = connection.execute(
            select(*key)
            .where(_COUNTERS.c.expires_at < seconds)
            .order_by(_COUNTERS.c.expires_at)
            .limit(batch_rows)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return 0
        keys = [tuple(row) for row in rows]
        return _delete_exactly(connection, delete(_COUNTERS).where(tuple_(*key).in_(keys)), keys)

    with _connected(bind) as connection:
        return _in_batches(connection, batch, batch_rows=batch_rows, stop=stop)


def count_prunable(bind: Engine | Connection, *, now: datetime, policy: RetentionPolicy) -> PruneResult:
    """What :func:`prune` would delete as of ``now`` (a dry run: nothing changes; ``daily_rows`` is 0)."""
    seconds = int(_aware(now).timestamp())
    queries = (
        select(func.count()).select_from(_EVENTS).where(_EVENTS.c.at < policy.event_cutoff(now)),
        select(func.count()).select_from(_COUNTERS).where(_COUNTERS.c.expires_at < seconds),
        select(func.count())
        .select_from(_IDEMPOTENCY)
        .where(_IDEMPOTENCY.c.created_at < policy.idempotency_cutoff(now)),
    )
    with _connected(bind) as connection, connection.begin():
        events, counters, records = (int(connection.execute(query).scalar_one()) for query in queries)
    return PruneResult(verification_events=events, holder_check_counters=counters, idempotency_records=records)


def prune_if_elected(
    bind: Engine | Connection,
    *,
    now: datetime,
    policy: RetentionPolicy,
    batch_rows: int = BATCH_ROWS,
    stop: threading.Event | None = None,
) -> PruneResult | None:
    """:func:`prune` on the one instance that holds the pruning lock; None if another holds it.

    On PostgreSQL the lock is ``pg_try_advisory_lock(PRUNE_LOCK_KEY)``, a session lock on the connection
    the batches run on, released at the end (or with the connection, if it breaks). SQLite is one machine's
    database: its write lock already serialises pruners, so every caller prunes.
    """
    with _connected(bind) as connection:
        if connection.dialect.name != "postgresql":
            return prune(connection, now=now, policy=policy, batch_rows=batch_rows, stop=stop)
        with connection.begin():
            elected = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": PRUNE_LOCK_KEY}).scalar()
        if not elected:
            return None
        try:
            return prune(connection, now=now, policy=policy, batch_rows=batch_rows, stop=stop)
        finally:
            try:
                with connection.begin():
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PRUNE_LOCK_KEY})
            except SQLAlchemyError:
                log.warning("could not release the pruning lock; closing its connection instead")
                connection.invalidate()  # the server drops a session's advisory locks with it


def _add_daily_counts(connection: Connection, counts: Counter[tuple[date, str, str, str]]) -> None:
    """Add the counts to ``verification_daily``, creating rows as needed, in key order (no deadlocks)."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        insert: Any = postgresql.insert(_DAILY)
    elif dialect == "sqlite":
        insert = sqlite.insert(_DAILY)
    else:
        raise NotImplementedError(f"pruning on {dialect}")
    upsert = insert.on_conflict_do_update(
        index_elements=list(_DAILY_KEY), set_={"count": _DAILY.c["count"] + insert.excluded["count"]}
    )
    rows = [dict(zip(_DAILY_KEY, key, strict=True), count=number) for key, number in sorted(counts.items())]
    connection.execute(upsert, rows)


def _delete_exactly(connection: Connection, statement: Any, selected: Any) -> int:
    """Run a DELETE of the rows just selected (and locked); anything else means a bug: roll back."""
    deleted = connection.execute(statement).rowcount
    if deleted != len(selected):
        raise RuntimeError(f"pruning deleted {deleted} rows of the {len(selected)} it selected; rolled back")
    return len(selected)


def _in_batches(
    connection: Connection,
    batch: Callable[[Connection], int],
    *,
    batch_rows: int,
    stop: threading.Event | None,
) -> int:
    """Run ``batch`` in write transactions until it prunes fewer than ``batch_rows`` (or ``stop`` is set)."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    total = 0
    while stop is None or not stop.is_set():
        with mark_writer(connection).begin():  # SQLite: BEGIN IMMEDIATE, the write lock up front
            pruned = batch(connection)
        total += pruned
        if pruned < batch_rows:
            break
    return total


@contextmanager
def _connected(bind: Engine | Connection) -> Iterator[Connection]:
    if isinstance(bind, Engine):
        with bind.connect() as connection:
            yield connection
        return
    if bind.in_transaction():
        raise ValueError("give a connection outside a transaction: every batch is a transaction of its own")
    yield bind


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("give a timezone-aware time")
    return moment
