"""Low-level COSE signature algorithms (RFC 9053) over ``cryptography`` key objects.

Each algorithm knows which key type it needs, how to verify a COSE signature (raw ``r || s`` for
ECDSA) and, where certseal signs with it, how to sign. A key of the wrong type for an ``alg`` is a
signature failure, never a fallback to another algorithm.

ECDSA signatures are malleable: if ``(r, s)`` verifies, so does ``(r, n - s)``. certseal signs only
the low form (``s <= n / 2``); this layer still verifies both, as RFC 9052 requires, and the certseal
profile (``crypto.envelope``) refuses the high form of an ES256 signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from .errors import BadSignature, InvalidInput, UnsupportedAlgorithm

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

ES256 = -7
ES384 = -35
ES512 = -36
EDDSA = -8
PS256 = -37

MIN_RSA_BITS = 2048

# Group orders n of the ECDSA curves (SEC 2 / FIPS 186-4 D.1.2).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P384_ORDER = int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16)
P521_ORDER = int(
    "01FF" + "FFFFFFFF" * 7 + "FFFFFFFA" + "51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16
)


class Algorithm(Protocol):
    """A COSE signature algorithm: its identifier, name and verification."""

    @property
    def cose_id(self) -> int:
        """The COSE ``alg`` value."""

    @property
    def name(self) -> str:
        """The COSE algorithm name, e.g. ES256."""

    def accepts(self, key: PublicKey) -> bool:
        """Tell whether ``key`` is of the type this algorithm verifies with."""

    def verify(self, key: PublicKey, signature: bytes, message: bytes) -> None:
        """Raise :class:`BadSignature` unless ``signature`` is valid over ``message``.

        ``key`` must be one that :meth:`accepts` approves; ``TrustedKey.algorithms`` records that
        once, when the key is trusted, instead of on every verification.
        """


class _Ecdsa:
    def __init__(
        self,
        cose_id: int,
        name: str,
        curve: type[ec.EllipticCurve],
        digest: type[hashes.HashAlgorithm],
        size: int,
        order: int,
    ) -> None:
        self.cose_id = cose_id
        self.name = name
        self.curve = curve
        self.size = size  # bytes of r and of s
        self.order = order  # n: (r, s) and (r, n - s) both verify
        self._ecdsa = ec.ECDSA(digest())  # immutable; made once instead of on every verification

    def accepts(self, key: PublicKey) -> bool:
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, self.curve)

    def verify(self, key: PublicKey, signature: bytes, message: bytes) -> None:
        if len(signature) != 2 * self.size:
            raise BadSignature(f"{self.name}: signature length {len(signature)}")
        r = int.from_bytes(signature[: self.size])
        s = int.from_bytes(signature[self.size :])
        try:
            cast(ec.EllipticCurvePublicKey, key).verify(encode_dss_signature(r, s), message, self._ecdsa)
        except InvalidSignature:
            raise BadSignature(f"{self.name}: signature does not verify") from None

    def is_low_s(self, signature: bytes) -> bool:
        """Tell whether the raw ``r || s`` signature has ``s <= n / 2``, the one form certseal signs."""
        return int.from_bytes(signature[self.size :]) <= self.order // 2

    def low_s(self, signature: bytes) -> bytes:
        """Return the low-S twin of a raw ``r || s`` signature (itself if already low): ``s`` becomes ``n - s``."""
        if self.is_low_s(signature):
            return signature
        s = self.order - int.from_bytes(signature[self.size :])
        return signature[: self.size] + s.to_bytes(self.size, "big")

    def sign(self, key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
        """Sign as COSE's raw ``r || s``, normalised to the low form (``s <= n / 2``)."""
        r, s = decode_dss_signature(key.sign(message, self._ecdsa))
        return self.low_s(r.to_bytes(self.size, "big") + s.to_bytes(self.size, "big"))


@dataclass(frozen=True)
class _EdDsa:
    cose_id: int = EDDSA
    name: str = "EdDSA"

    def accepts(self, key: PublicKey) -> bool:
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)

    def verify(self, key: PublicKey, signature: bytes, message: bytes) -> None:
        try:
            cast(ed25519.Ed25519PublicKey | ed448.Ed448PublicKey, key).verify(signature, message)
        except InvalidSignature:
            raise BadSignature("EdDSA: signature does not verify") from None

    def sign(self, key: ed25519.Ed25519PrivateKey, message: bytes) -> bytes:
        return key.sign(message)


@dataclass(frozen=True)
class _RsaPss:
    cose_id: int = PS256
    name: str = "PS256"

    def accepts(self, key: PublicKey) -> bool:
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS

    def verify(self, key: PublicKey, signature: bytes, message: bytes) -> None:
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size)
        try:
            cast(rsa.RSAPublicKey, key).verify(signature, message, pss, hashes.SHA256())
        except InvalidSignature:
            raise BadSignature("PS256: signature does not verify") from None


ES256_ALG = _Ecdsa(ES256, "ES256", ec.SECP256R1, hashes.SHA256, 32, P256_ORDER)
EDDSA_ALG = _EdDsa()

ALGORITHMS: dict[int, Algorithm] = {
    ES256: ES256_ALG,
    ES384: _Ecdsa(ES384, "ES384", ec.SECP384R1, hashes.SHA384, 48, P384_ORDER),
    ES512: _Ecdsa(ES512, "ES512", ec.SECP521R1, hashes.SHA512, 66, P521_ORDER),
    EDDSA: EDDSA_ALG,
    PS256: _RsaPss(),
}

# Algorithms certseal issues with: ES256 verifies in every phone browser's WebCrypto.
SIGNING_ALGORITHMS = {"ES256": ES256, "EdDSA": EDDSA}
ALGORITHM_NAMES = {alg.cose_id: alg.name for alg in ALGORITHMS.values()}


def algorithm(cose_id: object) -> Algorithm:
    """Return the algorithm for a COSE ``alg`` value, or raise :class:`UnsupportedAlgorithm`."""
    if type(cose_id) is not int or cose_id not in ALGORITHMS:
        raise UnsupportedAlgorithm(f"alg {cose_id!r}")
    return ALGORITHMS[cose_id]


def algorithm_for_key(key: PublicKey) -> int:
    """Return the COSE ``alg`` certseal pairs with ``key``'s type."""
    for alg in ALGORITHMS.values():
        if alg.accepts(key):
            return alg.cose_id
    raise UnsupportedAlgorithm(f"no algorithm for {type(key).__name__}")


def sign(cose_id: int, key: PrivateKey, message: bytes) -> bytes:
    """Sign ``message`` with one of the :data:`SIGNING_ALGORITHMS`."""
    if cose_id == ES256 and isinstance(key, ec.EllipticCurvePrivateKey):
        return ES256_ALG.sign(key, message)
    if cose_id == EDDSA and isinstance(key, ed25519.Ed25519PrivateKey):
        return EDDSA_ALG.sign(key, message)
    raise InvalidInput(f"cannot sign alg {cose_id} with {type(key).__name__}")
