"""The service on PostgreSQL (127.0.0.1:5432, trust auth), as several stateless replicas would run it.

Each test gets ``postgres_url`` (tests/conftest.py): a fresh database made with ``CREATE DATABASE ...
TEMPLATE`` from one migrated once per session, so no test runs the migrations itself.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.settings import DEMO_SECRETS, Settings
from schemas.idnumber import check_character

pytestmark = pytest.mark.postgres


def _id_number(birth: str, sequence: str) -> str:
    first17 = f"440106{birth}{sequence}"
    return first17 + check_character(first17)


def test_issue_verify_revoke_across_two_replicas(make_app, clock, postgres_url: str) -> None:
    """A certificate issued through one app instance is verified and revoked through another."""
    settings = Settings.for_demo(database_url=postgres_url)
    admin = {"Authorization": f"Bearer {DEMO_SECRETS['admin_token']}"}
    holder = _id_number("19900307", "123")
    with TestClient(make_app(settings)) as first, TestClient(make_app(settings)) as second:
        first.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["2.1"]},
            headers=admin,
        ).raise_for_status()
        token = first.post("/v1/issuers/CN-44/api-keys", json={}, headers=admin).json()["token"]
        issuer = {"Authorization": f"Bearer {token}"}
        issued = first.post(
            "/v1/certificates",
            json={"holder_name": "张伟", "holder_id_number": holder, "operation": "2.1", "issue_date": "2026-01-05"},
            headers={**issuer, "Idempotency-Key": "exam-2026-001"},
        ).json()

        accepted = second.post(
            "/v1/verify", json={"qr": issued["qr_text"], "purpose": "hot_work", "holder_id_number": holder}
        ).json()
        clock.advance(seconds=1)  # the two verification events are told apart by their time
        second.post(f"/v1/certificates/{issued['id']}/revoke", json={"reason": "fraud"}, headers=issuer)
        rejected = first.post("/v1/verify", json={"qr": issued["qr_text"]}).json()
        listed = second.post("/v1/certificates/search", json={"holder_id_number": holder}, headers=issuer).json()
        for client in (first, second):
            client.app.state.events.flush()  # type: ignore[attr-defined]
        with first.app.state.engine.connect() as connection:  # type: ignore[attr-defined]
            written = connection.execute(text("SELECT decision FROM verification_events ORDER BY at")).scalars().all()

    assert accepted["decision"] == "accept"
    assert "holder" in accepted["checks"]
    assert rejected["reasons"] == ["revoked"]
    assert [item["id"] for item in listed["items"]] == [issued["id"]]
    assert written == ["accept", "reject"]


def test_idempotent_retry_on_another_replica_returns_the_same_certificate(make_app, postgres_url: str) -> None:
    """A retry with the same Idempotency-Key on a second instance replays the first answer."""
    settings = Settings.for_demo(database_url=postgres_url)
    admin = {"Authorization": f"Bearer {DEMO_SECRETS['admin_token']}"}
    body = {
        "holder_name": "王芳",
        "holder_id_number": _id_number("19851120", "246"),
        "operation": "2.1",
        "issue_date": "2026-02-01",
    }
    with TestClient(make_app(settings)) as first, TestClient(make_app(settings)) as second:
        first.post(
            "/v1/issuers",
            json={"code": "CN-11", "name": "北京", "region": "北京市", "operations": ["2.1"]},
            headers=admin,
        ).raise_for_status()
        token = first.post("/v1/issuers/CN-11/api-keys", json={}, headers=admin).json()["token"]
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "batch-7/row-12"}

        original = first.post("/v1/certificates", json=body, headers=headers)
        retry = second.post("/v1/certificates", json=body, headers=headers)
        total = second.get("/v1/certificates", headers={"Authorization": headers["Authorization"]}).json()["total"]

    assert original.status_code == retry.status_code == 201
    assert retry.json()["id"] == original.json()["id"]
    assert retry.headers["Idempotent-Replay"] == "true"
    assert total == 1
