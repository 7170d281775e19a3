"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from schemas.api import Health

from ..db import LaneUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    """Answer while the process runs; no dependency is checked."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Health,
    summary="Readiness: the database answers",
    responses={503: {"model": Health, "description": "the database cannot be reached"}},
)
async def readyz(request: Request) -> JSONResponse:
    """Answer 200 when the database answers a query within the verify deadline, else 503."""
    state = request.app.state
    try:
        await state.verify_lane.run(_select_one, state.engine)
    except (LaneUnavailable, SQLAlchemyError):
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


def _select_one(engine: Engine) -> None:
    # On the verify lane: its deadline bounds the answer even when a connection hangs.
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
