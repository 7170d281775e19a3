"""The served status lists (IETF Token Status List, CWT form), read by an independent decoder.

The decoder here uses nothing of certseal: plain ``cbor2``, ``zlib`` and ``cryptography``, the draft's
bit order and the key published at GET /v1/keys.
"""

from __future__ import annotations

import itertools
import random
import zlib
from datetime import date, datetime, timedelta

import cbor2
import pytest
from conftest import TEST_NOW, ApiIssuer, FixedClock, id_number_for
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fastapi.testclient import TestClient
from sqlalchemy import text

import crypto
from api import migrate
from api.db import make_engine
from api.main import create_app
from api.settings import DEMO_SECRETS, Settings

STATUS_VALUE = {"valid": 0, "revoked": 1, "suspended": 2, "superseded": 3}
TYP = "application/statuslist+cwt"
LIST_BYTES = 32768
LIST_SIZE = 131072
SET_INDEX = text("UPDATE certificates SET status_index = :i, status = :s WHERE id = :id")
REVOKE_KEY = text(
    "UPDATE signing_keys SET state = 'revoked', revoked_at = :at, revocation_reason = 'lost' WHERE kid = :kid"
)


def decode_token(token: bytes, keys: list[dict]) -> dict:
    """Check a status list token's ES256 signature against the published status_list keys and return its parts."""
    tag = cbor2.loads(token)
    assert tag.tag == 18
    protected, unprotected, payload, signature = tag.value
    header = cbor2.loads(protected)
    kid = header[4].hex()
    (key,) = [entry for entry in keys if entry["kid"] == kid and entry["use"] == "status_list"]
    public_key = serialization.load_pem_public_key(key["pem"].encode())
    sig_structure = cbor2.dumps(["Signature1", protected, b"", payload])
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    public_key.verify(der, sig_structure, ec.ECDSA(hashes.SHA256()))
    claims = cbor2.loads(payload)
    inflater = zlib.decompressobj()
    array = inflater.decompress(claims[65533]["lst"], LIST_BYTES)
    assert inflater.eof
    assert (inflater.unconsumed_tail, len(array)) == (b"", LIST_BYTES)
    return {"header": header, "unprotected": unprotected, "claims": claims, "array": array, "kid": kid}


def entry(array: bytes, idx: int) -> int:
    """The two-bit status at ``idx``, least significant bits first (the draft's order)."""
    return (array[idx >> 2] >> (2 * (idx & 3))) & 3


def published_keys(client: TestClient) -> list[dict]:
    """Every key GET /v1/keys publishes."""
    return client.get("/v1/keys").json()["keys"]


def fetch(client: TestClient, uri: str, **headers: str):
    """GET a list by its absolute URI on the test client."""
    return client.get(uri.split("://", 1)[1].partition("/")[2].join(["/", ""]), headers=headers)


def issue_many(client: TestClient, by, count: int) -> list[dict]:
    """Issue ``count`` certificates with different holders."""
    issued = []
    for number in range(count):
        body = {
            "holder_name": "张伟",
            "holder_id_number": id_number_for(date(1985, 3, 12), sequence=100 + number),
            "operation": "2.1",
            "issue_date": TEST_NOW.date().isoformat(),
        }
        response = client.post("/v1/certificates", json=body, headers=by.headers)
        assert response.status_code == 201, response.text
        issued.append(response.json())
    return issued


def change(client: TestClient, by, certificate_id: str, action: str):
    """POST a status change with a reason."""
    return client.post(f"/v1/certificates/{certificate_id}/{action}", json={"reason": "test"}, headers=by.headers)


def test_independent_decoder_reads_every_status_after_random_changes(app_client, issuer, verify):
    """After seeded random suspensions, revocations, reinstatements and supersedes, every entry matches the registry."""
    certificates = issue_many(app_client, issuer, 40)
    rng = random.Random(11)  # noqa: S311 - a reproducible sequence of changes, not a secret
    for _ in range(120):
        certificate = rng.choice(certificates)
        response = change(
            app_client, issuer, certificate["id"], rng.choice(["suspend", "revoke", "reinstate", "supersede"])
        )
        assert response.status_code in (200, 409), response.text

    keys = published_keys(app_client)
    answers = {c["id"]: verify(c["qr_text"])["certificate"] for c in certificates}
    registry = {
        c["id"]: app_client.get(f"/v1/certificates/{c['id']}", headers=issuer.headers).json() for c in certificates
    }
    decoded = {
        uri: decode_token(fetch(app_client, uri).content, keys)
        for uri in {a["status_list"]["uri"] for a in answers.values()}
    }

    assert {r["status"] for r in registry.values()} == set(STATUS_VALUE)
    for certificate in certificates:
        answer, row = answers[certificate["id"]], registry[certificate["id"]]
        assert answer["status"] == row["status"]
        array = decoded[answer["status_list"]["uri"]]["array"]
        assert entry(array, answer["status_list"]["idx"]) == STATUS_VALUE[row["status"]], certificate["id"]
    not_ours = sum(entry(token["array"], idx) != 0 for token in decoded.values() for idx in range(LIST_SIZE))
    assert not_ours == sum(row["status"] != "valid" for row in registry.values())


