"""Hostile input to the issue-11 features (status lists, trust list, key lifecycle): a clear 4xx, never a 500.

Each test here is the regression test of an attack that once broke something: a compromise time before
the key existed, a trust-list sequence number beyond 64 bits, a trust list issued in the future, a cache
told to keep a trust list past its ``exp``, the service's own sequence numbers running out, and the
offline CLI reading an endless file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, timedelta
from pathlib import Path

import cbor2
import pytest
from conftest import TRUST_ANCHOR_PASSPHRASE, TRUST_NOW, TrustWorld, hold_write_lock
from fastapi.testclient import TestClient

import crypto
from api.services.trust_lists import MAX_STORED_SEQUENCE
from crypto import SigningKey, _cbor, cose

TYP = "application/vnd.certseal.trust-list+cbor"  # written out: the tests check the format, not the constant


@pytest.fixture
def settings(make_settings, anchor):
    """Demo settings with the service holding the trust anchor (it signs on every key change)."""
    return make_settings(trust_anchor_key_file=anchor[1], trust_anchor_passphrase=TRUST_ANCHOR_PASSPHRASE)


def signed_claims(anchor: SigningKey, claims: dict) -> bytes:
    """A trust list over any ``claims``, signed by the anchor without sign_trust_list's checks (as a forger would)."""
    payload = _cbor.dumps(claims)
    protected = _cbor.dumps({1: -7, 4: anchor.kid, 16: TYP})
    signature = anchor.sign(cose.sig_structure(protected, b"", payload))
    return _cbor.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))


def put(client: TestClient, body: bytes, headers: dict[str, str]) -> tuple[int, str | None]:
    """PUT /v1/trust-list and return the status and error code."""
    response = client.put("/v1/trust-list", content=body, headers={**headers, "Content-Type": TYP})
    return response.status_code, response.json().get("error", {}).get("code")


def certificate_key_kid(client: TestClient, code: str) -> str:
    """The kid of the issuer's active certificate key, from GET /v1/keys."""
    (kid,) = [
        key["kid"]
        for key in client.get("/v1/keys").json()["keys"]
        if key["issuer"] == code and key["use"] == "certificate" and key["state"] == "active"
    ]
    return kid


# --- compromise times ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "compromised_at",
    ["0001-01-01T00:00:00+08:00", "0001-01-01T00:00:00-08:00", "1969-12-31T23:59:59Z", "2000-01-01T00:00:00Z"],
    ids=["year-1-east", "year-1-west", "before-1970", "before-the-key"],
)
def test_compromise_since_before_the_key_existed_is_since_its_not_before(
    app_client, issuer, issue, verify, admin_headers, anchor, clock, compromised_at
):
    """A compromise "since" before the key existed covers everything it signed, recorded as its ``not_before``.

    It once was a 500 (year 1 east of UTC overflows on its way to the database; before 1970 the trust list
    could no longer be signed, so the compromise itself failed).
    """
    certificate = issue(issuer)
    kid = certificate_key_kid(app_client, "CN-44")

    response = app_client.post(
        f"/v1/issuers/CN-44/keys/{kid}/compromise",
        json={"reason": "stolen long ago", "compromised_at": compromised_at},
        headers=admin_headers,
    )

    assert response.status_code == 200, response.text
    assert response.json()["compromised_at"] == response.json()["not_before"]
    assert verify(certificate["qr_text"])["reasons"] == ["key_revoked"]
    served = crypto.verify_trust_list(app_client.get("/v1/trust-list").content, anchor[0].public_key, now=clock.now())
    (key,) = [key for key in served.issuer("CN-44").keys if key.kid.hex() == kid]
    assert key.compromised_at == key.not_before


