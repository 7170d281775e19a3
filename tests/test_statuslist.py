"""Status lists and Status List Tokens: the IETF draft's vectors, bounds, bombs, and type confusion both ways."""

from __future__ import annotations

import base64
import json
import random
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

import crypto
from crypto import (
    LIST_SIZE,
    SigningKey,
    Status,
    StatusList,
    TrustedKey,
    TrustStore,
    _cbor,
    cose,
    sign_status_list,
    verify_status_list_token,
)
from crypto._algorithms import ES256_ALG

VECTOR_DIR = Path(__file__).parent / "vectors" / "statuslist"
LIST_VECTORS = sorted(VECTOR_DIR.glob("draft-*-bits*.json"))
URI = "https://cert.example.gov.cn/v1/status-lists/1"
IAT = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
DURING = IAT + timedelta(hours=1)


def _vector(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _expected_lst(vector: dict[str, Any]) -> bytes:
    """The vector's compressed byte array, from whichever form the draft gives."""
    if vector["lst_hex"]:
        return bytes.fromhex(vector["lst_hex"])
    return bytes(cbor2.loads(bytes.fromhex(vector["status_list_cbor_hex"]))["lst"])


def _built(vector: dict[str, Any]) -> StatusList:
    """The vector's list, built entry by entry through the public API."""
    status_list = StatusList.new(vector["size"], vector["bits"])
    for index, value in vector["statuses"].items():
        status_list.set(int(index), value)
    return status_list


def _trusted(key: SigningKey) -> TrustedKey:
    return TrustStore().add(key.public_key)


def _full_list(seed: int = 11, revoked: float = 0.01, suspended: float = 0.005) -> tuple[StatusList, dict[int, int]]:
    """A certseal-size list with random revocations and suspensions, and what was set."""
    rng = random.Random(seed)  # noqa: S311 -- reproducible test data, not keys
    status_list = StatusList.new()
    chosen: dict[int, int] = {}
    for index in rng.sample(range(LIST_SIZE), int(LIST_SIZE * (revoked + suspended))):
        chosen[index] = Status.REVOKED if len(chosen) < LIST_SIZE * revoked else Status.SUSPENDED
        status_list.set(index, chosen[index])
    return status_list, chosen


def _signed(key: SigningKey, claims: dict[int, Any], header: dict[int, Any] | None = None) -> bytes:
    """A tagged COSE_Sign1 over arbitrary claims, signed like a status list token (for hostile cases)."""
    protected = _cbor.dumps(header or {1: key.alg, 4: key.kid, 16: crypto.TYP_STATUS_LIST})
    payload = _cbor.dumps(claims)
    signature = key.sign(cose.sig_structure(protected, b"", payload))
    return _cbor.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))


def _claims(lst: bytes, bits: int = 2) -> dict[int, Any]:
    return {
        2: URI,
        4: int(IAT.timestamp()) + 86400,
        6: int(IAT.timestamp()),
        65533: {"bits": bits, "lst": lst},
        65534: 600,
    }


# --- the draft's vectors ---


@pytest.mark.parametrize("path", LIST_VECTORS, ids=[p.stem for p in LIST_VECTORS])
def test_draft_vector_encodes_to_its_exact_lst(path: Path) -> None:
    """Setting the vector's statuses and compressing gives the draft's compressed bytes exactly."""
    vector = _vector(path)

    lst = _built(vector).compressed()

    assert lst == _expected_lst(vector)


@pytest.mark.parametrize("path", LIST_VECTORS, ids=[p.stem for p in LIST_VECTORS])
def test_draft_vector_decodes_to_its_statuses(path: Path) -> None:
    """Decompressing the draft's bytes gives the listed statuses at their indexes and 0 everywhere else."""
    vector = _vector(path)

    decoded = StatusList.from_compressed(vector["bits"], _expected_lst(vector), max_entries=vector["size"])

    assert (decoded.bits, decoded.size) == (vector["bits"], vector["size"])
    assert {str(i): decoded.get(int(i)) for i in vector["statuses"]} == vector["statuses"]
    assert decoded == _built(vector)


