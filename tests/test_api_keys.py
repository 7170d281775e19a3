"""API keys with a lifecycle: listed, revoked and given an expiry by an admin, through the API and the CLI.

A revoked or expired key is refused (401) at once, on the issuer endpoints and on ``POST /v1/verify``;
"last used" is written off the request path, at most once a minute per key.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import TEST_NOW
from sqlalchemy import event, text

from api.services.key_usage import KeyUsage

ISSUER_KEYS = "/v1/issuers/CN-44/api-keys"
APP_KEYS = "/v1/apps/api-keys"
INFO_FIELDS = {
    "id",
    "prefix",
    "scope",
    "issuer",
    "label",
    "state",
    "created_at",
    "last_used_at",
    "expires_at",
    "revoked_at",
}


def bearer(token):
    """Authorization headers for a token."""
    return {"Authorization": f"Bearer {token}"}


def prefix_of(headers):
    """The lookup prefix of the API key in bearer headers."""
    return headers["Authorization"].split("_")[1]


def error_code(response):
    """The error code of an error response."""
    return response.json()["error"]["code"]


def test_issuer_keys_are_listed_without_their_tokens(app_client, admin_headers, issuer):
    """The admin lists an issuer's keys with prefix, label, times and state; no token or hash appears."""
    created = app_client.post(ISSUER_KEYS, json={"label": "exam hall", "expires_in_days": 30}, headers=admin_headers)

    listed = app_client.get(ISSUER_KEYS, headers=admin_headers)

    assert created.status_code == 201, created.text
    new = created.json()
    assert new["token"].startswith(f"cs_{new['prefix']}_")
    assert datetime.fromisoformat(new["expires_at"]) == TEST_NOW + timedelta(days=30)
    items = listed.json()["items"]
    assert [item["prefix"] for item in items] == [prefix_of(issuer.headers), new["prefix"]]
    assert {frozenset(item) for item in items} == {frozenset(INFO_FIELDS)}
    assert [(item["label"], item["state"], item["scope"], item["issuer"]) for item in items] == [
        ("tests", "active", "issuer", "CN-44"),
        ("exam hall", "active", "issuer", "CN-44"),
    ]
    assert items[1]["expires_at"] == new["expires_at"]
    assert new["token"] not in listed.text
    assert issuer.headers["Authorization"].split(" ")[1] not in listed.text


def test_app_keys_are_listed_apart_from_issuer_keys(app_client, admin_headers, issuer):
    """``GET /v1/apps/api-keys`` lists the app keys only, and the issuer listing holds no app key."""
    app_key = app_client.post(APP_KEYS, json={"label": "site platform"}, headers=admin_headers).json()

    apps = app_client.get(APP_KEYS, headers=admin_headers).json()["items"]
    issuers = app_client.get(ISSUER_KEYS, headers=admin_headers).json()["items"]

    assert [(item["prefix"], item["scope"], item["issuer"]) for item in apps] == [(app_key["prefix"], "app", None)]
    assert app_key["prefix"] not in [item["prefix"] for item in issuers]


def test_revoked_issuer_key_is_refused_at_once(app_client, admin_headers, issuer):
    """After ``DELETE …/api-keys/{prefix}`` the key gets 401 on its next request; revoking again changes nothing."""
    assert app_client.get("/v1/certificates", headers=issuer.headers).status_code == 200
    path = f"{ISSUER_KEYS}/{prefix_of(issuer.headers)}"

    revoked = app_client.delete(path, headers=admin_headers)
    refused = app_client.get("/v1/certificates", headers=issuer.headers)
    refused_on_verify = app_client.post("/v1/verify", json={"qr": "12345"}, headers=issuer.headers)
    again = app_client.delete(path, headers=admin_headers)

    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked"
    assert (refused.status_code, error_code(refused)) == (401, "unauthorized")
    assert (refused_on_verify.status_code, error_code(refused_on_verify)) == (401, "unauthorized")
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