def test_compromise_boundary_is_the_registration_second(app_client, issuer, issue, verify, admin_headers, clock):
    """Registered one second before ``compromised_at``: still accepted online (listed for reissue); exactly at it
    or one second after: key_revoked. Offline every one of them is refused (the trust list says compromised)."""
    before = issue(issuer)
    clock.advance(seconds=1)
    at = issue(issuer)
    moment = clock.now()
    clock.advance(seconds=1)
    after = issue(issuer)
    kid = certificate_key_kid(app_client, "CN-44")

    compromised = app_client.post(
        f"/v1/issuers/CN-44/keys/{kid}/compromise",
        json={"reason": "leak", "compromised_at": moment.isoformat()},
        headers=admin_headers,
    )
    reissue = app_client.get(f"/v1/issuers/CN-44/keys/{kid}/reissue", headers=admin_headers)

    assert compromised.status_code == 200, compromised.text
    assert [verify(c["qr_text"])["reasons"] for c in (before, at, after)] == [[], ["key_revoked"], ["key_revoked"]]
    assert [item["id"] for item in reissue.json()["items"]] == [before["id"]]


# --- trust-list uploads and caching -------------------------------------------------------------


@pytest.fixture
def upload_settings(make_settings, anchor):
    """Demo settings pinning only the anchor's public key: trust lists are signed offline and uploaded."""
    return make_settings(trust_anchor_public_key_file=anchor[2])


@pytest.mark.parametrize("sequence", [2**31, 2**63, 2**64, 2**64 + 1])
def test_upload_with_a_sequence_beyond_64_bits_is_refused(
    make_app, upload_settings, admin_headers, anchor, clock, sequence
):
    """A sequence number the database does not hold is refused (422), not an OverflowError (500) or a 400."""
    now = int(clock.now().timestamp())
    with TestClient(make_app(upload_settings)) as client:
        result = put(
            client,
            signed_claims(anchor[0], {"seq": sequence, "iat": now, "exp": now + 3600, "issuers": []}),
            admin_headers,
        )

    assert result == (422, "trust_list_rejected")


def test_verify_trust_list_refuses_a_sequence_beyond_64_bits(trust_world: TrustWorld) -> None:
    """Offline verifiers refuse it too: sign_trust_list never makes one, so only a forger's tooling could."""
    now = int(TRUST_NOW.timestamp())
    token = signed_claims(trust_world.anchor, {"seq": 2**63, "iat": now, "exp": now + 3600, "issuers": []})

    with pytest.raises(crypto.VerificationError) as raised:
        crypto.verify_trust_list(token, trust_world.anchor.public_key, now=TRUST_NOW)

    assert raised.value.code == "malformed"


def test_upload_issued_in_the_future_is_refused(make_app, upload_settings, admin_headers, anchor, clock):
    """A list whose ``iat`` lies beyond the clock skew (a signing machine's clock running ahead) is refused."""
    now = int(clock.now().timestamp())
    ahead = signed_claims(anchor[0], {"seq": 2, "iat": now + 86_400, "exp": now + 30 * 86_400, "issuers": []})
    within_skew = signed_claims(anchor[0], {"seq": 3, "iat": now + 60, "exp": now + 86_400, "issuers": []})
    with TestClient(make_app(upload_settings)) as client:
        results = [put(client, ahead, admin_headers), put(client, within_skew, admin_headers)]

    assert results == [(422, "trust_list_rejected"), (201, None)]


def test_trust_list_is_never_cached_past_its_exp(make_app, upload_settings, admin_headers, anchor, clock):
    """An uploaded list 10 s from its ``exp`` is cacheable for 10 s, not 300; past ``exp``, for none."""
    now = int(clock.now().timestamp())
    with TestClient(make_app(upload_settings)) as client:
        body = signed_claims(anchor[0], {"seq": 1, "iat": now - 60, "exp": now + 10, "issuers": []})
        assert put(client, body, admin_headers) == (201, None)
        near = client.get("/v1/trust-list").headers["cache-control"]
        clock.advance(seconds=60)
        past = client.get("/v1/trust-list").headers["cache-control"]

    assert (near, past) == ("public, max-age=10", "public, max-age=0")


