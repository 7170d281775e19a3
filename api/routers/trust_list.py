"""The signed trust list: public to read, replaced by an administrator's upload or signed by the service."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Header, Request, Response, status
from fastapi.responses import JSONResponse
from sqlmodel import Session

from crypto import TYP_TRUST_LIST
from schemas.api import ErrorResponse, TrustListPublished

from ..db import read_transaction, write_transaction
from ..deps import AdminDep, ClockDep, SessionDep, TrustListsDep
from ..errors import DATABASE_UNAVAILABLE_RESPONSE, ApiError
from ..http_cache import etag_matches, etag_of
from ..models import TrustListRow
from ..services.errors import TrustListNotFound
from ..services.trust_lists import TrustLists

router = APIRouter(prefix="/v1", tags=["trust list"], responses=DATABASE_UNAVAILABLE_RESPONSE)

_PUBLIC = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "ETag"}
MAX_TRUST_LIST_BYTES = 1024 * 1024
TRUST_LIST_MAX_AGE = 300


@router.get(
    "/trust-list",
    summary="The newest signed trust list (public)",
    response_class=Response,
    responses={
        200: {"content": {TYP_TRUST_LIST: {}}, "description": "the trust list, a COSE_Sign1 by the trust anchor"},
        304: {"description": "unchanged since the ETag given in If-None-Match"},
        404: {"model": ErrorResponse, "description": "`trust_list_unavailable`: none published yet"},
    },
)
def get_trust_list(
    session: SessionDep,
    trust_lists: TrustListsDep,
    clock: ClockDep,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Every issuer, its scope, status-list base and keys; verify it against the pinned anchor before use."""
    now = clock.now()
    with read_transaction(session):
        newest = trust_lists.newest(session)
    if trust_lists.needs_signing(newest, now=now):
        with write_transaction(session):
            newest = trust_lists.newest(session)  # another request may have signed meanwhile
            if trust_lists.needs_signing(newest, now=now):
                newest = trust_lists.publish(session, now=now)
    if newest is None:
        raise TrustListNotFound()
    etag = etag_of(newest.token)
    # Never let a cache keep a list as fresh past its exp (an uploaded list may be close to it, or past it).
    max_age = max(0, min(TRUST_LIST_MAX_AGE, math.floor((newest.exp - now).total_seconds())))
    headers = {**_PUBLIC, "ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(newest.token, media_type=TYP_TRUST_LIST, headers=headers)


@router.put(
    "/trust-list",
    status_code=status.HTTP_201_CREATED,
    response_model=TrustListPublished,
    summary="Publish a trust list signed offline with `certseal trust sign` (admin)",
    openapi_extra={"requestBody": {"content": {TYP_TRUST_LIST: {"schema": {"type": "string", "format": "binary"}}}}},
    responses={
        404: {"model": ErrorResponse, "description": "`trust_anchor_not_configured`"},
        409: {"model": ErrorResponse, "description": "`trust_list_sequence`: not above the published one"},
        413: {"model": ErrorResponse},
        422: {"model": ErrorResponse, "description": "`trust_list_rejected`: not signed by the pinned anchor"},
    },
)
async def put_trust_list(
    request: Request, _admin: AdminDep, session: SessionDep, trust_lists: TrustListsDep, clock: ClockDep
) -> JSONResponse:
    """Accepted only if the pinned anchor signed it, it is current, and its sequence number is higher."""
    body = await request.body()
    if len(body) > MAX_TRUST_LIST_BYTES:
        raise ApiError(413, "too_large", "a trust list is at most 1 MiB")
    row = await to_thread.run_sync(_store, session, trust_lists, body, clock.now())
    return JSONResponse(
        {"sequence": row.sequence, "iat": row.iat.isoformat(), "exp": row.exp.isoformat()},
        status_code=status.HTTP_201_CREATED,
    )


@router.get(
    "/trust-list/content",
    summary="What the registry says the trust list should hold, as JSON to sign offline (admin)",
)
def get_trust_list_content(_admin: AdminDep, session: SessionDep, trust_lists: TrustListsDep) -> JSONResponse:
    """The input of ``certseal trust sign --content``: issuers, scopes, status bases and keys with their lifecycle."""
    with read_transaction(session):
        content = trust_lists.content(session)
    return JSONResponse(content.to_json(), headers={"Cache-Control": "no-store"})


def _store(session: Session, trust_lists: TrustLists, body: bytes, now: datetime) -> TrustListRow:
    with write_transaction(session):
        return trust_lists.upload(session, body, now=now)
