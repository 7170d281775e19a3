"""The signed trust list: round trip, an independent signature check, strict decoding, type confusion both ways."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest
from conftest import STATUS_URI, TRUST_NOW, TrustWorld
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import crypto
from crypto import (
    TYP_TRUST_LIST,
    KeyState,
    KeyUse,
    SigningKey,
    TrustedKey,
    TrustListContent,
    _cbor,
    cose,
    sign_trust_list,
    verify_trust_list,
)
from crypto._algorithms import ES256_ALG
from crypto.trustlist import MAX_TRUST_LIST_BYTES, cose_key, public_key_from_cose_key

CONTENT_VECTOR = Path(__file__).parent / "vectors" / "trustlist" / "content.json"


def _parts(data: bytes) -> list[Any]:
    """The four COSE_Sign1 elements of a signed trust list, decoded with plain cbor2."""
    value = cbor2.loads(data)
    assert value.tag == 18
    return list(value.value)


def _resigned(anchor: SigningKey, claims: Any, header: dict[int, Any] | None = None) -> bytes:
    """A trust list over any ``claims`` (and header), validly signed by ``anchor``: only the rules can refuse it."""
    protected = _cbor.dumps(header or {1: -7, 4: anchor.kid, 16: TYP_TRUST_LIST})
    payload = _cbor.dumps(claims)
    signature = anchor.sign(cose.sig_structure(protected, b"", payload))
    return _cbor.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))


def _claims(world: TrustWorld) -> dict[str, Any]:
    """The claims of a genuine trust list, decoded with plain cbor2."""
    return cbor2.loads(_parts(world.signed())[2])  # type: ignore[no-any-return]


def _code(data: bytes, world: TrustWorld, **kwargs: Any) -> str:
    """The error code verifying ``data`` with the world's anchor at TRUST_NOW raises."""
    with pytest.raises(crypto.VerificationError) as caught:
        verify_trust_list(data, world.anchor.public_key, now=TRUST_NOW, **kwargs)
    return caught.value.code


def test_round_trip(trust_world: TrustWorld) -> None:
    """A signed trust list verifies to its sequence number, times, anchor kid and exactly the content signed."""
    iat = TRUST_NOW - timedelta(hours=1)

    trust_list = verify_trust_list(
        trust_world.signed(sequence=7, iat=iat), trust_world.anchor.public_key, now=TRUST_NOW
    )

    assert trust_list.sequence == 7
    assert (trust_list.iat, trust_list.exp) == (iat, iat + timedelta(days=30))
    assert trust_list.anchor_kid == trust_world.anchor.kid
    assert trust_list.content == trust_world.content()
    assert trust_list.issuer("CN-44") is not None
    assert trust_list.issuer("CN-99") is None


def test_key_lookup_is_by_use(trust_world: TrustWorld) -> None:
    """A status-list key is not found as a certificate key, nor a certificate key as a status-list key."""
    trust_list = trust_world.trust_list()

    status_as_certificate = trust_list.key(trust_world.status_key.kid, KeyUse.CERTIFICATE)
    certificate_as_status = trust_list.key(trust_world.certificate_key.kid, KeyUse.STATUS_LIST)
    found = trust_list.key(trust_world.status_key.kid, KeyUse.STATUS_LIST)

    assert status_as_certificate is None
    assert certificate_as_status is None
    assert found is not None
    assert found[0].code == "CN-44"
    assert found[1].use is KeyUse.STATUS_LIST


def test_signature_checked_with_cryptography_directly(trust_world: TrustWorld) -> None:
    """Independent code (cbor2 and ``cryptography`` only) verifies the anchor's ES256 signature over the claims."""
    protected, unprotected, payload, signature = _parts(trust_world.signed())
    header = cbor2.loads(protected)
    anchor_der = trust_world.anchor.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    anchor = serialization.load_der_public_key(anchor_der)
    assert isinstance(anchor, ec.EllipticCurvePublicKey)
    sig_structure = cbor2.dumps(["Signature1", protected, b"", payload])
    der_signature = encode_dss_signature(int.from_bytes(signature[:32]), int.from_bytes(signature[32:]))

    anchor.verify(der_signature, sig_structure, ec.ECDSA(hashes.SHA256()))
    claims = cbor2.loads(payload)

    assert header == {1: -7, 4: hashlib.sha256(anchor_der).digest()[:8], 16: "application/vnd.certseal.trust-list+cbor"}
    assert unprotected == {}
    assert len(signature) == 64
    assert list(claims) == ["exp", "iat", "seq", "issuers"]
    assert [issuer["code"] for issuer in claims["issuers"]] == ["CN-11", "CN-44"]
    for issuer in claims["issuers"]:
        for key in issuer["keys"]:
            x, y = key["key"].get(-2), key["key"].get(-3)
            if key["key"][1] == 2:  # EC2: the kid is SHA-256 over the SPKI rebuilt from x and y
                point = ec.EllipticCurvePublicNumbers(int.from_bytes(x), int.from_bytes(y), ec.SECP256R1()).public_key()
                spki = point.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
                assert key["kid"] == hashlib.sha256(spki).digest()[:8]


