"""What the page adds from the exam chain: the exam point of a certificate, and a reissue's new serial."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser

from crypto import CST

from .conftest import ADMIN_HEADERS, AppServer, id_number, phone_context, settled
from .page_checks import screen_checks

pytestmark = pytest.mark.browser


def issue_through_the_exam_chain(server: AppServer) -> tuple[str, str, str]:
    """An exam point, a session, one passed result, its certificate and a reissue of it.

    Returns the QR text of the exam-based certificate, the old QR after a reissue and the new serial.
    """
    today = datetime.now(CST).date()
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        client.post(
            "/v1/issuers",
            headers=ADMIN_HEADERS,
            json={"code": "CN-44", "name": "广东省应急管理厅", "region": "广东省", "operations": ["2.1"]},
        ).raise_for_status()
        token = client.post("/v1/issuers/CN-44/api-keys", headers=ADMIN_HEADERS, json={}).json()["token"]
        issuer = {"Authorization": f"Bearer {token}"}
        client.post(
            "/v1/exam-points",
            headers=issuer,
            json={
                "code": "EP-GZ-01",
                "name": "广州市安全生产考试点",
                "region": "广东省",
                "address": "广州市天河区",
                "operations": ["2.1"],
                "capacity_per_session": 40,
                "accredited_from": "2020-01-01",
            },
        ).raise_for_status()
        session = client.post(
            "/v1/exam-sessions",
            headers=issuer,
            json={"exam_point": "EP-GZ-01", "operation": "2.1", "exam_date": (today - timedelta(days=2)).isoformat()},
        ).json()
        client.post(
            f"/v1/exam-sessions/{session['id']}/results",
            headers=issuer,
            json=[
                {"id_number": id_number("19900307", "123"), "name": "张伟", "theory_score": 90, "practical_score": 88}
            ],
        ).raise_for_status()
        result = client.get(f"/v1/exam-sessions/{session['id']}/results", headers=issuer).json()["items"][0]
        from_exam = client.post("/v1/certificates", headers=issuer, json={"exam_result_id": result["id"]}).json()
        old = client.post(
            "/v1/certificates",
            headers=issuer,
            json={"holder_name": "李强", "holder_id_number": id_number("19851120", "245"), "operation": "2.1"},
        ).json()
        new = client.post(f"/v1/certificates/{old['id']}/reissue", headers=issuer, json={"reason": "证件遗失补发"})
        new.raise_for_status()
    return from_exam["qr_text"], old["qr_text"], new.json()["serial"]


def test_the_exam_point_is_a_detail_and_a_superseded_card_names_its_replacement(
    browser: Browser, start_server: Callable[..., AppServer]
) -> None:
    """An accepted exam-based card shows 考试点; a reissued card's old QR is refused naming the new serial."""
    server = start_server()
    from_exam, superseded, new_serial = issue_through_the_exam_chain(server)
    context = phone_context(browser)
    page = context.new_page()

    page.goto(from_exam)
    accepted = settled(page)
    details = page.inner_text("#details")
    accept_checks = screen_checks(page)
    page.goto(superseded)
    refused = settled(page)
    next_text = page.inner_text("#next")
    reject_checks = screen_checks(page)
    context.close()

    assert accepted["verdict"] == "accept"
    assert "考试点" in details
    assert "广州市安全生产考试点" in details
    assert refused["verdict"] == "reject"
    assert f"新证序列号：{new_serial}" in next_text
    assert (accept_checks["axe"], accept_checks["overflow"]) == ([], {})
    assert reject_checks == {"green": [], "axe": [], "overflow": {}}
