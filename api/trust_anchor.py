"""The trust anchor as the service holds it: a public key to pin and check uploads, and maybe the private key.

Loaded once at start-up: a named file that is missing, unreadable, undecryptable or that does not match
the other stops the service, and no anchor is ever generated implicitly (demo mode creates its own,
``api.demo.ensure_demo_trust_anchor``, before start-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

import crypto
from crypto import SigningKey

from .settings import Settings


@dataclass(frozen=True)
class TrustAnchor:
    """The anchor's public PEM (None: no anchor configured) and its signing key if the service signs."""

    public_pem: str | None = None
    signing_key: SigningKey | None = None


def load_trust_anchor(settings: Settings) -> TrustAnchor:
    """Read the anchor files the settings name; raise :class:`crypto.KeyUnavailable` naming the problem."""
    signing_key = None
    if settings.trust_anchor_key_file is not None:
        passphrase = settings.require("trust_anchor_passphrase").encode()
        signing_key = SigningKey.load(settings.trust_anchor_key_file, passphrase)
        if not isinstance(signing_key.public_key, ec.EllipticCurvePublicKey):
            raise crypto.KeyUnavailable("CERTSEAL_TRUST_ANCHOR_KEY_FILE must hold an ES256 key")
    public_pem = None
    if settings.trust_anchor_public_key_file is not None:
        public_pem = _read_public(settings.trust_anchor_public_key_file)
        if signing_key is not None and crypto.key_id(crypto.load_public_key(public_pem.encode())) != signing_key.kid:
            raise crypto.KeyUnavailable("the trust anchor public and private key files do not match")
    elif signing_key is not None:
        public_pem = signing_key.public_pem().decode()
    return TrustAnchor(public_pem=public_pem, signing_key=signing_key)


def _read_public(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise crypto.KeyUnavailable(f"CERTSEAL_TRUST_ANCHOR_PUBLIC_KEY_FILE unreadable: {exc.strerror}") from None
    key = crypto.load_public_key(data)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise crypto.KeyUnavailable("CERTSEAL_TRUST_ANCHOR_PUBLIC_KEY_FILE must hold an ES256 (P-256) key")
    return crypto.public_key_pem(key).decode()
