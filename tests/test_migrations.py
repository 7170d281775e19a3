"""Alembic owns the schema: ``certseal db`` commands, legacy databases, start-up checks, models against migrations.

``fixtures/legacy-7b6b110.sqlite`` is a database made by the code before migrations (commit 7b6b110,
``create_all`` at start-up) holding the demo data. It was made once, like this:

    git worktree add --detach /tmp/cs-old 7b6b110
    cd /tmp/cs-old && PYTHONPATH=/tmp/cs-old python3 -c "
    from api.demo import seed_demo
    from api.runtime import load_settings, runtime
    settings = load_settings(demo=True, database_url='sqlite:////tmp/legacy.sqlite')
    with runtime(settings) as rt:  # create_tables(), then the demo issuer CN-44 and its 4 certificates
        seed_demo(rt)"
    python3 -c "import sqlite3; c = sqlite3.connect('/tmp/legacy.sqlite', isolation_level=None);
    [c.execute(s) for s in ('PRAGMA journal_mode=DELETE', 'PRAGMA page_size=1024', 'VACUUM')]"
    git worktree remove /tmp/cs-old

(one self-contained file, small pages: 44 KB). Its signing keys are encrypted under the demo passphrase.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from conftest import (
    P256_ORDER,
    TEST_NOW,
    TEST_TODAY,
    FixedClock,
    high_s_twin,
    high_s_twin_text,
    id_number_for,
    postgres_database,
    signature_s,
)
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import SQLModel

import crypto
from api import migrate
from api.cli import main
from api.db import make_engine
from api.main import create_app
from api.settings import DEMO_SECRETS, Settings

ROOT = Path(__file__).resolve().parent.parent
LEGACY = Path(__file__).parent / "fixtures" / "legacy-7b6b110.sqlite"
UPGRADE_HINT = "certseal db upgrade"
# Real-looking secrets for ``serve`` outside --demo (at least 16 characters, no demo_ prefix).
SERVE_ENV = {
    "CERTSEAL_PUBLIC_BASE_URL": "https://cert.example.gov.cn",
    "CERTSEAL_ADMIN_TOKEN": "migration-test-admin-token-41c9",
    "CERTSEAL_KEY_PASSPHRASE": "migration-test-key-passphrase-0d",
    "CERTSEAL_ID_HMAC_KEY": "migration-test-id-hmac-key-7e2a",
    "CERTSEAL_URL_SIGNING_KEY": "migration-test-url-signing-3b58",
}


def certseal(*args, cwd, **env):
    """Run ``python -m api.cli ARGS`` with no CERTSEAL_* variable but ``env``; assert no traceback."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("CERTSEAL_")}
    environment.update(PYTHONPATH=str(ROOT), **env)
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture
def cli(monkeypatch, capsys):
    """Return a function running the CLI in this process (no CERTSEAL_* set): (exit code, stdout, stderr)."""
    for name in [name for name in os.environ if name.startswith("CERTSEAL_")]:
        monkeypatch.delenv(name)

    def run(*args):
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def rows(database, sql):
    """Rows of ``sql`` in a SQLite file."""
    with sqlite3.connect(database) as connection:
        return connection.execute(sql).fetchall()


def legacy_copy(tmp_path):
    """A copy of the database made by the code before migrations."""
    return Path(shutil.copyfile(LEGACY, tmp_path / "legacy.sqlite"))