@pytest.mark.parametrize("path", [p for p in LIST_VECTORS if _vector(p)["byte_array_hex"]], ids=lambda p: p.stem)
def test_draft_vector_byte_array_is_lsb_first(path: Path) -> None:
    """The uncompressed byte array is the draft's: entry 0 in the least significant bits of byte 0."""
    vector = _vector(path)

    data = _built(vector).to_bytes()

    assert data.hex() == vector["byte_array_hex"]


@pytest.mark.parametrize("path", [p for p in LIST_VECTORS if _vector(p)["lst_base64url"]], ids=lambda p: p.stem)
def test_draft_vector_json_and_cbor_forms_agree(path: Path) -> None:
    """The JSON form's base64url ``lst`` holds the same bytes as the CBOR form's (a check on the copied data)."""
    vector = _vector(path)
    text = vector["lst_base64url"]

    lst = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    assert lst == _expected_lst(vector)


def test_status_list_map_is_the_drafts_in_deterministic_order() -> None:
    """certseal's StatusList map decodes to the draft's map; deterministic CBOR puts ``lst`` before ``bits``."""
    vector = _vector(VECTOR_DIR / "draft-4.1-bits1.json")
    draft = cbor2.loads(bytes.fromhex(vector["status_list_cbor_hex"]))

    encoded = _cbor.dumps(_built(vector).to_cbor())

    assert cbor2.loads(encoded) == draft
    assert list(cbor2.loads(encoded)) == ["lst", "bits"]
    assert encoded == cbor2.dumps(draft, canonical=True)


def test_draft_cwt_example_carries_the_claims_certseal_signs(es256_key: SigningKey) -> None:
    """The draft's CWT example has the header ``typ`` and claim labels of certseal's tokens."""
    vector = _vector(VECTOR_DIR / "draft-5.2-cwt-token.json")
    draft = cbor2.loads(bytes.fromhex(vector["token_hex"]))
    ours = cbor2.loads(sign_status_list(StatusList.new(), es256_key, uri=URI, iat=IAT))

    draft_claims, our_claims = cbor2.loads(draft.value[2]), cbor2.loads(ours.value[2])

    assert draft.tag == ours.tag == 18
    assert cbor2.loads(draft.value[0])[16] == cbor2.loads(ours.value[0])[16] == "application/statuslist+cwt"
    assert set(draft_claims) == set(our_claims) == {2, 4, 6, 65533, 65534}
    assert draft_claims[2] == vector["claims"]["sub"]
    assert draft_claims[65533]["lst"].hex() == vector["claims"]["lst_hex"]


def test_draft_cwt_example_is_refused_by_the_strict_verifier() -> None:
    """The draft's example (kid unprotected, claims not in deterministic order) is malformed for certseal."""
    vector = _vector(VECTOR_DIR / "draft-5.2-cwt-token.json")
    key = TrustedKey(kid=b"12", public_key=ec.generate_private_key(ec.SECP256R1()).public_key())

    with pytest.raises(crypto.Malformed) as caught:
        verify_status_list_token(bytes.fromhex(vector["token_hex"]), key, expected_uri=vector["claims"]["sub"], now=IAT)

    assert caught.value.code == vector["certseal_verdict"]


# --- StatusList ---


@pytest.mark.parametrize(("bits", "index", "value", "byte_no", "byte_value"), [
    (1, 0, 1, 0, 0x01), (1, 7, 1, 0, 0x80), (1, 8, 1, 1, 0x01),
    (2, 0, 3, 0, 0x03), (2, 3, 1, 0, 0x40), (2, 4, 2, 1, 0x02),
    (4, 1, 0xF, 0, 0xF0), (8, 2, 0xAB, 2, 0xAB),
])  # fmt: skip
def test_set_places_entry_lsb_first(bits: int, index: int, value: int, byte_no: int, byte_value: int) -> None:
    """An entry lands in the byte ``index * bits // 8``, counted from the least significant bit."""
    status_list = StatusList.new(64, bits)

    status_list.set(index, value)

    data = status_list.to_bytes()
    assert data[byte_no] == byte_value
    assert sum(data) == byte_value


