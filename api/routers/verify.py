"""The public verify API: one call, accept or reject with machine-readable reasons."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from crypto import CST
from schemas.api import ErrorResponse, VerifyRequest, VerifyResponse

from ..deps import CatalogueDep, EngineDep, EventsDep, KeyringDep, OptionalClientDep, SettingsDep
from ..errors import ApiError
from ..services.ratelimit import RateLimiter
from ..services.verification import certificate_summary, verify_online

router = APIRouter(prefix="/v1", tags=["verify"])

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


@router.post(
    "/verify",
    response_model=VerifyResponse,
    summary="Verify a certificate QR (public; CORS enabled)",
    responses={
        200: {"content": {"application/json": {"example": VERIFY_EXAMPLE}}},
        400: {"model": ErrorResponse},
        413: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        429: {"model": ErrorResponse, "description": "rate limit, or too many wrong holder ID numbers"},
        503: {"model": ErrorResponse, "description": "the registry cannot be read: never an accept"},
    },
)
def verify(
    body: VerifyRequest,
    request: Request,
    client: OptionalClientDep,
    engine: EngineDep,
    keyring: KeyringDep,
    settings: SettingsDep,
    catalogue: CatalogueDep,
    events: EventsDep,
) -> JSONResponse:
    """Check signature, validity, key and issuer, registry status, review date, purpose and (optionally) holder.

    ``decision`` is ``accept`` only when every check that ran passed; ``reasons`` lists every failure.
    """
    limiter: RateLimiter = request.app.state.rate_limiter
    if client is not None:
        allowed = limiter.allow(f"key:{client.api_key_id}", settings.verify_rate_per_minute_with_key)
    else:
        allowed = limiter.allow(f"ip:{request.client.host if request.client else '-'}", settings.verify_rate_per_minute)
    if not allowed:
        raise ApiError(429, "rate_limited", "too many verifications; retry in a minute or use an API key")
    now = datetime.now(CST)
    outcome = verify_online(body, engine=engine, keyring=keyring, settings=settings, now=now)
    claims = outcome.certificate.claims if outcome.certificate else None
    events.record(
        at=now,
        serial=claims.serial.hex() if claims else None,
        issuer_code=claims.issuer if claims else None,
        decision=outcome.decision,
        reasons=",".join(outcome.reasons),
        purpose=body.purpose or (f"operation:{body.operation}" if body.operation else None),
        holder_checked=outcome.holder_checked,
        client=client.api_key_id if client else None,
    )
    return JSONResponse(
        {
            "decision": outcome.decision,
            "reasons": outcome.reasons,
            "checks": outcome.checks,
            "checked_at": now.isoformat(),
            "certificate": certificate_summary(outcome, catalogue=catalogue, settings=settings),
        },
        headers={"Cache-Control": "no-store"},
    )
