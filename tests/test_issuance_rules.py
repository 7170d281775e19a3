"""Issuance rules: certificates for passed exam results, direct issuance by policy, the reapplication bar, reissue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from conftest import TEST_TODAY, ApiIssuer, api_certificate_body, id_number_for
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

import crypto
from api.models import ExamPoint, ExamResult, ExamSession, Issuer
from api.security import id_number_hmac
from api.settings import Settings
from schemas.dates import add_years

HOLDER = id_number_for(date(1985, 3, 12))


def record_result(
    app: FastAPI,
    issuer_code: str,
    *,
    id_number: str = HOLDER,
    passed: bool = True,
    exam_date: date = TEST_TODAY - timedelta(days=10),
    operation: str = "2.1",
    usable_until: date | None = None,
) -> str:
    """Store an exam point, a session and one candidate's result for the issuer; return the result's id."""
    settings: Settings = app.state.settings
    with Session(app.state.engine) as session:
        issuer = session.exec(select(Issuer).where(Issuer.code == issuer_code)).one()
        point = ExamPoint(
            code=f"EP-{crypto.mask_visible(id_number)}-{exam_date:%m%d}-{operation}",
            issuer_id=issuer.id,
            name="广州市安全生产考试点",
            region="广东省",
            address="广州市天河区",
            operations=[operation],
            capacity_per_session=100,
            accredited_from=date(2020, 1, 1),
        )
        exam = ExamSession(issuer_id=issuer.id, exam_point_id=point.id, operation=operation, exam_date=exam_date)
        result = ExamResult(
            session_id=exam.id,
            issuer_id=issuer.id,
            holder_name="张伟",
            masked_id=crypto.mask_visible(id_number),
            id_hmac=id_number_hmac(id_number, settings.id_hmac_keys[settings.id_hmac_key_version]),
            id_hmac_version=settings.id_hmac_key_version,
            birth_date=date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14])),
            theory_score=92 if passed else 60,
            practical_score=88,
            passed=passed,
            usable_until=usable_until or exam_date + timedelta(days=365),
        )
        for row in (point, exam, result):  # no ORM relationships: parents first, for the foreign keys
            session.add(row)
            session.flush()
        session.commit()
        return result.id


@pytest.fixture
def exam_result(app: FastAPI, issuer: ApiIssuer) -> Callable[..., str]:
    """Return a function storing an exam result of issuer CN-44 (keywords as :func:`record_result`)."""

    def make(**options: Any) -> str:
        return record_result(app, issuer.code, **options)

    return make


def test_a_passed_exam_result_becomes_a_certificate_that_names_its_exam_point(
    app_client: TestClient, issuer: ApiIssuer, exam_result: Callable[..., str], verify: Callable[..., dict[str, Any]]
) -> None:
    """A certificate for a passed result takes its holder from the result; verify names the exam point."""
    result_id = exam_result()

    response = app_client.post("/v1/certificates", json={"exam_result_id": result_id}, headers=issuer.headers)

    assert response.status_code == 201, response.text
    certificate = response.json()
    assert certificate["basis"] == "exam"
    assert certificate["exam_result_id"] == result_id
    assert certificate["holder_name"] == "张伟"
    assert certificate["issue_date"] == TEST_TODAY.isoformat()
    assert certificate["masked_id"] == crypto.display_masked(crypto.mask_visible(HOLDER))
    answer = verify(certificate["qr_text"], holder_id_number=HOLDER)
    assert answer["decision"] == "accept"
    assert answer["certificate"]["exam_point"]["name"] == "广州市安全生产考试点"


@pytest.mark.parametrize(
    "extra",
    [{"holder_name": "李强"}, {"holder_id_number": HOLDER}, {"operation": "2.1"}, {"basis": "renewal"}],
)
def test_holder_fields_beside_an_exam_result_are_a_422(
    app_client: TestClient, issuer: ApiIssuer, exam_result: Callable[..., str], extra: dict[str, str]
) -> None:
    """The exam result names the holder: holder fields or a basis given alongside it are refused."""
    body = {"exam_result_id": exam_result(), **extra}

    response = app_client.post("/v1/certificates", json=body, headers=issuer.headers)

    assert response.status_code == 422
    assert HOLDER not in response.text


def test_a_failed_result_is_refused(app_client: TestClient, issuer: ApiIssuer, exam_result: Callable[..., str]) -> None:
    """A fail gets no certificate: 409 exam_not_passed."""
    result_id = exam_result(passed=False)

    response = app_client.post("/v1/certificates", json={"exam_result_id": result_id}, headers=issuer.headers)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "exam_not_passed"


def test_a_pass_past_its_usable_period_is_refused(
    app_client: TestClient, issuer: ApiIssuer, exam_result: Callable[..., str]
) -> None:
    """A pass older than its 12 months is refused with 409 exam_result_expired."""
    result_id = exam_result(exam_date=TEST_TODAY - timedelta(days=400), usable_until=TEST_TODAY - timedelta(days=35))

    response = app_client.post("/v1/certificates", json={"exam_result_id": result_id}, headers=issuer.headers)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "exam_result_expired"


def test_a_result_is_certified_once(app_client: TestClient, issuer: ApiIssuer, exam_result: Callable[..., str]) -> None:
    """A second certificate for the same result is refused with 409 exam_result_certified."""
    body = {"exam_result_id": exam_result()}
    first = app_client.post("/v1/certificates", json=body, headers=issuer.headers)

    second = app_client.post("/v1/certificates", json=body, headers=issuer.headers)

    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "exam_result_certified"


def test_an_unknown_or_foreign_result_is_refused_alike(
    app: FastAPI, app_client: TestClient, issuer: ApiIssuer, other_issuer: ApiIssuer
) -> None:
    """Another issuer's result answers exactly as a result that does not exist: 409 exam_result_not_found."""
    foreign = record_result(app, other_issuer.code)

    answers = [
        app_client.post("/v1/certificates", json={"exam_result_id": result_id}, headers=issuer.headers)
        for result_id in (foreign, "0" * 32)
    ]

    assert [answer.status_code for answer in answers] == [409, 409]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["error"]["code"] == "exam_result_not_found"