def test_independent_check_refuses_a_changed_claim(trust_world: TrustWorld) -> None:
    """The same independent check fails once one claim is changed: it really covers the payload."""
    protected, _unprotected, payload, signature = _parts(trust_world.signed(sequence=7))
    claims = cbor2.loads(payload)
    claims["seq"] = 8
    anchor = trust_world.anchor.public_key
    assert isinstance(anchor, ec.EllipticCurvePublicKey)
    der_signature = encode_dss_signature(int.from_bytes(signature[:32]), int.from_bytes(signature[32:]))

    with pytest.raises(InvalidSignature):
        anchor.verify(
            der_signature, cbor2.dumps(["Signature1", protected, b"", cbor2.dumps(claims)]), ec.ECDSA(hashes.SHA256())
        )


def test_content_json_round_trip(trust_world: TrustWorld) -> None:
    """The JSON form (``certseal trust sign --content``) reads back to the same content."""
    content = trust_world.content()

    data = json.loads(json.dumps(content.to_json()))

    assert TrustListContent.from_json(data) == content
    assert data["issuers"][1]["keys"][1]["not_after"] == "2026-01-01T00:00:00Z"


def test_content_vector_file_signs_and_verifies() -> None:
    """The committed content vector (a compromised key, an Ed25519 key, two issuers) signs and verifies unchanged."""
    content = TrustListContent.from_json(json.loads(CONTENT_VECTOR.read_text(encoding="utf-8")))
    anchor = SigningKey.generate("ES256")

    signed = sign_trust_list(content, anchor, sequence=1, iat=TRUST_NOW, exp=TRUST_NOW + timedelta(days=1))
    trust_list = verify_trust_list(signed, anchor.public_key, now=TRUST_NOW)

    assert trust_list.content == content
    states = {key.state for issuer in content.issuers for key in issuer.keys}
    assert KeyState.COMPROMISED in states


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda key: key.update(kid="00" * 8), "issuers[0].keys[0].kid"),
        (lambda key: key.update(not_before="2026-01-01"), "issuers[0].keys[0].not_before"),
        (lambda key: key.update(not_before="2026-01-01T08:00:00+08:00"), "issuers[0].keys[0].not_before"),
        (lambda key: key.update(use="both"), "issuers[0].keys[0].use"),
        (lambda key: key.update(colour="red"), "issuers[0].keys[0].colour"),
        (lambda key: key.update(compromised_at="2026-02-01T00:00:00Z"), "issuers[0].keys[0]"),
        (lambda key: key.pop("public_key_pem"), "issuers[0].keys[0].public_key_pem"),
    ],
)
def test_content_json_errors_name_the_field(trust_world: TrustWorld, change: Any, field: str) -> None:
    """A wrong field in the JSON form is refused with its path and rule."""
    data = trust_world.content().to_json()
    change(data["issuers"][0]["keys"][0])

    with pytest.raises(crypto.InvalidInput) as caught:
        TrustListContent.from_json(data)

    assert caught.value.detail.startswith(f"{field}:")


def test_wrong_anchor_is_unknown_key(trust_world: TrustWorld) -> None:
    """A trust list checked against another anchor is ``unknown_key``."""
    other_anchor = SigningKey.generate("ES256")

    with pytest.raises(crypto.UnknownKey):
        verify_trust_list(trust_world.signed(), other_anchor.public_key, now=TRUST_NOW)


def test_same_kid_other_signature_is_bad_signature(trust_world: TrustWorld) -> None:
    """A trust list whose payload was changed after signing is ``bad_signature``."""
    protected, unprotected, payload, signature = _parts(trust_world.signed())
    claims = cbor2.loads(payload)
    claims["issuers"][1]["operations"].append("1.1")
    tampered = _cbor.dumps(cbor2.CBORTag(18, [protected, unprotected, _cbor.dumps(claims), signature]))

    assert _code(tampered, trust_world) == "bad_signature"


