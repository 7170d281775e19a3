"""Printable cards: every QR on a rendered sheet and card decodes and verifies, fonts embed as subsets, no ID leaks."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
import zxingcpp
from conftest import ApiIssuer, api_certificate_body, id_number_for
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, select

import crypto
from api.db import write_transaction
from api.models import Certificate, CertificateBatch, Issuer
from api.services import cards
from api.settings import DEMO_SECRETS

RENDER_DPI = 300
A4_POINTS = (595.28, 841.89)
CARD_POINTS = (85.6 / 25.4 * 72, 53.98 / 25.4 * 72)
NAMES = ["欧阳晓峰", "王芳", "陈静", "李强", "张伟", "刘洋", "赵敏", "孙丽", "周杰", "吴刚", "郑爽", "冯涛"]
SUBSET_FONT = re.compile(rb"/BaseFont\s*/([A-Z]{6})\+")


def _photo(shade: int) -> str:
    """A small JPEG, base64, in a shade of its own."""
    picture = Image.new("RGB", (120, 160), (shade, 150, 120))
    out = io.BytesIO()
    picture.save(out, format="JPEG")
    return base64.b64encode(out.getvalue()).decode()


def _issue_many(issue: Callable[..., dict[str, Any]], by: ApiIssuer, count: int) -> list[tuple[dict[str, Any], str]]:
    """Issue ``count`` certificates (every other one with a photo; items 2.1, 2.2, 1.2); each with its ID number."""
    issued = []
    for n in range(count):
        number = id_number_for(date(1970 + n, 1 + n % 12, 1 + n), sequence=100 + n)
        extra = {"photo_base64": _photo(40 + 15 * n)} if n % 2 == 0 else {}
        body = issue(
            by,
            holder_name=NAMES[n % len(NAMES)],
            holder_id_number=number,
            operation=["2.1", "2.2", "1.2"][n % 3],
            **extra,
        )
        issued.append((body, number))
    return issued


def _make_batch(app: FastAPI, issuer_code: str, certificate_ids: list[str], *, status: str = "done") -> str:
    """A CertificateBatch row of the issuer holding these certificates (as the batch runner leaves one)."""
    with Session(app.state.engine) as session, write_transaction(session):
        issuer = session.exec(select(Issuer).where(Issuer.code == issuer_code)).one()
        batch = CertificateBatch(
            issuer_id=issuer.id,
            status=status,
            total=len(certificate_ids),
            done=len(certificate_ids),
            created_by="tests",
        )
        session.add(batch)
        batch_id = batch.id
        session.flush()
        for certificate in session.exec(select(Certificate).where(Certificate.id.in_(certificate_ids))):  # type: ignore[attr-defined]
            certificate.batch_id = batch_id
            session.add(certificate)
    return batch_id


def _pages(pdf: bytes) -> list[tuple[tuple[float, float], list[Any], str]]:
    """Each page's size in points, every QR decoded from it at 300 dpi (zxing-cpp results), and its extracted text."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        pages = []
        for page in document:
            picture = page.render(scale=RENDER_DPI / 72).to_pil().convert("L")
            found = zxingcpp.read_barcodes(picture, formats=zxingcpp.BarcodeFormat.QRCode)
            valid = [result for result in found if result.valid]
            pages.append((page.get_size(), valid, page.get_textpage().get_text_range()))
        return pages
    finally:
        document.close()


def _assert_fonts_embedded_as_subsets(pdf: bytes) -> None:
    base_fonts = re.findall(rb"/BaseFont\s*/([^\s/]+)", pdf)
    assert base_fonts
    assert all(SUBSET_FONT.match(b"/BaseFont /" + name) for name in base_fonts), base_fonts
    assert pdf.count(b"/FontFile2") == len(base_fonts)


