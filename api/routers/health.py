"""Liveness and readiness probes.

``/readyz`` checks the database (a query on the verify lane, so its deadline bounds the answer), that
the schema is at this code's newest migration (re-read at most every :data:`SCHEMA_RECHECK_SECONDS`
after a success, so the probe stays one cheap query), and then every check in
``app.state.readiness_checks`` (e.g. Redis, registered by whatever opens the connection:
:func:`register_readiness_check`). A 503 lists what failed by name.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from schemas.api import Health, Readiness

from .. import migrate
from ..db import LaneUnavailable

router = APIRouter(tags=["health"])
log = logging.getLogger("certseal.health")

SCHEMA_RECHECK_SECONDS = 30.0
# A readiness check returns None (ready) or raises; an async one may return an awaitable.
ReadinessCheck = Callable[[], Awaitable[None] | None]


@dataclass(frozen=True)
class ReadinessDependency:
    """A dependency ``/readyz`` checks: its name in the answer, the check, and whether it is required."""

    name: str
    check: ReadinessCheck
    required: bool = True


def register_readiness_check(app: FastAPI, name: str, check: ReadinessCheck, *, required: bool = True) -> None:
    """Make ``/readyz`` run ``check``: when it raises or takes too long, 503 naming ``name``.

    A check that is not ``required`` (a dependency the service works without, such as Redis: limits
    then count per process) leaves the answer 200 with ``status: degraded`` and ``degraded`` naming it,
    so a load balancer never takes every replica out for it. A synchronous check runs in a worker
    thread; both kinds get the verify deadline (``CERTSEAL_VERIFY_DB_DEADLINE_MS``). Call it from the
    lifespan, once the dependency is opened.
    """
    app.state.readiness_checks.append(ReadinessDependency(name, check, required))


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    """Answer while the process runs; no dependency is checked."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    response_model_exclude_none=True,
    summary="Readiness: the database answers, the schema is current, every registered dependency answers",
    responses={
        503: {
            "model": Readiness,
            "description": "a dependency failed; `failed` names each (`database`, `schema`, `redis`, ...)",
        }
    },
)
async def readyz(request: Request) -> JSONResponse:
    """Answer 200 when every dependency is ready, else 503 with `failed` naming what was not.

    The database must answer within the verify deadline, at the newest schema revision, and every
    registered check (Redis when configured) must pass.
    """
    state = request.app.state
    failed: list[str] = []
    check_schema = time.monotonic() >= getattr(state, "schema_current_until", 0.0)
    try:
        revision = await state.verify_lane.run(_query_database, state.engine, check_schema)
    except (LaneUnavailable, SQLAlchemyError) as exc:
        log.warning("readiness: database failed (%s)", type(exc).__name__)
        failed.append("database")
    else:
        if check_schema:
            if revision == _head_revision():
                state.schema_current_until = time.monotonic() + SCHEMA_RECHECK_SECONDS
            else:
                log.warning("readiness: schema at %s, head %s", revision, _head_revision())
                failed.append("schema")
    deadline = state.settings.verify_db_deadline_ms / 1000
    degraded: list[str] = []
    for dependency in state.readiness_checks:
        try:
            async with asyncio.timeout(deadline):
                await _run_check(dependency.check)
        except Exception as exc:  # noqa: BLE001 -- any failure of a dependency check means not ready
            log.warning("readiness: %s failed (%s)", dependency.name, type(exc).__name__)
            (failed if dependency.required else degraded).append(dependency.name)
    if failed:
        return JSONResponse({"status": "unavailable", "failed": failed}, status_code=503)
    if degraded:
        return JSONResponse({"status": "degraded", "degraded": degraded})
    return JSONResponse({"status": "ok"})


async def _run_check(check: ReadinessCheck) -> None:
    if inspect.iscoroutinefunction(check):
        await check()
        return
    result: Any = await to_thread.run_sync(check, abandon_on_cancel=True)
    if inspect.isawaitable(result):
        await result


@functools.cache
def _head_revision() -> str:
    return migrate.head_revision()


def _query_database(engine: Engine, read_revision: bool) -> str | None:
    # On the verify lane: its deadline bounds the answer even when a connection hangs.
    if read_revision:
        return migrate.current_revision(engine)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return None
