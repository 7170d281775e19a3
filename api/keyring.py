"""Signing keys held by the service: decrypted on demand from the database, cached by kid.

Private keys live in the database only as encrypted PKCS#8 PEM under ``CERTSEAL_KEY_PASSPHRASE``.
Start-up decrypts every active key, so a wrong passphrase or a damaged key stops the service
instead of surfacing at the first issuance; keys are never generated implicitly.
"""

from __future__ import annotations

import base64
import threading
from datetime import datetime

import sqlmodel
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

import crypto
from crypto import SigningKey, TrustedKey

from .models import Issuer, SigningKeyRow


class Keyring:
    """Decrypted signing keys and parsed verifying keys, both cached by kid."""

    def __init__(self, engine: Engine, passphrase: bytes) -> None:
        self._engine = engine
        self._passphrase = passphrase
        self._signing: dict[str, SigningKey] = {}
        self._trusted: dict[bytes, TrustedKey] = {}
        self._lock = threading.Lock()

    def check_active_keys(self) -> int:
        """Decrypt every active key now; raise :class:`crypto.KeyUnavailable` naming the first that fails."""
        with Session(self._engine) as session:
            rows = session.exec(sqlmodel.select(SigningKeyRow).where(SigningKeyRow.state == "active")).all()
        for row in rows:
            try:
                self._decrypt(row)
            except crypto.CertsealError as exc:
                raise crypto.KeyUnavailable(f"signing key {row.kid}: {exc.detail or exc}") from None
        return len(rows)

    def _decrypt(self, row: SigningKeyRow) -> SigningKey:
        key = self._signing.get(row.kid)
        if key is None:
            key = SigningKey.from_pem(row.encrypted_private_key.encode(), self._passphrase)
            if key.kid.hex() != row.kid:
                raise crypto.KeyUnavailable(f"signing key {row.kid} does not match its kid")
            with self._lock:
                self._signing[row.kid] = key
        return key

    def signing_key(self, row: SigningKeyRow) -> SigningKey:
        """Return the decrypted key of an active key row (decrypting once per process)."""
        if row.state != "active":
            raise crypto.KeyUnavailable(f"signing key {row.kid} is {row.state}")
        return self._decrypt(row)

    def create(self, session: Session, issuer: Issuer, alg: str, *, use: str, now: datetime) -> SigningKeyRow:
        """Generate a key of ``use`` for ``issuer`` and add its row (encrypted) to the session; the caller commits."""
        key = SigningKey.generate(alg)
        row = SigningKeyRow(
            kid=key.kid.hex(),
            issuer_id=issuer.id,
            alg=alg,
            use=use,
            public_key_pem=key.public_pem().decode(),
            encrypted_private_key=key.to_pem(self._passphrase).decode(),
            not_before=now,
        )
        session.add(row)
        with self._lock:
            self._signing[row.kid] = key
        return row

    def get(self, kid: bytes) -> TrustedKey | None:
        """Find a certificate key by kid (any state: compromise is judged with the registry).

        Status-list keys are never found here: a certificate they signed is ``unknown_key``.
        """
        trusted = self._trusted.get(kid)
        if trusted is not None:
            return trusted
        with self._engine.connect() as connection:
            pem = connection.execute(
                select(SigningKeyRow.public_key_pem).where(
                    SigningKeyRow.kid == kid.hex(),  # type: ignore[arg-type]
                    SigningKeyRow.use == "certificate",  # type: ignore[arg-type]
                )
            ).scalar_one_or_none()
        if pem is None:
            return None
        trusted = TrustedKey(kid=kid, public_key=crypto.load_public_key(pem.encode()))
        with self._lock:
            self._trusted[kid] = trusted
        return trusted

    def forget(self, kid: bytes) -> None:
        """Drop a cached verifying key whose row is gone, so the next lookup reads the registry again."""
        with self._lock:
            self._trusted.pop(kid, None)


def public_jwk(pem: str) -> dict[str, str]:
    """Return the JWK (RFC 7517) of an ES256 or Ed25519 public key, as WebCrypto imports it."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = crypto.load_public_key(pem.encode())

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big")),
        }
    if isinstance(key, ed25519.Ed25519PublicKey):
        return {"kty": "OKP", "crv": "Ed25519", "x": b64(key.public_bytes(Encoding.Raw, PublicFormat.Raw))}
    raise crypto.UnsupportedAlgorithm("only ES256 and Ed25519 keys are published as JWK")
