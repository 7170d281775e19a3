"""The issuer and verifier flows of the HTTP API, end to end against a real app and SQLite file."""

from __future__ import annotations

import base64
import io
import json
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import TEST_TODAY
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from PIL import ExifTags, Image
from sqlalchemy import func
from sqlmodel import Session, select

import crypto
from api.models import Certificate, IdempotencyRecord
from api.security import sign_url_path
from schemas.catalogue import BUILTIN_CATALOGUE

ACCEPT_CHECKS = [
    "format",
    "signature",
    "validity",
    "key_window",
    "key_status",
    "issuer",
    "registry",
    "status",
    "review",
]
# ASCII digits and X to their full-width forms (U+FF10.., U+FF38), as some Chinese input methods type them.
FULL_WIDTH = str.maketrans({**{str(d): chr(0xFF10 + d) for d in range(10)}, "X": chr(0xFF38)})


def _jpeg_with_exif() -> bytes:
    """A small JPEG carrying an EXIF Make tag and a GPS block."""
    picture = Image.new("RGB", (64, 80), (200, 150, 120))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "CertsealTestCam"
    exif[ExifTags.Base.Model] = "GPS-Leak-9000"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (23.0, 7.0, 30.0)
    out = io.BytesIO()
    picture.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def _stored_certificates(app: FastAPI) -> int:
    with Session(app.state.engine) as session:
        return session.exec(select(func.count()).select_from(Certificate)).one()


def test_certificate_lifecycle(app_client, issuer, issue, verify, make_id_number):
    """Issue, read, list, verify, suspend, reinstate, revoke and review a certificate through the API."""
    holder = make_id_number(date(1988, 8, 8), check="X")
    certificate = issue(issuer, holder_id_number=holder)
    issue(issuer, operation="1.2", holder_name="王芳")
    issue(issuer, operation="2.2", holder_name="陈静")
    cid, qr = certificate["id"], certificate["qr_text"]

    def change(action: str, reason: str) -> httpx.Response:
        return app_client.post(f"/v1/certificates/{cid}/{action}", json={"reason": reason}, headers=issuer.headers)

    read = app_client.get(f"/v1/certificates/{cid}", headers=issuer.headers)

    assert read.status_code == 200
    assert read.json() == certificate
    assert certificate["status"] == "valid"
    assert certificate["masked_id"] == holder[:4] + "*" * 10 + holder[-4:]
    assert certificate["operation"]["covers_hot_work"] is True

    listed = app_client.get("/v1/certificates", headers=issuer.headers).json()
    welding = app_client.get("/v1/certificates", params={"operation": "2.1"}, headers=issuer.headers).json()
    by_holder = [
        app_client.post("/v1/certificates/search", json={"holder_id_number": form}, headers=issuer.headers).json()
        for form in (holder, holder.lower(), holder.translate(FULL_WIDTH))
    ]
    first_page = app_client.get("/v1/certificates", params={"limit": 2}, headers=issuer.headers).json()
    second_page = app_client.get("/v1/certificates", params={"limit": 2, "offset": 2}, headers=issuer.headers).json()

    assert listed["total"] == 3
    assert [item["id"] for item in welding["items"]] == [cid]
    assert all([item["id"] for item in page["items"]] == [cid] for page in by_holder)
    assert holder.lower().endswith("x")
    assert (first_page["total"], len(first_page["items"]), len(second_page["items"])) == (3, 2, 1)
    paged = {item["id"] for item in first_page["items"] + second_page["items"]}
    assert paged == {item["id"] for item in listed["items"]}

    accepted = verify(qr)

    assert (accepted["decision"], accepted["reasons"], accepted["checks"]) == ("accept", [], ACCEPT_CHECKS)
    assert accepted["certificate"]["serial"] == certificate["serial"]
    assert accepted["certificate"]["status"] == "valid"

    suspended = change("suspend", "违规作业")
    suspended_list = app_client.get("/v1/certificates", params={"status": "suspended"}, headers=issuer.headers).json()
    rejected = verify(qr)

    assert suspended.status_code == 200
    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["status_reason"] == "违规作业"
    assert [item["id"] for item in suspended_list["items"]] == [cid]
    assert (rejected["decision"], rejected["reasons"]) == ("reject", ["suspended"])

    reinstated = change("reinstate", "整改完成")
    accepted_again = verify(qr)

    assert reinstated.json()["status"] == "valid"
    assert (accepted_again["decision"], accepted_again["reasons"]) == ("accept", [])

    revoked = change("revoke", "以欺骗手段取得")
    rejected_revoked = verify(qr)
    not_reinstated = change("reinstate", "申诉")
    revoked_list = app_client.get("/v1/certificates", params={"status": "revoked"}, headers=issuer.headers).json()

    assert revoked.json()["status"] == "revoked"
    assert (rejected_revoked["decision"], rejected_revoked["reasons"]) == ("reject", ["revoked"])
    assert not_reinstated.status_code == 409
    assert not_reinstated.json()["error"]["code"] == "invalid_transition"
    assert [item["id"] for item in revoked_list["items"]] == [cid]


