"""Public verifying keys, for offline verification by phones and third parties."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter
from fastapi.responses import JSONResponse

import crypto
from schemas.api import KeyList

from ..db import read_transaction
from ..deps import ClockDep, SessionDep, TrustListsDep
from ..errors import DATABASE_UNAVAILABLE_RESPONSE
from ..keyring import public_jwk

router = APIRouter(prefix="/v1", tags=["keys"], responses=DATABASE_UNAVAILABLE_RESPONSE)


@router.get("/keys", response_model=KeyList, summary="All issuers' public keys by kid, as JWK and PEM (public)")
def list_keys(session: SessionDep, trust_lists: TrustListsDep, clock: ClockDep) -> JSONResponse:
    """Every key with its use, windows and state, as the trust list states them; compromised keys stay listed."""
    with read_transaction(session):
        content = trust_lists.content(session)
    keys = []
    for issuer in content.issuers:
        for key in issuer.keys:
            pem = crypto.public_key_pem(key.public_key).decode()
            kid, alg = key.kid.hex(), "ES256" if isinstance(key.public_key, ec.EllipticCurvePublicKey) else "EdDSA"
            keys.append(
                {
                    "kid": kid,
                    "issuer": issuer.code,
                    "alg": alg,
                    "use": str(key.use),
                    "state": str(key.state),
                    "not_before": key.not_before.isoformat(),
                    "not_after": key.not_after.isoformat() if key.not_after else None,
                    "verify_until": key.verify_until.isoformat() if key.verify_until else None,
                    "compromised_at": key.compromised_at.isoformat() if key.compromised_at else None,
                    "jwk": {**public_jwk(pem), "kid": kid, "alg": alg},
                    "pem": pem,
                }
            )
    return JSONResponse(
        {"keys": keys, "generated_at": clock.now().isoformat()}, headers={"Cache-Control": "public, max-age=300"}
    )
