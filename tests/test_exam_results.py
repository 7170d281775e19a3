"""Bulk import of exam results (CSV and JSON): every row rule, line numbers, idempotence, and no ID number echoed."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from conftest import TEST_TODAY, id_number_for
from sqlmodel import Session, select

from api.models import Certificate, ExamResult

HAN_DIGITS = str.maketrans("0123456789", "零一二三四五六七八九")  # names hold letters only, never digits
HEADER = "id_number,name,theory_score,practical_score,training_institution"


def _person(n: int, *, born: date = date(1990, 1, 1)) -> str:
    return id_number_for(born + timedelta(days=n), sequence=100 + n % 800)


@pytest.fixture
def exam(app_client, issuer):
    """Return a function opening a session (after an exam point EP-1, institutions TI-OWN excluded, TI-FREE)."""
    app_client.post(
        "/v1/training-institutions", json={"code": "TI-OWN", "name": "自办", "region": "广州"}, headers=issuer.headers
    )
    app_client.post(
        "/v1/training-institutions", json={"code": "TI-FREE", "name": "他办", "region": "广州"}, headers=issuer.headers
    )

    def open_session(capacity: int = 30, exam_date: date = TEST_TODAY, code: str = "EP-1") -> str:
        app_client.post(
            "/v1/exam-points",
            json={
                "code": code,
                "name": "考试点",
                "region": "广州",
                "address": "黄埔区 1 号",
                "operations": ["2.1"],
                "capacity_per_session": capacity,
                "accredited_from": "2020-01-01",
                "excluded_training_institutions": ["TI-OWN"],
            },
            headers=issuer.headers,
        )
        created = app_client.post(
            "/v1/exam-sessions",
            json={"exam_point": code, "operation": "2.1", "exam_date": exam_date.isoformat()},
            headers=issuer.headers,
        )
        assert created.status_code == 201, created.text
        return created.json()["id"]

    return open_session


def _csv(*rows: str, bom: bool = False) -> bytes:
    return (("\ufeff" if bom else "") + "\n".join([HEADER, *rows]) + "\n").encode()


def _post_csv(client, session_id, data, headers):
    return client.post(
        f"/v1/exam-sessions/{session_id}/results", content=data, headers={**headers, "Content-Type": "text/csv"}
    )


def test_good_csv_is_recorded_with_pass_rule_and_usable_until(app_client, issuer, exam):
    """Both scores >= 80 pass; 79 in either fails; a pass is usable for 12 months from the exam date."""
    session_id = exam()
    data = _csv(f"{_person(1)},张伟,80,80,TI-FREE", f"{_person(2)},王芳,79,95,", f"{_person(3)},李强,100,79,")

    report = _post_csv(app_client, session_id, data, issuer.headers)
    results = app_client.get(f"/v1/exam-sessions/{session_id}/results", headers=issuer.headers).json()

    assert report.status_code == 200, report.text
    assert report.json() == {
        "rows": 3,
        "accepted": 3,
        "unchanged": 0,
        "passed": 1,
        "rejected": 0,
        "errors": [],
        "warnings": [],
    }
    by_name = {row["holder_name"]: row for row in results["items"]}
    assert by_name["张伟"]["passed"] is True
    assert by_name["王芳"]["passed"] is False
    assert by_name["李强"]["passed"] is False
    assert by_name["张伟"]["usable_until"] == "2027-06-15"
    assert by_name["张伟"]["training_institution"] == "TI-FREE"
    assert by_name["张伟"]["training_institution_registered"] is True
    assert by_name["张伟"]["masked_id"] == _person(1)[:4] + "*" * 10 + _person(1)[-4:]
    assert by_name["张伟"]["certificate_id"] is None


def test_bad_rows_get_codes_with_physical_line_numbers(app_client, issuer, exam):
    """Each bad row gets its code and line (header = 1, blank lines and quoted newlines counted); good rows go in."""
    session_id = exam()
    young = id_number_for(TEST_TODAY - timedelta(days=17 * 365))
    old = id_number_for(date(1950, 1, 1))
    data = _csv(
        f"{_person(1)},张伟,90,90,",  # 2 ok
        "440106199001011230,王芳,90,90,",  # 3 bad check character
        "",  # 4 blank
        f"{_person(2)},,90,90,",  # 5 no name
        f'{_person(3)},"李\n强",101,90,',  # 6-7 invalid name (a quoted newline: no name holds a line break)
        f"{_person(4)},陈静,eighty,90,",  # 8 not a number
        f"{young},赵六,90,90,",  # 9 too young
        f"{old},钱七,90,90,",  # 10 too old
        f"{_person(1)},张伟,90,90,",  # 11 duplicate of line 2
        f"{_person(5)},孙八,90,90,TI-OWN",  # 12 trained by the exam point
        f"{_person(6)},周九,90",  # 13 malformed
        f"{_person(7)},吴十,85,85,TI-NEW",  # 14 ok, unregistered institution
        f"{_person(8)},郑一,85.5,85,",  # 15 decimal
    )

    response = _post_csv(app_client, session_id, data, issuer.headers)

    report = response.json()
    assert [(error["line"], error["code"]) for error in report["errors"]] == [
        (3, "invalid_id_number"),
        (5, "missing_name"),
        (6, "invalid_name"),
        (8, "score_out_of_range"),
        (9, "holder_too_young"),
        (10, "holder_too_old"),
        (11, "duplicate_candidate"),
        (12, "trained_by_exam_point"),
        (13, "malformed_row"),
        (15, "score_out_of_range"),
    ]
    assert [(warning["line"], warning["code"]) for warning in report["warnings"]] == [
        (14, "unregistered_training_institution")
    ]
    assert (report["rows"], report["accepted"], report["rejected"], report["passed"]) == (12, 2, 10, 2)
    results = app_client.get(f"/v1/exam-sessions/{session_id}/results", headers=issuer.headers).json()
    unregistered = next(row for row in results["items"] if row["training_institution"] == "TI-NEW")
    assert unregistered["training_institution_registered"] is False


def test_no_id_number_or_name_is_echoed(app_client, issuer, exam):
    """Neither the report nor the result listing carries a full ID number, and errors never quote a name."""
    session_id = exam(capacity=1)
    numbers = [_person(1), _person(2), "440106199001011230"]
    data = _csv(f"{numbers[0]},张伟,90,90,", f"{numbers[1]},王芳,90,90,", f"{numbers[2]},李强,90,90,")

    report = _post_csv(app_client, session_id, data, issuer.headers)
    listing = app_client.get(f"/v1/exam-sessions/{session_id}/results", headers=issuer.headers)

    for text in (report.text, listing.text):
        assert all(number not in text for number in numbers)
    assert "王芳" not in report.text
    assert "李强" not in report.text


def test_reimporting_the_same_csv_changes_nothing(app, app_client, issuer, exam):
    """The same file twice: the second answer is all unchanged and no row is added."""
    session_id = exam()
    data = _csv(f"{_person(1)},张伟,90,90,", f"{_person(2)},王芳,60,90,", "bad,李强,90,90,")

    first = _post_csv(app_client, session_id, data, issuer.headers).json()
    second = _post_csv(app_client, session_id, data, issuer.headers).json()

    assert (first["accepted"], first["unchanged"], first["rejected"]) == (2, 0, 1)
    assert (second["accepted"], second["unchanged"], second["rejected"]) == (0, 2, 1)
    with Session(app.state.engine) as session:
        assert len(session.exec(select(ExamResult.id)).all()) == 2


def test_changed_result_is_a_conflict(app_client, issuer, exam):
    """A stored candidate sent again with other scores is result_conflict: results are immutable."""
    session_id = exam()
    _post_csv(app_client, session_id, _csv(f"{_person(1)},张伟,70,90,"), issuer.headers)

    report = _post_csv(app_client, session_id, _csv(f"{_person(1)},张伟,90,90,"), issuer.headers).json()

    assert [(error["line"], error["code"]) for error in report["errors"]] == [(2, "result_conflict")]


def test_bom_and_no_bom_read_alike(app_client, issuer, exam):
    """A UTF-8 BOM (as Excel writes) is accepted like plain UTF-8, and CRLF line ends too."""
    first, second = exam(), exam(code="EP-2")
    plain = _csv(f"{_person(1)},张伟,90,90,")
    with_bom = _csv(f"{_person(1)},张伟,90,90,", bom=True).replace(b"\n", b"\r\n")

    a = _post_csv(app_client, first, plain, issuer.headers).json()
    b = _post_csv(app_client, second, with_bom, issuer.headers).json()

    assert a["accepted"] == b["accepted"] == 1


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"id_number,name,theory,practical,training_institution\n", "invalid_csv_header"),
        (b"", "invalid_csv_header"),
        (
            "id_number,name,theory_score,practical_score,training_institution\n张伟".encode("gb18030"),
            "invalid_encoding",
        ),
        (b'id_number,name,theory_score,practical_score,training_institution\n"open,1,2,3,4', "malformed_csv"),
    ],
)
def test_unreadable_csv_is_422(app_client, issuer, exam, data, code):
    """A wrong header, a non-UTF-8 file or broken quoting is refused as a whole with a code."""
    session_id = exam()

    response = _post_csv(app_client, session_id, data, issuer.headers)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


def test_json_rows_are_numbered_by_position(app_client, issuer, exam):
    """A JSON list is reported by 1-based position; a non-object row is malformed_row."""
    session_id = exam()
    body = [
        {"id_number": _person(1), "name": "张伟", "theory_score": 90, "practical_score": 88},
        "not a row",
        {"id_number": _person(2), "name": "王芳", "theory_score": True, "practical_score": 88},
        {"id_number": _person(3), "name": "李强", "theory_score": "85", "practical_score": 88, "extra": 1},
    ]

    report = app_client.post(f"/v1/exam-sessions/{session_id}/results", json=body, headers=issuer.headers).json()
    not_a_list = app_client.post(f"/v1/exam-sessions/{session_id}/results", json={"a": 1}, headers=issuer.headers)
    other_type = app_client.post(
        f"/v1/exam-sessions/{session_id}/results",
        content=b"x",
        headers={**issuer.headers, "Content-Type": "text/plain"},
    )

    assert [(error["line"], error["code"]) for error in report["errors"]] == [
        (2, "malformed_row"),
        (3, "score_out_of_range"),
        (4, "malformed_row"),
    ]
    assert report["accepted"] == 1
    assert not_a_list.json()["error"]["code"] == "invalid_results_body"
    assert other_type.status_code == 415


def test_capacity_counts_stored_results(app_client, issuer, exam):
    """Rows beyond the capacity are over_capacity, counting what an earlier import stored; re-sent rows are not."""
    session_id = exam(capacity=3)
    _post_csv(app_client, session_id, _csv(f"{_person(1)},A,90,90,", f"{_person(2)},B,90,90,"), issuer.headers)

    report = _post_csv(
        app_client,
        session_id,
        _csv(f"{_person(1)},A,90,90,", f"{_person(3)},C,90,90,", f"{_person(4)},D,90,90,"),
        issuer.headers,
    ).json()

    assert (report["unchanged"], report["accepted"]) == (1, 1)
    assert [(error["line"], error["code"]) for error in report["errors"]] == [(4, "over_capacity")]


def test_one_retake_then_retakes_exhausted(app_client, issuer, exam, clock):
    """A candidate who failed once may retake (attempt 2); after two fails within 12 months a third is refused."""
    first = exam(exam_date=TEST_TODAY - timedelta(days=60))
    second = exam(exam_date=TEST_TODAY - timedelta(days=30), code="EP-2")
    third = exam(code="EP-3")
    fail = _csv(f"{_person(1)},张伟,50,90,")

    _post_csv(app_client, first, fail, issuer.headers)
    retake = _post_csv(app_client, second, fail, issuer.headers).json()
    exhausted = _post_csv(app_client, third, _csv(f"{_person(1)},张伟,95,90,"), issuer.headers).json()
    results = app_client.get(f"/v1/exam-sessions/{second}/results", headers=issuer.headers).json()

    assert retake["accepted"] == 1
    assert results["items"][0]["attempt"] == 2
    assert [(error["line"], error["code"]) for error in exhausted["errors"]] == [(2, "retakes_exhausted")]


def test_future_session_takes_no_results(app_client, issuer, exam):
    """Results for an exam date still ahead are refused with 409 exam_not_held."""
    session_id = exam(exam_date=TEST_TODAY + timedelta(days=3))

    response = _post_csv(app_client, session_id, _csv(f"{_person(1)},张伟,90,90,"), issuer.headers)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "exam_not_held"


def test_results_are_owned(app_client, issuer, other_issuer, admin_headers, exam):
    """Another issuer gets 404 for the session's results and a single result; the admin reads them."""
    session_id = exam()
    _post_csv(app_client, session_id, _csv(f"{_person(1)},张伟,90,90,"), issuer.headers)
    result_id = app_client.get(f"/v1/exam-sessions/{session_id}/results", headers=issuer.headers).json()["items"][0][
        "id"
    ]

    foreign_import = _post_csv(app_client, session_id, _csv(f"{_person(2)},王芳,90,90,"), other_issuer.headers)
    foreign_list = app_client.get(f"/v1/exam-sessions/{session_id}/results", headers=other_issuer.headers)
    foreign_one = app_client.get(f"/v1/exam-results/{result_id}", headers=other_issuer.headers)
    admin_one = app_client.get(f"/v1/exam-results/{result_id}", headers=admin_headers)

    assert foreign_import.status_code == 404
    assert foreign_list.status_code == 404
    assert foreign_one.json()["error"]["code"] == "exam_result_not_found"
    assert admin_one.json()["holder_name"] == "张伟"


