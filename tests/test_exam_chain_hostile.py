"""Hostile input to the chain from exam to card: every refusal is a clear 4xx with a code, never a 500.

Results bodies (JSON and CSV), row values, photo zips, path and query parameters, Idempotency-Key headers
and ownership across issuers. Each case names the exact status and error code (or row code) it expects.
The upload limit is lowered for this module (256 KiB) so "huge" bodies stay cheap to build.
"""

from __future__ import annotations

import io
import json
import struct
import time
import unicodedata
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_TODAY, ApiIssuer, id_number_for
from fastapi.testclient import TestClient
from PIL import Image

HEADER = "id_number,name,theory_score,practical_score,training_institution"
UPLOAD_LIMIT = 262_144
PERSON = id_number_for(date(1990, 5, 17))
OTHER_PERSON = id_number_for(date(1991, 6, 18))
PERSON_X = id_number_for(date(1988, 2, 3), check="X")
FULL_WIDTH = {ord(c): ord(c) + 0xFEE0 for c in "0123456789"}
ROUTERS = Path(__file__).resolve().parent.parent / "api" / "routers"


@pytest.fixture
def settings(make_settings):
    """Demo settings with small body limits, so an over-limit body is cheap."""
    return make_settings(max_body_bytes=65_536, max_upload_bytes=UPLOAD_LIMIT)


def error_code(response: Any) -> str | None:
    """The machine-readable error code of a response (None for a success)."""
    body = response.json()
    return body.get("error", {}).get("code") if isinstance(body, dict) else None


def open_session(client: TestClient, issuer: ApiIssuer, *, point: str = "EP-H1") -> str:
    """Register TI-A, an exam point and a welding session held today; return the session id."""
    client.post(
        "/v1/training-institutions", json={"code": "TI-A", "name": "培训中心", "region": "广州"}, headers=issuer.headers
    )
    created_point = client.post(
        "/v1/exam-points",
        json={
            "code": point,
            "name": "考试点",
            "region": "广州",
            "address": "黄埔区 1 号",
            "operations": ["2.1"],
            "capacity_per_session": 100,
            "accredited_from": "2020-01-01",
        },
        headers=issuer.headers,
    )
    assert created_point.status_code == 201, created_point.text
    created = client.post(
        "/v1/exam-sessions",
        json={"exam_point": point, "operation": "2.1", "exam_date": TEST_TODAY.isoformat()},
        headers=issuer.headers,
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]  # type: ignore[no-any-return]


@pytest.fixture
def session_id(app_client, issuer) -> str:
    """An exam session of CN-44's, held today, with no results yet."""
    return open_session(app_client, issuer)


def post_results(client: TestClient, session: str, data: bytes, content_type: str | None, headers: dict[str, str]):
    """POST raw bytes to a session's results with the given Content-Type (None: no such header)."""
    sent = dict(headers)
    if content_type is not None:
        sent["Content-Type"] = content_type
    return client.post(f"/v1/exam-sessions/{session}/results", content=data, headers=sent)


def csv_body(*rows: str) -> bytes:
    """A results CSV: the header, then ``rows``."""
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def jpeg() -> bytes:
    """A small genuine JPEG."""
    out = io.BytesIO()
    Image.new("RGB", (40, 50), (180, 140, 120)).save(out, format="JPEG")
    return out.getvalue()


def zipped(*entries: tuple[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip of the given (name, bytes) entries."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return out.getvalue()


def with_bad_crc(data: bytes) -> bytes:
    """The zip with its first entry's CRC-32 changed in both the local and the central header."""
    damaged = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 14), (b"PK\x01\x02", 16)):
        at = damaged.index(signature) + offset
        (crc,) = struct.unpack_from("<I", damaged, at)
        struct.pack_into("<I", damaged, at, crc ^ 0xFFFFFFFF)
    return bytes(damaged)


def with_damaged_entry(data: bytes) -> bytes:
    """The zip with its first entry's local header signature broken (the central directory still points at it)."""
    damaged = bytearray(data)
    at = damaged.index(b"PK\x03\x04")
    damaged[at : at + 4] = b"XX\x03\x04"
    return bytes(damaged)


# --- Results bodies as a whole -------------------------------------------------------------------------


WHOLE_BODY_CASES = [
    pytest.param(
        b"[" * 100_000 + b"]" * 100_000, "application/json", 422, "invalid_results_body", id="json-nested-lists"
    ),
    pytest.param(
        b'{"a":' * 40_000 + b"1" + b"}" * 40_000,
        "application/json",
        422,
        "invalid_results_body",
        id="json-nested-objects",
    ),
    pytest.param(
        b"[" + b"9" * 5000 + b"]", "application/json", 422, "invalid_results_body", id="json-5000-digit-number"
    ),
    pytest.param(b"", "application/json", 422, "invalid_results_body", id="json-empty"),
    pytest.param(b"null", "application/json", 422, "invalid_results_body", id="json-null"),
    pytest.param(b'{"rows": []}', "application/json", 422, "invalid_results_body", id="json-object"),
    pytest.param(b"\xff\xfe[\x00]\x00", "application/json", 200, None, id="json-utf16-empty-list"),
    pytest.param(b"[" + b" " * (UPLOAD_LIMIT + 1) + b"]", "application/json", 413, "payload_too_large", id="json-huge"),
    pytest.param(csv_body() + b"#" * (UPLOAD_LIMIT + 1), "text/csv", 413, "payload_too_large", id="csv-huge"),
    pytest.param(csv_body(), None, 415, "unsupported_media_type", id="no-content-type"),
    pytest.param(csv_body(), "text/plain", 415, "unsupported_media_type", id="text-plain"),
    pytest.param(csv_body(), "application/xml", 415, "unsupported_media_type", id="xml"),
    pytest.param(csv_body(), "multipart/form-data; boundary=x", 415, "unsupported_media_type", id="multipart"),
    pytest.param(csv_body(), "application/zip", 415, "unsupported_media_type", id="zip-to-results"),
    pytest.param(b"[]", "application/json; charset=utf-8", 200, None, id="json-with-charset"),
    pytest.param(csv_body(), "TEXT/CSV; charset=UTF-8", 200, None, id="csv-upper-case-type"),
    pytest.param(b"\xef\xbb\xbf" + csv_body(), "text/csv", 200, None, id="csv-bom"),
    pytest.param(b"\xef\xbb\xbf\xef\xbb\xbf" + csv_body(), "text/csv", 422, "invalid_csv_header", id="csv-double-bom"),
    pytest.param(
        HEADER.encode() + b"\n" + f"{PERSON},张伟,90,90,".encode("gbk"),
        "text/csv",
        422,
        "invalid_encoding",
        id="csv-gbk",
    ),
    pytest.param(
        csv_body(f"{PERSON},张伟,90,90,").decode().encode("utf-16"), "text/csv", 422, "invalid_encoding", id="csv-utf16"
    ),
    pytest.param(csv_body(f"{PERSON},张\x00伟,90,90,"), "text/csv", 422, "invalid_encoding", id="csv-nul"),
    pytest.param(
        csv_body(f'{PERSON},"{"x" * 140_000}",90,90,'), "text/csv", 422, "malformed_csv", id="csv-giant-field"
    ),
    pytest.param(csv_body(f'{PERSON},"张伟,90,90,'), "text/csv", 422, "malformed_csv", id="csv-open-quote"),
    pytest.param(b"", "text/csv", 422, "invalid_csv_header", id="csv-empty"),
    pytest.param(
        HEADER.replace("name", "id_number").encode() + b"\n",
        "text/csv",
        422,
        "invalid_csv_header",
        id="csv-duplicate-column",
    ),
    pytest.param(
        b"id_number,name,theory_score,practical_score\n", "text/csv", 422, "invalid_csv_header", id="csv-missing-column"
    ),
    pytest.param((HEADER + ",remarks\n").encode(), "text/csv", 422, "invalid_csv_header", id="csv-extra-column"),
    pytest.param(
        b"name,id_number,theory_score,practical_score,training_institution\n",
        "text/csv",
        422,
        "invalid_csv_header",
        id="csv-reordered",
    ),
]


