"""Signing keys (encrypted PKCS#8 PEM at rest), key ids, and the trust store of verifying keys."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from . import _algorithms
from ._algorithms import PrivateKey, PublicKey
from .errors import InvalidInput, KeyUnavailable, UnsupportedAlgorithm

ISSUER_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9-]{0,15}")
"""An issuer code (the ``iss`` claim), matched whole."""

KID_BYTES = 8
PASSPHRASE_ENV = "CERTSEAL_KEY_PASSPHRASE"  # noqa: S105 -- the variable's name, not a secret
PASSPHRASE_FILE_ENV = "CERTSEAL_KEY_PASSPHRASE_FILE"  # noqa: S105 -- a variable name
TRUST_ANCHOR_PASSPHRASE_ENV = "CERTSEAL_TRUST_ANCHOR_PASSPHRASE"  # noqa: S105 -- a variable name
MIN_PASSPHRASE_BYTES = 8


def key_id(public_key: PublicKey) -> bytes:
    """Return certseal's kid: the first 8 bytes of SHA-256 over the DER SubjectPublicKeyInfo."""
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()[:KID_BYTES]


def passphrase_from_environment() -> bytes:
    """Read the key passphrase from ``CERTSEAL_KEY_PASSPHRASE`` or the file ``CERTSEAL_KEY_PASSPHRASE_FILE``."""
    return passphrase_from(PASSPHRASE_ENV)


def passphrase_from(variable: str) -> bytes:
    """Read a passphrase from the environment variable ``variable`` or the file named by ``<variable>_FILE``.

    The variable wins over the file; a file's trailing line break is dropped. Neither set, or empty,
    is :class:`KeyUnavailable`. The trust-anchor key uses :data:`TRUST_ANCHOR_PASSPHRASE_ENV`.
    """
    file_variable = f"{variable}_FILE"
    value = os.environ.get(variable)
    if value is None and (path := os.environ.get(file_variable)):
        try:
            value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise KeyUnavailable(f"passphrase file unreadable: {exc.strerror}") from None
    if not value:
        raise KeyUnavailable(f"set {variable} or {file_variable}")
    return value.encode("utf-8")


