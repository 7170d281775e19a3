"""The public verify API: one call, accept or reject with machine-readable reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import State

from crypto import CST
from schemas.api import ErrorResponse, VerifyRequest, VerifyResponse

from ..deps import ADMIN, bearer_token, claimed_identity
from ..errors import ApiError, validation_error
from ..metrics import count_verification
from ..security import api_key_matches
from ..services.verification import Outcome, certificate_summary, verify_online

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
    "message": None,
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
        429: {
            "model": ErrorResponse,
            "description": "rate limit, or too many wrong holder ID numbers",
            "headers": {
                "Retry-After": {"description": "seconds until the window frees", "schema": {"type": "integer"}}
            },
        },
        503: {"model": ErrorResponse, "description": "the registry cannot be read: never an accept"},
    },
)
async def verify(request: Request) -> Response:
    """Check signature, validity, key and issuer, registry status, review date, purpose and (optionally) holder.

    `decision` is `accept` only when every check that ran passed; `reasons` lists every failure and
    `checks` names the checks that ran. A QR text refused by the URL rule (`format` alone ran) comes
    with a `message` saying what is wrong, e.g. that the version path `/c1` is case-sensitive. A
    registry that cannot be read gives 503, never `accept`.
    """
    client = request.client
    content = await verify_body(
        request.app.state,
        await request.body(),
        authorization=request.headers.get("authorization"),
        address=client.host if client else "-",
    )
    return Response(content, media_type="application/json", headers=_NO_STORE)


async def verify_body(state: State, raw: bytes, *, authorization: str | None, address: str) -> bytes:
    """The whole of POST /v1/verify from the raw body to the verdict's JSON bytes; errors are raised.

    Shared by the route above and by :class:`api.fastpath.VerifyFastPath`, which answers the same
    request without FastAPI's routing (the errors go to the app's own exception handlers either way).
    The raw body and app state stand in for FastAPI body parsing and dependency injection, which cost
    more than the verification itself. Everything that touches the database runs in one hop on the
    verify lane, whose deadline turns a slow database into a 503.
    """
    try:
        body = VerifyRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc) from None
    settings = state.settings
    token = bearer_token(authorization)
    now = state.clock.now().astimezone(CST)
    # Past the lane's deadline it raises LaneUnavailable, which the edge answers as 503 registry_unavailable.
    client, outcome = await state.verify_lane.run(_verify_on_lane, state, body, token, address, now)
    count_verification(outcome.decision, outcome.reasons)
    claims = outcome.certificate.claims if outcome.certificate else None
    state.events.record(
        at=now,
        serial=claims.serial.hex() if claims else None,
        issuer_code=claims.issuer if claims else None,
        decision=outcome.decision,
        reasons=",".join(outcome.reasons),
        purpose=body.purpose or (f"operation:{body.operation}" if body.operation else None),
        holder_checked=outcome.holder_checked,
        client=client,
    )
    verdict = {
        "decision": outcome.decision,
        "reasons": outcome.reasons,
        "checks": outcome.checks,
        "checked_at": now.isoformat(),
        "certificate": certificate_summary(
            outcome, catalogue=state.catalogue, settings=settings, lists=state.status_lists, now=now
        ),
        "message": outcome.message,
    }
    # orjson: the verdict's JSON costs a tenth of the standard library's on this path.
    return orjson.dumps(verdict)


def _verify_on_lane(
    state: State, body: VerifyRequest, token: str | None, address: str, now: datetime
) -> tuple[str | None, Outcome]:
    """Authenticate an API key, apply the rate limit (429 until the minute ends) and verify.

    Returns the key id (None if anonymous). The limit may be counted in Redis, hence here on the lane.
    """
    settings = state.settings
    key_id = None
    if token is not None:
        key_id = _authenticated_key_id(token, state, now=now)
        state.rate_limiter.check(f"key:{key_id}", settings.verify_rate_per_minute_with_key, now=now.timestamp())
    else:
        state.rate_limiter.check(f"ip:{address}", settings.verify_rate_per_minute, now=now.timestamp())
    outcome = verify_online(
        body,
        store=state.verify_store,
        keyring=state.keyring,
        settings=settings,
        client=f"key:{key_id}" if key_id else f"ip:{address}",
        now=now,
    )
    return key_id, outcome


def _authenticated_key_id(token: str, state: State, *, now: datetime) -> str:
    prefix = claimed_identity(token, state.settings)
    if prefix == ADMIN:
        return ADMIN
    record = state.verify_store.api_key(prefix) if prefix else None
    if record is None or not api_key_matches(
        token, record.secret_hash, revoked=record.revoked, expires_at=record.expires_at, now=now
    ):
        raise ApiError(401, "unauthorized", "the token is not valid")
    state.key_usage.touch(record.id, at=now)
    return record.id
