"""The periodic pruning task of ``certseal serve`` (retention: :mod:`api.services.retention`).

Started in the app's lifespan: every ``CERTSEAL_PRUNE_INTERVAL_SECONDS`` (the first time
:data:`FIRST_RUN_DELAY_SECONDS` after start) it runs :func:`~api.services.retention.prune_if_elected`
in a worker thread, never on the event loop, with the time from the app's clock. On PostgreSQL one
instance among all workers and replicas is elected per round by an advisory lock; the others skip the
round. A failed round is logged and tried again at the next interval: it never stops the server. At
shutdown the run in progress stops after its current batch and the task is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from anyio import to_thread
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from .clock import Clock
from .services.retention import PruneResult, RetentionPolicy, prune_if_elected

log = logging.getLogger("certseal.retention")

FIRST_RUN_DELAY_SECONDS = 60.0  # after start, so pruning never competes with start-up and the first requests


class PeriodicPruner:
    """Prune on a timer in the background; ``runs``, ``skipped`` and ``failures`` count the rounds."""

    def __init__(
        self,
        engine: Engine,
        *,
        policy: RetentionPolicy,
        clock: Clock,
        interval_seconds: float,
        first_delay_seconds: float | None = None,
    ) -> None:
        self._engine = engine
        self._policy = policy
        self._clock = clock
        self._interval = interval_seconds
        self._first_delay = FIRST_RUN_DELAY_SECONDS if first_delay_seconds is None else first_delay_seconds
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self.runs = self.skipped = self.failures = 0
        self.last_result: PruneResult | None = None

    def run_once(self) -> PruneResult | None:
        """One round, blocking: prune as of the clock's time if elected; None when another instance prunes."""
        result = prune_if_elected(self._engine, now=self._clock.now(), policy=self._policy, stop=self._stop)
        if result is None:
            self.skipped += 1
            log.debug("pruning skipped: another instance holds the pruning lock")
            return None
        self.runs += 1
        self.last_result = result
        log.log(logging.INFO if result.total else logging.DEBUG, "pruned %s", result.describe())
        return result

    async def _loop(self) -> None:
        delay = self._first_delay
        while True:
            await asyncio.sleep(delay)
            delay = self._interval
            try:
                await to_thread.run_sync(self.run_once)
            except Exception as exc:  # noqa: BLE001 -- logged; retried next interval, the server carries on
                self.failures += 1
                reason = exc.orig if isinstance(exc, DBAPIError) else exc  # never the statement's parameters
                log.error("pruning failed (%s: %s); next try in %g s", type(exc).__name__, reason, self._interval)

    @property
    def running(self) -> bool:
        """Whether the timer task is running (between :meth:`start` and :meth:`stop`)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the timer on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="certseal-prune")

    async def stop(self) -> None:
        """Stop: a run in progress ends after its current batch, then the task is cancelled and awaited."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
