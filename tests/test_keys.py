"""Signing keys at rest (encrypted PKCS#8), key ids and the trust store."""

from __future__ import annotations

import hashlib

import pytest
from conftest import TEST_KEY_DIR, TEST_KEY_PASSPHRASE
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

import crypto
from crypto import SigningKey, TrustStore

PASSPHRASE = b"correct horse battery staple"


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_encrypted_pem_round_trip(alg):
    """A key written as encrypted PEM loads back with the same kid and algorithm and still signs."""
    key = SigningKey.generate(alg)
    pem = key.to_pem(PASSPHRASE)

    loaded = SigningKey.from_pem(pem, PASSPHRASE)

    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert (loaded.kid, loaded.alg) == (key.kid, key.alg)
    store = TrustStore()
    store.add(key.public_key)
    assert crypto.cose.verify(crypto.cose.decode(crypto.cose.sign(b"\xa0", loaded)), store).kid == key.kid


def test_load_from_file(tmp_path):
    """``SigningKey.load`` reads an encrypted key file with an explicit passphrase."""
    key = SigningKey.generate()
    path = tmp_path / "issuer.pem"
    path.write_bytes(key.to_pem(PASSPHRASE))

    loaded = SigningKey.load(path, PASSPHRASE)

    assert loaded.kid == key.kid


def test_load_passphrase_from_environment(tmp_path, monkeypatch):
    """Without an explicit passphrase, ``CERTSEAL_KEY_PASSPHRASE`` is used."""
    key = SigningKey.generate()
    path = tmp_path / "issuer.pem"
    path.write_bytes(key.to_pem(PASSPHRASE))
    monkeypatch.setenv("CERTSEAL_KEY_PASSPHRASE", PASSPHRASE.decode())

    loaded = SigningKey.load(path)

    assert loaded.kid == key.kid


def test_wrong_passphrase_is_key_unavailable():
    """A wrong passphrase is ``KeyUnavailable``, not a crash or a different key."""
    pem = SigningKey.generate().to_pem(PASSPHRASE)

    with pytest.raises(crypto.KeyUnavailable) as caught:
        SigningKey.from_pem(pem, b"wrong passphrase!")

    assert caught.value.code == "key_unavailable"


@pytest.mark.parametrize("private_format", ["pkcs8", "traditional"])
def test_unencrypted_pem_is_refused(private_format):
    """An unencrypted private key PEM is refused even with a passphrase given."""
    private = ec.generate_private_key(ec.SECP256R1())
    formats = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
    }
    pem = private.private_bytes(serialization.Encoding.PEM, formats[private_format], serialization.NoEncryption())

    with pytest.raises(crypto.KeyUnavailable):
        SigningKey.from_pem(pem, PASSPHRASE)


def test_missing_key_file_is_key_unavailable(tmp_path):
    """A key file that does not exist is ``KeyUnavailable``."""
    missing = tmp_path / "nope.pem"

    with pytest.raises(crypto.KeyUnavailable):
        SigningKey.load(missing, PASSPHRASE)


def test_missing_passphrase_is_key_unavailable(tmp_path, monkeypatch):
    """With no passphrase given and none in the environment, loading is ``KeyUnavailable``."""
    path = tmp_path / "issuer.pem"
    path.write_bytes(SigningKey.generate().to_pem(PASSPHRASE))
    monkeypatch.delenv("CERTSEAL_KEY_PASSPHRASE", raising=False)
    monkeypatch.delenv("CERTSEAL_KEY_PASSPHRASE_FILE", raising=False)

    with pytest.raises(crypto.KeyUnavailable):
        SigningKey.load(path)


@pytest.mark.parametrize("passphrase", [b"", b"short"])
def test_short_passphrase_refused_when_writing(passphrase):
    """Keys are not written under an empty or short passphrase."""
    key = SigningKey.generate()

    with pytest.raises(crypto.InvalidInput):
        key.to_pem(passphrase)


def test_rsa_signing_key_refused():
    """certseal signs with ES256 or Ed25519 only."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    with pytest.raises(crypto.UnsupportedAlgorithm):
        SigningKey(private)


def test_repr_contains_no_key_material():
    """repr and str of a signing key show the algorithm and kid, never the private scalar or PEM."""
    private = ec.generate_private_key(ec.SECP256R1())
    key = SigningKey(private)
    scalar = private.private_numbers().private_value
    der = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    shown = repr(key) + str(key) + f"{key!r}"

    assert shown.startswith("SigningKey(alg=ES256, kid=")
    assert key.kid.hex() in shown
    assert f"{scalar:x}" not in shown
    assert str(scalar) not in shown
    assert der.hex() not in shown
    assert scalar.to_bytes(32, "big").hex() not in shown
    assert not hasattr(key, "__dict__")


def test_ed25519_repr_contains_no_key_material():
    """An Ed25519 key's repr holds no raw private bytes."""
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )

    shown = repr(SigningKey(private))

    assert raw.hex() not in shown.lower()