def test_signed_by_a_certificate_key_is_unknown_key(trust_world: TrustWorld) -> None:
    """A well-formed trust list signed by an issuer key instead of the anchor is ``unknown_key``."""
    signed = sign_trust_list(
        trust_world.content(),
        trust_world.certificate_key,
        sequence=1,
        iat=TRUST_NOW,
        exp=TRUST_NOW + timedelta(days=1),
    )

    assert _code(signed, trust_world) == "unknown_key"


def test_expired_is_refused_unless_allowed(trust_world: TrustWorld) -> None:
    """Past ``exp`` a trust list is ``trust_list_expired``; allowed stale, it is returned and says it is expired."""
    signed = trust_world.signed(iat=TRUST_NOW - timedelta(days=31))

    code = _code(signed, trust_world)
    stale = verify_trust_list(signed, trust_world.anchor.public_key, now=TRUST_NOW, allow_expired=True)

    assert code == "trust_list_expired"
    assert stale.is_expired(TRUST_NOW)
    assert not stale.is_expired(TRUST_NOW - timedelta(days=2))


def test_exactly_at_exp_is_expired(trust_world: TrustWorld) -> None:
    """At ``exp`` exactly the trust list is expired (``now >= exp``)."""
    signed = trust_world.signed(iat=TRUST_NOW - timedelta(days=30))

    assert _code(signed, trust_world) == "trust_list_expired"


def test_status_list_token_is_not_a_trust_list(trust_world: TrustWorld) -> None:
    """A Status List Token (typ statuslist+cwt), even one signed by the anchor, is ``wrong_type`` as a trust list."""
    token = trust_world.status_list(key=trust_world.anchor)

    assert _code(token, trust_world) == "wrong_type"


def test_certificate_is_not_a_trust_list(trust_world: TrustWorld) -> None:
    """A certificate envelope (no typ), even one signed by the anchor, is ``wrong_type`` as a trust list."""
    qr_text = trust_world.certificate(trust_world.anchor)

    assert _code(crypto.envelope_from_qr_text(qr_text), trust_world) == "wrong_type"


def test_trust_list_is_not_a_status_list(trust_world: TrustWorld) -> None:
    """A trust list, under the key that signed it, is ``wrong_type`` as a Status List Token."""
    anchor = TrustedKey(kid=trust_world.anchor.kid, public_key=trust_world.anchor.public_key)

    with pytest.raises(crypto.WrongType):
        crypto.verify_status_list_token(trust_world.signed(), anchor, expected_uri=STATUS_URI, now=TRUST_NOW)


def test_trust_list_is_not_a_certificate(trust_world: TrustWorld) -> None:
    """A trust list is never a certificate: the strict certificate profile refuses its three-entry header."""
    store = crypto.TrustStore()
    store.add(trust_world.anchor.public_key)

    with pytest.raises(crypto.Malformed):
        crypto.verify_signature(trust_world.signed(), store)


def test_typ_of_another_kind_is_wrong_type(trust_world: TrustWorld) -> None:
    """A trust list with any other ``typ`` is ``wrong_type``."""
    anchor = trust_world.anchor
    header = {1: -7, 4: anchor.kid, 16: "application/cose"}

    assert _code(_resigned(anchor, _claims(trust_world), header), trust_world) == "wrong_type"


@pytest.mark.parametrize(
    "header",
    [
        {1: -35, 4: "KID", 16: TYP_TRUST_LIST},  # ES384
        {1: -7, 16: TYP_TRUST_LIST},  # no kid
        {1: -7, 4: "KID", 16: TYP_TRUST_LIST, 3: "application/cbor"},  # content type too
    ],
    ids=["es384", "no-kid", "extra-label"],
)
def test_header_other_than_exactly_alg_kid_typ_is_malformed(trust_world: TrustWorld, header: dict[int, Any]) -> None:
    """The protected header must be exactly ``{1: -7, 4: kid, 16: typ}``."""
    anchor = trust_world.anchor
    header = {label: anchor.kid if value == "KID" else value for label, value in header.items()}

    assert _code(_resigned(anchor, _claims(trust_world), header), trust_world) == "malformed"