def test_token_header_and_claims(app_client, issuer, issue, verify, clock):
    """The token is a tagged COSE_Sign1 with typ 16, sub the derived uri, exp = iat + 24 h and ttl 600."""
    certificate = issue(issuer)
    status_list = verify(certificate["qr_text"])["certificate"]["status_list"]

    response = fetch(app_client, status_list["uri"])
    token = decode_token(response.content, published_keys(app_client))

    assert response.headers["content-type"] == TYP
    assert (token["header"][1], token["header"][16], token["unprotected"]) == (-7, TYP, {})
    claims = token["claims"]
    assert set(claims) == {2, 4, 6, 65533, 65534}
    assert claims[2] == status_list["uri"]
    assert claims[6] == int(clock.now().timestamp())
    assert (claims[4] - claims[6], claims[65534], claims[65533]["bits"]) == (24 * 3600, 600, 2)


def test_status_indexes_are_random_unique_in_lists_one_and_up(app_client, issuer, verify):
    """Indexes are random, unique, in lists 1 and up, and the verify answer derives uri and idx from them."""
    certificates = issue_many(app_client, issuer, 30)

    indexes = [c["status_index"] for c in certificates]
    answers = [verify(c["qr_text"])["certificate"]["status_list"] for c in certificates]

    assert len(set(indexes)) == len(indexes)
    assert all(index >> 17 >= 1 for index in indexes)
    assert sum(b - a == 1 for a, b in itertools.pairwise(indexes)) == 0
    assert sorted(indexes) != indexes
    for index, answer in zip(indexes, answers, strict=True):
        assert answer == {"uri": f"http://127.0.0.1:8000/v1/status-lists/CN-44/{index >> 17}", "idx": index & 0x1FFFF}


def test_aggregation_lists_every_issuers_lists(app_client, issuer, other_issuer, issue):
    """GET /v1/status-lists names list 0 and every open list of every issuer, public and cacheable."""
    issue(issuer)

    response = app_client.get("/v1/status-lists")

    base = "http://127.0.0.1:8000/v1/status-lists"
    assert response.json() == {"status_lists": [f"{base}/CN-11/0", f"{base}/CN-44/0", f"{base}/CN-44/1"]}
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["cache-control"] == "public, max-age=600"
    for uri in response.json()["status_lists"]:
        assert fetch(app_client, uri).status_code == 200, uri


def test_etag_cache_control_and_304(app_client, issuer, issue):
    """A list carries a strong ETag, CORS * and max-age <= ttl; If-None-Match with it gives 304 and no body."""
    uri = f"/v1/status-lists/CN-44/{issue(issuer)['status_index'] >> 17}"

    first = app_client.get(uri)
    again = app_client.get(uri, headers={"If-None-Match": first.headers["etag"]})

    assert first.headers["access-control-allow-origin"] == "*"
    max_age = int(first.headers["cache-control"].removeprefix("public, max-age="))
    assert 0 < max_age <= 600
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", first.headers["etag"])


@pytest.mark.parametrize("header", ["{etag}", "W/{etag}", '"other", {etag}', "*", '"other" , W/{etag}'])
def test_if_none_match_by_weak_comparison(app_client, issuer, issue, header):
    """If-None-Match matches by weak comparison (a proxy may have weakened the ETag), in a list, or as ``*``."""
    uri = f"/v1/status-lists/CN-44/{issue(issuer)['status_index'] >> 17}"
    etag = app_client.get(uri).headers["etag"]

    again = app_client.get(uri, headers={"If-None-Match": header.format(etag=etag)})
    other = app_client.get(uri, headers={"If-None-Match": '"other", W/"other"'})

    assert (again.status_code, other.status_code) == (304, 200)


