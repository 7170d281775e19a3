"""No personal data where it does not belong: holder search by body, 422s that echo no key, photos with pixels only."""

from __future__ import annotations

import base64
import io
import os
import struct
import subprocess
import sys
import zlib
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import ExifTags, Image, PngImagePlugin
from pydantic import ValidationError

from api.errors import validation_error
from api.services import photos
from schemas.api import Strict

MARK = b"PLANTED-4401061985031224"  # looks like the start of an ID number: it must never be served
ICC_PROFILE = b"\x00\x00\x02\x0cplanted icc profile " + MARK + b"\x00" * 64
JPEG_ALLOWED_MARKERS = {0xD8, 0xE0, 0xDB, 0xC0, 0xC2, 0xC4, 0xDD, 0xDA, 0xD9}  # SOI APP0 DQT SOF DHT DRI SOS EOI
PNG_ALLOWED_CHUNKS = {b"IHDR", b"IDAT", b"IEND"}
ROOT = Path(__file__).resolve().parent.parent


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


# --- POST /v1/certificates/search -------------------------------------------------------------------


def test_search_finds_a_holders_certificates_by_the_number_in_the_body(app_client, issuer, issue, make_id_number):
    """Search matches the holder's certificates in any spelling of the number, with status, operation and paging."""
    holder = make_id_number(date(1988, 8, 8), check="X")
    welding = issue(issuer, holder_id_number=holder)
    electric = issue(issuer, holder_id_number=holder, operation="1.2")
    issue(issuer, holder_id_number=make_id_number(date(1990, 1, 1)))
    app_client.post(f"/v1/certificates/{electric['id']}/suspend", json={"reason": "违规"}, headers=issuer.headers)

    def search(**body: object) -> dict:
        response = app_client.post("/v1/certificates/search", json=body, headers=issuer.headers)
        assert response.status_code == 200, response.text
        return response.json()

    everything = search(holder_id_number=holder)
    lower = search(holder_id_number=holder.lower())
    by_operation = search(holder_id_number=holder, operation="2.1")
    by_status = search(holder_id_number=holder, status="suspended")
    second_page = search(holder_id_number=holder, limit=1, offset=1)

    assert (everything["total"], everything["limit"], everything["offset"]) == (2, 50, 0)
    assert {item["id"] for item in everything["items"]} == {welding["id"], electric["id"]}
    assert lower["items"] == everything["items"]
    assert [item["id"] for item in by_operation["items"]] == [welding["id"]]
    assert [item["id"] for item in by_status["items"]] == [electric["id"]]
    assert (second_page["total"], len(second_page["items"])) == (2, 1)
    assert second_page["items"][0] == everything["items"][1]


def test_search_sees_only_the_callers_certificates(app_client, issuer, other_issuer, issue, make_id_number):
    """Another issuer searching the same holder finds nothing of the first issuer's."""
    holder = make_id_number(date(1985, 3, 12))
    issue(issuer, holder_id_number=holder)

    foreign = app_client.post(
        "/v1/certificates/search", json={"holder_id_number": holder}, headers=other_issuer.headers
    )
    anonymous = app_client.post("/v1/certificates/search", json={"holder_id_number": holder})

    assert (foreign.status_code, foreign.json()["total"]) == (200, 0)
    _assert_error(anonymous, 401, "unauthorized")


