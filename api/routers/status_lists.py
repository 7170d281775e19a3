"""Status lists (IETF Token Status List, CWT form), public: one per issuer and list number, and the aggregation."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Path, Response
from fastapi.responses import JSONResponse
from sqlmodel import select

from crypto import TYP_STATUS_LIST
from schemas.api import ErrorResponse, StatusListAggregation

from ..db import read_transaction, write_transaction
from ..deps import ClockDep, SessionDep, StatusListsDep
from ..errors import DATABASE_UNAVAILABLE_RESPONSE
from ..http_cache import etag_matches
from ..models import Issuer
from ..services.errors import IssuerNotFound
from ..services.status_lists import SignedStatusList

router = APIRouter(prefix="/v1", tags=["status lists"], responses=DATABASE_UNAVAILABLE_RESPONSE)

# Public data meant for any verifier, whatever CERTSEAL_CORS_ORIGINS allows for the rest of the API.
_PUBLIC = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "ETag"}


@router.get(
    "/status-lists",
    response_model=StatusListAggregation,
    summary="Every status list of every issuer (Status List Aggregation, public)",
)
def list_status_lists(session: SessionDep, lists: StatusListsDep) -> JSONResponse:
    """The URIs of all lists nationwide: certificates are valid across provinces, so a verifier fetches them all."""
    with read_transaction(session):
        uris = lists.all_uris(session)
    return JSONResponse(
        {"status_lists": uris},
        headers={**_PUBLIC, "Cache-Control": f"public, max-age={int(lists.ttl.total_seconds())}"},
    )


@router.get(
    "/status-lists/{issuer_code}/{number}",
    summary="One status list token (application/statuslist+cwt, public)",
    response_class=Response,
    responses={
        200: {"content": {TYP_STATUS_LIST: {}}, "description": "the signed Status List Token"},
        304: {"description": "unchanged since the ETag given in If-None-Match"},
        404: {"model": ErrorResponse, "description": "`status_list_not_found` or `status_list_unavailable`"},
    },
)
def get_status_list(
    issuer_code: Annotated[str, Path(max_length=16)],
    number: Annotated[int, Path(ge=0, le=32767)],
    session: SessionDep,
    lists: StatusListsDep,
    clock: ClockDep,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """The newest signed list, re-signed whenever it is older than its ``ttl``; ``ETag`` and ``Cache-Control`` match."""
    now = clock.now()
    with read_transaction(session):
        issuer = session.exec(select(Issuer).where(Issuer.code == issuer_code)).first()
        if issuer is None:
            raise IssuerNotFound()
        signed = lists.fresh_token(session, issuer=issuer, number=number, now=now)
    if signed is None:
        with write_transaction(session):
            signed = lists.signed_token(session, issuer=issuer, number=number, now=now)
    headers = {
        **_PUBLIC,
        "ETag": signed.etag,
        "Cache-Control": f"public, max-age={_seconds_left(signed, now, lists.ttl)}",
        "Last-Modified": signed.iat.strftime("%a, %d %b %Y %H:%M:%S GMT"),
    }
    if etag_matches(if_none_match, signed.etag):
        return Response(status_code=304, headers=headers)
    return Response(signed.token, media_type=TYP_STATUS_LIST, headers=headers)


def _seconds_left(signed: SignedStatusList, now: datetime, ttl: timedelta) -> int:
    # At most ttl, even when this replica's clock runs behind the one that signed the token.
    left = math.floor((signed.expires_cache_at - now).total_seconds())
    return max(0, min(left, int(ttl.total_seconds())))
