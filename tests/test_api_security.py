"""Authorization, input hardening, privacy of ID numbers, failing closed, CORS and start-up settings."""

from __future__ import annotations

import base64
import io
import logging
import secrets
import threading
import time
from datetime import date, timedelta

import httpx
import pytest
from conftest import TEST_NOW, TEST_TODAY, hold_write_lock, stored_bytes
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import ValidationError
from sqlalchemy import func, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

import crypto
from api.models import ApiKey, SigningKeyRow
from api.settings import DEMO_SECRETS, Settings
from schemas.idnumber import check_character


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    """Assert the one error shape with this status and code; return the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    return body["error"]


def _png_photo() -> str:
    out = io.BytesIO()
    Image.new("RGB", (32, 40), (90, 90, 90)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def _gif_photo() -> str:
    out = io.BytesIO()
    Image.new("RGB", (32, 40), (90, 90, 90)).save(out, format="GIF")
    return base64.b64encode(out.getvalue()).decode()


def _with_wrong_check(number: str) -> str:
    """The same number with a wrong check character."""
    return number[:17] + ("0" if number[17] != "0" else "1")


def _real_secrets(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {name: secrets.token_urlsafe(24) for name in DEMO_SECRETS}
    values["public_base_url"] = "https://cert.example.gov.cn"  # http://localhost is for demo mode only
    values.update(overrides)
    return values


# --- authentication and authorization -------------------------------------------------------------


def test_no_token_is_401_with_www_authenticate(app_client):
    """A protected endpoint without a token answers 401 naming the Bearer scheme."""
    response = app_client.get("/v1/certificates")

    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("token", ["garbage", "cs_0123456789ab_not-a-real-secret", "cs_x_y"])
def test_garbage_token_is_401(app_client, issuer, token):
    """An unknown or malformed token answers 401 on issuer endpoints and on verify."""
    headers = {"Authorization": f"Bearer {token}"}

    listed = app_client.get("/v1/certificates", headers=headers)
    verified = app_client.post("/v1/verify", json={"qr": "12345"}, headers=headers)

    assert_error(listed, 401, "unauthorized")
    assert_error(verified, 401, "unauthorized")
    assert listed.headers["WWW-Authenticate"] == "Bearer"


def test_forged_secret_with_a_real_prefix_is_401(app_client, issuer):
    """A token with a real key's prefix but another secret is refused."""
    prefix = issuer.headers["Authorization"].split("_")[1]

    response = app_client.get("/v1/certificates", headers={"Authorization": f"Bearer cs_{prefix}_forged"})

    assert_error(response, 401, "unauthorized")


def test_revoked_api_key_is_401(app, app_client, issuer):
    """An API key whose row has ``revoked_at`` set no longer authenticates."""
    assert app_client.get("/v1/certificates", headers=issuer.headers).status_code == 200
    with Session(app.state.engine) as session:
        (key,) = session.exec(select(ApiKey).where(ApiKey.scope == "issuer")).all()
        key.revoked_at = TEST_NOW
        session.add(key)
        session.commit()

    response = app_client.get("/v1/certificates", headers=issuer.headers)

    assert_error(response, 401, "unauthorized")


def test_issuer_key_is_forbidden_on_admin_endpoints(app_client, issuer, issue):
    """An issuer API key cannot create issuers or keys, change scopes or revoke signing keys."""
    kid = issue(issuer)["kid"]
    calls = [
        ("POST", "/v1/issuers", {"code": "CN-99", "name": "x", "region": "x", "operations": ["2.1"]}),
        ("POST", "/v1/issuers/CN-44/api-keys", {"label": "more"}),
        ("POST", "/v1/apps/api-keys", {"label": "app"}),
        ("PUT", "/v1/issuers/CN-44/operations", {"operations": ["2.1", "2.2", "1.2", "3.1"]}),
        ("POST", f"/v1/issuers/CN-44/keys/{kid}/compromise", {"reason": "self-revoke"}),
    ]

    responses = [app_client.request(method, path, json=body, headers=issuer.headers) for method, path, body in calls]

    for response in responses:
        assert_error(response, 403, "forbidden")