def test_search_matches_rows_written_under_a_previous_hmac_key(
    make_app, make_settings, admin_headers, certificate_body
):
    """After an ID-HMAC key rotation, search finds rows hashed under the previous key version and new ones."""
    old_key, new_key = "k7Qm2pX9vR4tL8wZ3nB6yH1c", "Fj5sD0gK8aQ2wE7rT4yU9iO3"
    holder = certificate_body()["holder_id_number"]
    with TestClient(make_app(make_settings(id_hmac_key=old_key))) as before:
        before.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["2.1", "1.2"]},
            headers=admin_headers,
        ).raise_for_status()
        token = before.post("/v1/issuers/CN-44/api-keys", json={}, headers=admin_headers).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        old_row = before.post("/v1/certificates", json=certificate_body(), headers=headers).json()
    rotated = make_settings(id_hmac_key=new_key, id_hmac_key_version=2, id_hmac_previous_keys=f"1:{old_key}")

    with TestClient(make_app(rotated)) as after:
        new_row = after.post("/v1/certificates", json=certificate_body(operation="1.2"), headers=headers).json()
        found = after.post("/v1/certificates/search", json={"holder_id_number": holder}, headers=headers).json()

    assert {item["id"] for item in found["items"]} == {old_row["id"], new_row["id"]}


def test_search_refuses_an_invalid_number_or_body_without_echoing_it(app_client, issuer, make_id_number):
    """A bad check character is 422 invalid_id_number; an unknown field or a bad limit is 422 validation_error."""
    valid = make_id_number(date(1985, 3, 12))
    wrong_check = valid[:17] + ("0" if valid[17] != "0" else "1")

    bad_number = app_client.post(
        "/v1/certificates/search", json={"holder_id_number": wrong_check}, headers=issuer.headers
    )
    bad_body = app_client.post(
        "/v1/certificates/search", json={"holder_id_number": valid, valid: 1, "limit": 0}, headers=issuer.headers
    )
    missing = app_client.post("/v1/certificates/search", json={}, headers=issuer.headers)

    _assert_error(bad_number, 422, "invalid_id_number")
    error = _assert_error(bad_body, 422, "validation_error")
    assert {"loc": ["body", "limit"], "type": "greater_than_equal"} in error["details"]
    assert {"loc": ["body"], "type": "extra_forbidden", "count": 1} in error["details"]
    _assert_error(missing, 422, "validation_error")
    for response in (bad_number, bad_body):
        assert wrong_check not in response.text
        assert valid not in response.text


def test_listing_with_a_holder_number_in_the_url_is_400_use_search(app_client, issuer, issue, make_id_number):
    """GET /v1/certificates with holder_id_number answers 400 use_search (never ignores it); other filters work."""
    holder = make_id_number(date(1985, 3, 12))
    certificate = issue(issuer, holder_id_number=holder)
    issue(issuer, operation="1.2")

    refused = app_client.get("/v1/certificates", params={"holder_id_number": holder}, headers=issuer.headers)
    refused_empty = app_client.get("/v1/certificates?holder_id_number=", headers=issuer.headers)
    refused_with_filters = app_client.get(
        "/v1/certificates", params={"holder_id_number": holder, "operation": "2.1"}, headers=issuer.headers
    )
    filtered = app_client.get(
        "/v1/certificates", params={"operation": "2.1", "status": "valid"}, headers=issuer.headers
    )

    for response in (refused, refused_empty, refused_with_filters):
        _assert_error(response, 400, "use_search")
        assert holder not in response.text
    assert [item["id"] for item in filtered.json()["items"]] == [certificate["id"]]


# --- 422s never echo a value or a field name ------------------------------------------------------


@pytest.mark.parametrize("name", ["holder_id_number[]", "Holder_Id_Number", "holder-id-number", "idNumber"])
def test_listing_refuses_any_spelling_of_a_holder_filter(app_client, issuer, make_id_number, name):
    """Variants of the holder filter's name get 400 use_search too, and the number is not echoed."""
    number = make_id_number(date(1985, 3, 12))

    response = app_client.get("/v1/certificates", params={name: number}, headers=issuer.headers)

    _assert_error(response, 400, "use_search")
    assert number not in response.text


def test_listing_refuses_unknown_query_parameters(app_client, issuer):
    """A misspelt filter is 400 unknown_parameter rather than silently ignored, and its name is not echoed."""
    response = app_client.get("/v1/certificates", params={"stauts": "revoked"}, headers=issuer.headers)

    _assert_error(response, 400, "unknown_parameter")
    assert "stauts" not in response.text