def test_kid_that_is_not_the_keys_is_malformed(trust_world: TrustWorld) -> None:
    """A key listed under a kid that is not SHA-256(SPKI)[0:8] of its COSE_Key is ``malformed``, signature or not."""
    claims = _claims(trust_world)
    claims["issuers"][1]["keys"][0]["kid"] = trust_world.other_issuer_key.kid

    assert _code(_resigned(trust_world.anchor, claims), trust_world) == "malformed"


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("claims", lambda claims: claims.update(seq=0)),
        ("claims", lambda claims: claims.update(exp=claims["iat"])),
        ("claims", lambda claims: claims.update(extra=1)),
        ("claims", lambda claims: claims["issuers"].reverse()),
        ("issuer", lambda issuer: issuer.update(status_base=issuer["status_base"] + "/")),
        ("issuer", lambda issuer: issuer.update(operations=["2.1", "welding"])),
        ("issuer", lambda issuer: issuer.update(code="cn-44")),
        ("issuer", lambda issuer: issuer.pop("region")),
        ("key", lambda key: key.update(state="compromised")),  # without compromised_at
        ("key", lambda key: key.update(compromised_at=1)),  # not compromised
        ("key", lambda key: key.update(use="both")),
        ("key", lambda key: key.update(not_after=key["not_before"] - 1)),
        ("key", lambda key: key.update(not_before=-1)),
        ("key", lambda key: key.update(verify_until="never")),
        ("key", lambda key: key["key"].update({-3: b"\x00" * 32})),  # a point off the curve
        ("key", lambda key: key["key"].update({3: -8})),
        ("key", lambda key: key.update(kid=key["kid"][:7])),
    ],
)
def test_claims_outside_the_rules_are_malformed(trust_world: TrustWorld, where: str, change: Any) -> None:
    """Each breach of the claim rules, though correctly signed, is ``malformed``."""
    claims = _claims(trust_world)
    target = {"claims": claims, "issuer": claims["issuers"][1], "key": claims["issuers"][1]["keys"][0]}[where]
    change(target)

    assert _code(_resigned(trust_world.anchor, claims), trust_world) == "malformed"


def test_same_key_twice_is_malformed(trust_world: TrustWorld) -> None:
    """One key under two uses (or two issuers) is ``malformed``: a certificate key never verifies a list."""
    claims = _claims(trust_world)
    twin = dict(claims["issuers"][1]["keys"][0], use="status_list")
    claims["issuers"][1]["keys"].append(twin)

    assert _code(_resigned(trust_world.anchor, claims), trust_world) == "malformed"


def test_non_deterministic_cbor_is_malformed(trust_world: TrustWorld) -> None:
    """Claims whose map keys are not in RFC 8949 order are ``malformed`` even when signed."""
    anchor = trust_world.anchor
    claims = _claims(trust_world)
    payload = cbor2.dumps(dict(reversed(list(claims.items()))))
    protected = _cbor.dumps({1: -7, 4: anchor.kid, 16: TYP_TRUST_LIST})
    signature = anchor.sign(cose.sig_structure(protected, b"", payload))
    data = _cbor.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))

    assert _code(data, trust_world) == "malformed"


def test_high_s_twin_is_malformed(trust_world: TrustWorld) -> None:
    """The high-S twin of the anchor's signature verifies mathematically but is ``malformed``."""
    protected, unprotected, payload, signature = _parts(trust_world.signed())
    high = signature[:32] + (ES256_ALG.order - int.from_bytes(signature[32:])).to_bytes(32, "big")

    data = _cbor.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, high]))

    assert _code(data, trust_world) == "malformed"


def test_larger_than_one_mib_is_refused_before_parsing(trust_world: TrustWorld) -> None:
    """More than 1 MiB is ``malformed`` without being decoded."""
    data = trust_world.signed() + b"\x00" * MAX_TRUST_LIST_BYTES

    assert _code(data, trust_world) == "malformed"


def test_unprotected_header_must_be_empty(trust_world: TrustWorld) -> None:
    """Anything in the unprotected header is ``malformed``."""
    protected, _unprotected, payload, signature = _parts(trust_world.signed())

    data = _cbor.dumps(cbor2.CBORTag(18, [protected, {4: b"x"}, payload, signature]))

    assert _code(data, trust_world) == "malformed"