def test_issuer_cannot_touch_another_issuers_certificate(app_client, issuer, other_issuer, issue):
    """Another issuer gets 404 reading, suspending, revoking or reviewing a certificate, which stays valid."""
    cid = issue(issuer)["id"]
    base = f"/v1/certificates/{cid}"
    calls = [
        ("GET", base, None),
        ("POST", f"{base}/suspend", {"reason": "x"}),
        ("POST", f"{base}/revoke", {"reason": "x"}),
        ("POST", f"{base}/reinstate", {"reason": "x"}),
        ("POST", f"{base}/review", {"note": "x"}),
    ]

    responses = [
        app_client.request(method, path, json=body, headers=other_issuer.headers) for method, path, body in calls
    ]
    listed = app_client.get("/v1/certificates", headers=other_issuer.headers).json()

    for response in responses:
        assert_error(response, 404, "certificate_not_found")
    assert listed["total"] == 0
    assert app_client.get(base, headers=issuer.headers).json()["status"] == "valid"


def test_issuer_cannot_rotate_or_read_another_issuer(app, app_client, issuer, other_issuer):
    """An issuer cannot rotate another issuer's signing key or read its record."""
    rotate = app_client.post("/v1/issuers/CN-11/keys/rotate", headers=issuer.headers)
    read = app_client.get("/v1/issuers/CN-11", headers=issuer.headers)

    assert_error(rotate, 403, "forbidden")
    assert_error(read, 403, "forbidden")
    with Session(app.state.engine) as session:
        assert session.exec(select(func.count()).select_from(SigningKeyRow)).one() == 4  # two uses per issuer


def test_app_key_cannot_issue_but_can_verify(app_client, admin_headers, issuer, issue, certificate_body):
    """A third-party app key is refused on issuer endpoints but accepted on verify."""
    qr = issue(issuer)["qr_text"]
    created = app_client.post("/v1/apps/api-keys", json={"label": "site-platform"}, headers=admin_headers)
    headers = {"Authorization": f"Bearer {created.json()['token']}"}

    issued = app_client.post("/v1/certificates", json=certificate_body(), headers=headers)
    listed = app_client.get("/v1/certificates", headers=headers)
    verified = app_client.post("/v1/verify", json={"qr": qr}, headers=headers)

    assert created.json()["scope"] == "app"
    assert_error(issued, 403, "forbidden")
    assert_error(listed, 403, "forbidden")
    assert verified.status_code == 200
    assert verified.json()["decision"] == "accept"


# --- bad input: clean 4xx in the one error shape ---------------------------------------------------


def test_oversized_body_with_content_length_is_413(app_client, settings):
    """A body over max_body_bytes announced by Content-Length is refused with 413."""
    body = b'{"qr": "' + b"1" * settings.max_body_bytes + b'"}'

    response = app_client.post("/v1/verify", content=body, headers={"content-type": "application/json"})

    assert_error(response, 413, "payload_too_large")


def test_oversized_streamed_body_is_413(app_client, settings):
    """A chunked body without Content-Length is cut off at max_body_bytes with 413, not 400 or 500."""
    body = b'{"qr": "' + b"1" * (2 * settings.max_body_bytes) + b'"}'

    def chunks():
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    response = app_client.post("/v1/verify", content=chunks(), headers={"content-type": "application/json"})

    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


def test_bad_json_is_400(app_client, issuer):
    """A body that is not JSON is 400 invalid_json."""
    headers = {**issuer.headers, "content-type": "application/json"}

    issued = app_client.post("/v1/certificates", content='{"holder_name": "张伟",'.encode(), headers=headers)
    verified = app_client.post("/v1/verify", content=b"{qr: 1}", headers={"content-type": "application/json"})

    assert_error(issued, 400, "invalid_json")
    assert_error(verified, 400, "invalid_json")


def test_wrong_types_are_422(app_client, issuer, certificate_body):
    """Fields of the wrong type or unknown fields are 422 validation_error with their locations."""
    body = certificate_body(operation=21, issue_date="yesterday", surprise=True)

    response = app_client.post("/v1/certificates", json=body, headers=issuer.headers)
    bad_query = app_client.get("/v1/certificates", params={"limit": 0}, headers=issuer.headers)

    error = assert_error(response, 422, "validation_error")
    locations = {tuple(detail["loc"]) for detail in error["details"]}
    assert {("body", "operation"), ("body", "issue_date"), ("body",)} <= locations
    assert {"loc": ["body"], "type": "extra_forbidden", "count": 1} in error["details"]
    assert "surprise" not in response.text
    assert_error(bad_query, 422, "validation_error")