@pytest.mark.parametrize(("data", "content_type", "status", "code"), WHOLE_BODY_CASES)
def test_a_hostile_results_body_is_refused_whole_with_a_code(
    app_client, issuer, session_id, data, content_type, status, code
):
    """A results body that cannot be read as a whole gets one clear 4xx and code (well-formed ones answer 200)."""

    response = post_results(app_client, session_id, data, content_type, issuer.headers)

    assert (response.status_code, error_code(response)) == (status, code), response.text[:300]


# --- Row values ---------------------------------------------------------------------------------------


def csv_report(client: TestClient, session: str, headers: dict[str, str], row: str) -> dict[str, Any]:
    """Import one CSV row and return the report (asserting the upload as a whole was read)."""
    response = post_results(client, session, csv_body(row), "text/csv", headers)
    assert response.status_code == 200, response.text[:300]
    return response.json()  # type: ignore[no-any-return]


def row_codes(report: dict[str, Any]) -> list[str]:
    """The codes of the report's refused rows."""
    return [error["code"] for error in report["errors"]]


CSV_ROW_CASES = [
    # names
    pytest.param(f"{PERSON},张\x07伟,90,90,", "invalid_name", id="name-bell"),
    pytest.param(f"{PERSON},张\x1b[31m伟,90,90,", "invalid_name", id="name-ansi-escape"),
    pytest.param(f'{PERSON},"张\r\n伟",90,90,', "invalid_name", id="name-line-break"),
    pytest.param(f"{PERSON},\u202e伟张,90,90,", "invalid_name", id="name-bidi-override"),
    pytest.param(f"{PERSON},张\u2066伟,90,90,", "invalid_name", id="name-bidi-isolate"),
    pytest.param(f"{PERSON},张\u200b伟,90,90,", "invalid_name", id="name-zero-width-space"),
    pytest.param(f"{PERSON},张\ufeff伟,90,90,", "invalid_name", id="name-inner-bom"),
    pytest.param(f"{PERSON},张\ue000伟,90,90,", "invalid_name", id="name-private-use"),
    pytest.param(f"{PERSON},   ,90,90,", "missing_name", id="name-spaces"),
    pytest.param(f"{PERSON},\u3000\u3000,90,90,", "missing_name", id="name-ideographic-spaces"),
    pytest.param(f"{PERSON},\t,90,90,", "missing_name", id="name-tab"),
    pytest.param(f"{PERSON},{'张' * 65},90,90,", "invalid_name", id="name-too-long"),
    pytest.param(f'{PERSON},=HYPERLINK("http://x"),90,90,', "invalid_name", id="name-formula-equals"),
    pytest.param(f"{PERSON},+1+1,90,90,", "invalid_name", id="name-formula-plus"),
    pytest.param(f"{PERSON},-2+3,90,90,", "invalid_name", id="name-formula-minus"),
    pytest.param(f"{PERSON},@SUM(A1),90,90,", "invalid_name", id="name-formula-at"),
    pytest.param(f"{PERSON},<script>,90,90,", "invalid_name", id="name-markup"),
    pytest.param(f"{PERSON},{'张' * 33},90,90,", "invalid_name", id="name-33-chars"),
    pytest.param(f"{PERSON},Zhang  Wei,90,90,", "invalid_name", id="name-double-space"),
    pytest.param(f"{PERSON},张伟2,90,90,", "invalid_name", id="name-digit"),
    pytest.param(f"{PERSON},{'张' * 32},90,90,", None, id="name-32-chars"),
    pytest.param(f"{PERSON}, 张伟　,90,90,", None, id="name-padded"),
    pytest.param(f"{PERSON},阿卜杜拉·买买提,90,90,", None, id="name-middle-dot"),
    pytest.param(f"{PERSON},Zhang Wei,90,90,", None, id="name-latin"),
    # ID numbers
    pytest.param(
        f"{PERSON[:-1]}{'0' if PERSON[-1] != '0' else '1'},张伟,90,90,", "invalid_id_number", id="id-checksum"
    ),
    pytest.param(f"{PERSON_X.lower()},张伟,90,90,", None, id="id-lowercase-x"),
    pytest.param(
        f"{PERSON.translate(FULL_WIDTH)},张伟,90,90,",
        None,
        id="id-full-width",
    ),
    pytest.param(
        f"{PERSON[:17].translate({ord(c): 0x2460 + int(c) - 1 for c in '123456789'})}{PERSON[17]},张伟,90,90,",
        "invalid_id_number",
        id="id-circled-digits",
    ),
    pytest.param(
        f"{PERSON[:17].translate({ord(c): ord(c) - 0x30 + 0x0660 for c in '0123456789'})}{PERSON[17]},张伟,90,90,",
        "invalid_id_number",
        id="id-arabic-indic",
    ),
    pytest.param(f"{PERSON[:6]} {PERSON[6:]},张伟,90,90,", "invalid_id_number", id="id-inner-space"),
    pytest.param(f"{PERSON}0,张伟,90,90,", "invalid_id_number", id="id-19-chars"),
    pytest.param(f"'{PERSON},张伟,90,90,", "invalid_id_number", id="id-excel-apostrophe"),
    pytest.param(f"{'1' * 500},张伟,90,90,", "invalid_id_number", id="id-500-digits"),
    pytest.param(f"{PERSON},张伟,90,90,", None, id="id-good"),
    # scores
    pytest.param(f"{PERSON},张伟,85.0,90,", "score_out_of_range", id="score-decimal"),
    pytest.param(f"{PERSON},张伟,-1,90,", "score_out_of_range", id="score-negative"),
    pytest.param(f"{PERSON},张伟,101,90,", "score_out_of_range", id="score-101"),
    pytest.param(f"{PERSON},张伟,NaN,90,", "score_out_of_range", id="score-nan"),
    pytest.param(f"{PERSON},张伟,Infinity,90,", "score_out_of_range", id="score-infinity"),
    pytest.param(f"{PERSON},张伟,true,90,", "score_out_of_range", id="score-true"),
    pytest.param(f"{PERSON},张伟,１００,90,", "score_out_of_range", id="score-full-width"),
    pytest.param(f"{PERSON},张伟,0x50,90,", "score_out_of_range", id="score-hex"),
    pytest.param(f"{PERSON},张伟,1e2,90,", "score_out_of_range", id="score-exponent"),
    pytest.param(f"{PERSON},张伟,{'9' * 5000},90,", "score_out_of_range", id="score-5000-digits"),
    pytest.param(f"{PERSON},张伟,,90,", "score_out_of_range", id="score-empty"),
    pytest.param(f"{PERSON},张伟, 85 ,90,", None, id="score-padded"),
    pytest.param(f"{PERSON},张伟,007,90,", None, id="score-leading-zeros"),
    # training institutions
    pytest.param(f"{PERSON},张伟,90,90,../../etc/passwd", "invalid_training_institution", id="ti-path"),
    pytest.param(f"{PERSON},张伟,90,90,TI A", "invalid_training_institution", id="ti-space"),
    pytest.param(f"{PERSON},张伟,90,90,<b>TI</b>", "invalid_training_institution", id="ti-markup"),
    pytest.param(f"{PERSON},张伟,90,90,=1+1", "invalid_training_institution", id="ti-formula"),
    pytest.param(f"{PERSON},张伟,90,90,培训中心", "invalid_training_institution", id="ti-chinese-name"),
    pytest.param(f"{PERSON},张伟,90,90,TI\u202eA", "invalid_training_institution", id="ti-bidi"),
    pytest.param(f"{PERSON},张伟,90,90,{'T' * 33}", "invalid_training_institution", id="ti-33-chars"),
    pytest.param(f"{PERSON},张伟,90,90,{'T' * 32}", None, id="ti-32-chars"),
    pytest.param(f"{PERSON},张伟,90,90,TI-A", None, id="ti-registered"),
    pytest.param(f"{PERSON},张伟,90,90, ", None, id="ti-blank"),
    # shape
    pytest.param(f"{PERSON},张伟,90", "malformed_row", id="row-three-fields"),
    pytest.param(f"{PERSON},张伟,90,90,TI-A,extra", "malformed_row", id="row-six-fields"),
]


