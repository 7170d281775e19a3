"""A per-process fixed-window rate limiter for the public verify endpoint.

Per process is deliberate: it bounds what one client costs each replica without a shared store on
the hot path. Guessing ID numbers is bounded separately and globally, in the database.
"""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Allow ``limit`` requests per client per 60-second window."""

    def __init__(self) -> None:
        self._window = 0
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def allow(self, client: str, limit: int, *, now: float | None = None) -> bool:
        """Count one request for ``client`` and tell whether it is within ``limit``."""
        window = int((time.time() if now is None else now) // 60)
        with self._lock:
            if window != self._window:
                self._window, self._counts = window, {}
            count = self._counts.get(client, 0) + 1
            self._counts[client] = count
        return count <= limit