def test_bad_id_checksum_is_422(app_client, issuer, certificate_body, make_id_number):
    """An ID number with a wrong check character is 422 invalid_id_number."""
    number = _with_wrong_check(make_id_number(date(1985, 3, 12)))

    response = app_client.post(
        "/v1/certificates", json=certificate_body(holder_id_number=number), headers=issuer.headers
    )

    assert_error(response, 422, "invalid_id_number")


def test_impossible_birth_date_is_422(app_client, issuer, certificate_body):
    """An ID number with 31 February as birth date (but a right check character) is invalid_id_number."""
    first17 = "44010619900231123"
    number = first17 + check_character(first17)

    response = app_client.post(
        "/v1/certificates", json=certificate_body(holder_id_number=number), headers=issuer.headers
    )

    assert_error(response, 422, "invalid_id_number")


def test_applicant_under_18_is_422(app_client, issuer, certificate_body, make_id_number):
    """An applicant who turns 18 tomorrow is refused holder_too_young."""
    today = TEST_TODAY
    birth = today.replace(year=today.year - 18) + timedelta(days=1)

    response = app_client.post(
        "/v1/certificates",
        json=certificate_body(holder_id_number=make_id_number(birth), issue_date=today.isoformat()),
        headers=issuer.headers,
    )

    assert_error(response, 422, "holder_too_young")


def test_operation_outside_catalogue_is_422(app_client, issuer, certificate_body):
    """An operation code the catalogue does not list is 422 unknown_operation."""
    response = app_client.post("/v1/certificates", json=certificate_body(operation="2.9"), headers=issuer.headers)

    assert_error(response, 422, "unknown_operation")


def test_operation_outside_scope_is_403(app_client, issuer, certificate_body):
    """A catalogue item the issuer may not certify is 403 operation_not_allowed."""
    response = app_client.post("/v1/certificates", json=certificate_body(operation="3.1"), headers=issuer.headers)

    assert_error(response, 403, "operation_not_allowed")


@pytest.mark.parametrize(
    "photo",
    [
        base64.b64encode(b"definitely not an image, just text").decode(),
        _gif_photo(),
        "not base64 at all!!",
        base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 200).decode(),
    ],
    ids=["not-an-image", "gif", "bad-base64", "truncated-jpeg"],
)
def test_bad_photo_is_422(app_client, issuer, certificate_body, photo):
    """A photo that is not a decodable JPEG or PNG is 422 invalid_photo."""
    response = app_client.post("/v1/certificates", json=certificate_body(photo_base64=photo), headers=issuer.headers)

    assert_error(response, 422, "invalid_photo")


def test_png_photo_is_accepted(app_client, issuer, issue):
    """A PNG photo is stored and served as PNG."""
    certificate = issue(issuer, photo_base64=_png_photo())

    photo = app_client.get(certificate["links"]["photo"], headers=issuer.headers)

    assert photo.headers["content-type"] == "image/png"
    assert photo.content.startswith(b"\x89PNG")


def test_oversized_photo_is_413(app_client, settings, issuer, certificate_body):
    """A photo larger than max_photo_bytes (within the body limit) is 413 photo_too_large."""
    photo = base64.b64encode(b"\xff" * (settings.max_photo_bytes + 1024)).decode()

    response = app_client.post("/v1/certificates", json=certificate_body(photo_base64=photo), headers=issuer.headers)

    assert len(photo) < settings.max_body_bytes
    assert_error(response, 413, "photo_too_large")


def test_unknown_route_and_method_use_the_error_shape(app_client):
    """404 and 405 from the router have the same error shape."""
    missing = app_client.get("/v1/nothing-here")
    wrong_method = app_client.delete("/v1/verify")

    assert_error(missing, 404, "not_found")
    assert_error(wrong_method, 405, "method_not_allowed")


