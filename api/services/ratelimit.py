"""Fixed-window rate limits for the public verify endpoint: in one process, or shared through Redis.

Windows are whole minutes of the clock (``[k * 60, (k + 1) * 60)``); a client over its limit is told
to retry when the current window ends, which is when its count starts again from zero.

With ``CERTSEAL_REDIS_URL`` every worker and replica counts in the same Redis keys, so a limit means
the same whatever process a request reaches. If Redis does not answer, limits fall back to the
process's own counts (logged and counted) and Redis is tried again a few seconds later: a Redis outage
never becomes a verify outage. Guessing ID numbers is bounded separately and globally, in the database.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import RateLimited

if TYPE_CHECKING:
    import redis

log = logging.getLogger("certseal.ratelimit")

WINDOW_SECONDS = 60
REDIS_KEY_PREFIX = "certseal:rate"
# After a Redis failure, requests count in process for this long before Redis is tried again, so an
# outage costs one timeout every few seconds instead of one per request.
REDIS_RETRY_SECONDS = 5.0


def retry_after(now: float) -> float:
    """Seconds from ``now`` until the current window ends (in ``(0, 60]``)."""
    return WINDOW_SECONDS - now % WINDOW_SECONDS


class RateLimiter(ABC):
    """Counts requests per client per minute window (the clock's whole minutes)."""

    @abstractmethod
    def allow(self, client: str, limit: int, *, now: float) -> bool:
        """Count one request for ``client`` and tell whether it is within ``limit``."""

    def check(self, client: str, limit: int, *, now: float) -> None:
        """Count one request for ``client``; past ``limit`` raise :class:`RateLimited` until the window ends."""
        if not self.allow(client, limit, now=now):
            raise RateLimited(retry_after=retry_after(now))


class LocalRateLimiter(RateLimiter):
    """Allow ``limit`` requests per client per 60-second window, counted in this process."""

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


class SharedRateLimiter(RateLimiter):
    """The same windows counted in Redis (one round trip: INCR and EXPIRE in one transaction).

    Blocking: call it from a worker thread, never on the event loop. ``on_fallback`` is called for every
    request counted in process because Redis is unavailable (the metric hook).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        fallback: LocalRateLimiter | None = None,
        on_fallback: Callable[[], None] | None = None,
        retry_seconds: float = REDIS_RETRY_SECONDS,
    ) -> None:
        import redis as redis_module

        self._redis = client
        self._errors = (redis_module.RedisError, OSError)
        self._fallback = fallback or LocalRateLimiter()
        self._on_fallback = on_fallback
        self._retry_seconds = retry_seconds
        self._down_until = 0.0
        self._was_down = False
        self._lock = threading.Lock()

    @property
    def using_redis(self) -> bool:
        """False while requests are counted in process after a Redis failure."""
        return time.monotonic() >= self._down_until

    def allow(self, client: str, limit: int, *, now: float) -> bool:
        """Count one request for ``client`` in Redis (in process while Redis is down); within ``limit``?"""
        if self.using_redis:
            window = int(now // WINDOW_SECONDS)
            key = f"{REDIS_KEY_PREFIX}:{window}:{client}"
            try:
                pipeline = self._redis.pipeline(transaction=True)
                pipeline.incr(key)
                pipeline.expire(key, WINDOW_SECONDS + 5)  # a little past the window: clocks differ slightly
                count, _ = pipeline.execute()
            except self._errors as exc:
                self._mark_down(exc)
            else:
                if self._was_down:
                    self._was_down = False
                    log.warning("Redis available again: rate limits are shared")
                return int(count) <= limit
        if self._on_fallback is not None:
            self._on_fallback()
        return self._fallback.allow(client, limit, now=now)

    def _mark_down(self, exc: BaseException) -> None:
        with self._lock:
            first = not self._was_down
            self._was_down = True
            self._down_until = time.monotonic() + self._retry_seconds
        if first:
            log.warning(
                "Redis unavailable (%s): rate limits count in this process; retrying Redis every %.0f s",
                type(exc).__name__,
                self._retry_seconds,
            )


def redis_client(url: str, *, timeout_seconds: float) -> redis.Redis:
    """A Redis client that gives up after ``timeout_seconds`` and never retries on its own."""
    import redis as redis_module
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis_module.Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 0),  # the limiter falls back instead: a retry would double the wait
        health_check_interval=0,
        client_name="certseal",
    )