def test_revoked_app_key_is_refused_on_verify(app_client, admin_headers, issuer, issue):
    """An app key verifies until the admin revokes it, then verify answers 401 at once."""
    qr = issue(issuer)["qr_text"]
    app_key = app_client.post(APP_KEYS, json={"label": "site platform"}, headers=admin_headers).json()
    before = app_client.post("/v1/verify", json={"qr": qr}, headers=bearer(app_key["token"]))

    revoked = app_client.delete(f"{APP_KEYS}/{app_key['prefix']}", headers=admin_headers)
    after = app_client.post("/v1/verify", json={"qr": qr}, headers=bearer(app_key["token"]))

    assert before.json()["decision"] == "accept"
    assert revoked.json()["state"] == "revoked"
    assert (after.status_code, error_code(after)) == (401, "unauthorized")


def test_expiry_set_in_the_past_refuses_the_key_and_null_restores_it(app_client, clock, admin_headers, issuer, issue):
    """``PATCH`` with a past ``expires_at`` gets the key 401 at once, also on verify; ``null`` lifts the expiry."""
    qr = issue(issuer)["qr_text"]
    path = f"{ISSUER_KEYS}/{prefix_of(issuer.headers)}"
    past = (clock.now() - timedelta(seconds=1)).isoformat()

    expired = app_client.patch(path, json={"expires_at": past}, headers=admin_headers)
    listed = app_client.get("/v1/certificates", headers=issuer.headers)
    verified = app_client.post("/v1/verify", json={"qr": qr}, headers=issuer.headers)
    restored = app_client.patch(path, json={"expires_at": None}, headers=admin_headers)
    listed_again = app_client.get("/v1/certificates", headers=issuer.headers)

    assert (expired.status_code, expired.json()["state"]) == (200, "expired")
    assert (listed.status_code, verified.status_code) == (401, 401)
    assert (restored.json()["state"], restored.json()["expires_at"]) == ("active", None)
    assert listed_again.status_code == 200


def test_key_created_with_an_expiry_stops_working_when_it_comes(app_client, clock, admin_headers, issuer):
    """A key created to expire in a moment works until then and is refused from then on, without any other call."""
    soon = clock.now() + timedelta(seconds=1.5)
    token = app_client.post(ISSUER_KEYS, json={"expires_at": soon.isoformat()}, headers=admin_headers).json()["token"]
    before = app_client.get("/v1/certificates", headers=bearer(token))
    clock.advance(seconds=1)
    just_before = app_client.get("/v1/certificates", headers=bearer(token))

    clock.advance(seconds=0.5)
    at_expiry = app_client.get("/v1/certificates", headers=bearer(token))

    assert (before.status_code, just_before.status_code) == (200, 200)
    assert (at_expiry.status_code, error_code(at_expiry)) == (401, "unauthorized")


def test_expires_in_days_sets_the_expiry_of_an_existing_key(app_client, admin_headers, issuer):
    """``PATCH`` with ``expires_in_days`` gives an existing app key an expiry that many days ahead."""
    app_key = app_client.post(APP_KEYS, json={"label": "site platform"}, headers=admin_headers).json()

    changed = app_client.patch(f"{APP_KEYS}/{app_key['prefix']}", json={"expires_in_days": 7}, headers=admin_headers)

    assert changed.status_code == 200
    assert datetime.fromisoformat(changed.json()["expires_at"]) == TEST_NOW + timedelta(days=7)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"expires_at": "2020-01-01T00:00:00+08:00"}, 422, "invalid_expiry"),
        ({"expires_at": "2030-01-01T00:00:00+08:00", "expires_in_days": 3}, 422, "validation_error"),
        ({"expires_in_days": 0}, 422, "validation_error"),
        ({"expires_at": "2030-01-01T00:00:00"}, 422, "validation_error"),
    ],
    ids=["in-the-past", "both-forms", "zero-days", "no-offset"],
)
def test_bad_expiry_at_creation_is_refused(app_client, admin_headers, issuer, body, status, code):
    """A new key's expiry must be one form, in the future, with an offset; nothing is created otherwise."""

    response = app_client.post(ISSUER_KEYS, json=body, headers=admin_headers)

    assert (response.status_code, error_code(response)) == (status, code)
    assert len(app_client.get(ISSUER_KEYS, headers=admin_headers).json()["items"]) == 1


def test_patch_needs_exactly_one_expiry_form(app_client, admin_headers, issuer):
    """A ``PATCH`` without ``expires_at`` or ``expires_in_days`` is 422 and changes nothing."""

    response = app_client.patch(f"{ISSUER_KEYS}/{prefix_of(issuer.headers)}", json={}, headers=admin_headers)

    assert (response.status_code, error_code(response)) == (422, "validation_error")