def test_result_shows_its_certificate(app, app_client, issuer, issue, exam):
    """A result with a certificate (certificates.exam_result_id) lists the certificate's id and serial."""
    session_id = exam()
    _post_csv(app_client, session_id, _csv(f"{_person(1)},张伟,90,90,"), issuer.headers)
    result_id = app_client.get(f"/v1/exam-sessions/{session_id}/results", headers=issuer.headers).json()["items"][0][
        "id"
    ]
    certificate = issue(issuer)
    with Session(app.state.engine) as session:
        row = session.get(Certificate, certificate["id"])
        row.exam_result_id = result_id
        session.add(row)
        session.commit()

    result = app_client.get(f"/v1/exam-results/{result_id}", headers=issuer.headers).json()

    assert (result["certificate_id"], result["certificate_serial"]) == (certificate["id"], certificate["serial"])


@pytest.mark.slow
def test_twenty_thousand_rows_import_in_one_upload(app_client, issuer, exam):
    """A 20,000-row CSV (over the 1 MiB body limit) imports in one request: 10,000 recorded, the rest over capacity."""
    session_id = exam(capacity=10_000)
    born = [date(1970, 1, 1) + timedelta(days=n // 50) for n in range(20_000)]
    rows = [
        f"{id_number_for(day, sequence=n % 50 * 2 + 1)},欧阳考生{f'{n:05d}'.translate(HAN_DIGITS)}号,90,90,TI-FREE"
        for n, day in enumerate(born)
    ]
    data = _csv(*rows)

    report = _post_csv(app_client, session_id, data, issuer.headers).json()

    assert len(data) > 1_048_576
    assert (report["accepted"], report["rejected"]) == (10_000, 10_000)
    assert {error["code"] for error in report["errors"]} == {"over_capacity"}
