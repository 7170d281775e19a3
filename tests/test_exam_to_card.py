"""The whole chain, exam to card: a session's results CSV becomes signed, printed cards whose every QR verifies.

Through the API (500 candidates with planted bad rows) and through the command line (exam import, batch
issue, batch cards). Every page of the PDF is rasterised at 300 dpi, every QR on it decoded with zxing-cpp
and verified online: every passed candidate gets exactly one card, and each one verifies ``accept``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
import zxingcpp
from conftest import TEST_TODAY, ApiIssuer, FixedClock, id_number_for
from fastapi.testclient import TestClient

from crypto import CST

HEADER = "id_number,name,theory_score,practical_score,training_institution"
RENDER_DPI = 300
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平"


def candidate(n: int) -> tuple[str, str]:
    """The n-th fictitious candidate: a valid ID number (born 1970-1999) and a two- or three-character name."""
    born = date(1970 + n % 30, 1 + n % 12, 1 + n % 28)
    name = SURNAMES[n % len(SURNAMES)] + GIVEN[(n // 20) % len(GIVEN)] + ("" if n % 3 else GIVEN[n % len(GIVEN)])
    return id_number_for(born, sequence=100 + n % 800), name


def results_csv(count: int, planted: dict[int, str]) -> tuple[str, int]:
    """A results CSV of ``count`` candidates with the rows in ``planted`` (row index -> kind) made bad; return it and
    how many rows pass."""
    lines, passes = [HEADER], 0
    for n in range(count):
        number, name = candidate(n)
        theory, practical, institution = 80 + n % 20, 85, "TI-A"
        kind = planted.get(n)
        if kind == "invalid_id_number":
            number = number[:-1] + ("0" if number[-1] != "0" else "1")
        elif kind == "holder_too_young":
            number = id_number_for(TEST_TODAY.replace(year=TEST_TODAY.year - 15), sequence=500 + n)
        elif kind == "score_out_of_range":
            theory = 120
        elif kind == "missing_name":
            name = ""
        elif kind == "duplicate_candidate":
            number, name = candidate(n - 1)
        elif kind == "trained_by_exam_point":
            institution = "TI-OWN"
        elif kind == "failed":
            practical = 60
        if kind is None or kind == "unregistered":
            passes += 1
        if kind == "unregistered":
            institution = "TI-UNKNOWN"
        lines.append(f"{number},{name},{theory},{practical},{institution}")
    return "\n".join(lines) + "\n", passes


PLANTED = {
    7: "invalid_id_number",
    41: "holder_too_young",
    99: "score_out_of_range",
    150: "missing_name",
    201: "duplicate_candidate",
    333: "trained_by_exam_point",
    404: "failed",
    455: "unregistered",
}
ERRORS = {kind for kind in PLANTED.values() if kind not in ("failed", "unregistered")}


def open_exam_session(client: TestClient, issuer: ApiIssuer, *, exam_date: date, capacity: int = 600) -> str:
    """Register two training institutions, an exam point that may not examine one of them, and a welding session."""
    for code in ("TI-A", "TI-OWN"):
        created = client.post(
            "/v1/training-institutions",
            json={"code": code, "name": f"{code} 培训中心", "region": "广东省"},
            headers=issuer.headers,
        )
        assert created.status_code == 201, created.text
    point = client.post(
        "/v1/exam-points",
        json={
            "code": "EP-GZ-01",
            "name": "广州市安全生产考试点",
            "region": "广东省",
            "address": "广州市天河区",
            "operations": ["2.1"],
            "capacity_per_session": capacity,
            "accredited_from": "2020-01-01",
            "excluded_training_institutions": ["TI-OWN"],
        },
        headers=issuer.headers,
    )
    assert point.status_code == 201, point.text
    session = client.post(
        "/v1/exam-sessions",
        json={
            "exam_point": "EP-GZ-01",
            "operation": "2.1",
            "exam_date": exam_date.isoformat(),
            "theory_exam": True,
            "practical_exam": True,
            "real_equipment": True,
            "proctor_ids": ["P-1", "P-2"],
        },
        headers=issuer.headers,
    )
    assert session.status_code == 201, session.text
    return session.json()["id"]  # type: ignore[no-any-return]


def qr_texts_of(pdf: bytes) -> tuple[int, list[str]]:
    """The page count of a PDF and every valid QR text on its pages, rasterised at 300 dpi."""
    document = pypdfium2.PdfDocument(pdf)
    texts: list[str] = []
    try:
        for page in document:
            picture = page.render(scale=RENDER_DPI / 72).to_pil().convert("L")
            texts += [found.text for found in zxingcpp.read_barcodes(picture, formats=zxingcpp.BarcodeFormat.QRCode)]
        return len(document), texts
    finally:
        document.close()


def wait_for_batch(client: TestClient, batch_id: str, headers: dict[str, str], *, seconds: float = 120) -> Any:
    """Poll the batch until it is done or failed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        batch = client.get(f"/v1/certificate-batches/{batch_id}", headers=headers).json()
        if batch["status"] in ("done", "failed"):
            return batch  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} did not finish in {seconds} s")


