"""The public verify API: one call, accept or reject with machine-readable reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from crypto import CST
from schemas.api import ErrorResponse, VerifyRequest, VerifyResponse

from ..deps import optional_client
from ..errors import ApiError, validation_error
from ..services.verification import certificate_summary, verify_online

router = APIRouter(prefix="/v1", tags=["verify"])
_NO_STORE = {"Cache-Control": "no-store"}

VERIFY_EXAMPLE = {
    "decision": "reject",
    "reasons": ["revoked"],
    "checks": ["format", "signature", "validity", "key_status", "issuer", "registry", "status", "review", "hot_work"],
    "checked_at": "2026-11-26T08:01:02+08:00",
    "certificate": {
        "serial": "8f1c2a9b3d4e5f60",
        "issuer": {"code": "CN-44", "name": "广东省应急管理厅"},
        "holder_name": "张伟",
        "masked_id": "4401**********123X",
        "operation": {
            "code": "2.1",
            "zh": "熔化焊接与热切割作业",
            "en": "Fusion welding and thermal cutting",
            "category_zh": "焊接与热切割作业",
            "category_en": "Welding and hot cutting",
            "covers_hot_work": True,
        },
        "valid_from": "2025-03-01",
        "valid_until": "2031-02-28",
        "review_due": "2028-03-01",
        "status": "revoked",
        "photo_url": None,
    },
}


def _request_body_schema() -> dict[str, Any]:
    schema = VerifyRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"required": True, "content": {"application/json": {"schema": schema}}}


@router.post(
    "/verify",
    response_model=VerifyResponse,
    summary="Verify a certificate QR (public; CORS enabled; an app API key raises the rate limit)",
    openapi_extra={"requestBody": _request_body_schema(), "security": [{}, {"HTTPBearer": []}]},
    responses={
        200: {"content": {"application/json": {"example": VERIFY_EXAMPLE}}},
        400: {"model": ErrorResponse},
        401: {"model": ErrorResponse},
        413: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        429: {"model": ErrorResponse, "description": "rate limit, or too many wrong holder ID numbers"},
        503: {"model": ErrorResponse, "description": "the registry cannot be read: never an accept"},
    },
)
async def verify(request: Request) -> Response:
    """Check signature, validity, key and issuer, registry status, review date, purpose and (optionally) holder.

    `decision` is `accept` only when every check that ran passed; `reasons` lists every failure and
    `checks` names the checks that ran. A registry that cannot be read gives 503, never `accept`.
    """
    # Hot path: the raw request and app state stand in for FastAPI body parsing and dependency
    # injection, which cost more than the verification itself. Everything runs on the event loop:
    # handing the signature check to worker threads cost more CPU per request (future hand-offs,
    # GIL contention) than the ~90 us it moved off the loop.
    try:
        body = VerifyRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise validation_error(exc) from None
    state = request.app.state
    settings = state.settings
    client = optional_client(request)
    if client is not None:
        allowed = state.rate_limiter.allow(f"key:{client.api_key_id}", settings.verify_rate_per_minute_with_key)
    else:
        host = request.client.host if request.client else "-"
        allowed = state.rate_limiter.allow(f"ip:{host}", settings.verify_rate_per_minute)
    if not allowed:
        raise ApiError(429, "rate_limited", "too many verifications; retry in a minute or use an API key")
    now = datetime.now(CST)
    outcome = verify_online(
        body,
        engine=state.engine,
        registry=state.registry,
        keyring=state.keyring,
        settings=settings,
        now=now,
    )
    claims = outcome.certificate.claims if outcome.certificate else None
    state.events.record(
        at=now,
        serial=claims.serial.hex() if claims else None,
        issuer_code=claims.issuer if claims else None,
        decision=outcome.decision,
        reasons=",".join(outcome.reasons),
        purpose=body.purpose or (f"operation:{body.operation}" if body.operation else None),
        holder_checked=outcome.holder_checked,
        client=client.api_key_id if client else None,
    )
    verdict = {
        "decision": outcome.decision,
        "reasons": outcome.reasons,
        "checks": outcome.checks,
        "checked_at": now.isoformat(),
        "certificate": certificate_summary(outcome, catalogue=state.catalogue, settings=settings),
    }
    # orjson: the verdict's JSON costs a tenth of the standard library's on this path.
    return Response(orjson.dumps(verdict), media_type="application/json", headers=_NO_STORE)
