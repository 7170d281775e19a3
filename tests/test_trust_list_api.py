"""The signed trust list served and accepted by the service: signed by the service, or signed offline and uploaded."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import cbor2
import pytest
from conftest import TRUST_ANCHOR_PASSPHRASE
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fastapi.testclient import TestClient

import crypto
from crypto import SigningKey

TYP = "application/vnd.certseal.trust-list+cbor"  # written out: the tests check the format, not the constant


@pytest.fixture
def settings(make_settings, anchor):
    """Demo settings with the service holding the trust anchor (it signs on every key change)."""
    return make_settings(trust_anchor_key_file=anchor[1], trust_anchor_passphrase=TRUST_ANCHOR_PASSPHRASE)


@contextmanager
def running(make_app: Callable, settings) -> Iterator[TestClient]:
    """A test client on an app built for ``settings``, its lifespan running."""
    with TestClient(make_app(settings)) as client:
        yield client


def independent_claims(token: bytes, anchor_public_pem: bytes) -> dict:
    """Check the trust list's ES256 signature with ``cryptography`` alone and return its decoded claims."""
    tag = cbor2.loads(token)
    assert tag.tag == 18
    protected, unprotected, payload, signature = tag.value
    public_key = serialization.load_pem_public_key(anchor_public_pem)
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert cbor2.loads(protected) == {1: -7, 4: hashlib.sha256(spki).digest()[:8], 16: TYP}
    assert unprotected == {}
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    public_key.verify(der, cbor2.dumps(["Signature1", protected, b"", payload]), ec.ECDSA(hashes.SHA256()))
    return cbor2.loads(payload)


def sequence_of(client: TestClient) -> int:
    """The sequence number of the trust list served now (decoded without checking, for counting)."""
    return cbor2.loads(cbor2.loads(client.get("/v1/trust-list").content).value[2])["seq"]


def test_served_trust_list_verifies_and_lists_issuers(app_client, issuer, anchor, clock):
    """The list verifies with crypto.verify_trust_list and with cryptography directly, naming both key uses."""
    key, _, _ = anchor

    response = app_client.get("/v1/trust-list")

    assert response.status_code == 200
    assert response.headers["content-type"] == TYP
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["cache-control"] == "public, max-age=300"
    trust_list = crypto.verify_trust_list(response.content, key.public_key, now=clock.now())
    claims = independent_claims(response.content, key.public_pem())
    (entry,) = claims["issuers"]
    assert entry["code"] == "CN-44"
    assert entry["status_base"] == "http://127.0.0.1:8000/v1/status-lists/CN-44"
    assert sorted((k["use"], k["state"]) for k in entry["keys"]) == [
        ("certificate", "active"),
        ("status_list", "active"),
    ]
    assert claims["seq"] == trust_list.sequence
    assert claims["exp"] > claims["iat"] == int(clock.now().timestamp())
    published = {(k["kid"], k["use"]) for k in app_client.get("/v1/keys").json()["keys"]}
    assert {(k["kid"].hex(), k["use"]) for k in entry["keys"]} == published
    assert trust_list.issuer("CN-44").operations == tuple(issuer.body["operations"])


def test_each_key_change_publishes_the_next_sequence(app_client, make_issuer, admin_headers, anchor, clock):
    """Creating an issuer, rotating and compromising a key each publish seq + 1, showing the change."""
    key = anchor[0]
    first = sequence_of(app_client)

    make_issuer("CN-44")
    created = sequence_of(app_client)
    clock.advance(minutes=1)
    old = app_client.post("/v1/issuers/CN-44/keys/rotate", headers=admin_headers).json()
    rotated_at = clock.now()
    rotated = crypto.verify_trust_list(app_client.get("/v1/trust-list").content, key.public_key, now=clock.now())
    clock.advance(minutes=1)
    compromised_at = (clock.now() - timedelta(seconds=30)).replace(microsecond=0)
    (certificate_kid,) = [k.kid for k in rotated.content.issuers[0].keys if k.state == "retired"]
    answer = app_client.post(
        f"/v1/issuers/CN-44/keys/{certificate_kid.hex()}/compromise",
        json={"reason": "stolen", "compromised_at": compromised_at.isoformat()},
        headers=admin_headers,
    )
    final = crypto.verify_trust_list(app_client.get("/v1/trust-list").content, key.public_key, now=clock.now())

    assert answer.status_code == 200, answer.text
    assert [created, rotated.sequence, final.sequence] == [first + 1, first + 2, first + 3]
    retired = rotated.key(certificate_kid, crypto.KeyUse.CERTIFICATE)[1]
    assert (retired.state, retired.not_after) == (crypto.KeyState.RETIRED, rotated_at.replace(microsecond=0))
    assert retired.verify_until is not None
    assert retired.verify_until >= retired.not_after
    assert rotated.key(bytes.fromhex(old["kid"]), crypto.KeyUse.CERTIFICATE)[1].state == crypto.KeyState.ACTIVE
    lost = final.key(certificate_kid, crypto.KeyUse.CERTIFICATE)[1]
    assert (lost.state, lost.compromised_at) == (crypto.KeyState.COMPROMISED, compromised_at)


