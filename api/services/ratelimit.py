"""A per-process fixed-window rate limiter for the public verify endpoint.

Per process is deliberate: it bounds what one client costs each replica without a shared store on
the hot path. Guessing ID numbers is bounded separately and globally, in the database.

Windows are whole minutes of the clock (``[k * 60, (k + 1) * 60)``); a client over its limit is told
to retry when the current window ends, which is when its count starts again from zero.
"""

from __future__ import annotations

import threading

from .errors import RateLimited

WINDOW_SECONDS = 60


class RateLimiter:
    """Allow ``limit`` requests per client per 60-second window."""

    def __init__(self) -> None:
        self._window = 0
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def allow(self, client: str, limit: int, *, now: float) -> bool:
        """Count one request for ``client`` and tell whether it is within ``limit``."""
        window = int(now // WINDOW_SECONDS)
        with self._lock:
            if window != self._window:
                self._window, self._counts = window, {}
            count = self._counts.get(client, 0) + 1
            self._counts[client] = count
        return count <= limit

    def check(self, client: str, limit: int, *, now: float) -> None:
        """Count one request for ``client``; past ``limit`` raise :class:`RateLimited` until the window ends."""
        if not self.allow(client, limit, now=now):
            raise RateLimited(retry_after=retry_after(now))


def retry_after(now: float) -> float:
    """Seconds from ``now`` until the current window ends (in ``(0, 60]``)."""
    return WINDOW_SECONDS - now % WINDOW_SECONDS