@pytest.mark.parametrize(
    ("policy", "basis", "status", "recorded"),
    [
        ("allowed", None, 201, "direct"),
        ("allowed", "renewal", 201, "renewal"),
        ("with_basis", None, 409, None),
        ("with_basis", "legacy_migration", 201, "legacy_migration"),
        ("off", "legacy_migration", 409, None),
    ],
)
def test_direct_issuance_follows_the_policy(
    make_settings: Callable[..., Settings],
    make_app: Callable[[Settings], FastAPI],
    admin_headers: dict[str, str],
    policy: str,
    basis: str | None,
    status: int,
    recorded: str | None,
) -> None:
    """CERTSEAL_DIRECT_ISSUANCE decides whether a certificate without an exam result is signed, and records why."""
    app = make_app(make_settings(direct_issuance=policy))
    with TestClient(app) as client:
        client.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东", "operations": ["2.1"]},
            headers=admin_headers,
        )
        token = client.post("/v1/issuers/CN-44/api-keys", json={}, headers=admin_headers).json()["token"]

        response = client.post(
            "/v1/certificates",
            json=api_certificate_body(basis=basis),
            headers={"Authorization": f"Bearer {token}"},
        )

    assert response.status_code == status, response.text
    if recorded is None:
        assert response.json()["error"]["code"] == "direct_issuance_refused"
    else:
        assert response.json()["basis"] == recorded


def test_outside_demo_mode_direct_issuance_needs_a_basis(make_production_settings: Callable[..., Settings]) -> None:
    """The default policy is with_basis in production and allowed in demo mode."""
    production = make_production_settings()

    demo = Settings.for_demo()

    assert production.direct_issuance_in_effect == "with_basis"
    assert demo.direct_issuance_in_effect == "allowed"


def test_a_revoked_holder_is_barred_from_the_item_for_three_years(
    app_client: TestClient,
    issuer: ApiIssuer,
    issue: Callable[..., dict[str, Any]],
    clock: Any,
) -> None:
    """After a revocation the holder gets no new certificate for that item for 3 years; other items are open."""
    revoked = issue(issuer)
    app_client.post(f"/v1/certificates/{revoked['id']}/revoke", json={"reason": "欺骗取得"}, headers=issuer.headers)

    same_item = app_client.post("/v1/certificates", json=api_certificate_body(), headers=issuer.headers)
    other_item = app_client.post("/v1/certificates", json=api_certificate_body(operation="2.2"), headers=issuer.headers)
    clock.advance(days=3 * 365 + 1)
    after_the_bar = app_client.post(
        "/v1/certificates",
        json=api_certificate_body(issue_date=(TEST_TODAY + timedelta(days=3 * 365 + 1)).isoformat()),
        headers=issuer.headers,
    )

    assert same_item.status_code == 409
    assert same_item.json()["error"]["code"] == "reapplication_barred"
    assert other_item.status_code == 201
    assert after_the_bar.status_code == 201, after_the_bar.text


