"""Demo stays demo: the database remembers its demo data, a normal start refuses it, and no published secret signs in.

The issue's reproduction: start once with ``CERTSEAL_DEMO=true`` in the environment (no ``--demo``) and
production secrets, then restart normally. That restart, the app's lifespan and the admin commands now
refuse the database naming ``certseal demo purge``; after the purge the service starts and the published
demo key and admin token are refused. Whatever a database holds, a published demo secret authenticates
only in a process running in demo mode.
"""

from __future__ import annotations

import shutil
import socket
from datetime import date
from pathlib import Path

import httpx
import pytest
from conftest import PRODUCTION_BASE_URL, certseal_environment, run_certseal
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from api import migrate
from api.db import make_engine
from api.demo import seed_demo
from api.deployment import DemoDataPresent, DemoIssuerConflict, purge_demo_data, require_no_demo_data
from api.models import ApiKey
from api.runtime import runtime
from api.security import hash_api_key
from api.settings import DEMO_ISSUER_API_KEY, DEMO_ISSUER_API_KEY_PREFIX, DEMO_SECRETS

LEGACY = Path(__file__).parent / "fixtures" / "legacy-7b6b110.sqlite"
PURGE_HINT = "certseal demo purge"
DEMO_KEY_HEADERS = {"Authorization": f"Bearer {DEMO_ISSUER_API_KEY}"}
DEMO_ADMIN_HEADERS = {"Authorization": f"Bearer {DEMO_SECRETS['admin_token']}"}


def production_environment(secrets_by_name):
    """A subprocess environment with these secrets and an https base URL, and no other CERTSEAL_* variable."""
    variables = {f"CERTSEAL_{name.upper()}": value for name, value in secrets_by_name.items()}
    return certseal_environment(CERTSEAL_PUBLIC_BASE_URL=PRODUCTION_BASE_URL, **variables)


def free_port():
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def table_rows(database_url, sql):
    """The rows of ``sql`` on the database."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()


@pytest.mark.slow
def test_database_that_ran_with_certseal_demo_refuses_a_normal_start(
    make_app, tmp_path, start_serve, production_secrets, make_production_settings
):
    """After one start with CERTSEAL_DEMO=true, serve, the app and admin commands refuse the database until purged."""
    database = f"sqlite:///{tmp_path / 'once-demo.db'}"
    production = production_environment(production_secrets)
    demo = start_serve("--database", database, env={**production, "CERTSEAL_DEMO": "true"})
    in_demo = httpx.get(f"{demo.base_url}/v1/certificates", headers=DEMO_KEY_HEADERS, timeout=10)
    demo.stop()

    restart = run_certseal("serve", "--port", free_port(), "--database", database, env=production, cwd=tmp_path)
    admin = run_certseal("issuer", "api-key", "CN-44", "--database", database, env=production, cwd=tmp_path)
    with (
        pytest.raises(DemoDataPresent, match=PURGE_HINT),
        TestClient(make_app(make_production_settings(database_url=database))),
    ):
        pass
    purge = run_certseal("demo", "purge", "--database", database, env=certseal_environment(), cwd=tmp_path)
    normal = start_serve("--database", database, env=production)
    with httpx.Client(base_url=normal.base_url, timeout=10) as client:
        key_on_list = client.get("/v1/certificates", headers=DEMO_KEY_HEADERS)
        key_on_issue = client.post("/v1/certificates", json={}, headers=DEMO_KEY_HEADERS)
        key_on_verify = client.post("/v1/verify", json={"qr": "12345"}, headers=DEMO_KEY_HEADERS)
        admin_token = client.get("/v1/apps/api-keys", headers=DEMO_ADMIN_HEADERS)

    assert (in_demo.status_code, in_demo.json()["total"]) == (200, 4)
    assert restart.returncode == 2
    assert PURGE_HINT in restart.stderr
    assert "Uvicorn running" not in restart.stdout + restart.stderr
    assert "Traceback" not in restart.stderr
    assert (admin.returncode, admin.stdout) == (2, "")
    assert PURGE_HINT in admin.stderr
    for value in production_secrets.values():
        assert value not in restart.stdout + restart.stderr + admin.stderr + demo.output
    assert purge.returncode == 0, purge.stderr
    assert "demo data removed: issuer CN-44, 4 certificates, 1 API keys" in purge.stdout
    for response in (key_on_list, key_on_issue, key_on_verify, admin_token):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"


def test_published_demo_secrets_never_authenticate_outside_demo_mode(
    make_app, make_production_settings, production_secrets
):
    """With the demo key's row put into a running production database, neither it nor the demo admin token signs in."""
    admin = {"Authorization": f"Bearer {production_secrets['admin_token']}"}
    with TestClient(make_app(make_production_settings())) as client:
        client.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["2.1"]},
            headers=admin,
        ).raise_for_status()
        real = client.post("/v1/issuers/CN-44/api-keys", json={"label": "real"}, headers=admin).json()["token"]
        with client.app.state.engine.connect() as connection:
            issuer_id = connection.execute(text("SELECT id FROM issuers")).scalar_one()
        with Session(client.app.state.engine) as session:
            session.add(
                ApiKey(
                    prefix=DEMO_ISSUER_API_KEY_PREFIX,
                    secret_hash=hash_api_key(DEMO_ISSUER_API_KEY),
                    scope="issuer",
                    issuer_id=issuer_id,
                    label="restored from a demo backup",
                )
            )
            session.commit()

        refused = [
            client.get("/v1/certificates", headers=DEMO_KEY_HEADERS),
            client.post("/v1/verify", json={"qr": "12345"}, headers=DEMO_KEY_HEADERS),
            client.get("/v1/apps/api-keys", headers=DEMO_ADMIN_HEADERS),
            client.post("/v1/verify", json={"qr": "12345"}, headers=DEMO_ADMIN_HEADERS),
        ]
        accepted = client.get("/v1/certificates", headers={"Authorization": f"Bearer {real}"})

    for response in refused:
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
    assert accepted.status_code == 200


