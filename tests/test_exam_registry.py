"""Training institutions, exam points and exam sessions through the API: ownership, 教考分离, status, accreditation."""

from __future__ import annotations

from datetime import date, timedelta

from conftest import TEST_TODAY
from sqlmodel import Session, select

from api.models import Certificate, ExamPoint


def _institution(client, headers, code="TI-1", **extra):
    return client.post(
        "/v1/training-institutions", json={"code": code, "name": "培训中心", "region": "广州", **extra}, headers=headers
    )


def _point(client, headers, code="EP-1", **extra):
    body = {
        "code": code,
        "name": "考试点",
        "region": "广州",
        "address": "黄埔区 1 号",
        "operations": ["2.1"],
        "capacity_per_session": 30,
        "accredited_from": "2026-01-01",
        **extra,
    }
    return client.post("/v1/exam-points", json=body, headers=headers)


def _session(client, headers, point="EP-1", **extra):
    body = {"exam_point": point, "operation": "2.1", "exam_date": TEST_TODAY.isoformat(), **extra}
    return client.post("/v1/exam-sessions", json=body, headers=headers)


def test_issuer_registers_institutions_and_points_it_alone_sees(app_client, issuer, other_issuer, admin_headers):
    """An issuer's institutions and exam points answer 404 to another issuer and are all listed for the admin."""
    _institution(app_client, issuer.headers, "TI-OWN")
    created = _point(app_client, issuer.headers, excluded_training_institutions=["TI-OWN"])

    foreign_point = app_client.get("/v1/exam-points/EP-1", headers=other_issuer.headers)
    foreign_institution = app_client.get("/v1/training-institutions/TI-OWN", headers=other_issuer.headers)
    admin_points = app_client.get("/v1/exam-points", headers=admin_headers).json()
    other_points = app_client.get("/v1/exam-points", headers=other_issuer.headers).json()

    assert created.status_code == 201, created.text
    assert created.json()["excluded_training_institutions"] == ["TI-OWN"]
    assert created.json()["issuer"] == "CN-44"
    assert foreign_point.status_code == 404
    assert foreign_point.json()["error"]["code"] == "exam_point_not_found"
    assert foreign_institution.json()["error"]["code"] == "training_institution_not_found"
    assert [point["code"] for point in admin_points["items"]] == ["EP-1"]
    assert other_points["total"] == 0


def test_admin_registers_for_a_named_issuer(app_client, issuer, admin_headers):
    """The admin must name the issuer; with it the row belongs to that issuer."""
    without = _institution(app_client, admin_headers, "TI-A")
    named = _institution(app_client, admin_headers, "TI-A", issuer="CN-44")

    listed = app_client.get("/v1/training-institutions", headers=issuer.headers).json()

    assert without.status_code == 422
    assert without.json()["error"]["code"] == "issuer_required"
    assert named.status_code == 201
    assert [row["code"] for row in listed["items"]] == ["TI-A"]


def test_codes_are_unique_and_issuers_register_only_for_themselves(app_client, issuer, other_issuer):
    """A taken code is 409; an issuer key naming another issuer is 403."""
    _institution(app_client, issuer.headers, "TI-X")

    again = _institution(app_client, other_issuer.headers, "TI-X")
    foreign = _institution(app_client, issuer.headers, "TI-Y", issuer="CN-11")

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "training_institution_exists"
    assert foreign.status_code == 403


def test_exam_point_items_and_exclusions_are_checked(app_client, issuer, other_issuer):
    """Items outside the issuer's scope are 403; an exclusion naming no institution of the issuer is 422."""
    _institution(app_client, other_issuer.headers, "TI-OTHER")

    outside = _point(app_client, issuer.headers, operations=["1.1"])
    unknown = _point(app_client, issuer.headers, excluded_training_institutions=["TI-NONE"])
    foreign = _point(app_client, issuer.headers, excluded_training_institutions=["TI-OTHER"])
    capacity = _point(app_client, issuer.headers, capacity_per_session=10_001)

    assert outside.status_code == 403
    assert outside.json()["error"]["code"] == "operation_not_allowed"
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "unknown_training_institution"
    assert foreign.json()["error"]["code"] == "unknown_training_institution"
    assert capacity.status_code == 422


def test_suspended_point_refuses_new_sessions_until_reinstated(app_client, issuer):
    """Suspension blocks new sessions with 409 exam_point_not_active; reinstatement allows them again."""
    _point(app_client, issuer.headers)

    suspended = app_client.post("/v1/exam-points/EP-1/suspend", json={"reason": "违规"}, headers=issuer.headers)
    refused = _session(app_client, issuer.headers)
    twice = app_client.post("/v1/exam-points/EP-1/suspend", json={"reason": "again"}, headers=issuer.headers)
    reinstated = app_client.post("/v1/exam-points/EP-1/reinstate", json={"reason": "整改"}, headers=issuer.headers)
    allowed = _session(app_client, issuer.headers)

    assert suspended.json()["status"] == "suspended"
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "exam_point_not_active"
    assert twice.status_code == 409
    assert twice.json()["error"]["code"] == "invalid_exam_point_transition"
    assert reinstated.json()["status"] == "active"
    assert allowed.status_code == 201, allowed.text