def test_review_moves_the_review_date(app_client, issuer, issue, verify):
    """A recorded review replaces the registry's review date, and verification reports the new one."""
    certificate = issue(issuer)
    next_due = (TEST_TODAY + timedelta(days=1000)).isoformat()

    reviewed = app_client.post(
        f"/v1/certificates/{certificate['id']}/review",
        json={"next_review_due": next_due, "note": "复审合格"},
        headers=issuer.headers,
    )
    verdict = verify(certificate["qr_text"])

    assert reviewed.status_code == 200
    assert certificate["review_due"] != next_due
    assert reviewed.json()["review_due"] == next_due
    assert verdict["certificate"]["review_due"] == next_due
    assert verdict["decision"] == "accept"


def test_reviewing_a_revoked_certificate_is_409(app_client, issuer, issue, verify):
    """A review of a revoked certificate is 409 invalid_transition and changes neither its review date nor status."""
    certificate = issue(issuer)
    base = f"/v1/certificates/{certificate['id']}"
    app_client.post(f"{base}/revoke", json={"reason": "以欺骗手段取得"}, headers=issuer.headers)
    next_due = (TEST_TODAY + timedelta(days=1000)).isoformat()

    reviewed = app_client.post(f"{base}/review", json={"next_review_due": next_due}, headers=issuer.headers)
    after = app_client.get(base, headers=issuer.headers).json()
    verdict = verify(certificate["qr_text"])

    assert reviewed.status_code == 409
    assert reviewed.json()["error"]["code"] == "invalid_transition"
    assert (after["status"], after["review_due"]) == ("revoked", certificate["review_due"])
    assert (verdict["decision"], verdict["reasons"]) == ("reject", ["revoked"])


def test_idempotent_retry_replays_the_response(app, app_client, issuer, certificate_body):
    """The same Idempotency-Key and body return the first response again, storing one certificate."""
    body = certificate_body()
    headers = {**issuer.headers, "Idempotency-Key": "batch-2026-11-20-0001"}

    first = app_client.post("/v1/certificates", json=body, headers=headers)
    second = app_client.post("/v1/certificates", json=body, headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replay"] == "true"
    assert "Idempotent-Replay" not in first.headers
    assert _stored_certificates(app) == 1


def test_idempotency_key_reused_with_another_body_conflicts(app, app_client, issuer, certificate_body):
    """The same Idempotency-Key with a different body is refused with 409 and stores nothing new."""
    headers = {**issuer.headers, "Idempotency-Key": "batch-2026-11-20-0002"}
    app_client.post("/v1/certificates", json=certificate_body(), headers=headers)

    conflict = app_client.post("/v1/certificates", json=certificate_body(holder_name="赵磊"), headers=headers)

    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    assert _stored_certificates(app) == 1
    with Session(app.state.engine) as session:
        assert session.exec(select(func.count()).select_from(IdempotencyRecord)).one() == 1


def test_qr_png_decodes_to_the_qr_text(app_client, issuer, issue):
    """The PNG served by the API decodes with a real QR decoder to exactly the certificate's QR text."""
    certificate = issue(issuer)

    png = app_client.get(certificate["links"]["qr_png"])

    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert crypto.read_qr_texts(png.content) == [certificate["qr_text"]]


def test_qr_svg_is_served_as_svg(app_client, issuer, issue):
    """The SVG rendering is served with the SVG media type and a long-lived cache header."""
    certificate = issue(issuer)

    svg = app_client.get(certificate["links"]["qr_svg"])

    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert svg.text.startswith("<svg")


def test_qr_of_an_unknown_certificate_is_404(app_client):
    """A QR image for an id that does not exist is a clean 404."""
    missing = app_client.get("/v1/certificates/0123456789abcdef/qr.png")

    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "certificate_not_found"


def test_photo_is_stored_without_exif(app_client, issuer, issue):
    """An uploaded JPEG's EXIF (camera make, GPS) is gone from the stored photo its issuer reads back."""
    original = _jpeg_with_exif()
    with Image.open(io.BytesIO(original)) as probe:
        assert probe.getexif()[ExifTags.Base.Make] == "CertsealTestCam"
        assert probe.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
    certificate = issue(issuer, photo_base64=base64.b64encode(original).decode())

    photo = app_client.get(certificate["links"]["photo"], headers=issuer.headers)

    assert certificate["has_photo"] is True
    assert photo.status_code == 200
    assert photo.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(photo.content)) as stored:
        assert stored.format == "JPEG"
        assert dict(stored.getexif()) == {}
        assert "exif" not in stored.info
    assert b"CertsealTestCam" not in photo.content
    assert b"GPS-Leak-9000" not in photo.content