def test_set_overwrites_without_touching_neighbours() -> None:
    """Setting an entry again replaces only its bits (revoke, then reinstate)."""
    status_list = StatusList.new(8, 2)
    for index in range(8):
        status_list.set(index, Status.SUPERSEDED)

    status_list.set(5, Status.REVOKED)
    status_list.set(5, Status.VALID)

    assert [status_list.get(i) for i in range(8)] == [3, 3, 3, 3, 3, 0, 3, 3]


@pytest.mark.parametrize("index", [-1, LIST_SIZE, LIST_SIZE + 1, True, 1.0])
def test_get_outside_the_list_is_out_of_range(index: Any) -> None:
    """Reading an index outside the list refuses with ``status_index_out_of_range``, never a status."""
    status_list = StatusList.new()

    with pytest.raises(crypto.StatusIndexOutOfRange) as caught:
        status_list.get(index)

    assert caught.value.code == "status_index_out_of_range"


@pytest.mark.parametrize(("index", "value"), [(-1, 1), (LIST_SIZE, 1), (0, 4), (0, -1), (0, True), (0, 1.0)])
def test_set_refuses_bad_index_or_value(index: Any, value: Any) -> None:
    """Writing outside the list or a value beyond 2 bits is invalid input."""
    status_list = StatusList.new()

    with pytest.raises(crypto.InvalidInput):
        status_list.set(index, value)


@pytest.mark.parametrize(("size", "bits"), [(0, 2), (-8, 2), (8, 3), (8, 0), (8, 16)])
def test_new_refuses_bad_shape(size: int, bits: int) -> None:
    """A list needs a positive size and 1, 2, 4 or 8 bits per entry."""
    with pytest.raises(crypto.InvalidInput):
        StatusList.new(size, bits)


def test_certseal_list_is_2_bits_of_131072_entries() -> None:
    """The default list is certseal's: 131,072 entries of 2 bits, 32,768 bytes, all VALID."""
    status_list = StatusList.new()

    data = status_list.to_bytes()

    assert (status_list.bits, status_list.size, len(data)) == (2, 131_072, 32_768)
    assert not any(data)


@pytest.mark.parametrize(
    ("status_index", "number", "idx"),
    [(0, 0, 0), (131_071, 0, 131_071), (131_072, 1, 0), (131_073, 1, 1), (2**32 - 1, 32_767, 131_071)],
)
def test_index_derivation(status_index: int, number: int, idx: int) -> None:
    """A status index picks list ``status_index >> 17`` and entry ``status_index & 0x1FFFF``."""
    uri = crypto.status_list_uri("https://cert.example.gov.cn/v1/status-lists", status_index)

    found = (crypto.list_number(status_index), crypto.list_index(status_index))

    assert found == (number, idx)
    assert uri == f"https://cert.example.gov.cn/v1/status-lists/{number}"


@pytest.mark.parametrize(("base", "status_index"), [("https://x/lists/", 1), ("", 1), ("https://x", -1)])
def test_index_derivation_refuses_bad_input(base: str, status_index: int) -> None:
    """A trailing slash, an empty base or a negative index is invalid input."""
    with pytest.raises(crypto.InvalidInput):
        crypto.status_list_uri(base, status_index)


# --- decompression: bombs and damage ---


