"""How a process serves the app: logging, the garbage collector, and the factory each worker process imports.

``certseal serve --workers N`` runs N uvicorn worker processes on one port. The parent migrates and
seeds once, then hands the settings to the workers through the CERTSEAL_* environment: each worker
builds its app with :func:`worker_app`, as ``uvicorn`` imports it by name.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import logging
import os
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .settings import Settings

WORKER_APP_FACTORY = "api.serving:worker_app"
_VERBOSE = "CERTSEAL_SERVE_VERBOSE"
_CPU_SLOTS = "CERTSEAL_SERVE_CPU_SLOTS"  # with --pin-cpus: the file whose counter hands each worker its CPU

log = logging.getLogger("certseal")


def configure_service_logging(
    level: str, *, verbose: bool = False, log_format: str = "text", access_log: bool = True
) -> None:
    """Log to stderr at ``CERTSEAL_LOG_LEVEL`` (DEBUG with -v) as JSON or text lines with times and request ids.

    uvicorn's loggers log through it; its access log stays off (the service writes its own, see
    :class:`api.middleware.RequestContextMiddleware`), and ours is off with ``access_log=False``.
    """
    from .logs import ACCESS_LOGGER, configure_logging

    configure_logging(logging.DEBUG if verbose else level, "json" if log_format == "json" else "text")
    if not verbose:  # Alembic's per-connection chatter ("Context impl ...") only with -v
        logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.NOTSET if access_log else logging.WARNING)


def tune_garbage_collector() -> None:
    """Freeze start-up objects out of the cyclic GC and collect the young generation less often.

    A verify request allocates a few hundred short-lived objects; with CPython's default threshold
    (700) the collector ran every request or two and its full passes over the ~10^5 objects of the
    loaded framework stalled the event loop: measured with bench/bench_http.py, verify throughput
    rose from ~1,460 to ~2,050 requests/s and p99 latency fell from 67 to 29 ms.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def pin_to_one_cpu(slot: int) -> int | None:
    """Run this process (every thread it has now, and every thread it starts later) on one allowed CPU.

    The CPU is the ``slot``-th (modulo) of those this process may use; nothing happens with only one.
    A worker's event loop and its verify-lane threads hand the GIL to each other several times per
    request; on one core they share its caches instead of pulling every object across cores: measured
    with bench/bench_cores.py, ~15% less server CPU per verify request. Only worth it when the workers
    have the cores to themselves (one worker per core); hence off unless ``serve --pin-cpus``.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    cpu = cpus[slot % len(cpus)]
    for task in os.listdir("/proc/self/task"):  # Linux affinity is per thread; new threads inherit it
        with contextlib.suppress(OSError):  # a thread that just ended
            os.sched_setaffinity(int(task), {cpu})
    log.info("pinned to CPU %d", cpu)
    return cpu


@contextlib.contextmanager
def cpu_slots_for_workers() -> Iterator[None]:
    """A counter file the worker processes take their CPU slots from (``_CPU_SLOTS``); removed at the end."""
    fd, path = tempfile.mkstemp(prefix="certseal-cpu-slots-")
    os.close(fd)
    os.environ[_CPU_SLOTS] = path
    try:
        yield
    finally:
        os.environ.pop(_CPU_SLOTS, None)
        with contextlib.suppress(OSError):
            os.unlink(path)


def _next_cpu_slot(path: str) -> int:
    """Take the next slot from the counter file (locked: workers start at the same time)."""
    with open(path, "r+", encoding="ascii") as counter:
        fcntl.flock(counter, fcntl.LOCK_EX)
        slot = int(counter.read() or 0)
        counter.seek(0)
        counter.write(str(slot + 1))
        counter.truncate()
        return slot


def export_settings_for_workers(settings: Settings, *, verbose: bool, access_log: bool) -> None:
    """Put the settings the command line chose into the environment the worker processes inherit."""
    os.environ["CERTSEAL_DATABASE_URL"] = settings.database_url
    os.environ["CERTSEAL_PUBLIC_BASE_URL"] = settings.public_base_url
    os.environ["CERTSEAL_FORWARDED_ALLOW_IPS"] = settings.forwarded_allow_ips
    os.environ["CERTSEAL_DEMO"] = "true" if settings.demo else "false"
    if settings.trust_anchor_key_file is not None:  # the demo's own anchor is made by the parent
        os.environ["CERTSEAL_TRUST_ANCHOR_KEY_FILE"] = str(settings.trust_anchor_key_file)
    os.environ["CERTSEAL_ACCESS_LOG"] = "true" if access_log else "false"
    os.environ[_VERBOSE] = "1" if verbose else ""


def worker_app() -> FastAPI:
    """The app of one worker process, from the environment :func:`export_settings_for_workers` prepared."""
    from .main import create_app
    from .runtime import load_settings

    settings = load_settings(demo=False)
    configure_service_logging(
        settings.log_level,
        verbose=bool(os.environ.get(_VERBOSE)),
        log_format=settings.log_format_in_effect,
        access_log=settings.access_log,
    )
    slots = os.environ.get(_CPU_SLOTS)
    if slots:
        pin_to_one_cpu(_next_cpu_slot(slots))
    app = create_app(settings)
    tune_garbage_collector()
    return app
