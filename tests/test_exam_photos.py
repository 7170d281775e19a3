"""Candidates' photos: a zip matched by keyed hash (names never kept or echoed), zip-bomb guards, one by one."""

from __future__ import annotations

import base64
import io
import zipfile
from datetime import date

import pytest
from conftest import TEST_TODAY, id_number_for
from PIL import Image
from sqlmodel import Session, select

from api.models import ExamResult

PEOPLE = [id_number_for(date(1990, 1, n)) for n in (1, 2, 3)]


def _jpeg(size: tuple[int, int] = (60, 80)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (180, 140, 120)).save(out, format="JPEG")
    return out.getvalue()


def _zip(entries: list[tuple[str, bytes]], *, compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return out.getvalue()


@pytest.fixture
def session_id(app_client, issuer):
    """A session at EP-1 with results for PEOPLE[0] and PEOPLE[1]."""
    app_client.post(
        "/v1/exam-points",
        json={
            "code": "EP-1",
            "name": "考试点",
            "region": "广州",
            "address": "黄埔区",
            "operations": ["2.1"],
            "capacity_per_session": 30,
            "accredited_from": "2020-01-01",
        },
        headers=issuer.headers,
    )
    created = app_client.post(
        "/v1/exam-sessions",
        json={"exam_point": "EP-1", "operation": "2.1", "exam_date": TEST_TODAY.isoformat()},
        headers=issuer.headers,
    ).json()
    rows = [
        {"id_number": PEOPLE[n], "name": f"考生{'甲乙丙'[n]}", "theory_score": 90, "practical_score": 90}
        for n in (0, 1)
    ]
    app_client.post(f"/v1/exam-sessions/{created['id']}/results", json=rows, headers=issuer.headers)
    return created["id"]


def _upload(client, session_id, data, headers):
    return client.post(
        f"/v1/exam-sessions/{session_id}/photos", content=data, headers={**headers, "Content-Type": "application/zip"}
    )


def test_zip_photos_are_matched_cleaned_and_reported_by_position(app, app_client, issuer, session_id):
    """Matched photos are stored re-encoded; unmatched, misnamed and undecodable entries are named by position only."""
    data = _zip(
        [
            (f"photos/{PEOPLE[0]}.jpg", _jpeg()),
            (f"{PEOPLE[2]}.jpg", _jpeg()),
            ("readme.txt", b"hello"),
            (f"{PEOPLE[1]}.png", b"not an image"),
            (f"{PEOPLE[0]}.JPEG", _jpeg()),
        ]
    )

    response = _upload(app_client, session_id, data, issuer.headers)
    listing = app_client.get(f"/v1/exam-sessions/{session_id}/results", headers=issuer.headers).json()

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["matched"] == 1
    assert [(error["entry"], error["code"]) for error in report["errors"]] == [
        (2, "unmatched_photo"),
        (3, "invalid_file_name"),
        (4, "invalid_photo"),
        (5, "duplicate_photo"),
    ]
    assert all(number not in response.text for number in PEOPLE)
    assert sorted(row["has_photo"] for row in listing["items"]) == [False, True]
    with Session(app.state.engine) as session:
        photo = session.exec(select(ExamResult.photo).where(ExamResult.photo.is_not(None))).one()  # type: ignore[union-attr]
    assert photo.startswith(b"\xff\xd8")
    assert b"photos/" not in photo


def test_oversized_and_bomb_entries_are_refused(app_client, issuer, session_id, settings):
    """An entry unpacking past max_photo_bytes (a highly compressible bomb) is photo_too_large, never unpacked whole."""
    bomb = b"\x00" * (settings.max_photo_bytes * 4)
    data = _zip([(f"{PEOPLE[0]}.jpg", bomb)], compression=zipfile.ZIP_DEFLATED)

    report = _upload(app_client, session_id, data, issuer.headers).json()

    assert len(data) < settings.max_photo_bytes
    assert [(error["entry"], error["code"]) for error in report["errors"]] == [(1, "photo_too_large")]
    assert report["matched"] == 0


def test_not_a_zip_is_422(app_client, issuer, session_id):
    """A body that is not a zip is refused as a whole with invalid_zip."""
    response = _upload(app_client, session_id, b"PK\x03\x04 broken", issuer.headers)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_zip"


def test_too_many_entries_is_422(app_client, issuer, session_id, monkeypatch):
    """A zip with more entries than the cap is refused before any entry is read."""
    from api.services import exam_results

    monkeypatch.setattr(exam_results, "MAX_ZIP_ENTRIES", 2)
    data = _zip([(f"{n}.jpg", b"x") for n in range(3)])

    response = _upload(app_client, session_id, data, issuer.headers)

    assert response.json()["error"]["code"] == "invalid_zip"


def test_photo_of_one_result_is_set_and_owned(app_client, issuer, other_issuer, session_id):
    """PUT /v1/exam-results/{id}/photo stores a cleaned photo; another issuer gets 404; a bad photo is 422."""
    result_id = app_client.get(f"/v1/exam-sessions/{session_id}/results", headers=issuer.headers).json()["items"][0][
        "id"
    ]
    body = {"photo_base64": base64.b64encode(_jpeg()).decode()}

    stored = app_client.put(f"/v1/exam-results/{result_id}/photo", json=body, headers=issuer.headers)
    foreign = app_client.put(f"/v1/exam-results/{result_id}/photo", json=body, headers=other_issuer.headers)
    bad = app_client.put(
        f"/v1/exam-results/{result_id}/photo", json={"photo_base64": "bm90IGFuIGltYWdl"}, headers=issuer.headers
    )
    read = app_client.get(f"/v1/exam-results/{result_id}", headers=issuer.headers).json()

    assert stored.status_code == 204
    assert foreign.status_code == 404
    assert bad.json()["error"]["code"] == "invalid_photo"
    assert read["has_photo"] is True


def test_upload_paths_take_bodies_over_the_global_limit(app_client, issuer, session_id):
    """The photo path accepts a body over CERTSEAL_MAX_BODY_BYTES; other paths still answer 413."""
    padding = [(f"{PEOPLE[2]}-{n}.bin", bytes(range(256)) * 1500) for n in range(4)]
    data = _zip([(f"{PEOPLE[0]}.jpg", _jpeg()), *padding])

    upload = _upload(app_client, session_id, data, issuer.headers)
    elsewhere = app_client.post(
        "/v1/exam-points", content=data, headers={**issuer.headers, "Content-Type": "application/json"}
    )

    assert len(data) > 1_048_576
    assert upload.json()["matched"] == 1
    assert elsewhere.status_code == 413