def test_closed_point_is_final_and_refuses_sessions(app_client, issuer):
    """A closed exam point cannot be reinstated and holds no new session."""
    _point(app_client, issuer.headers)

    closed = app_client.post(
        "/v1/exam-points/EP-1/close", json={"reason": "取缔", "review_from": "2026-01-01"}, headers=issuer.headers
    )
    reinstate = app_client.post("/v1/exam-points/EP-1/reinstate", json={"reason": "no"}, headers=issuer.headers)
    refused = _session(app_client, issuer.headers)

    assert closed.json()["status"] == "closed"
    assert closed.json()["review_from"] == "2026-01-01"
    assert reinstate.json()["error"]["code"] == "invalid_exam_point_transition"
    assert refused.json()["error"]["code"] == "exam_point_not_active"


def test_exam_date_outside_accreditation_is_refused(app_client, issuer):
    """A session before accredited_from or after accredited_until is 409 exam_point_not_active."""
    _point(app_client, issuer.headers, accredited_until="2026-12-31")

    before = _session(app_client, issuer.headers, exam_date="2025-12-31")
    after = _session(app_client, issuer.headers, exam_date="2027-01-01")
    inside = _session(app_client, issuer.headers, exam_date="2026-12-31")

    assert before.json()["error"]["code"] == "exam_point_not_active"
    assert after.json()["error"]["code"] == "exam_point_not_active"
    assert inside.status_code == 201


def test_session_item_must_be_the_points(app_client, issuer):
    """An item the exam point is not accredited for is 403 operation_not_allowed."""
    _point(app_client, issuer.headers)

    response = _session(app_client, issuer.headers, operation="2.2")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "operation_not_allowed"


def test_sessions_are_owned_listed_and_filtered(app_client, issuer, other_issuer, admin_headers):
    """Sessions list by exam point; another issuer gets 404 for one, the admin reads it."""
    _point(app_client, issuer.headers)
    _point(app_client, issuer.headers, code="EP-2")
    first = _session(app_client, issuer.headers, proctor_ids=["P-1", "P-2"], real_equipment=True).json()
    _session(app_client, issuer.headers, point="EP-2")

    filtered = app_client.get("/v1/exam-sessions", params={"exam_point": "EP-1"}, headers=issuer.headers).json()
    foreign = app_client.get(f"/v1/exam-sessions/{first['id']}", headers=other_issuer.headers)
    by_admin = app_client.get(f"/v1/exam-sessions/{first['id']}", headers=admin_headers)
    bad_id = app_client.get("/v1/exam-sessions/not-an-id", headers=issuer.headers)

    assert [row["id"] for row in filtered["items"]] == [first["id"]]
    assert first["proctor_ids"] == ["P-1", "P-2"]
    assert first["real_equipment"] is True
    assert first["results"] == 0
    assert foreign.status_code == 404
    assert by_admin.json()["exam_point"] == "EP-1"
    assert bad_id.json()["error"]["code"] == "exam_session_not_found"


def test_closed_point_lists_its_certificates_since_review_from(app, app_client, issuer, issue):
    """After closure, certificates with the point and an issue date from review_from on are listed, not revoked."""
    _point(app_client, issuer.headers)
    old = issue(issuer, issue_date=(TEST_TODAY - timedelta(days=30)).isoformat())
    recent = issue(issuer, holder_name="王芳")
    with Session(app.state.engine) as session:
        point_id = session.exec(select(ExamPoint.id).where(ExamPoint.code == "EP-1")).one()
        for certificate_id in (old["id"], recent["id"]):
            row = session.get(Certificate, certificate_id)
            row.exam_point_id = point_id
            session.add(row)
        session.commit()

    open_list = app_client.get("/v1/exam-points/EP-1/certificates-to-review", headers=issuer.headers).json()
    app_client.post(
        "/v1/exam-points/EP-1/close",
        json={"reason": "取缔", "review_from": (TEST_TODAY - timedelta(days=7)).isoformat()},
        headers=issuer.headers,
    )
    listed = app_client.get("/v1/exam-points/EP-1/certificates-to-review", headers=issuer.headers).json()
    still = app_client.get(f"/v1/certificates/{recent['id']}", headers=issuer.headers).json()

    assert open_list["total"] == 0
    assert [row["id"] for row in listed["items"]] == [recent["id"]]
    assert listed["items"][0]["masked_id"].count("*") == 10
    assert still["status"] == "valid"


def test_add_months_keeps_the_day_or_takes_the_months_last():
    """add_months moves by calendar months and clamps to the end of a shorter month."""
    from schemas.dates import add_months

    assert add_months(date(2026, 6, 15), 12) == date(2027, 6, 15)
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2024, 3, 31), -1) == date(2024, 2, 29)
    assert add_months(date(2026, 12, 5), 1) == date(2027, 1, 5)