@contextmanager
def engine_on(url) -> Iterator:
    """An engine made as the service makes it, disposed afterwards."""
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def previous_revision():
    """The revision before head (None when head is the baseline)."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    down = script.get_revision(migrate.head_revision()).down_revision
    assert not isinstance(down, tuple), "one line of revisions"
    return down


def schema_differences(url):
    """What autogenerate would change to make the database at ``url`` match the models (nothing, ideally)."""
    with engine_on(url) as engine, engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)


CERTIFICATES = (
    "SELECT c.id, c.serial, c.holder_name, c.operation, c.status, c.envelope, c.envelope_sha256 "
    "FROM certificates c JOIN issuers i ON i.id = c.issuer_id WHERE i.code = 'CN-44' ORDER BY c.serial"
)


def test_legacy_database_is_stamped_and_upgraded_keeping_its_data(tmp_path, cli):
    """``db upgrade`` (no secrets set) stamps a pre-migration database at 0001, upgrades it and keeps every row."""
    database = legacy_copy(tmp_path)
    url = f"sqlite:///{database}"
    before = rows(database, CERTIFICATES)

    upgraded = certseal("db", "upgrade", "--database", url, cwd=tmp_path)
    current = cli("db", "current", "--database", url)

    assert upgraded.returncode == 0, upgraded.stderr
    assert "stamped at revision 0001" in upgraded.stdout
    assert f"{migrate.head_revision()} (head)" in upgraded.stdout
    after = rows(database, CERTIFICATES)
    assert current == (0, f"{migrate.head_revision()} (head)\n", "")
    assert len(before) == 4
    assert [row[:5] for row in after] == [row[:5] for row in before]
    # 0004 gives the high-S envelopes (3 of the 4 here) their low-S twins: only s changes.
    assert [(envelope[:-32], signature_s(envelope)) for *_, envelope, _ in after] == [
        (envelope[:-32], min(signature_s(envelope), P256_ORDER - signature_s(envelope))) for *_, envelope, _ in before
    ]
    assert sum(old != new for old, new in zip(before, after, strict=True)) == 3
    assert all(sha256 == hashlib.sha256(envelope).hexdigest() for *_, envelope, sha256 in after)
    assert {(name, operation, status) for _, _, name, operation, status, _, _ in before} == {
        ("张伟", "2.1", "valid"),
        ("李强", "2.1", "revoked"),
        ("王芳", "2.2", "valid"),
        ("陈杰", "1.2", "valid"),
    }
    assert all(envelope.startswith(b"\xd2") for *_, envelope, _ in before)  # tag 18: COSE_Sign1
    assert rows(database, "SELECT code FROM issuers") == [("CN-44",)]


ENVELOPES = text("SELECT id, envelope, envelope_sha256 FROM certificates ORDER BY id")
SET_ENVELOPE = text("UPDATE certificates SET envelope = :envelope, envelope_sha256 = :sha256 WHERE id = :id")
RESPONSES = text("SELECT id, response_body FROM idempotency_records")
SET_RESPONSE = text("UPDATE idempotency_records SET response_body = :body WHERE id = :id")


def issue_welders(url, count):
    """Issue ``count`` certificates of CN-44 through the app on ``url``, each with an Idempotency-Key.

    Returns the requests (to replay them) and the QR texts issued.
    """
    admin = {"Authorization": f"Bearer {DEMO_SECRETS['admin_token']}"}
    with TestClient(create_app(Settings.for_demo(database_url=url), clock=FixedClock(TEST_NOW))) as client:
        client.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["2.1"]},
            headers=admin,
        ).raise_for_status()
        token = client.post("/v1/issuers/CN-44/api-keys", json={}, headers=admin).json()["token"]
        requests = [
            {
                "json": {
                    "holder_name": "张伟",
                    "holder_id_number": id_number_for(date(1990, 3, 7), sequence=100 + number),
                    "operation": "2.1",
                    "issue_date": TEST_TODAY.isoformat(),
                },
                "headers": {"Authorization": f"Bearer {token}", "Idempotency-Key": f"exam-{number}"},
            }
            for number in range(count)
        ]
        issued = [client.post("/v1/certificates", **request) for request in requests]
    assert [response.status_code for response in issued] == [201] * count
    return requests, [response.json()["qr_text"] for response in issued]


def registry_at_0003_with_high_s_envelopes(url):
    """Issue three certificates, go back to 0003 and give all but the first a high-S envelope by hand.

    The stored idempotent responses get the high-S QR texts too. Returns the issuance requests, the
    QR texts (the low-S originals) and the certificates' (id, envelope, sha256) before the change.
    """
    requests, qr_texts = issue_welders(url, 3)
    by_envelope = {crypto.envelope_from_qr_text(qr): qr for qr in qr_texts}
    with engine_on(url) as engine:
        migrate.downgrade(engine, revision="0003")
        with engine.begin() as connection:
            originals = [(row.id, bytes(row.envelope), row.envelope_sha256) for row in connection.execute(ENVELOPES)]
            responses = [(row.id, bytes(row.response_body)) for row in connection.execute(RESPONSES)]
            for certificate_id, envelope, _ in originals[1:]:
                twin = high_s_twin(envelope)
                connection.execute(
                    SET_ENVELOPE, {"id": certificate_id, "envelope": twin, "sha256": hashlib.sha256(twin).hexdigest()}
                )
                qr = by_envelope[envelope]
                digits = qr.partition("#")[2].encode()
                twin_digits = high_s_twin_text(qr, allow_insecure_localhost=True).partition("#")[2].encode()
                for record_id, body in responses:
                    if digits in body:
                        connection.execute(SET_RESPONSE, {"id": record_id, "body": body.replace(digits, twin_digits)})
            high = [signature_s(bytes(row.envelope)) > P256_ORDER // 2 for row in connection.execute(ENVELOPES)]
            stored = [json.loads(bytes(row.response_body))["qr_text"] for row in connection.execute(RESPONSES)]
    assert high == [False, True, True]
    assert len(set(stored) - set(qr_texts)) == 2
    return requests, qr_texts, originals


def upgrade_and_verify(url, requests, qr_texts):
    """Upgrade ``url`` to 0004, then head; return the result of the first, the rows, verify's decisions and replays."""
    with engine_on(url) as engine:
        result = migrate.upgrade(engine, revision="0004")
        migrate.upgrade(engine)
        with engine.connect() as connection:
            after = [(row.id, bytes(row.envelope), row.envelope_sha256) for row in connection.execute(ENVELOPES)]
    with TestClient(create_app(Settings.for_demo(database_url=url), clock=FixedClock(TEST_NOW))) as client:
        decisions = [client.post("/v1/verify", json={"qr": qr}).json()["decision"] for qr in qr_texts]
        replayed = [client.post("/v1/certificates", **request).json()["qr_text"] for request in requests]
    return result, after, decisions, replayed