# --- privacy of ID numbers -------------------------------------------------------------------------


def test_rejected_id_number_is_never_echoed(app_client, issuer, certificate_body, make_id_number):
    """Error responses for an ID number that fails validation never contain that number."""
    valid = make_id_number(date(1985, 3, 12))
    bad_checksum = _with_wrong_check(valid)
    too_short = valid[:16]
    too_long = valid + "12345"

    responses = [
        app_client.post("/v1/certificates", json=certificate_body(holder_id_number=number), headers=issuer.headers)
        for number in (bad_checksum, too_short, too_long)
    ]
    verify_response = app_client.post("/v1/verify", json={"qr": "12345", "holder_id_number": bad_checksum})
    search_response = app_client.post(
        "/v1/certificates/search", json={"holder_id_number": bad_checksum}, headers=issuer.headers
    )

    assert [response.status_code for response in responses] == [422, 422, 422]
    for response, number in zip(responses, (bad_checksum, too_short, too_long), strict=True):
        assert number not in response.text
        assert number[:14] not in response.text
    assert verify_response.status_code in (200, 422)
    assert bad_checksum not in verify_response.text
    assert_error(search_response, 422, "invalid_id_number")
    assert bad_checksum not in search_response.text


def test_id_number_never_logged(app_client, issuer, issue, verify, make_id_number, caplog):
    """No log record at any level contains a holder's full ID number during issuance and verification."""
    holder = make_id_number(date(1985, 3, 12))
    wrong = make_id_number(date(1985, 3, 12), sequence=457)
    caplog.set_level(logging.DEBUG)

    certificate = issue(issuer, holder_id_number=holder)
    verify(certificate["qr_text"], holder_id_number=holder)
    verify(certificate["qr_text"], holder_id_number=wrong)
    verify(certificate["qr_text"] + "1", holder_id_number=holder)
    app_client.post("/v1/certificates", json={"holder_id_number": _with_wrong_check(holder)}, headers=issuer.headers)

    assert caplog.records
    for record in caplog.records:
        rendered = f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for number in (holder, wrong, _with_wrong_check(holder)):
            assert number not in rendered


def test_id_number_never_stored(app, app_client, tmp_path, issuer, issue, verify, make_id_number):
    """No table holds a full ID number: the database's bytes never contain it (the holder name is there)."""
    holder = make_id_number(date(1985, 3, 12))
    wrong = make_id_number(date(1985, 3, 12), sequence=457)
    certificate = issue(issuer, holder_id_number=holder, holder_name="欧阳晓峰")
    issue(issuer, holder_id_number=holder, holder_name="欧阳晓峰", operation="1.2")

    verify(certificate["qr_text"], holder_id_number=holder)
    verify(certificate["qr_text"], holder_id_number=wrong)
    app_client.post("/v1/certificates/search", json={"holder_id_number": holder}, headers=issuer.headers)
    app.state.events.flush()

    stored = stored_bytes(app.state.engine, tmp_path)
    assert "欧阳晓峰".encode() in stored
    for number in (holder, wrong):
        assert number.encode() not in stored
        assert number.encode("utf-16-le") not in stored
        assert number[:17].encode() not in stored


# --- failing closed --------------------------------------------------------------------------------


def test_verify_fails_closed_when_the_registry_table_is_gone(app, app_client, issuer, issue):
    """With the certificates table unreadable, verify answers 503 registry_unavailable, never accept."""
    qr = issue(issuer)["qr_text"]
    with app.state.engine.begin() as connection:
        connection.execute(text("ALTER TABLE certificates RENAME TO certificates_gone"))

    response = app_client.post("/v1/verify", json={"qr": qr})

    assert_error(response, 503, "registry_unavailable")


def test_verify_fails_closed_when_the_database_is_down(app, app_client, issuer, issue, monkeypatch):
    """With every database connection failing, verify and readiness answer 503 (liveness stays ok)."""
    qr = issue(issuer)["qr_text"]
    engine = app.state.engine

    def unavailable(*_args, **_kwargs):
        raise OperationalError("SELECT 1", {}, ConnectionError("database is down"))

    monkeypatch.setattr(engine, "connect", unavailable)
    monkeypatch.setattr(engine, "raw_connection", unavailable)

    verified = app_client.post("/v1/verify", json={"qr": qr})
    ready = app_client.get("/readyz")
    alive = app_client.get("/healthz")

    assert_error(verified, 503, "registry_unavailable")
    assert (ready.status_code, ready.json()) == (503, {"status": "unavailable", "failed": ["database"]})
    assert alive.status_code == 200


