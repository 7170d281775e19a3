"""Right answers at the edges: a database that is down, foreign data, unexpected errors, CORS, key rotation, races.

- ``GET /v1/keys`` with the database down answers 503 in the error shape, never 500.
- Another issuer's certificate answers 404 exactly as an id that does not exist.
- An unexpected exception answers a generic 500 and logs its traceback on the server only.
- Restricted ``CERTSEAL_CORS_ORIGINS`` admit only the listed origins.
- After an ID-HMAC key rotation, rows hashed under the previous key still match (verify and search).
- Two concurrent issuances with one ``Idempotency-Key`` (holder fields or an exam result) answer one certificate:
  one 201 and one replay; a blank, long or non-ASCII key is 422 on every endpoint that takes one.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from conftest import id_number_for
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from api.routers import certificates
from api.settings import DEMO_SECRETS, Settings
from tests.test_batches import seed_exam_session

ADMIN = {"Authorization": f"Bearer {DEMO_SECRETS['admin_token']}"}
OLD_HMAC_KEY = "id-hmac-key-of-2025-Qm4vT8kZ2wXe"
NEW_HMAC_KEY = "id-hmac-key-of-2026-Lp7sN3jR9cYb"


def test_keys_answer_503_in_the_error_shape_when_the_database_is_down(app, app_client, monkeypatch):
    """With every database connection failing, ``GET /v1/keys`` answers 503 ``registry_unavailable``, not 500."""
    engine = app.state.engine

    def unavailable(*_args, **_kwargs):
        raise OperationalError("SELECT 1", {}, ConnectionError("database is down"))

    monkeypatch.setattr(engine, "connect", unavailable)
    monkeypatch.setattr(engine, "raw_connection", unavailable)

    response = app_client.get("/v1/keys")

    assert response.status_code == 503
    assert response.json() == {
        "error": {"code": "registry_unavailable", "message": "the registry cannot be read; try again", "details": None}
    }
    assert response.headers["Retry-After"] == "1"


def test_another_issuers_certificate_answers_exactly_like_a_missing_one(app_client, issuer, other_issuer, issue):
    """Reading or changing another issuer's certificate gives the very response a nonexistent id gives: 404."""
    foreign = issue(issuer)["id"]
    missing = "0" * 32

    answers = {
        certificate_id: [
            app_client.get(f"/v1/certificates/{certificate_id}", headers=other_issuer.headers),
            app_client.post(
                f"/v1/certificates/{certificate_id}/revoke", json={"reason": "x"}, headers=other_issuer.headers
            ),
            app_client.get(f"/v1/certificates/{certificate_id}/photo", headers=other_issuer.headers),
        ]
        for certificate_id in (foreign, missing)
    }

    for foreign_answer, missing_answer in zip(answers[foreign], answers[missing], strict=True):
        assert foreign_answer.status_code == missing_answer.status_code == 404
        assert foreign_answer.json() == missing_answer.json()
        assert foreign_answer.json()["error"]["code"] == "certificate_not_found"
    assert app_client.get(f"/v1/certificates/{foreign}", headers=issuer.headers).json()["status"] == "valid"


def test_unexpected_error_logs_its_traceback_and_answers_a_generic_500(app, caplog):
    """An unhandled exception answers the generic error body; its traceback and message go to the log only."""

    def explode() -> None:
        raise RuntimeError("internal detail 440106198503122432")

    app.add_api_route("/v1/explode", explode)
    caplog.set_level(logging.ERROR, logger="certseal.api")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/explode")

    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "internal error", "details": None}}
    assert "internal detail" not in response.text
    (record,) = [record for record in caplog.records if record.name == "certseal.api"]
    assert record.getMessage() == "unhandled RuntimeError on GET /v1/explode"
    assert record.exc_info is not None
    assert "Traceback" in caplog.text
    assert "internal detail" in caplog.text