def test_the_bar_applies_to_an_exam_result_too(
    app_client: TestClient, issuer: ApiIssuer, issue: Callable[..., dict[str, Any]], exam_result: Callable[..., str]
) -> None:
    """A passed exam does not lift the bar: its certificate is refused with 409 reapplication_barred."""
    revoked = issue(issuer)
    app_client.post(f"/v1/certificates/{revoked['id']}/revoke", json={"reason": "冒用"}, headers=issuer.headers)
    result_id = exam_result()

    response = app_client.post("/v1/certificates", json={"exam_result_id": result_id}, headers=issuer.headers)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "reapplication_barred"


def test_a_reissue_supersedes_the_old_certificate_and_names_the_new_serial(
    app_client: TestClient,
    issuer: ApiIssuer,
    issue: Callable[..., dict[str, Any]],
    verify: Callable[..., dict[str, Any]],
) -> None:
    """A reissue signs a new certificate with the same holder and dates; the old QR answers superseded."""
    old = issue(issuer)

    response = app_client.post(
        f"/v1/certificates/{old['id']}/reissue", json={"reason": "证件遗失补发"}, headers=issuer.headers
    )

    assert response.status_code == 201, response.text
    new = response.json()
    assert new["basis"] == "reissue"
    assert new["supersedes_id"] == old["id"]
    assert new["serial"] != old["serial"]
    assert (new["valid_until"], new["masked_id"], new["holder_name"]) == (
        old["valid_until"],
        old["masked_id"],
        old["holder_name"],
    )
    old_answer = verify(old["qr_text"])
    assert old_answer["decision"] == "reject"
    assert "superseded" in old_answer["reasons"]
    assert old_answer["certificate"]["superseded_by"] == new["serial"]
    assert verify(new["qr_text"], holder_id_number=HOLDER)["decision"] == "accept"


def test_a_retried_reissue_answers_the_same(
    app_client: TestClient, issuer: ApiIssuer, issue: Callable[..., dict[str, Any]]
) -> None:
    """With an Idempotency-Key a retried reissue replays the first answer instead of failing on the new status."""
    old = issue(issuer)
    headers = {**issuer.headers, "Idempotency-Key": "reissue-1"}

    first = app_client.post(f"/v1/certificates/{old['id']}/reissue", json={"reason": "补发"}, headers=headers)
    second = app_client.post(f"/v1/certificates/{old['id']}/reissue", json={"reason": "补发"}, headers=headers)

    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replay"] == "true"


@pytest.mark.parametrize("action", ["revoke", "suspend"])
def test_only_a_valid_certificate_is_reissued(
    app_client: TestClient, issuer: ApiIssuer, issue: Callable[..., dict[str, Any]], action: str
) -> None:
    """A revoked or suspended certificate is not cleared by a reissue: 409 invalid_transition."""
    old = issue(issuer)
    app_client.post(f"/v1/certificates/{old['id']}/{action}", json={"reason": "违规"}, headers=issuer.headers)

    response = app_client.post(f"/v1/certificates/{old['id']}/reissue", json={"reason": "补发"}, headers=issuer.headers)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_transition"


def test_a_reissue_keeps_the_review_date(
    app_client: TestClient, issuer: ApiIssuer, issue: Callable[..., dict[str, Any]]
) -> None:
    """The reissued certificate keeps the registry's review date (a recorded review is not lost)."""
    old = issue(issuer)
    reviewed = app_client.post(
        f"/v1/certificates/{old['id']}/review",
        json={"next_review_due": add_years(TEST_TODAY, 3).isoformat()},
        headers=issuer.headers,
    ).json()

    new = app_client.post(f"/v1/certificates/{old['id']}/reissue", json={"reason": "补发"}, headers=issuer.headers)

    assert new.json()["review_due"] == reviewed["review_due"]


def test_an_admin_override_lifts_the_bar_for_one_exam_result(
    app_client: TestClient,
    issuer: ApiIssuer,
    issue: Callable[..., dict[str, Any]],
    exam_result: Callable[..., str],
    admin_headers: dict[str, str],
) -> None:
    """Only the admin may lift the bar, with a reason; the result is then certified and the reason stays on it."""
    revoked = issue(issuer)
    app_client.post(f"/v1/certificates/{revoked['id']}/revoke", json={"reason": "冒用"}, headers=issuer.headers)
    result_id = exam_result()
    path = f"/v1/exam-results/{result_id}/reapplication-override"

    by_issuer = app_client.post(path, json={"reason": "自行解除"}, headers=issuer.headers)
    by_admin = app_client.post(path, json={"reason": "复议撤销原吊销决定"}, headers=admin_headers)
    issued = app_client.post("/v1/certificates", json={"exam_result_id": result_id}, headers=issuer.headers)

    assert by_issuer.status_code == 403
    assert by_admin.status_code == 200, by_admin.text
    assert by_admin.json()["reapplication_override"] == "复议撤销原吊销决定"
    assert issued.status_code == 201, issued.text