def test_signer_refuses_content_a_verifier_would_refuse(trust_world: TrustWorld) -> None:
    """``sign_trust_list`` refuses a key under a wrong kid, a missing compromised_at, or an Ed25519 anchor."""
    wrong_kid = dataclasses.replace(trust_world.key(trust_world.certificate_key), kid=b"\x00" * 8)
    no_time = trust_world.key(trust_world.certificate_key, state=KeyState.COMPROMISED)
    exp = TRUST_NOW + timedelta(days=1)

    for keys in ((wrong_kid,), (no_time,)):
        with pytest.raises(crypto.InvalidInput):
            sign_trust_list(trust_world.content(keys), trust_world.anchor, sequence=1, iat=TRUST_NOW, exp=exp)
    with pytest.raises(crypto.InvalidInput):
        sign_trust_list(trust_world.content(), trust_world.retired_key, sequence=1, iat=TRUST_NOW, exp=exp)
    with pytest.raises(crypto.InvalidInput):
        sign_trust_list(trust_world.content(), trust_world.anchor, sequence=0, iat=TRUST_NOW, exp=exp)


def test_status_list_key_must_be_es256(trust_world: TrustWorld) -> None:
    """An Ed25519 key may sign certificates but not status lists (the page verifies lists with WebCrypto ES256)."""
    keys = (trust_world.key(trust_world.retired_key, KeyUse.STATUS_LIST),)

    with pytest.raises(crypto.InvalidInput):
        sign_trust_list(
            trust_world.content(keys), trust_world.anchor, sequence=1, iat=TRUST_NOW, exp=TRUST_NOW + timedelta(days=1)
        )


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_cose_key_round_trip(alg: str) -> None:
    """An ES256 or Ed25519 public key survives COSE_Key encoding with the same kid, in the exact label order."""
    key = SigningKey.generate(alg)

    encoded = cose_key(key.public_key)
    decoded = public_key_from_cose_key(cbor2.loads(_cbor.dumps(encoded)))

    assert crypto.key_id(decoded) == key.kid
    assert list(cbor2.loads(_cbor.dumps(encoded))) == ([1, 3, -1, -2, -3] if alg == "ES256" else [1, 3, -1, -2])


def test_verification_time_needs_a_time_zone(trust_world: TrustWorld) -> None:
    """A naive ``now`` is refused rather than guessed."""
    with pytest.raises(crypto.PolicyError):
        verify_trust_list(trust_world.signed(), trust_world.anchor.public_key, now=datetime(2026, 6, 15))


def test_times_are_utc(trust_world: TrustWorld) -> None:
    """Every time of a verified trust list is timezone-aware UTC."""
    trust_list = trust_world.trust_list()

    key = trust_list.content.issuers[1].keys[1]

    assert trust_list.iat.tzinfo is UTC
    assert key.not_before.tzinfo is UTC
    assert key.not_after is not None


def _spec_reader() -> Any:
    """The ``read_trust_list`` printed in ``docs/credential-format.md`` section 12, compiled."""
    spec = (Path(__file__).resolve().parents[1] / "docs" / "credential-format.md").read_text(encoding="utf-8")
    code = spec[spec.index("## 12. Trust list") :].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "credential-format.md section 12", "exec"), namespace)  # noqa: S102 -- our own spec
    return namespace["read_trust_list"]


def test_spec_reader_reads_certseal_trust_lists(trust_world: TrustWorld) -> None:
    """The plain reader printed in the spec reads a genuine trust list and refuses a changed or expired one."""
    read_trust_list = _spec_reader()
    anchor_pem, now = trust_world.anchor.public_pem(), int(TRUST_NOW.timestamp())
    protected, unprotected, payload, signature = _parts(trust_world.signed(sequence=9))
    claims = cbor2.loads(payload)
    claims["seq"] = 10
    changed = cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, cbor2.dumps(claims), signature]))

    read = read_trust_list(trust_world.signed(sequence=9), anchor_pem, now)

    assert read["seq"] == 9
    assert [issuer["code"] for issuer in read["issuers"]] == ["CN-11", "CN-44"]
    with pytest.raises(InvalidSignature):
        read_trust_list(changed, anchor_pem, now)
    with pytest.raises(ValueError, match="expired"):
        read_trust_list(trust_world.signed(sequence=9), anchor_pem, now + 31 * 86400)


def test_only_p256_and_ed25519_keys(trust_world: TrustWorld) -> None:
    """A P-384 key in the JSON form is refused with its field: the trust list holds ES256 and Ed25519 keys only."""
    data = trust_world.content().to_json()
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    data["issuers"][0]["keys"][0]["public_key_pem"] = crypto.public_key_pem(p384).decode()
    del data["issuers"][0]["keys"][0]["kid"]

    with pytest.raises(crypto.InvalidInput) as caught:
        TrustListContent.from_json(data)

    assert caught.value.detail == "issuers[0].keys[0]: keys are ES256 (P-256) or Ed25519"