def test_a_rotation_dated_before_the_newest_key_is_dated_at_its_start(
    app_client, make_issuer, admin_headers, anchor, clock
):
    """A rotation whose time was read before a newer rotation committed is dated at that key's start, not a 500."""
    make_issuer("CN-44")
    clock.advance(minutes=1)
    newer = app_client.post("/v1/issuers/CN-44/keys/rotate", headers=admin_headers).json()
    clock.at -= timedelta(seconds=30)  # the waiting rotation's time, read before the newer one committed

    late = app_client.post("/v1/issuers/CN-44/keys/rotate", headers=admin_headers)
    served = app_client.get("/v1/trust-list").content
    published = crypto.verify_trust_list(served, anchor[0].public_key, now=clock.now())

    assert late.status_code == 201, late.text
    retired = published.key(bytes.fromhex(newer["kid"]), crypto.KeyUse.CERTIFICATE)[1]
    active = published.key(bytes.fromhex(late.json()["kid"]), crypto.KeyUse.CERTIFICATE)[1]
    assert retired.state == crypto.KeyState.RETIRED
    assert retired.not_before == retired.not_after == active.not_before


def test_scope_change_publishes_the_next_sequence(app_client, issuer, admin_headers, anchor, clock):
    """Setting an issuer's scope publishes seq + 1 whose issuer entry lists the new operations."""
    before = sequence_of(app_client)

    changed = app_client.put("/v1/issuers/CN-44/operations", json={"operations": ["2.2"]}, headers=admin_headers)
    after = crypto.verify_trust_list(app_client.get("/v1/trust-list").content, anchor[0].public_key, now=clock.now())

    assert changed.status_code == 200, changed.text
    assert (after.sequence, after.issuer("CN-44").operations) == (before + 1, ("2.2",))


def test_resigned_half_way_to_exp(app_client, issuer, anchor, clock):
    """Half-way to its exp (3.5 of 7 days by default) the next fetch is a newly signed list with the next sequence."""
    key = anchor[0].public_key
    first = crypto.verify_trust_list(app_client.get("/v1/trust-list").content, key, now=clock.now())

    clock.advance(days=3, hours=11)
    before_half = crypto.verify_trust_list(app_client.get("/v1/trust-list").content, key, now=clock.now())
    clock.advance(hours=1)
    after_half = crypto.verify_trust_list(app_client.get("/v1/trust-list").content, key, now=clock.now())

    assert first.exp - first.iat == timedelta(days=7)
    assert before_half.sequence == first.sequence
    assert (after_half.sequence, after_half.iat) == (first.sequence + 1, clock.now().replace(microsecond=0))
    assert after_half.content == first.content


def test_etag_and_304(app_client, issuer):
    """The trust list carries an ETag; If-None-Match with it (or its weak form) answers 304 without a body."""
    first = app_client.get("/v1/trust-list")

    again = app_client.get("/v1/trust-list", headers={"If-None-Match": first.headers["etag"]})

    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", first.headers["etag"])
    weak = app_client.get("/v1/trust-list", headers={"If-None-Match": "W/" + first.headers["etag"]})
    assert weak.status_code == 304


@pytest.fixture
def upload_settings(make_settings, anchor):
    """Demo settings pinning only the anchor's public key: trust lists are signed offline and uploaded."""
    return make_settings(trust_anchor_public_key_file=anchor[2])


def signed_upload(client: TestClient, admin_headers, key: SigningKey, *, sequence: int, now: datetime, days=7) -> bytes:
    """Export the content as an administrator, sign it offline with ``key`` and return the signed bytes."""
    exported = client.get("/v1/trust-list/content", headers=admin_headers)
    assert exported.status_code == 200, exported.text
    content = crypto.TrustListContent.from_json(exported.json())
    iat = now.astimezone(UTC).replace(microsecond=0)
    return crypto.sign_trust_list(content, key, sequence=sequence, iat=iat, exp=iat + timedelta(days=days))