class SigningKey:
    """A private signing key with its COSE algorithm and kid; never printed, never written in clear."""

    __slots__ = ("_private", "alg", "kid", "public_key")

    def __init__(self, private_key: PrivateKey) -> None:
        if isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(private_key.curve, ec.SECP256R1):
            self.alg = _algorithms.ES256
        elif isinstance(private_key, ed25519.Ed25519PrivateKey):
            self.alg = _algorithms.EDDSA
        else:
            raise UnsupportedAlgorithm(f"certseal signs with ES256 or Ed25519, not {type(private_key).__name__}")
        self._private = private_key
        self.public_key: PublicKey = private_key.public_key()
        self.kid = key_id(self.public_key)

    @classmethod
    def generate(cls, alg: str = "ES256") -> SigningKey:
        """Make a new key for ``alg`` (``ES256`` or ``EdDSA``)."""
        if alg == "ES256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        if alg == "EdDSA":
            return cls(ed25519.Ed25519PrivateKey.generate())
        raise UnsupportedAlgorithm(f"cannot generate {alg!r}")

    @classmethod
    def from_pem(cls, pem: bytes, passphrase: bytes) -> SigningKey:
        """Load an encrypted PKCS#8 PEM key; a wrong passphrase or unencrypted key is refused."""
        if b"ENCRYPTED PRIVATE KEY" not in pem:
            raise KeyUnavailable("private key is not encrypted PKCS#8")
        try:
            private = serialization.load_pem_private_key(pem, password=passphrase)
        except (ValueError, TypeError):
            raise KeyUnavailable("private key cannot be decrypted (wrong passphrase or damaged file)") from None
        if not isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise UnsupportedAlgorithm(f"key type {type(private).__name__}")
        return cls(private)

    @classmethod
    def load(cls, path: str | Path, passphrase: bytes | None = None) -> SigningKey:
        """Load a key file; the passphrase defaults to the environment (see :func:`passphrase_from_environment`)."""
        try:
            pem = Path(path).read_bytes()
        except OSError as exc:
            raise KeyUnavailable(f"key file {path}: {exc.strerror}") from None
        return cls.from_pem(pem, passphrase if passphrase is not None else passphrase_from_environment())

    def to_pem(self, passphrase: bytes) -> bytes:
        """Serialize as encrypted PKCS#8 PEM (PBES2, AES-256-CBC); an empty or short passphrase is refused."""
        if len(passphrase) < MIN_PASSPHRASE_BYTES:
            raise InvalidInput(f"passphrase must have at least {MIN_PASSPHRASE_BYTES} bytes")
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )

    def public_pem(self) -> bytes:
        """Return the public key as SubjectPublicKeyInfo PEM."""
        return public_key_pem(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``; ECDSA signatures come out as COSE's raw ``r || s``."""
        return _algorithms.sign(self.alg, self._private, message)

    def __repr__(self) -> str:
        return f"SigningKey(alg={_algorithms.ALGORITHM_NAMES[self.alg]}, kid={self.kid.hex()})"


def public_key_pem(public_key: PublicKey) -> bytes:
    """Return ``public_key`` as SubjectPublicKeyInfo PEM."""
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(data: bytes) -> PublicKey:
    """Parse a PEM or DER SubjectPublicKeyInfo of a type some COSE algorithm verifies with."""
    try:
        key = (
            serialization.load_pem_public_key(data)
            if data.lstrip().startswith(b"-----")
            else serialization.load_der_public_key(data)
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidInput("not a public key in PEM or DER SubjectPublicKeyInfo") from None
    _algorithms.algorithm_for_key(key)  # type: ignore[arg-type]  # refuses DSA, DH, X25519...
    return key  # type: ignore[return-value]  # narrowed by algorithm_for_key


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A verifying key the caller trusts, under an explicit kid, with the algorithms its type allows.

    ``issuer`` binds the key to one issuer code: a credential it signed must carry that ``iss``
    (:meth:`TrustStore.issuer_mismatch`). None trusts the key for any issuer (no issuer check).
    """

    kid: bytes
    public_key: PublicKey
    issuer: str | None = None
    algorithms: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        allowed = frozenset(a.cose_id for a in _algorithms.ALGORITHMS.values() if a.accepts(self.public_key))
        object.__setattr__(self, "algorithms", allowed)  # frozen: set once, here


class TrustStore:
    """Explicit (kid, public key) pairs; the only keys a verification may use."""

    def __init__(self, keys: Iterable[TrustedKey] = ()) -> None:
        self._keys: dict[bytes, TrustedKey] = {}
        for key in keys:
            self._put(key)

    def _put(self, key: TrustedKey) -> None:
        existing = self._keys.get(key.kid)
        if existing is not None and key_id(existing.public_key) != key_id(key.public_key):
            raise InvalidInput(f"two different keys under kid {key.kid.hex()}")
        if existing is not None and existing.issuer != key.issuer:
            raise InvalidInput(f"the key under kid {key.kid.hex()} is bound to two different issuers")
        self._keys[key.kid] = key

    def add(self, public_key: PublicKey, kid: bytes | None = None, *, issuer: str | None = None) -> TrustedKey:
        """Trust ``public_key`` under ``kid`` (default: certseal's SPKI kid), bound to ``issuer`` if given."""
        if issuer is not None and not ISSUER_PATTERN.fullmatch(issuer):
            raise InvalidInput(f"issuer code must match `{ISSUER_PATTERN.pattern}`")
        entry = TrustedKey(kid=key_id(public_key) if kid is None else bytes(kid), public_key=public_key, issuer=issuer)
        self._put(entry)
        return entry

    def issuer_mismatch(self, kid: bytes, issuer: str) -> bool:
        """Tell whether the key under ``kid`` is bound to an issuer other than ``issuer`` (an unbound key: False)."""
        key = self._keys.get(kid)
        return key is not None and key.issuer is not None and key.issuer != issuer

    @classmethod
    def from_pem_files(cls, paths: Iterable[str | Path]) -> TrustStore:
        """Build a store from public key files, each trusted under its SPKI kid."""
        store = cls()
        for path in paths:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise KeyUnavailable(f"trust file {path}: {exc.strerror}") from None
            store.add(load_public_key(data))
        return store

    def get(self, kid: bytes) -> TrustedKey | None:
        """Return the trusted key for ``kid``, if any."""
        return self._keys.get(kid)

    def __iter__(self) -> Iterator[TrustedKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)