def test_photo_is_hidden_from_another_issuer(app_client, admin_headers, issuer, other_issuer, issue):
    """Another issuer's key gets 404 for the photo, an app key 403 and an anonymous caller 401."""
    certificate = issue(issuer, photo_base64=base64.b64encode(_jpeg_with_exif()).decode())
    app_token = app_client.post("/v1/apps/api-keys", json={"label": "site app"}, headers=admin_headers).json()["token"]

    foreign = app_client.get(certificate["links"]["photo"], headers=other_issuer.headers)
    app_key = app_client.get(certificate["links"]["photo"], headers={"Authorization": f"Bearer {app_token}"})
    anonymous = app_client.get(certificate["links"]["photo"])

    assert (foreign.status_code, foreign.json()["error"]["code"]) == (404, "certificate_not_found")
    assert (app_key.status_code, app_key.json()["error"]["code"]) == (403, "forbidden")
    assert anonymous.status_code == 401


def test_photo_url_from_verify_is_signed_and_short_lived(app_client, settings, clock, issuer, issue, verify):
    """Verify returns a signed photo URL that works, while an expired or altered signature is refused."""
    certificate = issue(issuer, photo_base64=base64.b64encode(_jpeg_with_exif()).decode())
    verdict = verify(certificate["qr_text"])
    url = urlsplit(verdict["certificate"]["photo_url"])
    query = parse_qs(url.query)
    key = settings.url_signing_key.get_secret_value().encode()
    expired = sign_url_path(url.path, key, 60, now=clock.now().timestamp() - 3600)
    altered_sig = query["sig"][0][:-1] + ("0" if query["sig"][0][-1] != "0" else "1")

    fresh = app_client.get(f"{url.path}?{url.query}")
    stale = app_client.get(expired)
    altered = app_client.get(url.path, params={"expires": query["expires"][0], "sig": altered_sig})
    later = app_client.get(url.path, params={"expires": int(query["expires"][0]) + 3600, "sig": query["sig"][0]})

    assert url.path == f"/v1/certificates/{certificate['id']}/photo"
    assert int(query["expires"][0]) == int(clock.now().timestamp()) + settings.photo_url_ttl_seconds
    assert fresh.status_code == 200
    assert fresh.content == app_client.get(certificate["links"]["photo"], headers=issuer.headers).content
    assert (stale.status_code, altered.status_code, later.status_code) == (403, 403, 403)


def test_keys_endpoint_publishes_jwk_and_pem_of_the_same_key(app_client, issuer, issue):
    """GET /v1/keys lists the issuer key; its JWK imports into cryptography as the key in its PEM."""
    certificate = issue(issuer)

    keys = app_client.get("/v1/keys")

    assert keys.status_code == 200
    (entry,) = [key for key in keys.json()["keys"] if key["use"] == "certificate"]
    jwk = entry["jwk"]
    assert (entry["kid"], entry["issuer"], entry["state"]) == (certificate["kid"], "CN-44", "active")
    assert (jwk["kty"], jwk["crv"], jwk["kid"], jwk["alg"]) == ("EC", "P-256", entry["kid"], "ES256")
    from_jwk = ec.EllipticCurvePublicNumbers(
        int.from_bytes(_b64url(jwk["x"]), "big"), int.from_bytes(_b64url(jwk["y"]), "big"), ec.SECP256R1()
    ).public_key()
    from_pem = serialization.load_pem_public_key(entry["pem"].encode())
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert from_jwk.public_bytes(*spki) == from_pem.public_bytes(*spki)
    assert crypto.key_id(from_jwk).hex() == entry["kid"]