def test_decompression_bomb_is_refused_at_the_bound() -> None:
    """10 MB of zeros compressed to 10 KB is refused after inflating at most the list's 32,768 bytes."""
    bomb = zlib.compress(bytes(10_000_000), 9)

    with pytest.raises(crypto.StatusListTooLarge) as caught:
        StatusList.from_compressed(2, bomb, max_entries=LIST_SIZE)

    assert caught.value.code == "status_list_too_large"


def test_one_byte_over_the_bound_is_too_large_and_at_it_is_accepted() -> None:
    """Exactly the bound decodes; a single byte more is refused."""
    at_bound = zlib.compress(bytes(32_768), 9)
    over = zlib.compress(bytes(32_769), 9)

    decoded = StatusList.from_compressed(2, at_bound, max_entries=LIST_SIZE)

    assert decoded.size == LIST_SIZE
    with pytest.raises(crypto.StatusListTooLarge):
        StatusList.from_compressed(2, over, max_entries=LIST_SIZE)


_GOOD = zlib.compress(bytes(1024), 9)


def _deflate(data: bytes, *, wbits: int) -> bytes:
    """``data`` compressed in another container: raw DEFLATE (-15) or gzip (31)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("bits", "lst"),
    [
        (2, b""),
        (2, b"not zlib at all"),
        (2, _GOOD[:-4]),  # truncated: no Adler-32
        (2, _GOOD[: len(_GOOD) // 2]),
        (2, _GOOD + b"\x00"),  # bytes after the stream
        (2, zlib.compress(b"", 9)),  # an empty list
        (2, _GOOD[:-1] + bytes([_GOOD[-1] ^ 1])),  # bad checksum
        (2, _deflate(bytes(8), wbits=-15)),
        (2, _deflate(bytes(8), wbits=31)),
        (3, _GOOD),
        (True, _GOOD),
        (2, bytearray(_GOOD)),
    ],
    ids=["empty", "garbage", "no-adler", "half", "trailing", "empty-list", "checksum", "raw-deflate", "gzip",
         "bits-3", "bits-true", "not-bytes"],
)  # fmt: skip
def test_malformed_lst_is_refused(bits: Any, lst: Any) -> None:
    """A damaged, truncated, non-ZLIB or trailing-byte ``lst``, or bits outside 1/2/4/8, is malformed."""
    with pytest.raises(crypto.StatusListMalformed) as caught:
        StatusList.from_compressed(bits, lst, max_entries=LIST_SIZE)

    assert caught.value.code in ("status_list_malformed", "status_list_too_large")
    assert isinstance(caught.value, crypto.Malformed)


@settings(max_examples=60, deadline=None)
@given(
    bits=st.sampled_from([1, 2, 4, 8]),
    size=st.integers(min_value=1, max_value=4096),
    data=st.data(),
)
def test_round_trip_property(bits: int, size: int, data: st.DataObject) -> None:
    """Any entries set in any list read back the same after compressing and decompressing."""
    entries = data.draw(st.dictionaries(st.integers(0, size - 1), st.integers(0, (1 << bits) - 1), max_size=64))
    status_list = StatusList.new(size, bits)
    for index, value in entries.items():
        status_list.set(index, value)

    decoded = StatusList.from_compressed(bits, status_list.compressed(), max_entries=size)

    assert decoded.to_bytes() == status_list.to_bytes()
    assert all(decoded.get(index) == value for index, value in entries.items())


# --- Status List Token ---


def test_token_round_trip(es256_key: SigningKey) -> None:
    """A signed list verifies back to its URI, times, ttl, kid and every status set in it."""
    status_list, chosen = _full_list()
    token = sign_status_list(status_list, es256_key, uri=URI, iat=IAT)

    parsed = verify_status_list_token(token, _trusted(es256_key), expected_uri=URI, now=DURING)

    assert (parsed.uri, parsed.iat, parsed.exp, parsed.ttl) == (
        URI,
        IAT,
        IAT + timedelta(hours=24),
        timedelta(minutes=10),
    )
    assert parsed.kid == es256_key.kid
    assert parsed.status_list == status_list
    assert all(parsed.status(index) == value for index, value in chosen.items())
    assert parsed.status(next(i for i in range(LIST_SIZE) if i not in chosen)) is Status.VALID


def test_independent_decoder_reads_the_token(es256_key: SigningKey) -> None:
    """Plain cbor2, zlib, ``cryptography`` and the draft's bit order read the token certseal signs."""
    status_list, chosen = _full_list(seed=5)
    token = sign_status_list(status_list, es256_key, uri=URI, iat=IAT, ttl=timedelta(minutes=3))

    tag = cbor2.loads(token)
    protected, unprotected, payload, signature = tag.value
    claims = cbor2.loads(payload)
    array = zlib.decompress(claims[65533]["lst"])
    r, s = int.from_bytes(signature[:32]), int.from_bytes(signature[32:])
    to_verify = cbor2.dumps(["Signature1", protected, b"", payload])

    es256_key.public_key.verify(encode_dss_signature(r, s), to_verify, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg, union-attr]
    assert tag.tag == 18
    assert unprotected == {}
    assert cbor2.loads(protected) == {1: -7, 4: es256_key.kid, 16: "application/statuslist+cwt"}
    assert (claims[2], claims[6], claims[4], claims[65534]) == (
        URI,
        int(IAT.timestamp()),
        int(IAT.timestamp()) + 86400,
        180,
    )
    assert claims[65533]["bits"] == 2
    assert len(array) == 32_768
    assert all((array[i // 4] >> (i % 4 * 2)) & 3 == value for i, value in chosen.items())


def test_certificate_does_not_verify_as_status_list(genuine_envelope: bytes, es256_key: SigningKey) -> None:
    """A genuine certificate envelope, under the same trusted key, is ``wrong_type`` as a status list."""
    trusted = _trusted(es256_key)

    with pytest.raises(crypto.WrongType) as caught:
        verify_status_list_token(genuine_envelope, trusted, expected_uri=URI, now=DURING)

    assert caught.value.code == "wrong_type"


def test_status_list_does_not_verify_as_certificate(es256_key: SigningKey, trust: TrustStore) -> None:
    """A genuine status list token, its key trusted for certificates, is refused by the certificate path."""
    token = sign_status_list(StatusList.new(), es256_key, uri=URI, iat=IAT)

    with pytest.raises(crypto.Malformed) as direct:
        crypto.verify_signature(token, trust)
    with pytest.raises(crypto.VerificationError) as via_qr:
        crypto.verify_qr_text(crypto.encode_qr_text(token, "https://cert.example.gov.cn"), trust, now=DURING)

    assert direct.value.code == "malformed"
    assert via_qr.value.code == "malformed"


def test_typ_of_another_kind_is_wrong_type(es256_key: SigningKey) -> None:
    """A token whose protected ``typ`` is not ``application/statuslist+cwt`` is ``wrong_type``."""
    lst = StatusList.new().compressed()
    token = _signed(es256_key, _claims(lst), {1: -7, 4: es256_key.kid, 16: "application/statuslist+jwt"})

    with pytest.raises(crypto.WrongType):
        verify_status_list_token(token, _trusted(es256_key), expected_uri=URI, now=DURING)


def test_expired_list_is_status_unknown_unless_allowed(es256_key: SigningKey) -> None:
    """At ``exp`` the list says nothing (``status_unknown``); the caller may opt in to read it as stale."""
    token = sign_status_list(StatusList.new(), es256_key, uri=URI, iat=IAT, exp=IAT + timedelta(hours=2))
    at_exp = IAT + timedelta(hours=2)

    with pytest.raises(crypto.StatusListExpired) as caught:
        verify_status_list_token(token, _trusted(es256_key), expected_uri=URI, now=at_exp)
    stale = verify_status_list_token(token, _trusted(es256_key), expected_uri=URI, now=at_exp, allow_expired=True)

    assert caught.value.code == "status_unknown"
    assert stale.is_expired(at_exp)
    assert not stale.is_expired(at_exp - timedelta(seconds=1))


def test_subject_mismatch_is_refused(es256_key: SigningKey) -> None:
    """A valid list for another URI (list 2 handed over for list 1) is refused."""
    token = sign_status_list(StatusList.new(), es256_key, uri=URI[:-1] + "2", iat=IAT)

    with pytest.raises(crypto.StatusListSubjectMismatch) as caught:
        verify_status_list_token(token, _trusted(es256_key), expected_uri=URI, now=DURING)

    assert caught.value.code == "status_list_subject_mismatch"


@pytest.mark.parametrize("where", ["signature", "payload", "protected"])
def test_tampered_token_is_refused(es256_key: SigningKey, where: str) -> None:
    """A bit flipped in the signature, the claims or the protected header never verifies."""
    status_list, _ = _full_list()
    token = cbor2.loads(sign_status_list(status_list, es256_key, uri=URI, iat=IAT))
    protected, unprotected, payload, signature = token.value
    if where == "signature":
        signature = signature[:-1] + bytes([signature[-1] ^ 1])
    elif where == "payload":
        payload = payload[:40] + bytes([payload[40] ^ 1]) + payload[41:]  # inside the sub URI
    else:
        protected = protected[:-1] + bytes([protected[-1] ^ 1])  # typ's last character
    tampered = _cbor.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, signature]))

    with pytest.raises(crypto.VerificationError) as caught:
        verify_status_list_token(tampered, _trusted(es256_key), expected_uri=URI, now=DURING)

    assert caught.value.code == ("wrong_type" if where == "protected" else "bad_signature")