@pytest.mark.parametrize(
    "settings", [{"cors_origins": "https://site.example.com, https://app.example.org"}], indirect=True
)
def test_restricted_cors_origins_admit_only_the_listed_ones(app_client):
    """With CERTSEAL_CORS_ORIGINS set, a listed origin may call verify from a browser and any other may not."""
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}

    allowed = app_client.options("/v1/verify", headers={"Origin": "https://app.example.org", **preflight})
    refused = app_client.options("/v1/verify", headers={"Origin": "https://evil.example.net", **preflight})
    allowed_call = app_client.post("/v1/verify", json={"qr": "12345"}, headers={"Origin": "https://site.example.com"})
    refused_call = app_client.post("/v1/verify", json={"qr": "12345"}, headers={"Origin": "https://evil.example.net"})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.org"
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert allowed_call.headers["access-control-allow-origin"] == "https://site.example.com"
    assert "access-control-allow-origin" not in refused_call.headers


def test_rows_hashed_under_a_previous_hmac_key_still_match_after_rotation(
    make_app, make_settings, make_id_number, certificate_body
):
    """A certificate issued under HMAC key version 1 still matches its holder in verify and search under version 2."""
    holder = make_id_number(date(1985, 3, 12))
    stranger = make_id_number(date(1985, 3, 12), sequence=457)
    with TestClient(make_app(make_settings(id_hmac_key=OLD_HMAC_KEY))) as before:
        before.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["2.1"]},
            headers=ADMIN,
        ).raise_for_status()
        token = before.post("/v1/issuers/CN-44/api-keys", json={}, headers=ADMIN).json()["token"]
        issuer = {"Authorization": f"Bearer {token}"}
        old = before.post("/v1/certificates", json=certificate_body(holder_id_number=holder), headers=issuer).json()
    rotated = make_settings(id_hmac_key=NEW_HMAC_KEY, id_hmac_key_version=2, id_hmac_previous_keys=f"1:{OLD_HMAC_KEY}")
    forgotten = make_settings(id_hmac_key=NEW_HMAC_KEY, id_hmac_key_version=2)

    with TestClient(make_app(rotated)) as after:
        new = after.post("/v1/certificates", json=certificate_body(holder_id_number=holder), headers=issuer).json()
        right = after.post("/v1/verify", json={"qr": old["qr_text"], "holder_id_number": holder}).json()
        wrong = after.post("/v1/verify", json={"qr": old["qr_text"], "holder_id_number": stranger}).json()
        found = after.post("/v1/certificates/search", json={"holder_id_number": holder}, headers=issuer).json()
        with after.app.state.engine.connect() as connection:
            versions = dict(connection.execute(text("SELECT id, id_hmac_version FROM certificates")).all())
    with TestClient(make_app(forgotten)) as without_previous:
        unmatched = without_previous.post("/v1/verify", json={"qr": old["qr_text"], "holder_id_number": holder}).json()

    assert versions == {old["id"]: 1, new["id"]: 2}
    assert (right["decision"], right["reasons"]) == ("accept", [])
    assert "holder" in right["checks"]
    assert wrong["reasons"] == ["holder_mismatch"]
    assert {item["id"] for item in found["items"]} == {old["id"], new["id"]}
    assert unmatched["reasons"] == ["holder_mismatch"]


@pytest.mark.postgres
@pytest.mark.parametrize("basis", ["holder_fields", "exam_result"])
def test_concurrent_retries_with_one_idempotency_key_answer_one_certificate(
    make_app, postgres_url, monkeypatch, certificate_body, basis
):
    """Two issuances racing with one Idempotency-Key both answer the same certificate: one 201, one replay."""
    settings = Settings.for_demo(database_url=postgres_url)
    both_checked = threading.Barrier(2, timeout=10)
    lookup = certificates._stored_record
    looked: set[int] = set()

    def after_both_found_no_record(*args, **kwargs):
        found = lookup(*args, **kwargs)
        if threading.get_ident() not in looked:  # the first lookup of each request: both find nothing
            looked.add(threading.get_ident())
            both_checked.wait()
        return found

    with TestClient(make_app(settings)) as client:
        client.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["2.1"]},
            headers=ADMIN,
        ).raise_for_status()
        token = client.post("/v1/issuers/CN-44/api-keys", json={}, headers=ADMIN).json()["token"]
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "exam-2026-race"}
        body = certificate_body()
        if basis == "exam_result":  # the retry must replay, not be refused because the first one certified it
            hmac_key = settings.id_hmac_keys[settings.id_hmac_key_version]
            exam = seed_exam_session(client.app.state.engine, hmac_key, issuer_code="CN-44", passed=1)
            body = {"exam_result_id": exam.passed[0]}
        monkeypatch.setattr(certificates, "_stored_record", after_both_found_no_record)

        with ThreadPoolExecutor(max_workers=2) as pool:
            responses = list(pool.map(lambda _: client.post("/v1/certificates", json=body, headers=headers), range(2)))
        with client.app.state.engine.connect() as connection:
            stored = connection.execute(text("SELECT count(*) FROM certificates")).scalar_one()
            records = connection.execute(text("SELECT count(*) FROM idempotency_records")).scalar_one()

    statuses = sorted(response.status_code for response in responses)
    replays = [response.headers.get("Idempotent-Replay") for response in responses]
    assert statuses == [201, 201]
    assert sorted(replay or "" for replay in replays) == ["", "true"]
    assert responses[0].json()["id"] == responses[1].json()["id"]
    assert (stored, records) == (1, 1)