def test_demo_mode_accepts_the_demo_key_and_flags_the_database(make_app, make_settings, seed_demo_data, database_url):
    """In demo mode the seeded demo key works, and the seeding flags the database as holding demo data."""
    settings = make_settings()

    demo = seed_demo_data(settings)
    with TestClient(make_app(settings)) as client:
        listed = client.get("/v1/certificates", headers=DEMO_KEY_HEADERS)

    assert len(demo) == 4
    assert (listed.status_code, listed.json()["total"]) == (200, 4)
    ((name, value),) = table_rows(database_url, "SELECT name, value FROM deployment_flags")
    assert (name, value) == ("demo_data", table_rows(database_url, "SELECT id FROM issuers WHERE code = 'CN-44'")[0][0])


def test_purge_removes_only_the_demo_data(make_app, make_settings, seed_demo_data, database_url, make_id_number):
    """Purging removes the demo issuer with its keys, certificates, events, counters and records; other data stays."""
    settings = make_settings()
    seed_demo_data(settings)
    holder = make_id_number(date(1985, 3, 12))
    with TestClient(make_app(settings)) as client:
        client.post(
            "/v1/issuers",
            json={"code": "CN-11", "name": "北京", "region": "北京市", "operations": ["2.1"]},
            headers=DEMO_ADMIN_HEADERS,
        ).raise_for_status()
        token = client.post("/v1/issuers/CN-11/api-keys", json={}, headers=DEMO_ADMIN_HEADERS).json()["token"]
        body = {"holder_name": "李强", "holder_id_number": holder, "operation": "2.1", "issue_date": "2026-01-05"}
        kept = client.post("/v1/certificates", json=body, headers={"Authorization": f"Bearer {token}"}).json()
        demo = client.post("/v1/certificates", json=body, headers={**DEMO_KEY_HEADERS, "Idempotency-Key": "k-1"}).json()
        client.post("/v1/verify", json={"qr": demo["qr_text"], "holder_id_number": make_id_number(date(1990, 1, 1))})
        client.post("/v1/verify", json={"qr": kept["qr_text"]})
        client.app.state.events.flush()
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:  # daily counts of pruned events, of each issuer
            connection.execute(
                text("INSERT INTO verification_daily VALUES ('2023-01-05', :code, 'accept', '', 3)"),
                [{"code": "CN-44"}, {"code": "CN-11"}],
            )
        result = purge_demo_data(engine)
        require_no_demo_data(engine)
    finally:
        engine.dispose()

    assert (result.issuers, result.certificates, result.api_keys, result.flagged) == (["CN-44"], 5, 1, True)
    assert table_rows(database_url, "SELECT code FROM issuers") == [("CN-11",)]
    assert table_rows(database_url, "SELECT id FROM certificates") == [(kept["id"],)]
    assert table_rows(database_url, "SELECT DISTINCT certificate_id FROM status_events") == [(kept["id"],)]
    assert table_rows(database_url, "SELECT serial FROM verification_events") == [(kept["serial"],)]
    assert table_rows(database_url, "SELECT issuer_code FROM verification_daily") == [("CN-11",)]
    assert table_rows(database_url, "SELECT count(*) FROM holder_check_counters") == [(0,)]
    assert table_rows(database_url, "SELECT count(*) FROM idempotency_records") == [(0,)]
    assert table_rows(database_url, "SELECT count(*) FROM api_keys") == [(1,)]
    assert table_rows(database_url, "SELECT count(*) FROM deployment_flags") == [(0,)]
    assert len(table_rows(database_url, "SELECT kid FROM signing_keys")) == 2  # the kept issuer's two keys
    for table in ("training_institutions", "exam_points", "exam_point_exclusions", "exam_sessions"):
        assert table_rows(database_url, f"SELECT count(*) FROM {table}") == [(0,)], table  # noqa: S608