def test_service_refuses_to_sign_past_the_last_sequence(app_client, issuer, admin_headers, anchor, clock):
    """After an upload with the highest sequence a key change is 409 trust_list_sequence (and not made), not a 500."""
    content = crypto.TrustListContent.from_json(app_client.get("/v1/trust-list/content", headers=admin_headers).json())
    iat = clock.now().astimezone(UTC).replace(microsecond=0)
    last = crypto.sign_trust_list(
        content, anchor[0], sequence=MAX_STORED_SEQUENCE, iat=iat, exp=iat + timedelta(days=7)
    )
    assert put(app_client, last, admin_headers) == (201, None)

    rotated = app_client.post("/v1/issuers/CN-44/keys/rotate", headers=admin_headers)

    assert (rotated.status_code, rotated.json()["error"]["code"]) == (409, "trust_list_sequence")
    assert certificate_key_kid(app_client, "CN-44") == issuer.body["keys"][0]["kid"]


# --- the offline CLI ----------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--trust-list", "--status-list"])
def test_offline_verify_reads_an_endless_file_only_up_to_the_limit(
    tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]], trust_world: TrustWorld, option: str
) -> None:
    """``/dev/zero`` as a trust list or status list is refused by size (exit 1), not read until memory runs out."""
    trust = tmp_path / "trust.cbor"
    trust.write_bytes(trust_world.signed())
    anchor = tmp_path / "anchor.pub.pem"
    anchor.write_bytes(trust_world.anchor.public_pem())
    files = {"--trust-list": str(trust), "--status-list": str(trust)}
    files[option] = "/dev/zero"

    code, out, _err = run_cli(
        "verify", "--trust-list", files["--trust-list"], "--anchor", str(anchor), "--status-list",
        files["--status-list"], "--at", TRUST_NOW.isoformat(), trust_world.certificate(),
    )  # fmt: skip

    assert code == 1
    assert '"decision": "reject"' in out


def test_upload_signed_from_an_export_made_before_a_compromise_is_refused(
    make_app, upload_settings, admin_headers, anchor, clock
):
    """Content exported, then a key compromised, then the old export signed and uploaded: 422, the stolen key
    would be trusted again offline. Exported again after the compromise, it is accepted."""

    def signed(client: TestClient, sequence: int) -> bytes:
        content = crypto.TrustListContent.from_json(client.get("/v1/trust-list/content", headers=admin_headers).json())
        iat = clock.now().astimezone(UTC).replace(microsecond=0)
        return crypto.sign_trust_list(content, anchor[0], sequence=sequence, iat=iat, exp=iat + timedelta(days=7))

    with TestClient(make_app(upload_settings)) as client:
        client.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["2.1"]},
            headers=admin_headers,
        ).raise_for_status()
        outdated = signed(client, 1)
        kid = certificate_key_kid(client, "CN-44")
        client.post(
            f"/v1/issuers/CN-44/keys/{kid}/compromise", json={"reason": "stolen"}, headers=admin_headers
        ).raise_for_status()
        refused = put(client, outdated, admin_headers)
        accepted = put(client, signed(client, 2), admin_headers)

    assert (refused, accepted) == ((422, "trust_list_rejected"), (201, None))


# --- status-list caching ------------------------------------------------------------------------


def _exp_of(token: bytes) -> int:
    return cbor2.loads(cbor2.loads(token).value[2])[4]


def test_status_list_signed_under_a_shorter_lifetime_is_never_served_past_its_exp(
    make_app, make_settings, admin_headers, clock
):
    """A token signed while the lifetime was 1 h is re-signed at its exp, even if the ttl is now 2 h."""
    with TestClient(make_app(make_settings(status_list_lifetime_hours=1))) as client:
        client.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["2.1"]},
            headers=admin_headers,
        ).raise_for_status()
        first = client.get("/v1/status-lists/CN-44/0")
    with TestClient(make_app(make_settings(status_list_ttl_seconds=7200))) as client:
        clock.advance(seconds=1800)
        half_way = client.get("/v1/status-lists/CN-44/0")
        clock.advance(seconds=1801)
        after_exp = client.get("/v1/status-lists/CN-44/0")

    assert half_way.content == first.content
    assert half_way.headers["cache-control"] == "public, max-age=1800"  # its exp, not iat + the new ttl
    assert after_exp.content != first.content
    assert _exp_of(after_exp.content) > clock.now().timestamp()