def test_resigned_after_ttl_and_a_change_is_in_the_next_fetch(app_client, issuer, issue, clock):
    """Past the ttl the same list is signed again (new iat, new ETag); a revocation is in the very next fetch."""
    certificate = issue(issuer)
    uri, idx = f"/v1/status-lists/CN-44/{certificate['status_index'] >> 17}", certificate["status_index"] & 0x1FFFF
    keys = published_keys(app_client)
    first = app_client.get(uri)

    clock.advance(seconds=601)
    second = app_client.get(uri)
    clock.advance(seconds=5)
    assert change(app_client, issuer, certificate["id"], "revoke").status_code == 200
    third = app_client.get(uri, headers={"If-None-Match": second.headers["etag"]})

    iats = [decode_token(r.content, keys)["claims"][6] for r in (first, second, third)]
    assert iats == [int(clock.now().timestamp()) - 606, int(clock.now().timestamp()) - 5, int(clock.now().timestamp())]
    assert len({r.headers["etag"] for r in (first, second, third)}) == 3
    assert third.status_code == 200
    assert [entry(decode_token(r.content, keys)["array"], idx) for r in (second, third)] == [0, 1]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/status-lists/CN-99/1", "issuer_not_found"),
        ("/v1/status-lists/CN-44/2", "status_list_not_found"),
        ("/v1/status-lists/CN-44/32767", "status_list_not_found"),
    ],
)
def test_unknown_issuer_or_list_is_404(app_client, issuer, issue, path, code):
    """An unknown issuer, or a list number beyond the issuer's open lists, is a 404 with its code."""
    issue(issuer)

    response = app_client.get(path)

    assert (response.status_code, response.json()["error"]["code"]) == (404, code)


def test_compromised_status_list_key_then_rotation(app_client, issuer, issue, admin_headers):
    """A compromised status-list key makes a list 404 status_list_unavailable; after a rotation the new kid signs."""
    uri = f"/v1/status-lists/CN-44/{issue(issuer)['status_index'] >> 17}"
    (old,) = [k["kid"] for k in published_keys(app_client) if k["issuer"] == "CN-44" and k["use"] == "status_list"]
    assert app_client.get(uri).status_code == 200

    compromised = app_client.post(
        f"/v1/issuers/CN-44/keys/{old}/compromise", json={"reason": "leak"}, headers=admin_headers
    )
    unavailable = app_client.get(uri)
    rotated = app_client.post("/v1/issuers/CN-44/keys/rotate?use=status_list", headers=admin_headers)
    served = app_client.get(uri)

    assert compromised.status_code == 200, compromised.text
    assert (unavailable.status_code, unavailable.json()["error"]["code"]) == (404, "status_list_unavailable")
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()["kid"]
    assert new != old
    assert decode_token(served.content, published_keys(app_client))["kid"] == new


def test_rotation_signs_the_next_list_with_the_new_kid(app_client, issuer, issue, admin_headers):
    """After ``rotate?use=status_list`` the next list is signed by the new key; the certificate key is untouched."""
    uri = f"/v1/status-lists/CN-44/{issue(issuer)['status_index'] >> 17}"
    before = decode_token(app_client.get(uri).content, published_keys(app_client))["kid"]

    rotated = app_client.post("/v1/issuers/CN-44/keys/rotate?use=status_list", headers=admin_headers).json()
    after = decode_token(app_client.get(uri).content, published_keys(app_client))["kid"]

    uses = {(k["kid"], k["use"], k["state"]) for k in published_keys(app_client) if k["issuer"] == "CN-44"}
    assert after == rotated["kid"] != before
    assert {(before, "status_list", "retired"), (after, "status_list", "active")} <= uses
    assert sum(1 for _, use, state in uses if use == "certificate" and state == "active") == 1
    (retired,) = [k for k in published_keys(app_client) if k["kid"] == before]
    not_after = datetime.fromisoformat(retired["not_after"])
    assert datetime.fromisoformat(retired["verify_until"]) == not_after + timedelta(hours=24)


def test_rotating_an_unknown_key_use_is_refused(app_client, issuer, admin_headers):
    """``rotate?use=`` accepts only certificate and status_list."""
    response = app_client.post("/v1/issuers/CN-44/keys/rotate?use=trust_list", headers=admin_headers)

    assert response.status_code == 422


def test_certificate_signed_with_the_status_list_key_is_unknown_key(
    settings, issuer, verify, issuer_signing_key, make_claims
):
    """A certificate signed with the issuer's status-list key is not trusted as a certificate: unknown_key."""
    envelope = crypto.sign_certificate(make_claims(), issuer_signing_key("CN-44", use="status_list"))
    qr = crypto.encode_qr_text(envelope, settings.public_base_url, allow_insecure_localhost=True)

    verdict = verify(qr)

    assert (verdict["decision"], verdict["reasons"]) == ("reject", ["unknown_key"])


