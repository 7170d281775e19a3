"""Prometheus metrics: every metric object of the service lives here, named ``certseal_*`` with its unit.

No label ever carries a value a client sent (an ID number, a token, a QR text or a raw path): labels are
decisions and reason codes the code defines, route templates, HTTP methods and status codes, issuer codes
and fixed causes. ``GET /metrics`` (:func:`exposition`) is served without authentication, like
``/healthz``; a deployment that wants it private restricts the path at its proxy.

Multiprocess mode: with ``PROMETHEUS_MULTIPROC_DIR`` set *before this module is imported* (the serve
command sets it in the parent, through :func:`prepare_multiprocess_metrics_dir`, before it starts
workers), every worker writes its values to memory-mapped files in that directory and ``/metrics``
answers the sum over all workers, whichever worker is asked. Gauges use ``livesum``: the sum over the
workers alive now. Gauges sampled from in-process state (the pool, the queues) are written at every
scrape by the worker asked and within ``CERTSEAL_EVENT_FLUSH_SECONDS`` by every worker's event writer
thread, so the aggregate is at most that old for the other workers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Requests whose path matched no route (404s, probes for /wp-admin ...) share one route label.
UNMATCHED_ROUTE = "<unmatched>"
# A verify is 1-5 ms; a database deadline is 1 s; issuance with a photo up to a few hundred ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

VERIFICATIONS = Counter(
    "certseal_verifications_total",
    "Verifications answered (HTTP 200), by decision (accept or reject).",
    ["decision"],
)
VERIFICATION_REJECT_REASONS = Counter(
    "certseal_verification_reject_reasons_total",
    "Reasons given in rejected verifications; a reject with two reasons counts once under each.",
    ["reason"],
)
HTTP_REQUEST_DURATION = Histogram(
    "certseal_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by method, route template and status.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
CERTIFICATES_ISSUED = Counter(
    "certseal_certificates_issued_total",
    "Certificates signed and registered (idempotent replays not counted), by issuer code.",
    ["issuer"],
)
STATUS_CHANGES = Counter(
    "certseal_certificate_status_changes_total",
    "Certificate status changes (suspend, reinstate, revoke) by issuer code and action.",
    ["issuer", "action"],
)
RATE_LIMIT_FALLBACKS = Counter(
    "certseal_rate_limit_fallbacks_total",
    "Requests whose rate limit was counted in process because Redis did not answer (CERTSEAL_REDIS_URL set).",
)
REGISTRY_READ_ERRORS = Counter(
    "certseal_registry_read_errors_total",
    "Verifications that could not read the registry (answered 503), by cause: database_error or deadline.",
    ["cause"],
)
EVENTS_QUEUED = Gauge(
    "certseal_verification_events_queued",
    "Verification events waiting to be written to the database.",
    multiprocess_mode="livesum",
)
EVENTS_DROPPED = Counter(
    "certseal_verification_events_dropped_total",
    "Verification events dropped because the queue was full (a long database outage).",
)
DB_POOL_SIZE = Gauge(
    "certseal_db_pool_connections",
    "Connections the database pool keeps (CERTSEAL_DB_POOL_SIZE per process).",
    multiprocess_mode="livesum",
)
DB_POOL_IN_USE = Gauge(
    "certseal_db_pool_connections_in_use",
    "Database connections checked out of the pool now.",
    multiprocess_mode="livesum",
)
DB_THREADS_WAITING = Gauge(
    "certseal_db_threads_waiting_tasks",
    "Requests waiting for a database worker thread (threads and pooled connections are one number).",
    multiprocess_mode="livesum",
)
VERIFY_LANE_QUEUED = Gauge(
    "certseal_verify_lane_queued_calls",
    "Verify database calls queued for a verify lane thread.",
    multiprocess_mode="livesum",
)

# Children of the hot path's counters, made once (labels() is a locked dict lookup).
_VERIFIED = {decision: VERIFICATIONS.labels(decision) for decision in ("accept", "reject")}


def count_verification(decision: str, reasons: list[str]) -> None:
    """Count one answered verification and every reason of a reject."""
    _VERIFIED[decision].inc()
    for reason in reasons:
        VERIFICATION_REJECT_REASONS.labels(reason).inc()


def multiprocess_dir() -> str | None:
    """The multiprocess directory when multiprocess mode is on, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_metrics_dir(path: str | Path | None = None) -> Path:
    """Make an empty directory for multiprocess metrics and set ``PROMETHEUS_MULTIPROC_DIR`` to it.

    Call it in the parent process before any worker starts (the workers inherit the variable and must
    import this module after it is set). Without ``path`` a fresh temporary directory is made; a given
    ``path`` is emptied first, so no counter of an earlier run is added to this one's.
    """
    if path is None:
        directory = Path(tempfile.mkdtemp(prefix="certseal-metrics-"))
    else:
        directory = Path(path)
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def mark_process_dead(pid: int | None = None) -> None:
    """Drop a finished worker's live gauges from the aggregate (its counters stay counted).

    A process manager calls it with the worker's pid when a worker exits (gunicorn: ``child_exit``);
    a worker may call it for itself at shutdown. Without multiprocess mode it does nothing.
    """
    directory = multiprocess_dir()
    if directory is not None:
        _multiprocess.mark_process_dead(os.getpid() if pid is None else pid, directory)


def sample(state: Any) -> None:
    """Set the gauges read from this process's state (pool, queues); safe from any thread."""
    events = getattr(state, "events", None)
    if events is not None:
        EVENTS_QUEUED.set(events.queued)
    pool = getattr(getattr(state, "engine", None), "pool", None)
    if pool is not None and hasattr(pool, "checkedout"):
        DB_POOL_IN_USE.set(pool.checkedout())
        DB_POOL_SIZE.set(pool.size())
    limiter = getattr(state, "thread_limiter", None)
    if limiter is not None:
        DB_THREADS_WAITING.set(limiter.statistics().tasks_waiting)
    lane = getattr(state, "verify_lane", None)
    if lane is not None:
        VERIFY_LANE_QUEUED.set(lane.queued)


def exposition() -> bytes:
    """The text exposition of every metric: summed over all workers in multiprocess mode."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry)