def test_other_key_is_unknown(es256_key: SigningKey, other_key: SigningKey) -> None:
    """A list signed by a key other than the status list key is ``unknown_key``."""
    token = sign_status_list(StatusList.new(), other_key, uri=URI, iat=IAT)

    with pytest.raises(crypto.UnknownKey):
        verify_status_list_token(token, _trusted(es256_key), expected_uri=URI, now=DURING)


def test_high_s_twin_is_malformed(es256_key: SigningKey) -> None:
    """The high-S twin of a genuine signature verifies mathematically and is refused as malformed."""
    token = cbor2.loads(sign_status_list(StatusList.new(), es256_key, uri=URI, iat=IAT))
    protected, unprotected, payload, signature = token.value
    s = ES256_ALG.order - int.from_bytes(signature[32:])
    twin = _cbor.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, signature[:32] + s.to_bytes(32, "big")]))

    with pytest.raises(crypto.Malformed):
        verify_status_list_token(twin, _trusted(es256_key), expected_uri=URI, now=DURING)


def test_signed_bomb_is_refused(es256_key: SigningKey) -> None:
    """Even correctly signed, an ``lst`` inflating past 32,768 bytes is ``status_list_too_large``."""
    token = _signed(es256_key, _claims(zlib.compress(bytes(50_000_000), 9)))

    with pytest.raises(crypto.StatusListTooLarge):
        verify_status_list_token(token, _trusted(es256_key), expected_uri=URI, now=DURING)