@pytest.mark.parametrize("settings", [{"verify_db_deadline_ms": 200}], indirect=True)
def test_verify_answers_503_at_its_deadline_when_the_registry_stalls(app, app_client, issuer, issue, monkeypatch):
    """A registry read that hangs gives 503 registry_unavailable at the verify deadline; liveness is not held up."""
    qr = issue(issuer)["qr_text"]
    release = threading.Event()
    store = app.state.verify_store
    read = store.registry_entry

    def stalled(**kwargs):
        release.wait(5)
        return read(**kwargs)

    monkeypatch.setattr(store, "registry_entry", stalled)

    started = time.monotonic()
    stalled_responses = [app_client.post("/v1/verify", json={"qr": qr}) for _ in range(6)]
    elapsed = time.monotonic() - started
    alive = app_client.get("/healthz")
    release.set()
    monkeypatch.setattr(store, "registry_entry", read)
    recovered = app_client.post("/v1/verify", json={"qr": qr})

    for response in stalled_responses:
        assert_error(response, 503, "registry_unavailable")
    assert elapsed < 6 * 0.2 + 1.0, f"six stalled verifications took {elapsed:.2f} s"
    assert alive.status_code == 200
    assert recovered.json()["decision"] == "accept"


def test_verify_does_not_wait_behind_a_writer(app, app_client, issuer, issue, make_id_number):
    """While another connection holds the write lock, verify still reads, and a counted guess gives 503 fast."""
    holder = make_id_number(date(1985, 3, 12))
    qr = issue(issuer, holder_id_number=holder)["qr_text"]
    writer = hold_write_lock(app.state.engine, "holder_check_counters")

    try:
        started = time.monotonic()
        right = app_client.post("/v1/verify", json={"qr": qr, "holder_id_number": holder})
        read_seconds = time.monotonic() - started
        started = time.monotonic()
        wrong = app_client.post(
            "/v1/verify", json={"qr": qr, "holder_id_number": make_id_number(date(1985, 3, 12), sequence=457)}
        )
        write_seconds = time.monotonic() - started
    finally:
        writer.rollback()
        writer.close()

    assert (right.status_code, right.json()["decision"]) == (200, "accept")
    assert read_seconds < 0.5
    assert_error(wrong, 503, "registry_unavailable")
    assert write_seconds < 1.0


def test_verify_with_holder_fails_closed_when_failure_counter_is_gone(app, app_client, issuer, issue, make_id_number):
    """With the holder-check counter table unreadable, a holder check answers 503, never accept."""
    holder = make_id_number(date(1985, 3, 12))
    qr = issue(issuer, holder_id_number=holder)["qr_text"]
    with app.state.engine.begin() as connection:
        connection.execute(text("ALTER TABLE holder_check_counters RENAME TO holder_check_counters_gone"))

    response = app_client.post("/v1/verify", json={"qr": qr, "holder_id_number": holder})

    assert_error(response, 503, "registry_unavailable")


# --- CORS ------------------------------------------------------------------------------------------