def put(client: TestClient, body: bytes, headers) -> tuple[int, str | None]:
    """PUT /v1/trust-list and return the status and error code."""
    response = client.put("/v1/trust-list", content=body, headers={**headers, "Content-Type": TYP})
    return response.status_code, response.json().get("error", {}).get("code")


def test_upload_mode_round_trip(make_app, upload_settings, admin_headers, anchor, clock):
    """Nothing is served until an administrator uploads a list signed offline; then exactly those bytes are served."""
    key = anchor[0]
    with running(make_app, upload_settings) as client:
        client.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["2.1"]},
            headers=admin_headers,
        ).raise_for_status()
        before = client.get("/v1/trust-list")
        signed = signed_upload(client, admin_headers, key, sequence=5, now=clock.now())

        stored = client.put("/v1/trust-list", content=signed, headers={**admin_headers, "Content-Type": TYP})
        served = client.get("/v1/trust-list")

    assert (before.status_code, before.json()["error"]["code"]) == (404, "trust_list_unavailable")
    assert stored.status_code == 201, stored.text
    assert stored.json()["sequence"] == 5
    assert served.content == signed
    assert crypto.verify_trust_list(served.content, key.public_key, now=clock.now()).issuer("CN-44") is not None


def test_upload_refusals(make_app, upload_settings, admin_headers, anchor, clock):
    """The same sequence is 409; another signer, an expired list or garbage is 422, never a 500."""
    key = anchor[0]
    with running(make_app, upload_settings) as client:
        assert (
            put(client, signed_upload(client, admin_headers, key, sequence=3, now=clock.now()), admin_headers)[0] == 201
        )
        results = {
            "same sequence": put(
                client, signed_upload(client, admin_headers, key, sequence=3, now=clock.now()), admin_headers
            ),
            "lower sequence": put(
                client, signed_upload(client, admin_headers, key, sequence=2, now=clock.now()), admin_headers
            ),
            "another signer": put(
                client,
                signed_upload(client, admin_headers, SigningKey.generate(), sequence=9, now=clock.now()),
                admin_headers,
            ),
            "expired": put(
                client,
                signed_upload(client, admin_headers, key, sequence=9, now=clock.now() - timedelta(days=10), days=3),
                admin_headers,
            ),
            "garbage": put(client, b"\x00garbage\xff" * 10, admin_headers),
            "empty": put(client, b"", admin_headers),
            "a certificate key's signature": put(client, b"\xd2\x84" + bytes(100), admin_headers),
        }

    assert results == {
        "same sequence": (409, "trust_list_sequence"),
        "lower sequence": (409, "trust_list_sequence"),
        "another signer": (422, "trust_list_rejected"),
        "expired": (422, "trust_list_rejected"),
        "garbage": (422, "trust_list_rejected"),
        "empty": (422, "trust_list_rejected"),
        "a certificate key's signature": (422, "trust_list_rejected"),
    }


def test_content_and_upload_are_admin_only(make_app, upload_settings, admin_headers, anchor, clock):
    """Without a bearer the content export and the upload are 401; an issuer's key gets 403."""
    with running(make_app, upload_settings) as client:
        client.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["2.1"]},
            headers=admin_headers,
        ).raise_for_status()
        issuer_key = client.post("/v1/issuers/CN-44/api-keys", json={}, headers=admin_headers).json()["token"]
        issuer_headers = {"Authorization": f"Bearer {issuer_key}"}
        signed = signed_upload(client, admin_headers, anchor[0], sequence=1, now=clock.now())

        codes = [
            client.get("/v1/trust-list/content").status_code,
            client.get("/v1/trust-list/content", headers=issuer_headers).status_code,
            put(client, signed, {})[0],
            put(client, signed, issuer_headers)[0],
        ]

    assert codes == [401, 403, 401, 403]


def test_upload_without_anchor_is_404(make_app, make_settings, admin_headers):
    """A service with no anchor configured refuses uploads with 404 trust_anchor_not_configured."""
    with running(make_app, make_settings()) as client:
        result = put(client, b"\xd2\x84" + bytes(10), admin_headers)
        served = client.get("/v1/trust-list")

    assert result == (404, "trust_anchor_not_configured")
    assert served.status_code == 404