@pytest.mark.parametrize(
    ("lst", "bits"),
    [(zlib.compress(bytes(32_767), 9), 2), (zlib.compress(bytes(8), 9), 2), (zlib.compress(bytes(16_384), 9), 1)],
    ids=["one-byte-short", "tiny", "1-bit"],
)
def test_signed_list_of_the_wrong_shape_is_malformed(es256_key: SigningKey, lst: bytes, bits: int) -> None:
    """A signed list that is not 131,072 entries of 2 bits is refused: certseal's lists have one shape."""
    token = _signed(es256_key, _claims(lst, bits))

    with pytest.raises(crypto.StatusListMalformed):
        verify_status_list_token(token, _trusted(es256_key), expected_uri=URI, now=DURING)


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c.pop(65534),  # no ttl
        lambda c: c.pop(4),  # no exp
        lambda c: c.update({1: "CN-44"}),  # an extra claim
        lambda c: c.update({65534: 0}),
        lambda c: c.update({4: c[6]}),  # exp not after iat
        lambda c: c.update({2: b"https://x"}),
        lambda c: c.update({65533: {"bits": 2, "lst": c[65533]["lst"], "aggregation_uri": "https://x"}}),
    ],
    ids=["no-ttl", "no-exp", "extra-claim", "ttl-0", "exp-eq-iat", "sub-bytes", "aggregation-uri"],
)
def test_claims_outside_the_profile_are_malformed(es256_key: SigningKey, change: Any) -> None:
    """Missing, extra or ill-typed claims are malformed, signed or not."""
    claims = _claims(StatusList.new().compressed())
    change(claims)

    with pytest.raises(crypto.Malformed):
        verify_status_list_token(_signed(es256_key, claims), _trusted(es256_key), expected_uri=URI, now=DURING)