@pytest.mark.parametrize(("row", "code"), CSV_ROW_CASES)
def test_a_hostile_csv_row_gets_its_row_code(app_client, issuer, session_id, row, code):
    """Each hostile CSV value refuses its row with the expected code; sane edge values are recorded."""

    report = csv_report(app_client, session_id, issuer.headers, row)

    assert row_codes(report) == ([code] if code else [])
    assert report["accepted"] == (0 if code else 1)


JSON_ROW_CASES = [
    pytest.param('"85"', 90, "score_out_of_range", id="score-string"),
    pytest.param("NaN", 90, "score_out_of_range", id="score-nan"),
    pytest.param("Infinity", 90, "score_out_of_range", id="score-infinity"),
    pytest.param("-Infinity", 90, "score_out_of_range", id="score-minus-infinity"),
    pytest.param("1e400", 90, "score_out_of_range", id="score-overflowing-float"),
    pytest.param("-1", 90, "score_out_of_range", id="score-negative"),
    pytest.param("101", 90, "score_out_of_range", id="score-101"),
    pytest.param("85.0", 90, "score_out_of_range", id="score-float"),
    pytest.param("true", 90, "score_out_of_range", id="score-true"),
    pytest.param("false", 90, "score_out_of_range", id="score-false"),
    pytest.param("null", 90, "score_out_of_range", id="score-null"),
    pytest.param("[90]", 90, "score_out_of_range", id="score-list"),
    pytest.param("{}", 90, "score_out_of_range", id="score-object"),
    pytest.param("90", "true", "score_out_of_range", id="practical-true"),
    pytest.param("100", "0", None, id="scores-bounds"),
]


@pytest.mark.parametrize(("theory", "practical", "code"), JSON_ROW_CASES)
def test_a_hostile_json_score_gets_score_out_of_range(app_client, issuer, session_id, theory, practical, code):
    """Only a JSON integer 0..100 is a score: strings, NaN, Infinity, floats, booleans and null are refused."""
    body = f'[{{"id_number": "{PERSON}", "name": "张伟", "theory_score": {theory}, "practical_score": {practical}}}]'

    response = post_results(app_client, session_id, body.encode(), "application/json", issuer.headers)

    assert response.status_code == 200, response.text[:300]
    assert row_codes(response.json()) == ([code] if code else [])


