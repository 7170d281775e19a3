"""Secrets handling: API keys (stored hashed), keyed HMAC of ID numbers, short-lived signed URLs."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

API_KEY_PREFIX = "cs"
_PREFIX_BYTES = 6
_SECRET_BYTES = 32


def new_api_key() -> tuple[str, str, bytes]:
    """Return ``(token, prefix, sha256)`` for a new API key; only the hash is stored."""
    prefix = secrets.token_hex(_PREFIX_BYTES)
    token = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    return token, prefix, hash_api_key(token)


def hash_api_key(token: str) -> bytes:
    """SHA-256 of the whole token: the token has 256 random bits, so no slow hash is needed."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def api_key_matches(
    token: str,
    secret_hash: bytes,
    *,
    revoked: bool,
    expires_at: datetime | None,
    now: datetime,
) -> bool:
    """True when the token hashes to the stored hash (in constant time) and the key is neither revoked nor expired."""
    matches = hmac.compare_digest(secret_hash, hash_api_key(token))
    expired = expires_at is not None and expires_at <= now
    return matches and not revoked and not expired


def api_key_prefix(token: str) -> str | None:
    """Return the lookup prefix of a well-formed token, else None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or len(parts[1]) != 2 * _PREFIX_BYTES:
        return None
    return parts[1]


def id_number_hmac(id_number: str, key: bytes) -> bytes:
    """Keyed HMAC-SHA256 of a normalised ID number: not reversible by brute force without the key."""
    return hmac.new(key, b"certseal/id-number/v1\x00" + id_number.encode("ascii"), hashlib.sha256).digest()


def sign_url_path(path: str, key: bytes, ttl_seconds: int, *, now: float) -> str:
    """Return ``path?expires=...&sig=...``, valid for ``ttl_seconds``."""
    expires = int(now + ttl_seconds)
    signature = hmac.new(key, f"{path}\x00{expires}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{path}?expires={expires}&sig={signature}"


def url_signature_valid(path: str, expires: int, signature: str, key: bytes, *, now: float) -> bool:
    """Check a signed URL's signature and expiry in constant time."""
    if expires < now:
        return False
    expected = hmac.new(key, f"{path}\x00{expires}".encode(), hashlib.sha256).hexdigest()[:32]
    return hmac.compare_digest(expected, signature)