def test_revoked_key_keeps_its_state_when_an_expiry_is_set(app_client, admin_headers, issuer):
    """Setting an expiry on a revoked key is 409 ``api_key_revoked``; the key stays revoked."""
    path = f"{ISSUER_KEYS}/{prefix_of(issuer.headers)}"
    app_client.delete(path, headers=admin_headers)

    response = app_client.patch(path, json={"expires_at": None}, headers=admin_headers)

    assert (response.status_code, error_code(response)) == (409, "api_key_revoked")
    assert app_client.get(ISSUER_KEYS, headers=admin_headers).json()["items"][0]["state"] == "revoked"


def test_a_key_is_only_reached_under_its_own_owner(app_client, admin_headers, issuer, other_issuer):
    """Another issuer's path, the apps' path or an unknown prefix answer 404 ``api_key_not_found``; nothing changes."""
    prefix = prefix_of(issuer.headers)

    responses = [
        app_client.delete(f"/v1/issuers/CN-11/api-keys/{prefix}", headers=admin_headers),
        app_client.delete(f"{APP_KEYS}/{prefix}", headers=admin_headers),
        app_client.patch(f"{APP_KEYS}/{prefix}", json={"expires_in_days": 1}, headers=admin_headers),
        app_client.delete(f"{ISSUER_KEYS}/0123456789ab", headers=admin_headers),
    ]

    for response in responses:
        assert (response.status_code, error_code(response)) == (404, "api_key_not_found")
    assert app_client.get("/v1/certificates", headers=issuer.headers).status_code == 200


def test_key_administration_is_for_the_admin_only(app_client, issuer):
    """An issuer key cannot list, revoke or expire keys, not even its own (403)."""
    path = f"{ISSUER_KEYS}/{prefix_of(issuer.headers)}"

    responses = [
        app_client.get(ISSUER_KEYS, headers=issuer.headers),
        app_client.delete(path, headers=issuer.headers),
        app_client.patch(path, json={"expires_in_days": 1}, headers=issuer.headers),
        app_client.get(APP_KEYS, headers=issuer.headers),
    ]

    for response in responses:
        assert (response.status_code, error_code(response)) == (403, "forbidden")


def test_last_used_is_written_off_the_request_path(app, app_client, admin_headers, issuer):
    """A request only queues the key's use; a flush writes it, and a second use within the minute queues nothing."""
    app.state.events.stop()  # the background writer stops (after a last flush): this test flushes by hand
    usage = app.state.key_usage

    app_client.get("/v1/certificates", headers=issuer.headers)
    queued = usage.pending
    with app.state.engine.connect() as connection:
        before_flush = connection.execute(text("SELECT last_used_at FROM api_keys WHERE scope = 'issuer'")).scalar()
    usage.flush()
    app_client.get("/v1/certificates", headers=issuer.headers)

    listed = app_client.get(ISSUER_KEYS, headers=admin_headers).json()["items"][0]
    assert (queued, before_flush) == (1, None)
    assert datetime.fromisoformat(listed["last_used_at"]) == TEST_NOW
    assert usage.pending == 0


def test_verify_records_the_app_keys_last_use(app, app_client, admin_headers, issuer, issue):
    """An app key used on verify gets its last-used time once the background writer runs."""
    qr = issue(issuer)["qr_text"]
    app_key = app_client.post(APP_KEYS, json={"label": "site platform"}, headers=admin_headers).json()

    app_client.post("/v1/verify", json={"qr": qr}, headers=bearer(app_key["token"]))
    deadline = time.monotonic() + 5
    while app.state.key_usage.pending and time.monotonic() < deadline:
        time.sleep(0.05)  # the event recorder's thread flushes every CERTSEAL_EVENT_FLUSH_SECONDS

    (listed,) = app_client.get(APP_KEYS, headers=admin_headers).json()["items"]
    assert listed["last_used_at"] is not None


