"""Verification events, written in batches off the request path.

A background thread flushes the queue every ``flush_seconds`` (at most one second), so a crash
loses at most the last second of events; certificates and status changes are written in their own
request transactions and are never queued here. Nothing is lost silently: when the queue is full
(a long database outage) the oldest events give way to the newest and every one dropped is counted
and logged, and events still unwritten at shutdown are logged with their number.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..db import begin_write
from ..metrics import EVENTS_DROPPED
from ..models import VerificationEvent, new_id

log = logging.getLogger("certseal.events")
# Rows per INSERT statement: 9 columns x 200 = 1,800 parameters, far below SQLite's (32,766) and
# PostgreSQL's (65,535) limits.
ROWS_PER_STATEMENT = 200
MAX_QUEUED = 100_000  # beyond this, under a database outage, the oldest events are dropped (and counted)


class EventRecorder:
    """Queue verification events and insert them in batches from one background thread."""

    def __init__(
        self,
        engine: Engine,
        flush_seconds: float = 1.0,
        *,
        max_queued: int = MAX_QUEUED,
        also_flush: Sequence[Callable[[], object]] = (),
    ) -> None:
        self._engine = engine
        # Other off-the-request-path writers run on this thread after each batch (e.g. API key last-used times).
        self._also_flush = tuple(also_flush)
        # One executemany with the columns' own bind conversions: SQLAlchemy's ORM bulk insert cost 15%
        # of the server's CPU at 2,000 verifications a second, all of it holding the GIL.
        table = VerificationEvent.__table__  # type: ignore[attr-defined]
        self._columns = [column.name for column in table.columns]
        self._converters = [column.type.bind_processor(engine.dialect) for column in table.columns]
        placeholder = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._insert_into = f"INSERT INTO {table.name} ({', '.join(self._columns)}) VALUES "  # noqa: S608 -- ours
        self._row_values = f"({', '.join([placeholder] * len(self._columns))})"
        self._statements: dict[int, str] = {}
        self._flush_seconds = flush_seconds
        self._max_queued = max_queued
        self._queue: deque[dict[str, Any]] = deque()
        # Held for a whole flush, so flush() returns only after a batch the thread already took is written.
        self._flushing = threading.Lock()
        self._queue_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def record(self, **fields: Any) -> None:
        """Queue one event (cheap: no I/O on the request path)."""
        with self._queue_lock:
            self._queue.append({"id": new_id(), **fields})
            self._drop_oldest_beyond_limit()

    def _drop_oldest_beyond_limit(self) -> None:
        excess = len(self._queue) - self._max_queued
        if excess > 0:
            for _ in range(excess):
                self._queue.popleft()
            self.dropped += excess
            EVENTS_DROPPED.inc(excess)
            log.error("verification event queue full: dropped %d oldest events (%d in all)", excess, self.dropped)

    @property
    def queued(self) -> int:
        """Events waiting to be written."""
        return len(self._queue)

    def flush(self) -> int:
        """Write everything queued now; return how many rows were written (0 if the database failed)."""
        with self._flushing:
            with self._queue_lock:
                batch = list(self._queue)
                self._queue.clear()
            if not batch:
                return 0
            rows = [
                tuple(
                    value if convert is None else convert(value)
                    for value, convert in zip(
                        (event.get(name) for name in self._columns), self._converters, strict=True
                    )
                )
                for event in batch
            ]
            try:
                with begin_write(self._engine) as connection:
                    # Multi-row INSERTs, not executemany: SQLite's driver lets go of the GIL for every
                    # statement step, and each row's step cost a GIL round trip with the request threads
                    # (~100 µs of CPU per event under load, bench/bench_cores.py); now one per chunk.
                    for start in range(0, len(rows), ROWS_PER_STATEMENT):
                        chunk = rows[start : start + ROWS_PER_STATEMENT]
                        parameters = tuple(value for row in chunk for value in row)
                        connection.exec_driver_sql(self._statement(len(chunk)), parameters)
            except (SQLAlchemyError, self._engine.dialect.loaded_dbapi.Error) as exc:
                log.error("verification events not written yet (%s); retrying", type(exc).__name__)
                with self._queue_lock:
                    self._queue.extendleft(reversed(batch))  # back in front, still oldest first
                    self._drop_oldest_beyond_limit()
                return 0
            return len(batch)

    def _statement(self, rows: int) -> str:
        """``INSERT ... VALUES (...), (...)`` for ``rows`` rows (built once per row count)."""
        statement = self._statements.get(rows)
        if statement is None:
            statement = self._statements[rows] = self._insert_into + ", ".join([self._row_values] * rows)
        return statement

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            self._flush_all()
        self._flush_all()

    def _flush_all(self) -> None:
        self.flush()
        for flush in self._also_flush:
            try:
                flush()
            except Exception:  # a failing hook must never stop the event writer
                log.exception("background flush failed")

    def start(self) -> None:
        """Start the background flusher."""
        self._thread = threading.Thread(target=self._run, name="certseal-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the flusher after a last flush; log how many events could not be written."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        else:
            self._flush_all()
        if self._queue or self.dropped:
            log.error(
                "verification events lost at shutdown: %d unwritten, %d dropped earlier", len(self._queue), self.dropped
            )
