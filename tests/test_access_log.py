"""Request ids and structured logs: X-Request-Id accepted or made and echoed, one JSON access line per request."""

from __future__ import annotations

import logging
import re

import pytest
from conftest import TEST_ID_NUMBER
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.db import BlockingLane
from api.logs import JsonFormatter, RequestIdFilter, request_id_var
from api.main import create_app
from api.routers.health import register_readiness_check
from api.settings import Settings
from tests.concurrency.harness import run_coroutine

GENERATED_ID = re.compile(r"[0-9a-f]{32}")
ACCESS_FIELDS = {"timestamp", "level", "logger", "message", "request_id", "method", "route", "status", "duration_ms"}


def test_a_valid_request_id_is_echoed(app_client):
    """A client's X-Request-Id of letters, digits, dots, dashes and underscores comes back unchanged."""
    sent = "scan-2026.12.01_A7" + "x" * 46

    response = app_client.get("/healthz", headers={"X-Request-Id": sent})

    assert len(sent) == 64
    assert response.headers["x-request-id"] == sent


def test_a_request_id_is_made_when_absent(app_client):
    """Without X-Request-Id every response gets a new random one, different each time."""
    first = app_client.get("/healthz")
    second = app_client.get("/healthz")

    assert GENERATED_ID.fullmatch(first.headers["x-request-id"])
    assert GENERATED_ID.fullmatch(second.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize(
    "hostile",
    ["a" * 65, "has space", 'quote"d', "<script>", "line\tbreak", "中文", "", f"id={TEST_ID_NUMBER}"],
    ids=["too-long", "space", "quote", "markup", "control", "non-ascii", "empty", "equals"],
)
def test_a_hostile_request_id_is_replaced(app_client, hostile):
    """An X-Request-Id that is too long or has other characters is replaced by a generated one."""
    response = app_client.get("/healthz", headers={"X-Request-Id": hostile.encode()})

    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


def test_error_responses_carry_the_request_id(settings):
    """A 404, a 422 and an unhandled 500 each echo the request id."""
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unexpected")

    with TestClient(app, raise_server_exceptions=False) as client:
        answers = [
            client.get("/nowhere", headers={"X-Request-Id": "r-404"}),
            client.post("/v1/verify", json={"qr": 1}, headers={"X-Request-Id": "r-422"}),
            client.get("/boom", headers={"X-Request-Id": "r-500"}),
        ]

    assert [(a.status_code, a.headers.get("x-request-id")) for a in answers] == [
        (404, "r-404"),
        (422, "r-422"),
        (500, "r-500"),
    ]


def test_one_json_access_line_per_request_with_its_fields(app_client, json_logs):
    """Each request writes one access line, valid JSON, with time, level, request id, method, route, status, client."""
    app_client.get("/healthz", headers={"X-Request-Id": "probe-1"})
    app_client.get("/v1/certificates/some-id", headers={"X-Request-Id": "probe-2"})

    lines = json_logs.access()

    assert [line["request_id"] for line in lines] == ["probe-1", "probe-2"]
    assert all(set(line) >= ACCESS_FIELDS for line in lines)
    first, second = lines
    assert (first["method"], first["route"], first["status"], first["level"]) == ("GET", "/healthz", 200, "INFO")
    assert (second["route"], second["status"]) == ("/v1/certificates/{certificate_id}", 401)
    assert first["client"] == "testclient"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["timestamp"])
    assert isinstance(first["duration_ms"], float)


def test_lines_logged_during_a_request_carry_its_id(app, app_client, json_logs, monkeypatch):
    """A warning logged while a request runs (readiness failing) has that request's id, as its access line does."""
    register_readiness_check(app, "failing", _failing_check)

    app_client.get("/readyz", headers={"X-Request-Id": "ready-7"})

    warnings = [line for line in json_logs.lines() if line["level"] == "WARNING"]
    assert warnings
    assert {line["request_id"] for line in warnings} == {"ready-7"}
    assert json_logs.access()[-1]["request_id"] == "ready-7"


def _failing_check() -> None:
    raise ConnectionError("down")


def test_the_verify_lane_runs_calls_in_the_request_context():
    """A call run on the verify lane sees the request id of the coroutine that queued it."""

    async def run() -> str:
        lane = BlockingLane(threads=1, deadline_seconds=5, name="test-lane")
        request_id_var.set("lane-42")
        try:
            return await lane.run(request_id_var.get)
        finally:
            lane.close()

    seen = run_coroutine(run())

    assert seen == "lane-42"


def test_the_log_never_shows_an_id_number_a_token_or_a_qr_text(app_client, issuer, issue, json_logs):
    """Requests carrying an ID number (body, query, path), a bearer token and a QR text leave none in the log."""
    qr = issue(issuer)["qr_text"]
    token = issuer.headers["Authorization"].removeprefix("Bearer ")
    payload = qr.partition("#")[2]
    already = len(json_logs.access())

    app_client.post("/v1/verify", json={"qr": qr, "holder_id_number": TEST_ID_NUMBER}, headers=issuer.headers)
    app_client.get(f"/v1/certificates?holder_id_number={TEST_ID_NUMBER}", headers=issuer.headers)
    app_client.get(f"/v1/certificates/{TEST_ID_NUMBER}/qr.png?token={token}", headers=issuer.headers)
    app_client.get("/c1", params={"d": payload})

    text = json_logs.text
    assert len(json_logs.access()) == already + 4
    for secret in (TEST_ID_NUMBER, token, payload[:40], "holder_id_number"):
        assert secret not in text


def test_the_text_format_shows_the_request_id():
    """The text formatter writes the request id in brackets after the logger name."""
    from api.logs import TEXT_FORMAT

    record = logging.LogRecord("certseal.access", logging.INFO, __file__, 1, "GET /healthz 200", None, None)
    token = request_id_var.set("text-1")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)

    line = logging.Formatter(TEXT_FORMAT).format(record)

    assert "certseal.access [text-1]: GET /healthz 200" in line


def test_json_lines_carry_an_exception_traceback_on_one_line():
    """A record with an exception becomes one JSON line whose `exception` holds the traceback."""
    try:
        raise ValueError("bad")
    except ValueError as exc:
        record = logging.LogRecord("certseal", logging.ERROR, __file__, 1, "failed", None, (type(exc), exc, None))

    line = JsonFormatter().format(record)

    assert "\n" not in line
    assert "ValueError: bad" in line


@pytest.mark.parametrize(
    ("environment", "demo", "expected"),
    [
        ({}, False, "json"),
        ({}, True, "text"),
        ({"CERTSEAL_LOG_FORMAT": " TEXT "}, False, "text"),
        ({"CERTSEAL_LOG_FORMAT": "json"}, True, "json"),
    ],
    ids=["default", "demo-default", "text", "json-in-demo"],
)
def test_log_format_setting(make_settings, make_production_settings, monkeypatch, environment, demo, expected):
    """CERTSEAL_LOG_FORMAT picks json or text (any case); unset it is json, and text in demo mode."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    settings = make_settings() if demo else make_production_settings()

    assert settings.log_format_in_effect == expected


def test_an_unknown_log_format_is_refused(make_production_settings, monkeypatch):
    """A CERTSEAL_LOG_FORMAT other than json or text stops the settings from loading, naming the variable."""
    monkeypatch.setenv("CERTSEAL_LOG_FORMAT", "xml")

    with pytest.raises(ValidationError, match="log_format"):
        make_production_settings()

    assert Settings.model_fields["log_format"].default is None