@pytest.mark.parametrize("name", ["es256-issuer", "es256-other", "eddsa-issuer"])
def test_kid_is_truncated_sha256_of_spki(name):
    """The kid is the first 8 bytes of SHA-256 over the DER SubjectPublicKeyInfo."""
    key = SigningKey.from_pem((TEST_KEY_DIR / f"{name}.pem").read_bytes(), TEST_KEY_PASSPHRASE)
    spki = key.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    kid = crypto.key_id(key.public_key)

    assert kid == hashlib.sha256(spki).digest()[:8] == key.kid
    assert len(kid) == 8


def test_committed_test_keys_are_encrypted():
    """The test keys under tests/ are encrypted PKCS#8 too."""
    files = sorted(TEST_KEY_DIR.glob("*.pem"))

    headers = {path.read_bytes().splitlines()[0] for path in files}

    assert len(files) == 3
    assert headers == {b"-----BEGIN ENCRYPTED PRIVATE KEY-----"}


def test_public_key_pem_round_trip(es256_key):
    """A public key PEM loads back to the same kid, PEM or DER."""
    pem = es256_key.public_pem()
    der = es256_key.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    from_pem, from_der = crypto.load_public_key(pem), crypto.load_public_key(der)

    assert crypto.key_id(from_pem) == crypto.key_id(from_der) == es256_key.kid


@pytest.mark.parametrize("data", [b"", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", b"\x30\x00"])
def test_load_public_key_refuses_garbage(data):
    """Data that is not a SubjectPublicKeyInfo is ``InvalidInput``."""
    with pytest.raises(crypto.InvalidInput):
        crypto.load_public_key(data)


def test_trust_store_refuses_two_keys_under_one_kid(es256_key, other_key):
    """A kid cannot name two different keys in one trust store."""
    store = TrustStore()
    store.add(es256_key.public_key)

    with pytest.raises(crypto.InvalidInput):
        store.add(other_key.public_key, kid=es256_key.kid)

    assert len(store) == 1
    assert store.add(es256_key.public_key).kid == es256_key.kid  # the same key again is fine


@pytest.mark.parametrize(
    ("bound_to", "iss", "mismatch"),
    [("CN-44", "CN-44", False), ("CN-44", "CN-45", True), (None, "CN-45", False)],
    ids=["same-issuer", "other-issuer", "unbound"],
)
def test_trust_store_issuer_binding(es256_key, bound_to, iss, mismatch):
    """A key added with ``issuer=`` mismatches every other ``iss``; a key added without one mismatches none."""
    store = TrustStore()
    store.add(es256_key.public_key, issuer=bound_to)

    result = store.issuer_mismatch(es256_key.kid, iss)

    assert result is mismatch
    assert store.get(es256_key.kid).issuer == bound_to


@pytest.mark.parametrize("issuer", ["cn-44", "", "-CN", "CN-44-TOO-LONG-CODE"])
def test_trust_store_refuses_a_bad_issuer_code(es256_key, issuer):
    """Binding a key to a string that is not an issuer code is ``InvalidInput`` naming the rule."""
    store = TrustStore()

    with pytest.raises(crypto.InvalidInput) as refused:
        store.add(es256_key.public_key, issuer=issuer)

    assert "issuer code must match" in refused.value.detail
    assert len(store) == 0


def test_trust_store_refuses_one_key_bound_to_two_issuers(es256_key):
    """The same key cannot be bound to two issuer codes in one store."""
    store = TrustStore()
    store.add(es256_key.public_key, issuer="CN-44")

    with pytest.raises(crypto.InvalidInput):
        store.add(es256_key.public_key, issuer="CN-45")

    assert store.get(es256_key.kid).issuer == "CN-44"


def test_trust_store_from_pem_files(tmp_path, es256_key, eddsa_key):
    """A trust store built from PEM files trusts each key under its SPKI kid; a missing file is ``KeyUnavailable``."""
    paths = []
    for key in (es256_key, eddsa_key):
        path = tmp_path / f"{key.kid.hex()}.pem"
        path.write_bytes(key.public_pem())
        paths.append(path)

    store = TrustStore.from_pem_files(paths)

    assert {entry.kid for entry in store} == {es256_key.kid, eddsa_key.kid}
    with pytest.raises(crypto.KeyUnavailable):
        TrustStore.from_pem_files([tmp_path / "missing.pem"])