@pytest.mark.parametrize(
    ("key", "status"),
    [
        pytest.param(b"", 422, id="empty"),
        pytest.param(b"   ", 422, id="blank"),
        pytest.param(b"k" * 201, 422, id="201-chars"),
        pytest.param("证书-1".encode(), 422, id="utf8-chinese"),
        pytest.param(b"a\x7fb", 422, id="delete-char"),
        pytest.param(b"k" * 200, 201, id="200-chars"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/certificates", "/v1/certificates/{id}/reissue"])
def test_issuance_and_reissue_take_an_idempotency_key_by_the_batches_rule(
    app_client, issuer, issue, certificate_body, path, key, status
):
    """Issuance and reissue refuse a blank, long or non-ASCII Idempotency-Key as batches do, and nothing is issued."""
    original = issue(issuer)["id"]
    body = certificate_body() if path == "/v1/certificates" else {"reason": "lost card"}
    headers = [(name.encode(), value.encode()) for name, value in issuer.headers.items()]
    headers += [(b"content-type", b"application/json"), (b"idempotency-key", key)]

    answers = [app_client.post(path.format(id=original), content=json.dumps(body), headers=headers) for _ in range(2)]
    listed = app_client.get("/v1/certificates", headers=issuer.headers).json()["total"]

    if status == 422:
        assert [(answer.status_code, answer.json()["error"]["code"]) for answer in answers] == [
            (422, "invalid_idempotency_key")
        ] * 2
        assert listed == 1
    else:
        assert [answer.status_code for answer in answers] == [201, 201]
        assert answers[1].headers["Idempotent-Replay"] == "true"
        assert answers[0].json()["id"] == answers[1].json()["id"]
        assert listed == 2


def test_paging_past_the_maximum_offset_is_422_not_500(app_client, issuer):
    """An offset beyond any real listing (2**63 would overflow the database's integer) is a 422."""
    listed = app_client.get("/v1/certificates", params={"offset": 2**63}, headers=issuer.headers)
    searched = app_client.post(
        "/v1/certificates/search",
        json={"holder_id_number": id_number_for(date(1985, 3, 12)), "offset": 2**63},
        headers=issuer.headers,
    )

    assert (listed.status_code, searched.status_code) == (422, 422)


def test_a_validity_end_with_no_next_day_is_422(app_client, issuer, certificate_body):
    """valid_until 9999-12-31 cannot be encoded and is refused as invalid_certificate, not a 500."""
    response = app_client.post(
        "/v1/certificates", json=certificate_body(valid_until="9999-12-31"), headers=issuer.headers
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_certificate"


def test_a_certificate_whose_key_row_was_deleted_is_rejected_as_unknown_key(app, app_client, issuer, issue, verify):
    """After its key and rows are deleted (as a demo purge does), a cached key no longer verifies: unknown_key."""
    certificate = issue(issuer)
    assert verify(certificate["qr_text"])["decision"] == "accept"
    with app.state.engine.begin() as connection:
        for table in ("status_events", "certificates", "api_keys", "signing_keys"):
            connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 -- fixed table names

    verdict = verify(certificate["qr_text"])
    again = verify(certificate["qr_text"])

    assert (verdict["decision"], verdict["reasons"]) == ("reject", ["unknown_key"])
    assert again["reasons"] == ["unknown_key"]