def test_status_list_max_age_is_at_most_ttl_when_the_clock_runs_behind_the_signer(app_client, issuer, clock):
    """A replica whose clock runs 30 s behind the one that signed never says max-age above the ttl (600 s)."""
    assert app_client.get("/v1/status-lists/CN-44/0").status_code == 200
    clock.advance(seconds=-30)

    response = app_client.get("/v1/status-lists/CN-44/0")

    assert response.headers["cache-control"] == "public, max-age=600"


# --- a locked database --------------------------------------------------------------------------


def test_status_list_and_trust_list_upload_answer_503_soon_while_the_database_is_locked(
    make_app, make_settings, admin_headers, anchor, clock
):
    """A list due for re-signing, or an upload, while another writer holds the lock: 503 within the lock bound."""
    settings = make_settings(
        trust_anchor_public_key_file=anchor[2], sqlite_busy_timeout_ms=1000, db_lock_timeout_ms=1000
    )
    with TestClient(make_app(settings)) as client:
        client.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["2.1"]},
            headers=admin_headers,
        ).raise_for_status()
        assert client.get("/v1/status-lists/CN-44/0").status_code == 200
        content = crypto.TrustListContent.from_json(client.get("/v1/trust-list/content", headers=admin_headers).json())
        clock.advance(seconds=3600)  # the list is past its ttl: the next GET signs it again, a write
        iat = clock.now().astimezone(UTC).replace(microsecond=0)
        body = crypto.sign_trust_list(content, anchor[0], sequence=1, iat=iat, exp=iat + timedelta(days=7))
        engine = client.app.state.engine
        answers = []
        for table, call in (
            ("status_lists", lambda: client.get("/v1/status-lists/CN-44/0")),
            (
                "trust_lists",
                lambda: client.put("/v1/trust-list", content=body, headers={**admin_headers, "Content-Type": TYP}),
            ),
        ):
            if engine.dialect.name == "postgresql" and table == "trust_lists":
                blocker = engine.raw_connection()
                blocker.cursor().execute("SELECT pg_advisory_xact_lock(%s)", (0x6365727474727374,))
            else:
                blocker = hold_write_lock(engine, table)
            try:
                started = time.perf_counter()
                response = call()
                answers.append((response.status_code, response.json()["error"]["code"], time.perf_counter() - started))
            finally:
                blocker.rollback()
                blocker.close()

    assert [(status, code) for status, code, _ in answers] == [(503, "registry_unavailable")] * 2
    assert all(seconds < 4 for _, _, seconds in answers), answers


# --- rotation loops -----------------------------------------------------------------------------


def test_an_issuer_rotating_in_a_loop_is_limited_per_day_and_use(app_client, issuer, admin_headers, clock):
    """Every key stays in the trust list until its verify_until: an issuer key rotating in a loop would swell it past
    the 1 MiB every verifier accepts (about 6,000 keys) and break offline verification everywhere. An issuer gets
    10 keys of a use per 24 h (its first key counts), then 429; the other use, the admin and the next day are free."""
    rotations = [
        app_client.post("/v1/issuers/CN-44/keys/rotate", headers=issuer.headers).status_code for _ in range(10)
    ]
    other_use = app_client.post("/v1/issuers/CN-44/keys/rotate?use=status_list", headers=issuer.headers)
    admin = app_client.post("/v1/issuers/CN-44/keys/rotate", headers=admin_headers)
    clock.advance(hours=24, seconds=1)
    next_day = app_client.post("/v1/issuers/CN-44/keys/rotate", headers=issuer.headers)

    assert rotations == [201] * 9 + [429]
    assert (other_use.status_code, admin.status_code, next_day.status_code) == (201, 201, 201)