def test_unknown_field_names_are_counted_not_echoed(app_client, issuer, certificate_body, make_id_number):
    """ID numbers sent as field names come back nowhere in a 422: the location is `body` with a count."""
    first, second = make_id_number(date(1985, 3, 12)), make_id_number(date(1990, 7, 1))
    issuance_body = {**certificate_body(), first: "x", second: {"nested": 1}}

    issued = app_client.post("/v1/certificates", json=issuance_body, headers=issuer.headers)
    verified = app_client.post("/v1/verify", json={"qr": "12345", first: 1, second: 2})
    reviewed = app_client.post("/v1/certificates/0123456789abcdef/review", json={first: 1}, headers=issuer.headers)

    for response in (issued, verified):
        error = _assert_error(response, 422, "validation_error")
        assert error["details"] == [{"loc": ["body"], "type": "extra_forbidden", "count": 2}]
    assert reviewed.status_code in (404, 422)
    for response in (issued, verified, reviewed):
        assert first not in response.text
        assert second not in response.text
        assert first[:12] not in response.text


def test_dict_keys_in_error_locations_are_counted_not_echoed(make_id_number):
    """An error inside a dict value names `body` and a count, never the key; schema names still show."""

    class Labelled(Strict):
        holder_name: str
        labels: dict[str, int]

    key = make_id_number(date(1985, 3, 12))
    with pytest.raises(ValidationError) as caught:
        Labelled.model_validate({"holder_name": 7, "labels": {key: "not a number", "ok": 1, key[:17]: "x"}})

    error = validation_error(caught.value)

    assert error.status == 422
    assert {"loc": ["body", "holder_name"], "type": "string_type"} in error.details
    assert {"loc": ["body"], "type": "int_parsing", "count": 2} in error.details
    assert key[:12] not in repr(error.details)


# --- photos: pixels only ---------------------------------------------------------------------------


def _picture() -> Image.Image:
    picture = Image.new("RGB", (64, 80), (200, 150, 120))
    picture.paste((20, 40, 60), (10, 10, 40, 50))
    return picture


def _jpeg(**options: object) -> bytes:
    out = io.BytesIO()
    _picture().save(out, format="JPEG", **options)
    return out.getvalue()


def _png(**options: object) -> bytes:
    out = io.BytesIO()
    _picture().save(out, format="PNG", **options)
    return out.getvalue()