JSON_VALUE_CASES = [
    pytest.param({"name": "\ud800"}, "invalid_name", id="name-lone-surrogate"),
    pytest.param({"name": "张\u0000伟"}, "invalid_name", id="name-nul"),
    pytest.param({"name": ["张伟"]}, "malformed_row", id="name-list"),
    pytest.param({"name": 42}, "malformed_row", id="name-number"),
    pytest.param({"name": None}, "missing_name", id="name-null"),
    pytest.param({"id_number": 440106199005171234}, "invalid_id_number", id="id-number-as-integer"),
    pytest.param({"id_number": "\ud800" * 18}, "invalid_id_number", id="id-surrogates"),
    pytest.param({"id_number": None}, "invalid_id_number", id="id-null"),
    pytest.param({"training_institution": 7}, "malformed_row", id="ti-number"),
    pytest.param({"training_institution": "TI\u0000A"}, "invalid_training_institution", id="ti-nul"),
    pytest.param({"training_institution": "\udfff"}, "invalid_training_institution", id="ti-surrogate"),
    pytest.param({"training_institution": None}, None, id="ti-null"),
    pytest.param({"extra": 1}, "malformed_row", id="unknown-key"),
]


@pytest.mark.parametrize(("override", "code"), JSON_VALUE_CASES)
def test_a_hostile_json_value_gets_its_row_code(app_client, issuer, session_id, override, code):
    """Wrong JSON types and text no database can hold (NUL, lone surrogates) refuse the row, never the request."""
    row = {"id_number": PERSON, "name": "张伟", "theory_score": 90, "practical_score": 90, **override}
    body = json.dumps([row]).encode()  # ensure_ascii keeps a lone surrogate as its \\ud800 escape

    response = post_results(app_client, session_id, body, "application/json", issuer.headers)

    assert response.status_code == 200, response.text[:300]
    assert row_codes(response.json()) == ([code] if code else [])


def test_a_non_nfc_name_is_stored_in_nfc(app_client, issuer, session_id):
    """A decomposed name (e + combining acute) is recorded in its composed NFC form."""
    decomposed = "Jose\u0301 Li"

    report = csv_report(app_client, session_id, issuer.headers, f"{PERSON},{decomposed},90,90,")
    again = csv_report(
        app_client, session_id, issuer.headers, f"{PERSON},{unicodedata.normalize('NFC', decomposed)},90,90,"
    )
    stored = app_client.get(f"/v1/exam-sessions/{session_id}/results", headers=issuer.headers).json()

    assert (report["accepted"], again["unchanged"]) == (1, 1)
    assert [item["holder_name"] for item in stored["items"]] == ["Jos\u00e9 Li"]


def test_no_id_number_is_echoed_or_logged_by_a_hostile_upload(app_client, issuer, session_id, json_logs):
    """Refused rows, refused photo names and an ID number in a path or query never show the number in clear."""
    rows = csv_body(f"{PERSON},张\u202e伟,90,90,", f"{OTHER_PERSON},王芳,90,90,../x", f"{PERSON_X},李强,NaN,90,")
    photos = zipped((f"../{PERSON}.jpg", jpeg()), (f"{OTHER_PERSON}.gif", b"GIF89a"))

    responses = [
        post_results(app_client, session_id, rows, "text/csv", issuer.headers),
        app_client.post(
            f"/v1/exam-sessions/{session_id}/photos",
            content=photos,
            headers={**issuer.headers, "Content-Type": "application/zip"},
        ),
        app_client.get(f"/v1/exam-sessions/{PERSON}", headers=issuer.headers),
        app_client.get(f"/v1/exam-results/{PERSON}", headers=issuer.headers),
        app_client.get("/v1/exam-sessions", params={"exam_point": PERSON_X + "\x00"}, headers=issuer.headers),
    ]

    assert [response.status_code for response in responses] == [200, 200, 404, 404, 422]
    for number in (PERSON, OTHER_PERSON, PERSON_X):
        assert all(number not in response.text for response in responses)
        assert number not in json_logs.text


# --- Dates, proctors and registry fields ------------------------------------------------------------------


def point_body(**overrides: Any) -> dict[str, Any]:
    """A valid exam point registration, with overrides."""
    body = {
        "code": "EP-D1",
        "name": "考试点",
        "region": "广州",
        "address": "黄埔区 1 号",
        "operations": ["2.1"],
        "capacity_per_session": 10,
        "accredited_from": "2020-01-01",
    }
    return {**body, **overrides}


POINT_CASES = [
    pytest.param({"accredited_from": "0001-01-01"}, 422, "validation_error", id="accredited-from-year-1"),
    pytest.param({"accredited_from": "1899-12-31"}, 422, "validation_error", id="accredited-from-1899"),
    pytest.param({"accredited_until": "9999-12-31"}, 422, "validation_error", id="accredited-until-9999"),
    pytest.param({"accredited_from": "+10000-01-01"}, 422, "validation_error", id="accredited-from-5-digit-year"),
    pytest.param({"accredited_from": "2020-02-30"}, 422, "validation_error", id="accredited-from-not-a-day"),
    pytest.param({"accredited_until": "2099-12-31"}, 201, None, id="accredited-until-2099"),
    pytest.param({"excluded_training_institutions": ["TI\u0000A"]}, 422, "validation_error", id="exclusion-nul"),
    pytest.param({"excluded_training_institutions": ["x" * 5000]}, 422, "validation_error", id="exclusion-long"),
    pytest.param(
        {"excluded_training_institutions": ["TI-NOPE"]}, 422, "unknown_training_institution", id="exclusion-unknown"
    ),
    pytest.param({"code": "EP\u0000"}, 422, "validation_error", id="code-nul"),
    pytest.param({"code": "../EP"}, 422, "validation_error", id="code-path"),
    pytest.param({"capacity_per_session": 10**30}, 422, "validation_error", id="capacity-huge"),
    pytest.param({"capacity_per_session": -1}, 422, "validation_error", id="capacity-negative"),
    pytest.param({"capacity_per_session": True}, 201, None, id="capacity-true-is-one"),
    pytest.param({"name": "考试点\u202e点试考"}, 422, "validation_error", id="name-bidi-override"),
    pytest.param({"name": "考试点\u0000"}, 422, "validation_error", id="name-nul"),
    pytest.param({"region": "广州\u200b"}, 422, "validation_error", id="region-zero-width"),
    pytest.param({"address": "黄埔区\n1 号"}, 422, "validation_error", id="address-line-break"),
    pytest.param({"name": "   "}, 422, "validation_error", id="name-blank"),
]