def test_status_list_token_is_not_a_certificate(settings, app_client, issuer, issue, verify):
    """A status list token's bytes put in a QR code are never accepted: malformed or wrong_type."""
    token = app_client.get(f"/v1/status-lists/CN-44/{issue(issuer)['status_index'] >> 17}").content
    qr = crypto.encode_qr_text(token, settings.public_base_url, allow_insecure_localhost=True)

    verdict = verify(qr)

    assert verdict["decision"] == "reject"
    assert verdict["reasons"] in (["malformed"], ["wrong_type"])


def test_a_certificate_is_not_a_status_list(issuer, issue, issuer_signing_key):
    """A certificate envelope carries no typ and is refused as a status list even under its own key (wrong_type)."""
    envelope = crypto.envelope_from_qr_text(issue(issuer)["qr_text"])
    key = issuer_signing_key("CN-44").public_key

    with pytest.raises(crypto.VerificationError) as raised:
        crypto.verify_status_list_token(envelope, key, expected_uri="x", now=TEST_NOW)

    assert raised.value.code == "wrong_type"
    assert 16 not in cbor2.loads(cbor2.loads(envelope).value[0])


def test_migration_0006_keeps_sequential_indexes_in_list_0(sqlite_or_postgres_url):
    """A 0005 registry with a revoked key and sequential indexes upgrades: compromised since then, list 0 served.

    The upgraded issuer has no status-list key yet: its lists are 404 until ``rotate?use=status_list``.
    """
    url = sqlite_or_postgres_url
    clock = FixedClock(TEST_NOW)
    admin = {"Authorization": f"Bearer {DEMO_SECRETS['admin_token']}"}
    settings = Settings.for_demo(database_url=url)
    with TestClient(create_app(settings, clock=clock)) as client:
        client.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["2.1"]},
            headers=admin,
        ).raise_for_status()
        token = client.post("/v1/issuers/CN-44/api-keys", json={}, headers=admin).json()["token"]
        certificates = issue_many(client, ApiIssuer("CN-44", {"Authorization": f"Bearer {token}"}, {}), 5)
        old_kid = certificates[0]["kid"]
        client.post("/v1/issuers/CN-44/keys/rotate", headers=admin).raise_for_status()
    compromised_at = TEST_NOW - timedelta(hours=1)
    statuses = ["valid", "revoked", "suspended", "revoked", "valid"]
    engine = make_engine(url)
    try:
        migrate.downgrade(engine, revision="0005")
        with engine.begin() as connection:
            for number, (certificate, status) in enumerate(zip(certificates, statuses, strict=True)):
                connection.execute(SET_INDEX, {"i": number, "s": status, "id": certificate["id"]})
            connection.execute(REVOKE_KEY, {"at": compromised_at, "kid": old_kid})

        migrate.upgrade(engine)
    finally:
        engine.dispose()

    with TestClient(create_app(settings, clock=clock)) as client:
        keys = published_keys(client)
        # The migration cannot make a key (the keyring's passphrase is not the database's): until an
        # administrator starts a status-list key, the issuer's lists are unavailable and not aggregated.
        unavailable = client.get("/v1/status-lists/CN-44/0")
        aggregated = client.get("/v1/status-lists").json()["status_lists"]
        rotated = client.post("/v1/issuers/CN-44/keys/rotate?use=status_list", headers=admin)
        served = client.get("/v1/status-lists/CN-44/0")
        uris = client.get("/v1/status-lists").json()["status_lists"]
        keys_after = published_keys(client)

    (old,) = [k for k in keys if k["kid"] == old_kid]
    assert (old["state"], old["use"]) == ("compromised", "certificate")
    assert old["compromised_at"] is not None
    assert datetime.fromisoformat(old["compromised_at"]) == compromised_at
    assert (unavailable.status_code, unavailable.json()["error"]["code"]) == (404, "status_list_unavailable")
    assert aggregated == []
    assert rotated.status_code == 201, rotated.text
    assert served.status_code == 200, served.text
    assert "http://127.0.0.1:8000/v1/status-lists/CN-44/0" in uris
    array = decode_token(served.content, keys_after)["array"]
    assert [entry(array, number) for number in range(6)] == [0, 1, 2, 1, 0, 0]