def test_upgrade_to_0004_gives_high_s_envelopes_their_low_s_twins(sqlite_or_postgres_url, monkeypatch):
    """At 0003, hand-made high-S envelopes become their low-S twins (new SHA-256, replays too); verify accepts them."""
    for name in [name for name in os.environ if name.startswith("CERTSEAL_")]:
        monkeypatch.delenv(name)
    requests, qr_texts, originals = registry_at_0003_with_high_s_envelopes(sqlite_or_postgres_url)

    result, after, decisions, replayed = upgrade_and_verify(sqlite_or_postgres_url, requests, qr_texts)

    assert (result.before, result.after) == ("0003", "0004")
    assert after == originals
    assert decisions == ["accept"] * 3
    assert replayed == qr_texts


def test_db_current_on_an_empty_database_says_it_is_behind(tmp_path, cli):
    """``db current`` on an empty database exits 1 saying it is empty and naming ``certseal db upgrade``."""

    code, out, _err = cli("db", "current", "--database", f"sqlite:///{tmp_path / 'empty.db'}")

    assert code == 1
    assert "empty" in out
    assert UPGRADE_HINT in out


def test_serve_refuses_a_database_that_is_behind(tmp_path):
    """``serve`` on a pre-migration database exits 2 naming ``certseal db upgrade`` and never starts uvicorn."""
    database = legacy_copy(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = certseal("serve", "--port", str(port), "--database", f"sqlite:///{database}", cwd=tmp_path, **SERVE_ENV)

    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert UPGRADE_HINT in result.stderr
    assert "before schema migrations" in result.stderr
    assert "Uvicorn running" not in output
    assert rows(database, "SELECT name FROM sqlite_master WHERE name = 'alembic_version'") == []


def test_downgrade_one_then_upgrade_on_sqlite(tmp_path, migrated_sqlite, cli):
    """``db downgrade -1`` goes back one revision and ``db upgrade`` returns to head, on SQLite."""
    url = f"sqlite:///{migrated_sqlite(tmp_path / 'certseal.db')}"

    down = cli("db", "downgrade", "-1", "--database", url)
    behind = cli("db", "current", "--database", url)
    up = cli("db", "upgrade", "--database", url)

    assert down == (0, f"database downgraded: {migrate.head_revision()} (head) -> {previous_revision()}\n", "")
    assert behind[0] == 1
    assert f"at revision {previous_revision()}, behind head" in behind[1]
    assert UPGRADE_HINT in behind[1]
    assert up == (0, f"database upgraded: {previous_revision()} -> {migrate.head_revision()} (head)\n", "")
    assert schema_differences(url) == []


@pytest.mark.postgres
def test_downgrade_one_then_upgrade_on_postgres(postgres_url):
    """Downgrading one revision and upgrading again moves a PostgreSQL database back to head."""

    with engine_on(postgres_url) as engine:
        down = migrate.downgrade(engine, revision="-1")
        behind = migrate.current_revision(engine)
        up = migrate.upgrade(engine)

    assert (down.before, down.after) == (migrate.head_revision(), previous_revision())
    assert behind == previous_revision()
    assert (up.before, up.after) == (previous_revision(), migrate.head_revision())
    assert schema_differences(postgres_url) == []


def test_models_and_migrations_agree_on_sqlite(tmp_path, migrated_sqlite):
    """After ``upgrade head`` autogenerate finds nothing to change between the SQLite schema and the models."""
    url = f"sqlite:///{migrated_sqlite(tmp_path / 'certseal.db')}"

    differences = schema_differences(url)

    assert differences == []


@pytest.mark.postgres
def test_models_and_migrations_agree_on_postgres(postgres_url):
    """After ``upgrade head`` autogenerate finds nothing to change between the PostgreSQL schema and the models."""

    differences = schema_differences(postgres_url)

    assert differences == []


@pytest.mark.postgres
def test_concurrent_upgrades_on_postgres_migrate_once():
    """Two upgrades of one empty PostgreSQL database at once both succeed; the advisory lock lets one migrate."""
    results, errors = [], []
    start = threading.Barrier(2)

    def run(url):
        with engine_on(url) as engine:
            start.wait()
            try:
                results.append(migrate.upgrade(engine))
            except Exception as exc:  # noqa: BLE001 -- reported by the assertion below
                errors.append(exc)

    with postgres_database(prefix="certseal_race") as url:
        threads = [threading.Thread(target=run, args=(url,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        with engine_on(url) as engine:
            current = migrate.current_revision(engine)

    assert errors == []
    assert sorted((result.before or "", result.after) for result in results) == [
        ("", migrate.head_revision()),
        (migrate.head_revision(), migrate.head_revision()),
    ]
    assert current == migrate.head_revision()


@pytest.mark.postgres
def test_legacy_postgres_database_is_stamped(postgres_url):
    """A PostgreSQL database with the baseline tables but no ``alembic_version`` is stamped 0001 and upgraded."""
    with engine_on(postgres_url) as engine:
        migrate.downgrade(engine, revision=migrate.BASELINE_REVISION)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE alembic_version"))

        result = migrate.upgrade(engine)

    assert result == migrate.MigrationResult(migrate.BASELINE_REVISION, migrate.head_revision(), stamped_legacy=True)


def test_unknown_revision_is_refused_naming_the_upgrade(tmp_path, migrated_sqlite):
    """A database at a revision this code does not know (a newer certseal's) is refused as not current."""
    database = migrated_sqlite(tmp_path / "certseal.db")
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'f00dfeed'")

    with engine_on(f"sqlite:///{database}") as engine, pytest.raises(migrate.SchemaNotCurrent) as refused:
        migrate.require_current_schema(engine)

    assert refused.value.unknown is True
    assert "f00dfeed" in str(refused.value)
    assert UPGRADE_HINT in str(refused.value)


def test_app_start_up_refuses_an_empty_database(tmp_path, monkeypatch):
    """The app's lifespan no longer creates tables: on an empty database start-up fails with SchemaNotCurrent."""
    for name in [name for name in os.environ if name.startswith("CERTSEAL_")]:
        monkeypatch.delenv(name)
    app = create_app(Settings.for_demo(database_url=f"sqlite:///{tmp_path / 'empty.db'}"))

    with pytest.raises(migrate.SchemaNotCurrent, match=UPGRADE_HINT), TestClient(app):
        pass

    assert rows(tmp_path / "empty.db", "SELECT name FROM sqlite_master") == []