def test_key_usage_writes_at_most_once_a_minute_per_key(app, app_client):
    """Many uses of two keys within a minute make one UPDATE per key; a use a minute later makes one more."""
    engine = app.state.engine
    usage = KeyUsage(engine)
    statements = []

    def count(_connection, _cursor, statement, parameters, _context, executemany):
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            statements.append(len(parameters) if executemany else 1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        for second in range(0, 59, 3):
            usage.touch("key-a", at=TEST_NOW + timedelta(seconds=second))
            usage.touch("key-b", at=TEST_NOW + timedelta(seconds=second))
        first = usage.flush()
        usage.touch("key-a", at=TEST_NOW + timedelta(seconds=59))
        nothing = usage.flush()
        usage.touch("key-a", at=TEST_NOW + timedelta(seconds=61))
        later = usage.flush()
    finally:
        event.remove(engine, "before_cursor_execute", count)

    assert (first, nothing, later) == (2, 0, 1)
    assert sum(statements) == 3


def test_cli_lists_revokes_and_expires_keys(run_cli, app_client, admin_headers, issuer, database_url):
    """``certseal api-key list|revoke|expire`` act on the same keys, and the service refuses them at once."""
    app_key = app_client.post(APP_KEYS, json={"label": "site platform"}, headers=admin_headers).json()
    prefix = prefix_of(issuer.headers)
    common = ("--demo", "--database", database_url)

    listed_issuer = run_cli("api-key", "list", "--issuer", "CN-44", *common)
    listed_apps = run_cli("api-key", "list", "--apps", *common)
    expired = run_cli("api-key", "expire", prefix, "--at", "2020-01-01", *common)
    while_expired = app_client.get("/v1/certificates", headers=issuer.headers)
    never = run_cli("api-key", "expire", prefix, "--never", *common)
    while_restored = app_client.get("/v1/certificates", headers=issuer.headers)
    revoked = run_cli("api-key", "revoke", app_key["prefix"], *common)
    verify = app_client.post("/v1/verify", json={"qr": "12345"}, headers=bearer(app_key["token"]))
    listed_all = run_cli("api-key", "list", *common)
    unknown = run_cli("api-key", "revoke", "0123456789ab", *common)

    assert listed_issuer[0] == 0
    assert listed_issuer[1].splitlines()[0].split() == [
        "PREFIX",
        "SCOPE",
        "ISSUER",
        "STATE",
        "CREATED",
        "LAST",
        "USED",
        "EXPIRES",
        "LABEL",
    ]
    assert listed_issuer[1].splitlines()[1].split()[:4] == [prefix, "issuer", "CN-44", "active"]
    assert app_key["prefix"] not in listed_issuer[1]
    assert [line.split()[:4] for line in listed_apps[1].splitlines()[1:]] == [[app_key["prefix"], "app", "-", "active"]]
    assert expired == (0, f"API key {prefix} expires at 2020-01-01T00:00:00+08:00\n", "")
    assert while_expired.status_code == 401
    assert never == (0, f"API key {prefix} never expires\n", "")
    assert while_restored.status_code == 200
    assert revoked[0] == 0
    assert revoked[1].startswith(f"API key {app_key['prefix']} revoked at ")
    assert verify.status_code == 401
    states = {line.split()[0]: line.split()[3] for line in listed_all[1].splitlines()[1:]}
    assert states == {prefix: "active", app_key["prefix"]: "revoked"}
    assert app_key["token"] not in listed_all[1]
    assert (unknown[0], unknown[1]) == (2, "")
    assert "api_key_not_found" in unknown[2]


def test_cli_creates_an_issuer_key_with_an_expiry(run_cli, app_client, admin_headers, issuer, database_url):
    """``certseal issuer api-key --expires-in-days`` prints a working token whose key expires that many days ahead."""

    code, out, err = run_cli(
        "issuer", "api-key", "CN-44", "--label", "cli", "--expires-in-days", "10", "--demo", "--database", database_url
    )

    token = out.strip()
    (item,) = [
        item for item in app_client.get(ISSUER_KEYS, headers=admin_headers).json()["items"] if item["label"] == "cli"
    ]
    ahead = datetime.fromisoformat(item["expires_at"]) - datetime.now(UTC)
    assert (code, err) == (0, "")
    assert app_client.get("/v1/certificates", headers=bearer(token)).status_code == 200
    assert timedelta(days=9, hours=23) < ahead <= timedelta(days=10)