def test_demo_purge_command_on_a_database_without_demo_data(run_cli, database_url):
    """``certseal demo purge`` on a database without demo data says so and exits 0."""

    code, out, err = run_cli("demo", "purge", "--database", database_url)

    assert (code, err) == (0, "")
    assert out == "no demo data in this database; nothing removed\n"


def test_demo_purge_command_needs_the_newest_schema(run_cli, tmp_path):
    """``certseal demo purge`` on an empty database exits 2 naming ``certseal db upgrade``."""

    code, out, err = run_cli("demo", "purge", "--database", f"sqlite:///{tmp_path / 'empty.db'}")

    assert (code, out) == (2, "")
    assert "certseal db upgrade" in err


def test_seeding_never_adopts_an_issuer_that_is_not_demo(make_app, make_settings, seed_demo_data, database_url):
    """An existing CN-44 created by an admin is not taken for demo data: seeding refuses and flags nothing."""
    settings = make_settings()
    with TestClient(make_app(settings)) as client:
        client.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["2.1"]},
            headers=DEMO_ADMIN_HEADERS,
        ).raise_for_status()

    with pytest.raises(DemoIssuerConflict, match="is not demo data"):
        seed_demo_data(settings)

    assert table_rows(database_url, "SELECT count(*) FROM deployment_flags") == [(0,)]
    assert table_rows(database_url, "SELECT count(*) FROM certificates") == [(0,)]


def test_demo_data_is_only_seeded_in_demo_mode(make_production_settings):
    """Seeding the demo data with settings outside demo mode is refused before anything is written."""
    settings = make_production_settings()

    with runtime(settings) as rt, pytest.raises(RuntimeError, match="only seeded in demo mode"):
        seed_demo(rt)

    assert table_rows(settings.database_url, "SELECT count(*) FROM issuers") == [(0,)]


def test_upgrade_flags_a_database_seeded_before_the_flag_existed(tmp_path):
    """A demo database made by older code is flagged by the 0003 upgrade, so a normal start refuses it."""
    database = Path(shutil.copyfile(LEGACY, tmp_path / "legacy.sqlite"))
    url = f"sqlite:///{database}"
    engine = make_engine(url)

    try:
        migrate.upgrade(engine)
        with pytest.raises(DemoDataPresent, match=PURGE_HINT):
            require_no_demo_data(engine)
    finally:
        engine.dispose()

    assert table_rows(url, "SELECT f.name, i.code FROM deployment_flags f JOIN issuers i ON i.id = f.value") == [
        ("demo_data", "CN-44")
    ]