@pytest.mark.parametrize(("override", "status", "code"), POINT_CASES)
def test_a_hostile_exam_point_registration_is_refused(app_client, issuer, override, status, code):
    """Dates outside 1990..2099, codes that are not code-like and absurd capacities are 422 with a code."""

    response = app_client.post("/v1/exam-points", json=point_body(**override), headers=issuer.headers)

    assert (response.status_code, error_code(response)) == (status, code), response.text[:300]


SESSION_CASES = [
    pytest.param({"exam_date": "0001-01-01"}, 422, "validation_error", id="exam-date-year-1"),
    pytest.param({"exam_date": "9999-12-31"}, 422, "validation_error", id="exam-date-9999"),
    pytest.param({"exam_date": "1989-12-31"}, 422, "validation_error", id="exam-date-1989"),
    pytest.param({"exam_date": "2019-12-31"}, 409, "exam_point_not_active", id="exam-date-before-accreditation"),
    pytest.param({"proctor_ids": [""]}, 422, "validation_error", id="proctor-empty"),
    pytest.param({"proctor_ids": ["   "]}, 422, "validation_error", id="proctor-blank"),
    pytest.param({"proctor_ids": ["P" * 65]}, 422, "validation_error", id="proctor-65-chars"),
    pytest.param({"proctor_ids": ["P" * 100_000]}, 413, "payload_too_large", id="proctor-over-body-limit"),
    pytest.param({"proctor_ids": ["P\u0000"]}, 422, "validation_error", id="proctor-nul"),
    pytest.param({"proctor_ids": ["P\u202e1"]}, 422, "validation_error", id="proctor-bidi"),
    pytest.param({"proctor_ids": ["P-1"] * 51}, 422, "validation_error", id="proctor-51"),
    pytest.param({"proctor_ids": ["P" * 64, "GD-P-1001", "监考员01"]}, 201, None, id="proctor-good"),
    pytest.param({"exam_point": "EP\u0000"}, 422, "validation_error", id="point-nul"),
    pytest.param({"exam_point": "EP-NONE"}, 404, "exam_point_not_found", id="point-unknown"),
]


@pytest.mark.parametrize(
    ("override", "status"),
    [
        pytest.param({"name": "培训\u202e中心"}, 422, id="name-bidi-override"),
        pytest.param({"name": "培训\u0007中心"}, 422, id="name-bell"),
        pytest.param({"region": "\u2066广州"}, 422, id="region-bidi-isolate"),
        pytest.param({"code": "TI\u0000"}, 422, id="code-nul"),
        pytest.param({"name": "培训中心 (黄埔)"}, 201, id="name-plain"),
    ],
)
def test_a_hostile_training_institution_is_refused(app_client, issuer, override, status):
    """A training institution's name or region with control or format characters is 422 validation_error."""
    body = {"code": "TI-H", "name": "培训中心", "region": "广州", **override}

    response = app_client.post("/v1/training-institutions", json=body, headers=issuer.headers)

    assert (response.status_code, error_code(response)) == (status, "validation_error" if status == 422 else None)


@pytest.mark.parametrize(("override", "status", "code"), SESSION_CASES)
def test_a_hostile_exam_session_is_refused(app_client, issuer, override, status, code):
    """Exam dates outside 1990..2099 and empty, long or control-laden proctor ids are refused with a code."""
    created = app_client.post("/v1/exam-points", json=point_body(accredited_from="2020-01-01"), headers=issuer.headers)
    assert created.status_code == 201, created.text
    body = {"exam_point": "EP-D1", "operation": "2.1", "exam_date": TEST_TODAY.isoformat(), **override}

    response = app_client.post("/v1/exam-sessions", json=body, headers=issuer.headers)

    assert (response.status_code, error_code(response)) == (status, code), response.text[:300]


@pytest.mark.parametrize("review_from", ["0001-01-01", "9999-12-31", "1989-12-31"], ids=["year-1", "year-9999", "1989"])
def test_a_closure_review_date_out_of_range_is_refused(app_client, issuer, review_from):
    """Closing an exam point with a review_from outside 1990..2099 is 422 and leaves the point open."""
    app_client.post("/v1/exam-points", json=point_body(), headers=issuer.headers)

    response = app_client.post(
        "/v1/exam-points/EP-D1/close", json={"reason": "关闭", "review_from": review_from}, headers=issuer.headers
    )
    point = app_client.get("/v1/exam-points/EP-D1", headers=issuer.headers).json()

    assert (response.status_code, error_code(response)) == (422, "validation_error")
    assert point["status"] == "active"


# --- Photo zips ------------------------------------------------------------------------------------------


@pytest.fixture
def photo_session(app_client, issuer, session_id) -> str:
    """The session with a recorded result for PERSON (its photo entries match)."""
    report = csv_report(app_client, session_id, issuer.headers, f"{PERSON},张伟,90,90,")
    assert report["accepted"] == 1
    return session_id


def post_photos(client: TestClient, session: str, data: bytes, content_type: str | None, headers: dict[str, str]):
    """POST raw bytes to a session's photos with the given Content-Type (None: no such header)."""
    sent = dict(headers)
    if content_type is not None:
        sent["Content-Type"] = content_type
    return client.post(f"/v1/exam-sessions/{session}/photos", content=data, headers=sent)