def test_cors_preflight_on_verify(app_client):
    """A preflight from another origin for POST /v1/verify is allowed with the needed headers."""
    response = app_client.options(
        "/v1/verify",
        headers={
            "Origin": "https://site-platform.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "content-type" in allowed
    assert "authorization" in allowed


def test_cors_header_on_verify_response(app_client):
    """An actual cross-origin verify response carries the allow-origin header."""
    response = app_client.post("/v1/verify", json={"qr": "12345"}, headers={"Origin": "https://elsewhere.example"})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"


# --- settings and start-up -------------------------------------------------------------------------


def test_demo_secrets_refused_without_demo_mode(make_settings):
    """Each published demo secret is refused outside demo mode, even in dev mode."""
    for name, value in DEMO_SECRETS.items():
        with pytest.raises(ValidationError, match="demo secret"):
            Settings(**_real_secrets(**{name: value}))
        with pytest.raises(ValidationError, match="demo secret"):
            Settings(dev=True, **_real_secrets(**{name: value}))


@pytest.mark.parametrize("weak", ["changeme", "secret", "password", "short-secret"])
def test_placeholder_or_short_secrets_refused(make_settings, weak):
    """Placeholder and shorter-than-16-character secrets are refused outside demo mode, in dev mode too."""
    for name in DEMO_SECRETS:
        with pytest.raises(ValidationError, match="is too weak"):
            Settings(**_real_secrets(**{name: weak}))
        with pytest.raises(ValidationError, match="is too weak"):
            Settings(dev=True, **_real_secrets(**{name: weak}))


def test_real_secrets_accepted(make_settings):
    """Long random secrets are accepted outside demo mode."""
    values = _real_secrets()

    settings = Settings(**values)

    assert settings.demo is False
    assert settings.require("admin_token") == values["admin_token"]


def test_missing_key_passphrase_stops_start_up(make_app, database_url):
    """Without CERTSEAL_KEY_PASSPHRASE the app does not start."""
    settings = Settings(database_url=database_url, **_real_secrets(key_passphrase=None))
    app = make_app(settings)

    with pytest.raises(RuntimeError, match="CERTSEAL_KEY_PASSPHRASE"), TestClient(app):
        pass


def test_wrong_key_passphrase_stops_start_up(make_app, make_settings, admin_headers):
    """A database whose keys were encrypted under one passphrase does not start with another."""
    with TestClient(make_app(make_settings())) as first:
        created = first.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东省应急管理厅", "region": "广东省", "operations": ["2.1"]},
            headers=admin_headers,
        )
    restarted = make_app(make_settings(key_passphrase="another-passphrase-entirely"))

    assert created.status_code == 201
    with pytest.raises(crypto.KeyUnavailable), TestClient(restarted):
        pass
    with TestClient(make_app(make_settings())) as again:
        assert again.get("/readyz").status_code == 200


def test_missing_signing_key_is_never_generated(make_app, app, app_client, make_settings, issuer, certificate_body):
    """An issuer whose signing key row is gone cannot issue, and neither a request nor a restart makes a key."""
    with app.state.engine.begin() as connection:
        connection.execute(text("DELETE FROM signing_keys"))

    response = app_client.post("/v1/certificates", json=certificate_body(), headers=issuer.headers)
    with TestClient(make_app(make_settings())) as restarted:
        after_restart = restarted.post("/v1/certificates", json=certificate_body(), headers=issuer.headers)

    assert_error(response, 409, "no_active_key")
    assert_error(after_restart, 409, "no_active_key")
    with Session(app.state.engine) as session:
        assert session.exec(select(func.count()).select_from(SigningKeyRow)).one() == 0


def test_start_up_on_an_empty_database_creates_no_keys(app, app_client):
    """Starting on an empty database creates the tables but no signing key."""
    with Session(app.state.engine) as session:
        keys = session.exec(select(func.count()).select_from(SigningKeyRow)).one()

    assert keys == 0
    assert app_client.get("/v1/keys").json()["keys"] == []


def test_verify_recovers_after_the_registry_connection_breaks(make_app, make_settings, admin_headers, certificate_body):
    """A broken registry connection gives one 503, and the next request reads through a fresh connection."""
    with TestClient(make_app(make_settings(verify_db_threads=1))) as client:
        client.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["2.1"]},
            headers=admin_headers,
        ).raise_for_status()
        token = client.post("/v1/issuers/CN-44/api-keys", json={}, headers=admin_headers).json()["token"]
        qr = client.post("/v1/certificates", json=certificate_body(), headers={"Authorization": f"Bearer {token}"})
        qr = qr.json()["qr_text"]
        assert client.post("/v1/verify", json={"qr": qr}).json()["decision"] == "accept"
        client.app.state.verify_store._connections[0].close()  # the database dropped it

        broken = client.post("/v1/verify", json={"qr": qr})
        recovered = client.post("/v1/verify", json={"qr": qr})

    assert_error(broken, 503, "registry_unavailable")
    assert recovered.json()["decision"] == "accept"