@pytest.mark.slow
def test_a_session_of_500_becomes_printed_cards_that_all_verify(
    app_client: TestClient, make_issuer: Callable[..., ApiIssuer], verify: Callable[..., dict[str, Any]]
) -> None:
    """500 results with planted bad rows → per-row errors; the passes → one batch → A4 sheets whose QRs all accept."""
    issuer = make_issuer("CN-44", ["2.1"])
    session_id = open_exam_session(app_client, issuer, exam_date=TEST_TODAY - timedelta(days=5))
    body, passes = results_csv(500, PLANTED)

    report = app_client.post(
        f"/v1/exam-sessions/{session_id}/results",
        content=body.encode(),
        headers={**issuer.headers, "Content-Type": "text/csv"},
    ).json()
    submitted = app_client.post(
        "/v1/certificate-batches",
        json={"session": session_id},
        headers={**issuer.headers, "Idempotency-Key": "season-2026-06"},
    )
    batch = wait_for_batch(app_client, submitted.json()["id"], issuer.headers)
    cards = app_client.get(f"/v1/certificate-batches/{batch['id']}/cards.pdf", headers=issuer.headers)
    pages, texts = qr_texts_of(cards.content)
    verdicts = [verify(text, purpose="hot_work") for text in texts]

    expected_errors = {index + 2: kind for index, kind in PLANTED.items() if kind in ERRORS}  # line = row + header
    assert {error["line"]: error["code"] for error in report["errors"]} == expected_errors
    assert [(w["line"], w["code"]) for w in report["warnings"]] == [(457, "unregistered_training_institution")]
    assert (report["accepted"], report["passed"]) == (500 - len(ERRORS), passes)
    assert all(candidate(n)[0] not in str(report) for n in range(500))
    assert submitted.status_code == 202
    assert (batch["status"], batch["total"], batch["done"], batch["errors"]) == ("done", passes, passes, [])
    assert len(set(batch["certificate_ids"])) == passes
    assert cards.status_code == 200
    assert pages == -(-passes // 10)  # 10 cards an A4 sheet
    assert len(texts) == len(set(texts)) == passes
    assert [verdict["decision"] for verdict in verdicts] == ["accept"] * passes
    assert {verdict["certificate"]["exam_point"]["code"] for verdict in verdicts} == {"EP-GZ-01"}


@pytest.mark.slow
def test_the_command_line_runs_the_same_chain(
    app_client: TestClient,
    clock: FixedClock,
    issuer: ApiIssuer,
    settings: Any,
    run_cli: Callable[..., tuple[int, str, str]],
    verify: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    """`certseal exam import`, `batch issue` and `batch cards` turn a CSV into a PDF whose every QR verifies."""
    clock.at = datetime.now(CST)  # the command line signs on the system clock: verify on it too
    session_id = open_exam_session(app_client, issuer, exam_date=clock.at.date() - timedelta(days=2))
    body, passes = results_csv(30, {3: "invalid_id_number", 11: "failed", 17: "trained_by_exam_point"})
    results = tmp_path / "results.csv"
    results.write_text(body, encoding="utf-8")
    common = ("--database", settings.database_url, "--demo")

    imported = run_cli("exam", "import", "--session", session_id, str(results), *common)
    issued = run_cli("batch", "issue", "--session", session_id, *common)
    batch_id = issued[1].split()[1].rstrip(":")
    printed = run_cli("batch", "cards", batch_id, "--out", str(tmp_path / "cards.pdf"), *common)
    pages, texts = qr_texts_of((tmp_path / "cards.pdf").read_bytes())

    assert imported[0] == 1  # two rows refused
    assert "line 5: error invalid_id_number" in imported[1]
    assert "line 19: error trained_by_exam_point" in imported[1]
    assert issued[0] == 0, issued
    assert f"{passes} certificates" in issued[1]
    assert printed[0] == 0, printed
    assert (pages, len(set(texts))) == (3, passes)
    assert [verify(text)["decision"] for text in texts] == ["accept"] * passes