PHOTO_BODY_CASES = [
    pytest.param(b"not a zip at all", "application/zip", 422, "invalid_zip", id="not-a-zip"),
    pytest.param(b"", "application/zip", 422, "invalid_zip", id="empty"),
    pytest.param(b"PK\x05\x06" + b"\x00" * 18, "application/zip", 200, None, id="empty-zip"),
    pytest.param(zipped((f"{PERSON}.jpg", jpeg()))[:-10], "application/zip", 422, "invalid_zip", id="truncated"),
    pytest.param(
        zipped((f"{PERSON}.jpg", b"\x00" * 3_000_000), compression=zipfile.ZIP_DEFLATED),
        "application/zip",
        422,
        "invalid_zip",
        id="zip-bomb",
    ),
    pytest.param(b"\x00" * (UPLOAD_LIMIT + 1), "application/zip", 413, "payload_too_large", id="over-limit"),
    pytest.param(zipped((f"{PERSON}.jpg", jpeg())), None, 415, "unsupported_media_type", id="no-content-type"),
    pytest.param(zipped((f"{PERSON}.jpg", jpeg())), "application/json", 415, "unsupported_media_type", id="json"),
    pytest.param(zipped((f"{PERSON}.jpg", jpeg())), "text/csv", 415, "unsupported_media_type", id="csv"),
    pytest.param(
        zipped((f"{PERSON}.jpg", jpeg())), "application/octet-stream", 415, "unsupported_media_type", id="octet-stream"
    ),
    pytest.param(
        zipped((f"{PERSON}.jpg", jpeg())), "multipart/form-data; boundary=x", 415, "unsupported_media_type", id="form"
    ),
    pytest.param(zipped((f"{PERSON}.jpg", jpeg())), "application/zip", 200, None, id="application-zip"),
    pytest.param(zipped((f"{PERSON}.jpg", jpeg())), "application/x-zip-compressed", 200, None, id="x-zip-compressed"),
    pytest.param(zipped((f"{PERSON}.jpg", jpeg())), "Application/ZIP; name=photos.zip", 200, None, id="zip-parameter"),
]


@pytest.mark.parametrize(("data", "content_type", "status", "code"), PHOTO_BODY_CASES)
def test_a_hostile_photo_upload_is_refused_whole_with_a_code(
    app_client, issuer, photo_session, data, content_type, status, code
):
    """A photo upload that is not a zip, is a bomb, or comes under another media type gets a 4xx and code."""

    response = post_photos(app_client, photo_session, data, content_type, issuer.headers)

    assert (response.status_code, error_code(response)) == (status, code), response.text[:300]