def _after_soi(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    """Insert a JPEG segment right after SOI."""
    return jpeg[:2] + struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload + jpeg[2:]


def _png_text(kind: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    if kind == "tEXt":
        info.add_text("Comment", MARK.decode())
    elif kind == "zTXt":
        info.add_text("Comment", MARK.decode(), zip=True)
    else:
        info.add_itxt("Description", MARK.decode(), lang="zh", tkey="说明")
    return _png(pnginfo=info)


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = MARK.decode()
    exif[ExifTags.Base.ImageDescription] = MARK.decode()
    return exif


XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description dc:creator="' + MARK + b'"/></x:xmpmeta>'
PLANTED = {
    "jpeg-exif": lambda: _jpeg(exif=_exif()),
    "jpeg-xmp-app1": lambda: _after_soi(_jpeg(), 0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + XMP),
    "jpeg-icc-profile": lambda: _jpeg(icc_profile=ICC_PROFILE),
    "jpeg-comment": lambda: _after_soi(_jpeg(), 0xFE, b"COM " + MARK),
    "jpeg-trailing-bytes": lambda: _jpeg() + MARK * 4,
    "png-icc-profile": lambda: _png(icc_profile=ICC_PROFILE),
    "png-icc-profile-and-trailing-bytes": lambda: _png(icc_profile=ICC_PROFILE) + MARK * 4,
    "png-tEXt": lambda: _png_text("tEXt"),
    "png-zTXt": lambda: _png_text("zTXt"),
    "png-iTXt": lambda: _png_text("iTXt"),
    "png-eXIf": lambda: _png(exif=_exif()),
    "png-trailing-bytes": lambda: _png() + MARK * 4,
}


def _jpeg_markers(data: bytes) -> list[int]:
    """Walk a JPEG's segments; assert nothing follows EOI; return the markers in order."""
    assert data[:2] == b"\xff\xd8"
    markers, position = [0xD8], 2
    while True:
        assert data[position] == 0xFF, f"no marker at {position}"
        marker = data[position + 1]
        markers.append(marker)
        if marker == 0xD9:
            assert position + 2 == len(data), "bytes after EOI"
            return markers
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        position += 2 + length
        if marker == 0xDA:  # entropy-coded data up to the next marker that is not a stuffed 0 or a restart
            while not (data[position] == 0xFF and data[position + 1] not in (0x00, *range(0xD0, 0xD8))):
                position += 1


def _png_chunks(data: bytes) -> list[bytes]:
    """Walk a PNG's chunks; assert nothing follows IEND; return the chunk types in order."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, position = [], 8
    while True:
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        assert (
            zlib.crc32(data[position + 4 : position + 8 + length])
            == struct.unpack(">I", data[position + 8 + length : position + 12 + length])[0]
        )
        chunks.append(kind)
        position += 12 + length
        if kind == b"IEND":
            assert position == len(data), "bytes after IEND"
            return chunks


@pytest.mark.parametrize("planted", list(PLANTED), ids=list(PLANTED))
def test_planted_metadata_never_reaches_the_served_photo(app_client, issuer, issue, planted):
    """EXIF, XMP, ICC profiles, comments, PNG text chunks and trailing bytes are gone from the served photo."""
    upload = PLANTED[planted]()
    with Image.open(io.BytesIO(upload)) as original:
        original.load()
        planted_info = {key for key in original.info if key in ("icc_profile", "exif", "comment", "Comment")}

    certificate = issue(issuer, photo_base64=base64.b64encode(upload).decode())
    served = app_client.get(certificate["links"]["photo"], headers=issuer.headers)

    assert MARK in upload or planted_info  # the upload did carry what the served photo must not
    assert served.status_code == 200
    content = served.content
    assert MARK not in content
    assert MARK.decode().encode("utf-16-le") not in content
    with Image.open(io.BytesIO(content)) as stored:
        stored.load()
        assert stored.size == (64, 80)
        assert set(stored.info) <= {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi"}
        assert dict(stored.getexif()) == {}
        assert getattr(stored, "text", {}) == {}
        assert stored.getpixel((20, 20))[2] < 100  # the dark square survived: it is the same picture
    if planted.startswith("jpeg"):
        assert set(_jpeg_markers(content)) <= JPEG_ALLOWED_MARKERS
        assert served.headers["content-type"] == "image/jpeg"
    else:
        assert set(_png_chunks(content)) <= PNG_ALLOWED_CHUNKS
        assert served.headers["content-type"] == "image/png"


def test_exif_orientation_is_applied_to_the_pixels(app_client, issuer, issue):
    """A JPEG whose EXIF says "rotate 90°" is stored upright (landscape pixels become portrait), without EXIF."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # rotate 90° clockwise to display
    out = io.BytesIO()
    Image.new("RGB", (80, 40), (10, 200, 10)).save(out, format="JPEG", exif=exif)

    certificate = issue(issuer, photo_base64=base64.b64encode(out.getvalue()).decode())
    served = app_client.get(certificate["links"]["photo"], headers=issuer.headers)

    with Image.open(io.BytesIO(served.content)) as stored:
        assert stored.size == (40, 80)
        assert dict(stored.getexif()) == {}


def test_large_photos_are_reduced_to_the_stored_size():
    """A 4096 x 3072 JPEG and PNG are stored with their longest side at STORED_MAX_SIDE, aspect kept."""
    uploads = {}
    for kind in ("JPEG", "PNG"):
        out = io.BytesIO()
        Image.new("RGB", (4096, 3072), (80, 90, 100)).save(out, format=kind)
        uploads[kind] = base64.b64encode(out.getvalue()).decode()

    stored = {kind: photos.clean_photo(upload, max_bytes=2_000_000) for kind, upload in uploads.items()}

    for kind, (data, media_type) in stored.items():
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.size == (photos.STORED_MAX_SIDE, photos.STORED_MAX_SIDE * 3 // 4)
            assert picture.format == kind
        assert media_type == f"image/{kind.lower()}"


def test_a_large_jpeg_is_decoded_at_reduced_scale(tmp_path):
    """Cleaning a 4096 x 4096 JPEG raises the process's peak memory by less than one full-size RGB frame (48 MiB)."""
    jpeg = tmp_path / "large.jpg"
    Image.new("RGB", (4096, 4096), (80, 90, 100)).save(jpeg, format="JPEG", quality=90)
    script = (
        "import base64, sys\n"
        "from api.services.photos import clean_photo\n"
        "def peak():\n"
        "    return next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
        f"upload = base64.b64encode(open({str(jpeg)!r}, 'rb').read()).decode()\n"
        "before = peak()\n"
        "clean_photo(upload, max_bytes=10**8)\n"
        "print(before, peak())\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )

    before_kib, after_kib = map(int, result.stdout.split())
    grown_mib = (after_kib - before_kib) / 1024
    print(f"peak memory while cleaning a 4096x4096 JPEG: +{grown_mib:.1f} MiB (a full RGB frame is 48 MiB)")
    assert grown_mib < 48


def test_photo_over_the_pixel_cap_is_refused(app_client, issuer, certificate_body):
    """A PNG over 16.8 MP, and one whose header claims 400 MP, are 422 photo_too_many_pixels without decoding."""
    out = io.BytesIO()
    Image.new("L", (4097, 4096), 128).save(out, format="PNG")
    header = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 2, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(header))
        + b"IHDR"
        + header
        + struct.pack(">I", zlib.crc32(b"IHDR" + header))
        + struct.pack(">I", 0)
        + b"IEND"
        + struct.pack(">I", zlib.crc32(b"IEND"))
    )

    responses = [
        app_client.post(
            "/v1/certificates",
            json=certificate_body(photo_base64=base64.b64encode(data).decode()),
            headers=issuer.headers,
        )
        for data in (out.getvalue(), bomb)
    ]

    assert photos.MAX_PIXELS == 4096 * 4096
    for response in responses:
        _assert_error(response, 422, "photo_too_many_pixels")


def test_photo_upload_waits_for_a_decoder_and_then_answers_503_busy(
    app_client, issuer, certificate_body, busy_photo_decoders
):
    """With every decode slot taken past the wait, an upload is 503 busy with Retry-After, and nothing is stored."""
    photo = base64.b64encode(_jpeg()).decode()

    response = app_client.post("/v1/certificates", json=certificate_body(photo_base64=photo), headers=issuer.headers)
    listed = app_client.get("/v1/certificates", headers=issuer.headers)

    _assert_error(response, 503, "busy")
    assert response.headers["Retry-After"] == "1"
    assert listed.json()["total"] == 0


def test_photo_decoders_are_free_again_after_failed_uploads(app_client, issuer, issue, certificate_body):
    """Undecodable uploads release their decode slot: after more of them than slots, a good photo is stored."""
    broken = base64.b64encode(b"\xff\xd8\xff\xe0" + os.urandom(64)).decode()

    failures = [
        app_client.post("/v1/certificates", json=certificate_body(photo_base64=broken), headers=issuer.headers)
        for _ in range(photos.DECODE_SLOTS + 2)
    ]
    certificate = issue(issuer, photo_base64=base64.b64encode(_jpeg()).decode())

    for response in failures:
        _assert_error(response, 422, "invalid_photo")
    assert certificate["has_photo"] is True
