"""``certseal serve`` as deployed: secrets from ``_FILE`` variables, logging that stays on, and X-Forwarded-For.

By default no peer's X-Forwarded-For is believed (uvicorn's own default trusts 127.0.0.1), so a client
rotating that header from 127.0.0.1 is still limited under its real address; ``--forwarded-allow-ips``
names the proxies that are believed.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from conftest import PRODUCTION_BASE_URL, certseal_environment, run_certseal

RATE_PER_MINUTE = 3
REQUESTS = 8


@pytest.fixture
def served_database(tmp_path, production_secrets):
    """A migrated SQLite database and a ``serve`` environment whose secrets all come from ``_FILE`` variables."""
    database = f"sqlite:///{tmp_path / 'served.db'}"
    upgraded = run_certseal("db", "upgrade", "--database", database, env=certseal_environment(), cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    files = {}
    for name, value in {**production_secrets, "id_hmac_previous_keys": "1:previous-hmac-key-Vb7Qw2Lr9Zt4"}.items():
        path = tmp_path / f"{name}.secret"
        path.write_text(value + "\n", encoding="utf-8")
        files[f"CERTSEAL_{name.upper()}_FILE"] = str(path)
    env = certseal_environment(
        CERTSEAL_PUBLIC_BASE_URL=PRODUCTION_BASE_URL,
        CERTSEAL_ID_HMAC_KEY_VERSION="2",
        CERTSEAL_VERIFY_RATE_PER_MINUTE=str(RATE_PER_MINUTE),
        **files,
    )
    return database, env


def rotating_forwarded_for(base_url):
    """Send REQUESTS anonymous verifications, each claiming another client address; return the status codes."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        return [
            client.post(
                "/v1/verify", json={"qr": "12345"}, headers={"X-Forwarded-For": f"203.0.113.{index}"}
            ).status_code
            for index in range(1, REQUESTS + 1)
        ]


@pytest.mark.slow
def test_forwarded_for_is_not_believed_by_default(served_database, start_serve, production_secrets):
    """Without --forwarded-allow-ips, rotating X-Forwarded-For from 127.0.0.1 is still limited by the real address."""
    database, env = served_database
    server = start_serve("--database", database, env=env)

    statuses = rotating_forwarded_for(server.base_url)

    assert 429 in statuses
    assert statuses.count(200) <= 2 * RATE_PER_MINUTE  # at most one minute boundary inside the burst
    assert "forwarded_allow_ips=(none)" in server.output


@pytest.mark.slow
def test_forwarded_for_is_believed_from_the_proxies_named(served_database, start_serve):
    """With --forwarded-allow-ips 127.0.0.1 each forwarded address is limited on its own, so none is refused."""
    database, env = served_database
    server = start_serve("--database", database, "--forwarded-allow-ips", "127.0.0.1", env=env)

    statuses = rotating_forwarded_for(server.base_url)

    assert statuses == [200] * REQUESTS
    assert "forwarded_allow_ips=127.0.0.1" in server.output


@pytest.mark.slow
def test_serve_with_file_secrets_logs_its_start_up_line_and_no_secret(served_database, start_serve, production_secrets):
    """``serve`` starts on _FILE secrets and leaves INFO logging on: the start-up line is printed, no secret is."""
    database, env = served_database

    server = start_serve("--database", database, env=env)
    app_keys = httpx.get(
        f"{server.base_url}/v1/apps/api-keys",
        headers={"Authorization": f"Bearer {production_secrets['admin_token']}"},
        timeout=10,
    )

    assert app_keys.status_code == 200
    (line,) = [json.loads(line) for line in server.output.splitlines() if "certseal starting:" in line]
    assert (line["level"], line["logger"], line["request_id"]) == ("INFO", "certseal", "-")
    assert "database=sqlite " in line["message"]
    assert "previous_hmac_versions=[1]" in line["message"]
    assert "Uvicorn running on" in server.output
    for value in [*production_secrets.values(), "previous-hmac-key-Vb7Qw2Lr9Zt4"]:
        assert value not in server.output


@pytest.mark.slow
def test_serve_writes_one_json_access_line_per_request_instead_of_uvicorns(served_database, start_serve):
    """``serve`` logs each request once, as JSON with the request id and route template; uvicorn's line is off."""
    database, env = served_database
    server = start_serve("--database", database, env=env)

    answer = httpx.get(f"{server.base_url}/v1/keys", headers={"X-Request-Id": "serve-test-1"}, timeout=10)
    lines = _wait_for_lines(server, '"request_id":"serve-test-1"')

    assert answer.headers["x-request-id"] == "serve-test-1"
    (access,) = [json.loads(line) for line in lines]
    assert {key: access[key] for key in ("logger", "method", "route", "status", "client")} == {
        "logger": "certseal.access",
        "method": "GET",
        "route": "/v1/keys",
        "status": 200,
        "client": "127.0.0.1",
    }
    assert "GET /v1/keys HTTP/1.1" not in server.output  # uvicorn's access line
    assert [line for line in server.output.splitlines() if "/v1/keys" in line] == lines


def _wait_for_lines(server, text, seconds=5.0):
    """The lines of the server's output holding ``text``, waiting until there is one (the log is written last)."""
    deadline = time.monotonic() + seconds
    while not (lines := [line for line in server.output.splitlines() if text in line]):
        assert time.monotonic() < deadline, server.output
        time.sleep(0.05)
    return lines


def test_serve_refuses_a_forwarded_allow_ips_that_is_not_an_address(run_cli, tmp_path, production_secrets):
    """``serve --forwarded-allow-ips proxy.lan`` exits 2 naming the setting, before anything starts."""
    env = {f"CERTSEAL_{name.upper()}": value for name, value in production_secrets.items()}

    code, out, err = run_cli(
        "serve",
        "--forwarded-allow-ips",
        "proxy.lan",
        "--database",
        f"sqlite:///{tmp_path / 'x.db'}",
        env={**env, "CERTSEAL_PUBLIC_BASE_URL": PRODUCTION_BASE_URL},
    )

    assert (code, out) == (2, "")
    assert "CERTSEAL_FORWARDED_ALLOW_IPS" in err
