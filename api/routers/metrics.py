"""Prometheus metrics (served like the probes: no authentication; restrict the path at the proxy if wanted)."""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response

from .. import metrics

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format; summed over all workers)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def prometheus_metrics(request: Request) -> Response:
    """Every `certseal_*` metric in Prometheus' text format; docs/operations.md describes each one.

    Labels hold only decisions, reason codes, route templates, methods, status codes, issuer codes
    and fixed causes: never an ID number, a token, a QR text or a raw path.
    """
    metrics.sample(request.app.state)
    if metrics.multiprocess_dir() is None:
        body = metrics.exposition()
    else:  # reads every worker's files: off the event loop
        body = await to_thread.run_sync(metrics.exposition)
    return Response(body, media_type=metrics.CONTENT_TYPE, headers={"Cache-Control": "no-store"})