def test_keys_endpoint_publishes_eddsa_keys(app_client, make_issuer):
    """An Ed25519 issuer key is published as an OKP JWK whose x is the raw public key in the PEM."""
    make_issuer("CN-31", ["2.1"], alg="EdDSA")

    (entry,) = [key for key in app_client.get("/v1/keys").json()["keys"] if key["use"] == "certificate"]

    raw = serialization.load_pem_public_key(entry["pem"].encode()).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert (entry["jwk"]["kty"], entry["jwk"]["crv"], entry["alg"]) == ("OKP", "Ed25519", "EdDSA")
    assert _b64url(entry["jwk"]["x"]) == raw


@pytest.mark.parametrize("path", ["/v1/keys", "/v1/catalogue"])
def test_public_key_and_catalogue_endpoints_are_cacheable_and_cross_origin(app_client, path):
    """GET /v1/keys and GET /v1/catalogue answer any origin (default CORS) with a public Cache-Control."""

    response = app_client.get(path, headers={"Origin": "https://verifier.example.org"})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["cache-control"].startswith("public, max-age=")


def test_catalogue_endpoint_serves_catalogue_json(app_client):
    """GET /v1/catalogue is catalogue.json without its source note; item 2.1 is 熔化焊接与热切割作业; 2 is hot work."""
    shipped = json.loads(BUILTIN_CATALOGUE.read_text(encoding="utf-8"))

    served = app_client.get("/v1/catalogue").json()

    (welding,) = [category for category in served["categories"] if category["code"] == 2]
    assert served == {key: value for key, value in shipped.items() if key != "source"}
    assert served["hot_work_category"] == 2
    assert welding["items"][0] == {
        "code": "2.1",
        "zh": "熔化焊接与热切割作业",
        "en": "Fusion welding and thermal cutting",
    }


def test_health_and_readiness(app_client):
    """Liveness and readiness both answer ok while the database is reachable."""
    health = app_client.get("/healthz")
    ready = app_client.get("/readyz")

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})


def test_issuer_reads_itself_with_its_keys(app_client, issuer, admin_headers):
    """An issuer (and the admin) read the issuer record with its scope and signing keys."""
    own = app_client.get("/v1/issuers/CN-44", headers=issuer.headers)
    by_admin = app_client.get("/v1/issuers/CN-44", headers=admin_headers)

    assert own.status_code == by_admin.status_code == 200
    assert own.json() == by_admin.json()
    assert own.json()["operations"] == ["2.1", "2.2", "1.2"]
    assert [(key["use"], key["state"]) for key in own.json()["keys"]] == [
        ("certificate", "active"),
        ("status_list", "active"),
    ]


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_issuer_service_phone_is_set_by_patch_and_shown_with_a_verdict(
    app_client, admin_headers, issuer, issue, verify
):
    """PATCH sets the service phone; the verify answer names it beside the issuer; null removes it."""
    certificate = issue(issuer)

    patched = app_client.patch("/v1/issuers/CN-44", json={"service_phone": "020-12345678"}, headers=admin_headers)
    shown = verify(certificate["qr_text"])["certificate"]["issuer"]
    removed = app_client.patch("/v1/issuers/CN-44", json={"service_phone": None}, headers=admin_headers)

    assert (patched.status_code, patched.json()["service_phone"]) == (200, "020-12345678")
    assert shown == {"code": "CN-44", "name": patched.json()["name"], "service_phone": "020-12345678"}
    assert removed.json()["service_phone"] is None


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"service_phone": "call me maybe"}, 422, "validation_error"),
        ({"name": None}, 422, "invalid_issuer_field"),
        ({"operations": ["2.1"]}, 422, "validation_error"),
    ],
)
def test_issuer_patch_refuses_bad_fields(app_client, admin_headers, issuer, body, status, code):
    """A phone that is not a phone number, a removed name or an unknown field is a 422 with its code."""
    response = app_client.patch("/v1/issuers/CN-44", json=body, headers=admin_headers)

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


def test_issuer_patch_is_admin_only(app_client, issuer):
    """The issuer itself cannot change its record."""
    response = app_client.patch("/v1/issuers/CN-44", json={"service_phone": "020-1"}, headers=issuer.headers)

    assert response.status_code == 403