@pytest.mark.parametrize(
    "problem", ["missing key file", "wrong passphrase", "mismatched public file", "missing public"]
)
def test_start_up_fails_closed(make_app, make_settings, anchor, tmp_path, problem):
    """A named anchor file that is missing, undecryptable or not the pair of the other stops the service."""
    other = tmp_path / "other.pub.pem"
    other.write_bytes(SigningKey.generate().public_pem())
    overrides = {
        "missing key file": {
            "trust_anchor_key_file": tmp_path / "absent.pem",
            "trust_anchor_passphrase": TRUST_ANCHOR_PASSPHRASE,
        },
        "wrong passphrase": {"trust_anchor_key_file": anchor[1], "trust_anchor_passphrase": "not the right passphrase"},
        "mismatched public file": {
            "trust_anchor_key_file": anchor[1],
            "trust_anchor_passphrase": TRUST_ANCHOR_PASSPHRASE,
            "trust_anchor_public_key_file": other,
        },
        "missing public": {"trust_anchor_public_key_file": tmp_path / "absent.pub.pem"},
    }[problem]
    app = make_app(make_settings(**overrides))

    with pytest.raises((crypto.KeyUnavailable, RuntimeError)), TestClient(app):
        pass


def test_served_lists_give_the_full_offline_verdict(app_client, issuer, issue, anchor, clock):
    """With the served trust list and status lists, verify_offline accepts a valid card and rejects each changed one."""
    cards = {action: issue(issuer) for action in ("none", "suspend", "revoke", "supersede")}
    for action, card in cards.items():
        if action != "none":
            changed = app_client.post(
                f"/v1/certificates/{card['id']}/{action}", json={"reason": "t"}, headers=issuer.headers
            )
            assert changed.status_code == 200, changed.text
    clock.advance(minutes=5)

    trust = crypto.verify_trust_list(app_client.get("/v1/trust-list").content, anchor[0].public_key, now=clock.now())
    lists = [
        app_client.get(uri.split("8000", 1)[1]).content
        for uri in app_client.get("/v1/status-lists").json()["status_lists"]
    ]
    verdicts = {
        action: crypto.verify_offline(card["qr_text"], trust, lists, now=clock.now()) for action, card in cards.items()
    }

    assert {action: (v.decision, v.reasons) for action, v in verdicts.items()} == {
        "none": ("accept", ()),
        "suspend": ("reject", ("suspended",)),
        "revoke": ("reject", ("revoked",)),
        "supersede": ("reject", ("superseded",)),
    }
    assert {v.status_source for v in verdicts.values()} == {"list"}
    assert verdicts["none"].status_as_of == (clock.now() - timedelta(minutes=5)).replace(microsecond=0)


def test_start_up_signs_a_new_list_when_the_registry_changed_without_the_anchor(
    make_app, settings, upload_settings, admin_headers, anchor, clock
):
    """An issuer added while the service held no anchor is in the list signed at the next start with the anchor."""
    key = anchor[0]
    with running(make_app, settings) as client:
        first = sequence_of(client)
    with running(make_app, upload_settings) as client:
        client.post(
            "/v1/issuers",
            json={"code": "CN-11", "name": "北京", "region": "北京市", "operations": ["2.1"]},
            headers=admin_headers,
        ).raise_for_status()

    with running(make_app, settings) as client:
        served = client.get("/v1/trust-list").content
    with running(make_app, settings) as client:
        unchanged = client.get("/v1/trust-list").content

    published = crypto.verify_trust_list(served, key.public_key, now=clock.now())
    assert published.sequence == first + 1
    assert published.issuer("CN-11") is not None
    assert unchanged == served  # nothing changed since: no new list at this start


def test_start_up_names_issuers_without_a_status_list_key(
    make_app, settings, app_client, admin_headers, issuer, caplog
):
    """An issuer whose status-list key is compromised and not rotated is named in a start-up warning."""
    keys = app_client.get("/v1/issuers/CN-44", headers=admin_headers).json()["keys"]
    kid = next(key["kid"] for key in keys if key["use"] == "status_list")
    app_client.post(
        f"/v1/issuers/CN-44/keys/{kid}/compromise", json={"reason": "copied"}, headers=admin_headers
    ).raise_for_status()

    with caplog.at_level(logging.WARNING, logger="certseal"), running(make_app, settings):
        pass

    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("without an active status-list key" in message and "CN-44" in message for message in warnings)
