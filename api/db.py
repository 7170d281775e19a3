"""Database engine, transactions and the bounded thread lanes that run blocking database work.

Nothing connects at import time. Every connection is bounded: PostgreSQL gets connect, statement
and lock timeouts and TCP keepalives with ``tcp_user_timeout`` (a frozen, already-open link sends no
error otherwise); SQLite gets a busy timeout. Write transactions on SQLite take the write lock when
they begin (``BEGIN IMMEDIATE``), so two writers queue instead of one failing half-way on a lock
upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, create_engine

from . import models  # noqa: F401 -- registers the tables on SQLModel.metadata

_WRITE = "certseal_write"
# Auxiliary connections beyond the request threads' pool: the event writer, the certificate batch runner
# and start-up work.
AUXILIARY_CONNECTIONS = 3

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class DatabaseLimits:
    """Pool size and timeouts of one engine (from the ``CERTSEAL_DB_*`` settings)."""

    pool_size: int = 8
    pool_timeout_seconds: float = 10
    connect_timeout_seconds: int = 5
    statement_timeout_ms: int = 5000
    lock_timeout_ms: int = 2000
    tcp_user_timeout_ms: int = 5000
    sqlite_busy_timeout_ms: int = 5000


def postgres_connect_args(limits: DatabaseLimits) -> dict[str, Any]:
    """libpq parameters that bound connecting, every statement, every lock wait and a dead link."""
    keepalive_idle = max(1, limits.tcp_user_timeout_ms // 2000)
    return {
        "connect_timeout": limits.connect_timeout_seconds,
        "options": f"-c statement_timeout={limits.statement_timeout_ms} -c lock_timeout={limits.lock_timeout_ms}"
        f" -c idle_in_transaction_session_timeout={max(limits.statement_timeout_ms * 2, 10_000)}",
        "tcp_user_timeout": limits.tcp_user_timeout_ms,
        "keepalives": 1,
        "keepalives_idle": keepalive_idle,
        "keepalives_interval": 1,
        "keepalives_count": 3,
    }


def make_engine(database_url: str, *, limits: DatabaseLimits | None = None) -> Engine:
    """Create the engine with bounded pool and connections; SQLite gets WAL and foreign keys."""
    limits = limits or DatabaseLimits()
    pool = {
        "pool_size": limits.pool_size,
        "max_overflow": AUXILIARY_CONNECTIONS,
        "pool_timeout": limits.pool_timeout_seconds,
    }
    if not database_url.startswith("sqlite"):
        return create_engine(database_url, pool_pre_ping=True, connect_args=postgres_connect_args(limits), **pool)
    engine = create_engine(
        database_url,
        connect_args={"check_same_thread": False, "timeout": limits.sqlite_busy_timeout_ms / 1000},
        **pool,
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # The driver's own implicit BEGIN is switched off: transactions start in _sqlite_begin below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


@contextmanager
def write_transaction(session: Session) -> Iterator[Session]:
    """One read-write transaction, committed at the end or rolled back on an exception.

    On SQLite it holds the write lock from its first statement, so concurrent writers wait their
    turn (up to the busy timeout) instead of failing on a lock upgrade.
    """
    with session.begin():
        session.connection(execution_options={_WRITE: True})
        yield session


@contextmanager
def read_transaction(session: Session) -> Iterator[Session]:
    """One read-only transaction; the connection returns to the pool when it ends."""
    with session.begin():
        yield session


def begin_write(engine: Engine) -> Any:
    """``engine.begin()`` for a write on a Core connection (SQLite: the write lock up front)."""
    return engine.execution_options(**{_WRITE: True}).begin()


def mark_writer(connection: Connection) -> Connection:
    """Make the next transaction of a Core connection take SQLite's write lock when it begins."""
    return connection.execution_options(**{_WRITE: True})


_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


class LaneUnavailable(Exception):
    """A lane call did not finish within its deadline (the database is slow, locked or unreachable)."""


class BlockingLane:
    """A fixed set of threads for blocking database calls from ``async`` code, each with a deadline.

    Past the deadline the caller gets :class:`LaneUnavailable` at once; a call still queued never
    runs, one already running finishes in its thread within the database's own timeouts. The thread
    count is fixed, so a stalled database can never pile up threads or connections. Each result goes
    back to its caller as soon as it is ready, so one slow call never holds up another's answer.
    """

    def __init__(self, *, threads: int, deadline_seconds: float, name: str) -> None:
        self.deadline_seconds = deadline_seconds
        self._calls: queue.SimpleQueue[_LaneCall | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True) for n in range(threads)]
        for thread in self._threads:
            thread.start()

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``function`` on a lane thread; raise :class:`LaneUnavailable` past the deadline."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        # In the caller's context: a line logged on the lane carries the request's id.
        call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
        self._calls.put(_LaneCall(loop, future, call))
        try:
            async with asyncio.timeout(self.deadline_seconds):
                return await future
        except TimeoutError:
            raise LaneUnavailable from None

    def _work(self) -> None:
        # A plain queue and one call_soon_threadsafe per result: about a fifth cheaper per call than
        # ThreadPoolExecutor with wrap_future, whose future chaining takes locks on both sides.
        while (call := self._calls.get()) is not None:
            if call.future.cancelled():  # its caller gave up at the deadline: skip the work
                continue
            try:
                outcome: _Outcome = (call.future, call.function(), None)
            except BaseException as exc:  # noqa: BLE001 -- handed to the awaiting caller, re-raised there
                outcome = (call.future, None, exc)
            with contextlib.suppress(RuntimeError):  # the loop closed (shutdown): nobody waits any more
                call.loop.call_soon_threadsafe(_deliver, outcome)

    @property
    def queued(self) -> int:
        """Calls waiting for a lane thread (approximate, as any queue length read from another thread)."""
        return self._calls.qsize()

    def close(self) -> None:
        """Stop the threads once the queued calls are done (they end on their own)."""
        for _ in self._threads:
            self._calls.put(None)


@dataclass(frozen=True)
class _LaneCall:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    function: Callable[[], Any]


def _deliver(outcome: _Outcome) -> None:
    future, result, error = outcome
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
