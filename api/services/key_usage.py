"""When each API key was last used, written off the request path and at most once a minute per key.

Authentication calls :meth:`KeyUsage.touch` (a dictionary update under a lock, no I/O). A key seen again
within ``interval_seconds`` of the time last queued for it is not queued again, so :meth:`KeyUsage.flush`
(run by the event recorder's background thread) writes at most one ``UPDATE`` per key per interval and
process. A failed write keeps the times for the next flush.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import bindparam, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..db import begin_write
from ..models import ApiKey

log = logging.getLogger("certseal.key_usage")
INTERVAL_SECONDS = 60.0

_UPDATE = (
    update(ApiKey)
    .where(
        ApiKey.id == bindparam("key_id"),  # type: ignore[arg-type]
        or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < bindparam("used_at")),  # type: ignore[union-attr, operator]
    )
    .values(last_used_at=bindparam("used_at"))
)


class KeyUsage:
    """Queue "key used at" times in memory; write them in one batch per flush."""

    def __init__(self, engine: Engine, *, interval_seconds: float = INTERVAL_SECONDS) -> None:
        self._engine = engine
        self._interval = interval_seconds
        self._lock = threading.Lock()
        self._queued_at: dict[str, float] = {}  # key id -> when it was last queued (POSIX seconds)
        self._pending: dict[str, datetime] = {}  # key id -> when it was used, not written yet

    def touch(self, key_id: str, *, at: datetime) -> None:
        """Note that the key authenticated at ``at`` (cheap; queued at most once per interval)."""
        seconds = at.timestamp()
        with self._lock:
            last = self._queued_at.get(key_id)
            if last is not None and 0 <= seconds - last < self._interval:
                return
            self._queued_at[key_id] = seconds
            self._pending[key_id] = at

    @property
    def pending(self) -> int:
        """Keys whose last use is not written yet."""
        return len(self._pending)

    def flush(self) -> int:
        """Write the queued times (one statement for the batch); return how many keys were written."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        rows = [{"key_id": key_id, "used_at": used_at} for key_id, used_at in batch.items()]
        try:
            with begin_write(self._engine) as connection:
                connection.execute(_UPDATE, rows)
        except SQLAlchemyError as exc:
            log.warning("API key last-used times not written yet (%s); retrying", type(exc).__name__)
            with self._lock:
                for key_id, used_at in batch.items():
                    self._pending.setdefault(key_id, used_at)
            return 0
        return len(rows)
