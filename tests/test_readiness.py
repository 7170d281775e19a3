"""/readyz: the database, the schema revision and every registered readiness check (e.g. Redis)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from api import migrate
from api.routers.health import register_readiness_check


def _set_revision(engine, revision):
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})


def test_ready_when_every_dependency_answers(app, app_client):
    """With the database at head and a registered check passing, /readyz answers 200 ok."""
    register_readiness_check(app, "redis", lambda: None)

    ready = app_client.get("/readyz")

    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_failing_check_makes_readyz_503_naming_it(app, app_client, kind):
    """A registered check that raises (plain or async) gives 503 with its name in `failed`."""

    def down() -> None:
        raise ConnectionError("redis is down")

    async def down_async() -> None:
        raise ConnectionError("redis is down")

    register_readiness_check(app, "redis", down if kind == "sync" else down_async)

    ready = app_client.get("/readyz")

    assert (ready.status_code, ready.json()) == (503, {"status": "unavailable", "failed": ["redis"]})


@pytest.mark.parametrize("settings", [{"verify_db_deadline_ms": 100}], indirect=True)
def test_a_check_slower_than_the_deadline_fails(app, app_client):
    """A check still running at the verify deadline counts as failed, so the probe answers in bounded time."""

    async def hangs() -> None:
        await asyncio.sleep(5)

    app_client.get("/readyz")  # opens the lane's connection (on PostgreSQL, connect + SETs): not the subject here
    register_readiness_check(app, "redis", hangs)

    ready = app_client.get("/readyz")

    assert (ready.status_code, ready.json()["failed"]) == (503, ["redis"])


def test_a_schema_behind_head_makes_readyz_503(app, app_client):
    """A database whose recorded revision is not the head this code knows answers 503 naming `schema`."""
    _set_revision(app.state.engine, migrate.BASELINE_REVISION)

    ready = app_client.get("/readyz")

    assert migrate.head_revision() != migrate.BASELINE_REVISION
    assert (ready.status_code, ready.json()) == (503, {"status": "unavailable", "failed": ["schema"]})


def test_the_schema_is_read_again_only_after_the_recheck_interval(app, app_client):
    """After a success the revision is trusted for the interval; once it has passed, a change is seen."""
    first = app_client.get("/readyz")
    _set_revision(app.state.engine, migrate.BASELINE_REVISION)

    cached = app_client.get("/readyz")
    app.state.schema_current_until = 0.0  # as if SCHEMA_RECHECK_SECONDS had passed
    rechecked = app_client.get("/readyz")

    assert [first.status_code, cached.status_code, rechecked.status_code] == [200, 200, 503]
    assert rechecked.json()["failed"] == ["schema"]