PHOTO_ENTRY_CASES = [
    pytest.param(zipped((f"../{PERSON}.jpg", jpeg())), "invalid_file_name", id="dot-dot"),
    pytest.param(zipped((f"a/../../{PERSON}.jpg", jpeg())), "invalid_file_name", id="dot-dot-deep"),
    pytest.param(zipped((f"..\\{PERSON}.jpg", jpeg())), "invalid_file_name", id="dot-dot-backslash"),
    pytest.param(zipped((f"/{PERSON}.jpg", jpeg())), "invalid_file_name", id="absolute"),
    pytest.param(zipped((f"C:\\{PERSON}.jpg", jpeg())), "invalid_file_name", id="drive-letter"),
    pytest.param(
        zipped((f"{PERSON}.jpg#.txt", jpeg())).replace(b"#.txt", b"\x00.txt"), "invalid_file_name", id="nul-in-name"
    ),
    pytest.param(
        zipped((f"{PERSON}.zip", zipped((f"{PERSON}.jpg", jpeg())))), "invalid_file_name", id="nested-zip-name"
    ),
    pytest.param(zipped((f"{PERSON}.jpg", zipped((f"{PERSON}.jpg", jpeg())))), "invalid_photo", id="nested-zip-as-jpg"),
    pytest.param(zipped((f"{PERSON}.png", b"this is not an image")), "invalid_photo", id="text-as-png"),
    pytest.param(zipped((f"{PERSON}.jpg", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")), "invalid_photo", id="gif-as-jpg"),
    pytest.param(zipped((f"{PERSON}.jpg", jpeg()[:40])), "invalid_photo", id="truncated-jpeg"),
    pytest.param(with_bad_crc(zipped((f"{PERSON}.jpg", jpeg()))), "invalid_photo", id="bad-crc"),
    pytest.param(with_damaged_entry(zipped((f"{PERSON}.jpg", jpeg()))), "invalid_photo", id="damaged-header"),
    pytest.param(zipped((f"{OTHER_PERSON}.jpg", jpeg())), "unmatched_photo", id="unmatched"),
    pytest.param(zipped((f"photos/{PERSON}.JPG", jpeg())), None, id="folder-and-upper-case"),
]


@pytest.mark.parametrize(("data", "code"), PHOTO_ENTRY_CASES)
def test_a_hostile_zip_entry_is_refused_by_position(app_client, issuer, photo_session, data, code):
    """Traversal names, nested zips, damaged entries and non-images refuse their entry with a code."""

    response = post_photos(app_client, photo_session, data, "application/zip", issuer.headers)

    assert response.status_code == 200, response.text[:300]
    assert [error["code"] for error in response.json()["errors"]] == ([code] if code else [])
    assert response.json()["matched"] == (0 if code else 1)


# --- Path and query parameters ----------------------------------------------------------------------


HOSTILE_SEGMENTS = [
    pytest.param("a%00b", id="nul"),
    pytest.param("%00", id="only-nul"),
    pytest.param("x" * 4000, id="4000-chars"),
    pytest.param("%F0%9F%92%A9", id="emoji"),
    pytest.param("%ED%A0%80", id="encoded-surrogate"),
    pytest.param("%FF%FE", id="not-utf8"),
    pytest.param("..%5C..%5Cetc", id="encoded-backslashes"),
    pytest.param("%20", id="space"),
    pytest.param("'%20OR%201=1--", id="sql"),
    pytest.param("0" * 31 + "g", id="32-not-hex"),
    pytest.param("A" * 32, id="32-upper-hex"),
    pytest.param("0" * 32, id="32-hex-absent"),
]

PATHS = [
    pytest.param("GET", "/v1/exam-points/{}", "exam_point_not_found", id="exam-point"),
    pytest.param("GET", "/v1/exam-points/{}/certificates-to-review", "exam_point_not_found", id="to-review"),
    pytest.param("POST", "/v1/exam-points/{}/suspend", "exam_point_not_found", id="suspend"),
    pytest.param("GET", "/v1/training-institutions/{}", "training_institution_not_found", id="institution"),
    pytest.param("GET", "/v1/exam-sessions/{}", "exam_session_not_found", id="session"),
    pytest.param("GET", "/v1/exam-sessions/{}/results", "exam_session_not_found", id="session-results"),
    pytest.param("POST", "/v1/exam-sessions/{}/results", "exam_session_not_found", id="session-import"),
    pytest.param("POST", "/v1/exam-sessions/{}/photos", "exam_session_not_found", id="session-photos"),
    pytest.param("GET", "/v1/exam-results/{}", "exam_result_not_found", id="result"),
    pytest.param("GET", "/v1/certificate-batches/{}", "batch_not_found", id="batch"),
    pytest.param("GET", "/v1/certificate-batches/{}/cards.pdf", "batch_not_found", id="batch-cards"),
    pytest.param("GET", "/v1/certificates/{}/card.pdf", "certificate_not_found", id="certificate-card"),
]

_BODIES = {
    "/suspend": {"json": {"reason": "x"}},
    "/results": {"content": b"[]", "headers": {"Content-Type": "application/json"}},
    "/photos": {"content": zipped(), "headers": {"Content-Type": "application/zip"}},
}


@pytest.mark.parametrize("segment", HOSTILE_SEGMENTS)
@pytest.mark.parametrize(("method", "template", "code"), PATHS)
def test_a_hostile_path_segment_is_not_found(app_client, issuer, method, template, code, segment):
    """NUL, over-long, non-UTF-8 and wrongly shaped codes and ids are 404 with the resource's code (SQLite and PG)."""
    extra = next((value for suffix, value in _BODIES.items() if template.endswith(suffix)), {})
    headers = {**issuer.headers, **extra.get("headers", {})}
    kwargs = {key: value for key, value in extra.items() if key != "headers"}

    response = app_client.request(method, template.format(segment), headers=headers, **kwargs)

    assert (response.status_code, error_code(response)) == (404, code), response.text[:300]


QUERY_CASES = [
    pytest.param("/v1/exam-sessions", {"exam_point": "EP\x00"}, id="sessions-point-nul"),
    pytest.param("/v1/exam-sessions", {"exam_point": "E" * 4000}, id="sessions-point-long"),
    pytest.param("/v1/exam-sessions", {"limit": "-1"}, id="sessions-limit-negative"),
    pytest.param("/v1/exam-sessions", {"limit": "0"}, id="sessions-limit-zero"),
    pytest.param("/v1/exam-sessions", {"limit": "501"}, id="sessions-limit-501"),
    pytest.param("/v1/exam-sessions", {"limit": "9" * 40}, id="sessions-limit-huge"),
    pytest.param("/v1/exam-sessions", {"limit": "1e3"}, id="sessions-limit-float"),
    pytest.param("/v1/exam-sessions", {"offset": "-1"}, id="sessions-offset-negative"),
    pytest.param("/v1/exam-sessions", {"offset": "9" * 40}, id="sessions-offset-huge"),
    pytest.param("/v1/exam-points", {"limit": "-5"}, id="points-limit-negative"),
    pytest.param("/v1/exam-points", {"offset": str(2**63)}, id="points-offset-2-63"),
    pytest.param("/v1/training-institutions", {"limit": "\x00"}, id="institutions-limit-nul"),
    pytest.param("/v1/exam-sessions/{session}/results", {"limit": "-1"}, id="results-limit-negative"),
    pytest.param("/v1/exam-sessions/{session}/results", {"offset": "9" * 40}, id="results-offset-huge"),
]


@pytest.mark.parametrize(("path", "params"), QUERY_CASES)
def test_a_hostile_query_parameter_is_a_validation_error(app_client, issuer, session_id, path, params):
    """Negative, zero, huge and non-numeric page sizes and a NUL in a filter are 422 validation_error."""

    response = app_client.get(path.format(session=session_id), params=params, headers=issuer.headers)

    assert (response.status_code, error_code(response)) == (422, "validation_error"), response.text[:300]


# --- Idempotency-Key ----------------------------------------------------------------------------------


IDEMPOTENCY_CASES = [
    pytest.param(b"", 422, "invalid_idempotency_key", id="empty"),
    pytest.param(b"   ", 422, "invalid_idempotency_key", id="blank"),
    pytest.param(b"k" * 201, 422, "invalid_idempotency_key", id="201-chars"),
    pytest.param(b"k" * 20_000, 422, "invalid_idempotency_key", id="20000-chars"),
    pytest.param("ключ-1".encode(), 422, "invalid_idempotency_key", id="utf8-cyrillic"),
    pytest.param("批次-1".encode(), 422, "invalid_idempotency_key", id="utf8-chinese"),
    pytest.param(b"caf\xe9", 422, "invalid_idempotency_key", id="latin1"),
    pytest.param(b"a\x7fb", 422, "invalid_idempotency_key", id="delete-char"),
    pytest.param(b"k" * 200, 202, None, id="200-chars"),
    pytest.param(b"3f0c7a52-2c1e-4c55-9f0e-0d6f0a1b2c3d", 202, None, id="uuid"),
]


@pytest.mark.parametrize(("key", "status", "code"), IDEMPOTENCY_CASES)
def test_a_hostile_idempotency_key_is_refused(app_client, issuer, session_id, key, status, code):
    """An Idempotency-Key must be 1..200 visible ASCII characters: blank, long or non-ASCII keys are 422."""
    headers = [(name.encode(), value.encode()) for name, value in issuer.headers.items()]
    headers += [(b"content-type", b"application/json"), (b"idempotency-key", key)]

    responses = [
        app_client.post("/v1/certificate-batches", content=json.dumps({"session": session_id}), headers=headers)
        for _ in range(2)
    ]

    assert [(response.status_code, error_code(response)) for response in responses] == [(status, code)] * 2
    if status == 202:
        assert responses[0].json()["id"] == responses[1].json()["id"]


def test_batches_without_a_key_are_distinct(app_client, issuer, session_id):
    """Two submissions without an Idempotency-Key make two batches (no key is not one shared blank key)."""

    first = app_client.post("/v1/certificate-batches", json={"session": session_id}, headers=issuer.headers)
    second = app_client.post("/v1/certificate-batches", json={"session": session_id}, headers=issuer.headers)

    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["id"] != second.json()["id"]


BATCH_BODY_CASES = [
    pytest.param({"session": "x\x00"}, 404, "exam_session_not_found", id="session-nul"),
    pytest.param({"session": "A" * 32}, 404, "exam_session_not_found", id="session-upper-hex"),
    pytest.param({"session": "x" * 65}, 422, "validation_error", id="session-65-chars"),
    pytest.param({"results": ["x\x00"]}, 202, None, id="results-nul"),
    pytest.param({"results": []}, 422, "validation_error", id="results-empty"),
    pytest.param({"session": None, "results": None}, 422, "validation_error", id="neither"),
    pytest.param({"session": 5}, 422, "validation_error", id="session-number"),
]


@pytest.mark.parametrize(("body", "status", "code"), BATCH_BODY_CASES)
def test_a_hostile_batch_body_is_refused(app_client, issuer, body, status, code):
    """A batch naming an id that cannot exist is 404 (session) or a per-result refusal, never a 500."""

    response = app_client.post("/v1/certificate-batches", json=body, headers=issuer.headers)

    assert (response.status_code, error_code(response)) == (status, code), response.text[:300]


# --- Ownership ------------------------------------------------------------------------------------------


@pytest.fixture
def owned_chain(app, app_client, issuer) -> dict[str, str]:
    """CN-44's whole chain: institution TI-A, point EP-H1, a session with one passed result, a done batch, a card."""
    session = open_session(app_client, issuer)
    report = csv_report(app_client, session, issuer.headers, f"{PERSON},张伟,90,90,TI-A")
    assert report["accepted"] == 1
    result = app_client.get(f"/v1/exam-sessions/{session}/results", headers=issuer.headers).json()["items"][0]["id"]
    batch = app_client.post("/v1/certificate-batches", json={"session": session}, headers=issuer.headers).json()["id"]
    app.state.batch_runner.wake()
    for _ in range(300):
        body = app_client.get(f"/v1/certificate-batches/{batch}", headers=issuer.headers).json()
        if body["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert body["status"] == "done", body
    (certificate,) = body["certificate_ids"]
    return {"session": session, "result": result, "batch": batch, "certificate": certificate}


FOREIGN_CASES = [
    pytest.param(
        "GET", "/v1/training-institutions/TI-A", None, 404, "training_institution_not_found", id="institution"
    ),
    pytest.param("GET", "/v1/exam-points/EP-H1", None, 404, "exam_point_not_found", id="point"),
    pytest.param("POST", "/v1/exam-points/EP-H1/suspend", {"reason": "x"}, 404, "exam_point_not_found", id="suspend"),
    pytest.param(
        "POST", "/v1/exam-points/EP-H1/reinstate", {"reason": "x"}, 404, "exam_point_not_found", id="reinstate"
    ),
    pytest.param(
        "POST",
        "/v1/exam-points/EP-H1/close",
        {"reason": "x", "review_from": "2026-01-01"},
        404,
        "exam_point_not_found",
        id="close",
    ),
    pytest.param(
        "GET", "/v1/exam-points/EP-H1/certificates-to-review", None, 404, "exam_point_not_found", id="to-review"
    ),
    pytest.param(
        "POST",
        "/v1/exam-sessions",
        {"exam_point": "EP-H1", "operation": "2.1", "exam_date": TEST_TODAY.isoformat()},
        404,
        "exam_point_not_found",
        id="session-at-point",
    ),
    pytest.param("GET", "/v1/exam-sessions/{session}", None, 404, "exam_session_not_found", id="session"),
    pytest.param("GET", "/v1/exam-sessions/{session}/results", None, 404, "exam_session_not_found", id="results"),
    pytest.param("POST", "/v1/exam-sessions/{session}/results", [], 404, "exam_session_not_found", id="import"),
    pytest.param("POST", "/v1/exam-sessions/{session}/photos", b"zip", 404, "exam_session_not_found", id="photos"),
    pytest.param("GET", "/v1/exam-results/{result}", None, 404, "exam_result_not_found", id="result"),
    pytest.param(
        "PUT", "/v1/exam-results/{result}/photo", {"photo_base64": "AA=="}, 404, "exam_result_not_found", id="photo"
    ),
    pytest.param("GET", "/v1/certificate-batches/{batch}", None, 404, "batch_not_found", id="batch"),
    pytest.param("GET", "/v1/certificate-batches/{batch}/cards.pdf", None, 404, "batch_not_found", id="batch-cards"),
    pytest.param("GET", "/v1/certificates/{certificate}/card.pdf", None, 404, "certificate_not_found", id="card"),
    pytest.param(
        "POST", "/v1/certificate-batches", {"session": "{session}"}, 404, "exam_session_not_found", id="batch-session"
    ),
]


def _request_kwargs(body: Any, ids: dict[str, str]) -> dict[str, Any]:
    if body is None:
        return {}
    if body == b"zip":
        return {"content": zipped(), "headers": {"Content-Type": "application/zip"}}
    if isinstance(body, list):
        return {"json": body}
    return {"json": {key: value.format(**ids) if isinstance(value, str) else value for key, value in body.items()}}


@pytest.mark.parametrize(("method", "template", "body", "status", "code"), FOREIGN_CASES)
def test_another_issuer_gets_not_found_on_every_link_of_the_chain(
    app_client, issuer, other_issuer, owned_chain, method, template, body, status, code
):
    """CN-11 touching CN-44's institution, point, session, results, batch or card gets 404 as for a missing one."""
    kwargs = _request_kwargs(body, owned_chain)
    headers = {**other_issuer.headers, **kwargs.pop("headers", {})}

    response = app_client.request(method, template.format(**owned_chain), headers=headers, **kwargs)
    own = app_client.request(method, template.format(**owned_chain), headers={**headers, **issuer.headers}, **kwargs)

    assert (response.status_code, error_code(response)) == (status, code), response.text[:300]
    assert own.status_code < 500
    assert own.status_code != 404 or error_code(own) != code


def test_another_issuers_results_in_a_batch_list_are_refused_per_result(app, app_client, other_issuer, owned_chain):
    """A batch listing another issuer's result certifies nothing and names the result as not found."""

    response = app_client.post(
        "/v1/certificate-batches", json={"results": [owned_chain["result"]]}, headers=other_issuer.headers
    )
    app.state.batch_runner.wake()
    for _ in range(300):
        body = app_client.get(response.headers["Location"], headers=other_issuer.headers).json()
        if body["status"] in ("done", "failed"):
            break
        time.sleep(0.05)

    assert response.status_code == 202
    assert body["certificate_ids"] == []
    assert [error["code"] for error in body["errors"]] == ["exam_result_not_found"]


def test_ownership_lookups_live_in_api_deps_only():
    """Routers take their owned rows from api/deps.py dependencies and define no ownership check of their own."""

    defined = {
        path.name: [line.strip() for line in path.read_text().splitlines() if line.startswith("def owned_")]
        for path in ROUTERS.glob("*.py")
    }

    assert {name: lines for name, lines in defined.items() if lines} == {}