def test_cwt_tag_61_is_malformed(es256_key: SigningKey) -> None:
    """The draft forbids the CWT tag around a status list token; certseal refuses it."""
    token = cbor2.loads(sign_status_list(StatusList.new(), es256_key, uri=URI, iat=IAT))

    with pytest.raises(crypto.Malformed):
        verify_status_list_token(
            _cbor.dumps(cbor2.CBORTag(61, token)), _trusted(es256_key), expected_uri=URI, now=DURING
        )


def test_signing_refuses_a_list_or_key_outside_the_profile(es256_key: SigningKey, eddsa_key: SigningKey) -> None:
    """Only ES256 keys sign, and only certseal-shaped lists, with exp after iat."""
    with pytest.raises(crypto.UnsupportedAlgorithm):
        sign_status_list(StatusList.new(), eddsa_key, uri=URI, iat=IAT)
    with pytest.raises(crypto.InvalidInput):
        sign_status_list(StatusList.new(16, 2), es256_key, uri=URI, iat=IAT)
    with pytest.raises(crypto.InvalidInput):
        sign_status_list(StatusList.new(), es256_key, uri=URI, iat=IAT, exp=IAT)
    with pytest.raises(crypto.InvalidInput):
        sign_status_list(StatusList.new(), es256_key, uri=URI, iat=IAT, ttl=timedelta(0))


def test_oversized_token_is_refused_before_parsing(es256_key: SigningKey) -> None:
    """A token above 64 KiB is refused without decoding it."""
    with pytest.raises(crypto.Malformed):
        verify_status_list_token(bytes(70_000), _trusted(es256_key), expected_uri=URI, now=DURING)


def test_naive_time_is_a_policy_error(es256_key: SigningKey) -> None:
    """A verification time without a time zone fails closed."""
    token = sign_status_list(StatusList.new(), es256_key, uri=URI, iat=IAT)

    with pytest.raises(crypto.PolicyError):
        verify_status_list_token(token, _trusted(es256_key), expected_uri=URI, now=datetime(2026, 3, 1, 9))


def test_spec_reader_reads_certseal_tokens(es256_key: SigningKey) -> None:
    """The plain reader printed in ``docs/credential-format.md`` section 11 finds every status set."""
    spec = (Path(__file__).resolve().parents[1] / "docs" / "credential-format.md").read_text(encoding="utf-8")
    code = spec[spec.index("## 11. Status lists") :].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "credential-format.md section 11", "exec"), namespace)  # noqa: S102 -- our own spec
    status_list, chosen = _full_list(seed=3)
    token = sign_status_list(status_list, es256_key, uri=URI, iat=IAT)

    found = {index: namespace["read_status"](token, index) for index in chosen}

    assert found == chosen
    assert namespace["read_status"](token, next(i for i in range(LIST_SIZE) if i not in chosen)) == 0
