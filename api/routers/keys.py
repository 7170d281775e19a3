"""Public verifying keys, for offline verification by phones and third parties."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlmodel import select

from schemas.api import KeyList

from ..db import read_transaction
from ..deps import ClockDep, SessionDep
from ..errors import DATABASE_UNAVAILABLE_RESPONSE
from ..keyring import public_jwk
from ..models import Issuer, SigningKeyRow

router = APIRouter(prefix="/v1", tags=["keys"], responses=DATABASE_UNAVAILABLE_RESPONSE)


@router.get("/keys", response_model=KeyList, summary="All issuers' public keys by kid, as JWK and PEM (public)")
def list_keys(session: SessionDep, clock: ClockDep) -> JSONResponse:
    """Every key with its state and validity; revoked keys are listed so verifiers can reject them."""
    with read_transaction(session):
        rows = session.exec(select(SigningKeyRow, Issuer).join(Issuer, Issuer.id == SigningKeyRow.issuer_id)).all()  # type: ignore[arg-type]
    keys = [
        {
            "kid": key.kid,
            "issuer": issuer.code,
            "alg": key.alg,
            "state": key.state,
            "not_before": key.not_before.isoformat(),
            "not_after": key.not_after.isoformat() if key.not_after else None,
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
            "jwk": {**public_jwk(key.public_key_pem), "kid": key.kid, "alg": key.alg},
            "pem": key.public_key_pem,
        }
        for key, issuer in rows
    ]
    return JSONResponse(
        {"keys": keys, "generated_at": clock.now().isoformat()}, headers={"Cache-Control": "public, max-age=300"}
    )