def test_batch_sheet_every_qr_verifies(app, app_client, issuer, issue, verify):
    """A batch of 11 prints as two A4 sheets whose 11 QR codes all decode and verify, subset fonts, no ID number."""
    issued = _issue_many(issue, issuer, 11)
    batch_id = _make_batch(app, issuer.code, [body["id"] for body, _ in issued])

    response = app_client.get(f"/v1/certificate-batches/{batch_id}/cards.pdf", headers=issuer.headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-disposition"] == f'attachment; filename="certseal-cards-{batch_id}.pdf"'
    pages = _pages(response.content)
    assert len(pages) == 2
    assert all(size == pytest.approx(A4_POINTS, abs=0.1) for size, _, _ in pages)
    assert [len(results) for _, results, _ in pages] == [10, 1]
    decoded = [result.text for _, results, _ in pages for result in results]
    assert sorted(decoded) == sorted(body["qr_text"] for body, _ in issued)
    assert all(verify(text)["decision"] == "accept" for text in decoded)
    _assert_fonts_embedded_as_subsets(response.content)
    page_text = "".join(text for _, _, text in pages)
    assert all(body["holder_name"] in page_text and body["masked_id"] in page_text for body, _ in issued)
    assert "准操项目" in page_text
    assert "应复审日期" in page_text
    assert "发证机关" in page_text
    assert not any(number in page_text or number.encode() in response.content for _, number in issued)


def test_single_card_is_one_card_sized_page_whose_qr_verifies(app_client, issuer, issue, verify):
    """A certificate's card.pdf is one 85.6 x 53.98 mm page with the photo, its one QR verifying accept, and no ID."""
    [(body, number)] = _issue_many(issue, issuer, 1)

    response = app_client.get(f"/v1/certificates/{body['id']}/card.pdf", headers=issuer.headers)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-disposition"] == f'attachment; filename="certseal-card-{body["serial"]}.pdf"'
    [(size, [qr], text)] = _pages(response.content)
    assert size == pytest.approx(CARD_POINTS, abs=0.1)
    assert qr.text == body["qr_text"]
    assert verify(qr.text)["decision"] == "accept"
    assert qr.ec_level == crypto.make_symbol(qr.text).error_level == "Q"
    modules = crypto.make_symbol(qr.text).size
    assert (qr.position.top_right.x - qr.position.top_left.x) / modules == pytest.approx(4, abs=0.1)  # dots a module
    assert b"/Subtype /Image" in response.content
    _assert_fonts_embedded_as_subsets(response.content)
    assert "2.1 熔化焊接与热切割作业" in text
    assert body["serial"] in text
    assert number not in text
    assert number.encode() not in response.content


def test_another_issuers_certificate_and_batch_are_not_found(app, app_client, issuer, other_issuer, issue):
    """Another issuer's certificate and batch answer 404 exactly like ids that do not exist."""
    [(body, _)] = _issue_many(issue, issuer, 1)
    batch_id = _make_batch(app, issuer.code, [body["id"]])

    answers = [
        app_client.get(f"/v1/certificates/{body['id']}/card.pdf", headers=other_issuer.headers),
        app_client.get(f"/v1/certificates/{'0' * 32}/card.pdf", headers=issuer.headers),
        app_client.get(f"/v1/certificate-batches/{batch_id}/cards.pdf", headers=other_issuer.headers),
        app_client.get(f"/v1/certificate-batches/{'0' * 32}/cards.pdf", headers=issuer.headers),
        app_client.get("/v1/certificate-batches/not-an-id/cards.pdf", headers=issuer.headers),
    ]

    assert [answer.status_code for answer in answers] == [404] * 5
    codes = [answer.json()["error"]["code"] for answer in answers]
    assert codes == ["certificate_not_found"] * 2 + ["batch_not_found"] * 3


def test_cards_need_an_issuer_key(app_client, issuer, issue, admin_headers):
    """Without a token the answer is 401; the admin token, which owns no certificate, gets 403."""
    [(body, _)] = _issue_many(issue, issuer, 1)

    anonymous = app_client.get(f"/v1/certificates/{body['id']}/card.pdf")
    admin = app_client.get(f"/v1/certificates/{body['id']}/card.pdf", headers=admin_headers)

    assert anonymous.status_code == 401
    assert admin.status_code == 403


def test_a_batch_not_done_is_a_conflict(app, app_client, issuer, issue):
    """A batch still running answers 409 batch_not_done."""
    [(body, _)] = _issue_many(issue, issuer, 1)
    batch_id = _make_batch(app, issuer.code, [body["id"]], status="running")

    response = app_client.get(f"/v1/certificate-batches/{batch_id}/cards.pdf", headers=issuer.headers)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "batch_not_done"


def test_a_revoked_certificate_gets_no_card(app, app_client, issuer, issue):
    """A revoked certificate's card is refused with 409, and its batch's sheet leaves it out."""
    issued = _issue_many(issue, issuer, 3)
    batch_id = _make_batch(app, issuer.code, [body["id"] for body, _ in issued])
    revoked = issued[1][0]
    app_client.post(
        f"/v1/certificates/{revoked['id']}/revoke", json={"reason": "以欺骗手段取得"}, headers=issuer.headers
    )

    single = app_client.get(f"/v1/certificates/{revoked['id']}/card.pdf", headers=issuer.headers)
    sheet = app_client.get(f"/v1/certificate-batches/{batch_id}/cards.pdf", headers=issuer.headers)

    assert single.status_code == 409
    assert single.json()["error"]["code"] == "certificate_not_valid"
    [(_, results, _)] = _pages(sheet.content)
    assert sorted(result.text for result in results) == sorted([issued[0][0]["qr_text"], issued[2][0]["qr_text"]])


def test_a_certificate_revoked_while_its_sheet_renders_is_left_out(app, app_client, issuer, issue, monkeypatch):
    """A certificate revoked after the sheet read the batch's ids, before its card was drawn, gets no card."""
    issued = _issue_many(issue, issuer, 3)
    batch_id = _make_batch(app, issuer.code, [body["id"] for body, _ in issued])
    revoked = issued[1][0]
    render = cards.render_sheets

    def revoke_first(faces, **options):
        with Session(app.state.engine) as session, write_transaction(session):
            session.exec(select(Certificate).where(Certificate.id == revoked["id"])).one().status = "revoked"
        return render(faces, **options)

    monkeypatch.setattr(cards, "render_sheets", revoke_first)

    sheet = app_client.get(f"/v1/certificate-batches/{batch_id}/cards.pdf", headers=issuer.headers)

    assert sheet.status_code == 200, sheet.text
    [(_, results, _)] = _pages(sheet.content)
    assert sorted(result.text for result in results) == sorted([issued[0][0]["qr_text"], issued[2][0]["qr_text"]])


def test_a_font_that_cannot_be_embedded_is_503(make_settings, make_app, tmp_path):
    """With a font file ReportLab cannot embed both endpoints answer 503 card_font_missing, never a 500."""
    not_a_font = tmp_path / "font.ttf"
    not_a_font.write_bytes(b"OTTO not really a font")
    app = make_app(make_settings(card_font_file=not_a_font))
    with TestClient(app) as client:
        issuer = make_issuer_on(client, "CN-44")
        body = client.post("/v1/certificates", json=api_certificate_body(), headers=issuer).json()
        batch_id = _make_batch(app, "CN-44", [body["id"]])

        answers = [
            client.get(f"/v1/certificates/{body['id']}/card.pdf", headers=issuer),
            client.get(f"/v1/certificate-batches/{batch_id}/cards.pdf", headers=issuer),
        ]

    assert [answer.status_code for answer in answers] == [503, 503]
    assert {answer.json()["error"]["code"] for answer in answers} == {"card_font_missing"}


def test_a_configured_font_file_that_does_not_exist_stops_start_up(make_settings, make_app):
    """CERTSEAL_CARD_FONT_FILE naming no file is a configuration error: the service refuses to start, naming it."""
    app = make_app(make_settings(card_font_file="/nonexistent/certseal-card-font.ttf"))

    with pytest.raises(RuntimeError, match="CERTSEAL_CARD_FONT_FILE"), TestClient(app):
        pass


def make_issuer_on(client: TestClient, code: str) -> dict[str, str]:
    """Create issuer ``code`` (item 2.1) through the admin API; return its API key's bearer headers."""
    admin = {"Authorization": f"Bearer {DEMO_SECRETS['admin_token']}"}
    client.post(
        "/v1/issuers", json={"code": code, "name": "广东", "region": "广东", "operations": ["2.1"]}, headers=admin
    ).raise_for_status()
    token = client.post(f"/v1/issuers/{code}/api-keys", json={}, headers=admin).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def test_a_font_reportlab_cannot_embed_is_503(make_settings, tmp_path):
    """A file that is no TrueType font counts as missing: CardFontMissing, never a 500."""
    not_a_font = tmp_path / "font.ttf"
    not_a_font.write_bytes(b"OTTO not really a font")

    with pytest.raises(cards.CardFontMissing):
        cards.card_font(make_settings(card_font_file=not_a_font))


def test_start_up_warns_without_the_default_card_font(make_settings, make_app, monkeypatch, caplog):
    """Without the default font the service still starts, and its log says why card PDFs will answer 503."""
    monkeypatch.setattr("api.main.DEFAULT_CARD_FONT", Path("/nonexistent/DroidSansFallbackFull.ttf"))

    with TestClient(make_app(make_settings())):
        pass

    assert "card_font_missing" in caplog.text
    assert "fonts-droid-fallback" in caplog.text
