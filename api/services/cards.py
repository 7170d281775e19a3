"""Printable certificate cards: ID-1 cards on A4 sheets with crop marks, or one card on a card-sized page.

The data a card shows is gathered first, as a :class:`CardFace` (no database, no drawing); the render
functions take faces only and draw with ReportLab. Chinese text is set in a TrueType-outline CJK font
(Droid Sans Fallback by default: ReportLab cannot embed CFF-outline fonts such as Noto Sans CJK) and
Latin text (digits, dates, the masked ID, the serial) in Bitstream Vera, which ships with ReportLab,
since Droid Sans Fallback has no Latin glyphs. Both are embedded as subsets, so the PDF prints anywhere.

The QR code is drawn as vector modules of 4 printer dots at 300 dpi (0.3387 mm) with its 4-module quiet
zone, at the error-correction level of the project's QR images (``crypto.make_symbol``): a photo of a
phone at arm's length decodes reliably from 4 pixels a module, and a worn card keeps level Q's margin.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import reportlab
from reportlab import rl_config
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import inch, mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas
from sqlmodel import Session, col, select

import crypto
from crypto import Operation
from crypto.qrimage import QUIET_ZONE
from schemas.catalogue import Catalogue

from ..db import read_transaction
from ..models import Certificate, CertificateBatch, Issuer
from ..settings import Settings
from . import issuance
from .errors import CardFontMissing, Conflict

# Image data as binary streams, not ASCII85 text: a quarter smaller and much faster (only cards use ReportLab).
rl_config.useA85 = 0

# Debian's fonts-droid-fallback (Apache-2.0); CERTSEAL_CARD_FONT_FILE names another TrueType CJK font.
DEFAULT_CARD_FONT = Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf")
LATIN_FONT_FILE = Path(reportlab.__file__).parent / "fonts" / "Vera.ttf"  # Bitstream Vera licence
LATIN_FONT = "CertsealCardLatin"

# ISO/IEC 7810 ID-1 (the national certificate's size).
CARD_WIDTH = 85.60 * mm
CARD_HEIGHT = 53.98 * mm
# A4 sheet: 2 columns x 5 rows. Cards sit apart so each has its own crop marks outside it; the marks of
# neighbouring cards lie on the same cut lines, so a printer margin clipping the outermost ones loses nothing.
SHEET_COLUMNS = 2
SHEET_ROWS = 5
CARDS_PER_SHEET = SHEET_COLUMNS * SHEET_ROWS
COLUMN_GAP = 10 * mm
ROW_GAP = 4 * mm
CROP_MARK_OFFSET = 1 * mm  # from the card edge, so a slightly wide cut never shows a mark on the card
CROP_MARK_LENGTH = 2.5 * mm
CROP_MARK_WIDTH = 0.25  # points
# One QR module: 4 dots of a 300 dpi printer.
QR_MODULE = 4 * inch / 300
_DARK_RUN = re.compile(rb"\x01+")  # a run of dark modules in a row (bytes of the row's booleans)
PHOTO_WIDTH = 19 * mm
PHOTO_HEIGHT = 25 * mm
PADDING = 2.5 * mm
HEADER_HEIGHT = 6.5 * mm
HEADER_FILL = (0.85, 0.91, 0.97)
TITLE = "特种作业操作证"

# Batches are read in chunks: one short read transaction each, never one held open while pages draw.
CHUNK = 200


class BatchNotDone(Conflict):
    """The batch is still issuing (or failed): its cards are printed once it is done."""

    code = "batch_not_done"
    message = "the batch has not finished issuing; print its cards when it is done"


class CertificateNotPrintable(Conflict):
    """Only a valid certificate gets a card: a suspended, revoked or superseded one is not handed out again."""

    code = "certificate_not_valid"
    message = "only a valid certificate's card can be printed"


@dataclass(frozen=True, slots=True)
class CardFace:
    """Everything one card shows, in the words of the national query platform; no full ID number exists here."""

    holder_name: str
    masked_id: str  # as displayed: 4401**********123X
    category: str  # 作业类别, e.g. "2 焊接与热切割作业"
    item: str  # 准操项目, e.g. "2.1 熔化焊接与热切割作业"
    issue_date: date
    valid_until: date
    review_due: date | None  # 应复审日期
    issuing_authority: str  # 发证机关
    serial: str  # the certificate number
    qr: crypto.QrSymbol
    photo: bytes | None  # JPEG or PNG, as stored (already re-encoded, EXIF removed)


@dataclass(frozen=True, slots=True)
class CardFont:
    """The registered ReportLab font names and the CJK font's character map (which characters it draws)."""

    cjk: str
    covered: frozenset[int]


def card_face(certificate: Certificate, issuer: Issuer, catalogue: Catalogue, settings: Settings) -> CardFace:
    """The face of one certificate's card."""
    operation = Operation.parse(certificate.operation)
    entry = catalogue.get(operation)
    category = f"{operation.category} {entry.category_zh}" if entry else str(operation.category)
    item = f"{operation} {entry.zh}" if entry else str(operation)
    return CardFace(
        holder_name=certificate.holder_name,
        masked_id=crypto.display_masked(certificate.masked_id),
        category=category,
        item=item,
        issue_date=certificate.issue_date,
        valid_until=certificate.valid_until,
        review_due=certificate.review_due,
        issuing_authority=issuer.name,
        serial=certificate.serial,
        qr=crypto.make_symbol(issuance.qr_text_of(certificate, settings)),
        photo=certificate.photo,
    )


# --- fonts ----------------------------------------------------------------------------------------

_font_lock = threading.Lock()
_registered: dict[Path, CardFont] = {}


def card_font(settings: Settings) -> CardFont:
    """The card fonts, registered with ReportLab once per process (per font file); CardFontMissing without one."""
    path = settings.card_font_file or DEFAULT_CARD_FONT
    with _font_lock:
        font = _registered.get(path)
        if font is None:
            font = _register(path)
            _registered[path] = font
    return font


def _register(path: Path) -> CardFont:
    name = f"CertsealCardCJK{len(_registered)}"
    try:
        cjk = TTFont(name, str(path))
    except (OSError, TTFError):
        # A missing file, or a font ReportLab cannot embed (CFF outlines, a collection): the same remedy.
        raise CardFontMissing() from None
    pdfmetrics.registerFont(cjk)
    if LATIN_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(LATIN_FONT, str(LATIN_FONT_FILE)))
    return CardFont(cjk=name, covered=frozenset(cjk.face.charToGlyph))


# --- reading what to print ------------------------------------------------------------------------


def certificate_card(certificate: Certificate, *, issuer: Issuer, catalogue: Catalogue, settings: Settings) -> bytes:
    """The one-page PDF of a valid certificate's card (the caller has checked that the issuer owns it)."""
    if certificate.status != "valid":
        raise CertificateNotPrintable()
    font = card_font(settings)
    return render_card(card_face(certificate, issuer, catalogue, settings), font=font)


def batch_cards(
    session: Session, *, batch: CertificateBatch, issuer: Issuer, catalogue: Catalogue, settings: Settings
) -> bytes:
    """A4 sheets of the cards of a finished batch's valid certificates, in issue order."""
    if batch.status != "done":
        raise BatchNotDone()
    font = card_font(settings)
    with read_transaction(session):
        ids = session.exec(
            select(Certificate.id)
            .where(Certificate.batch_id == batch.id, Certificate.status == "valid")
            .order_by(col(Certificate.created_at), col(Certificate.id))
        ).all()
    return render_sheets(_faces(session, list(ids), issuer=issuer, catalogue=catalogue, settings=settings), font=font)


def _faces(
    session: Session, ids: list[str], *, issuer: Issuer, catalogue: Catalogue, settings: Settings
) -> Iterator[CardFace]:
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        with read_transaction(session):
            # Valid again at this read: one revoked, suspended or superseded since the ids were read is left out.
            rows = {
                row.id: row
                for row in session.exec(
                    select(Certificate).where(col(Certificate.id).in_(chunk), Certificate.status == "valid")
                )
            }
            faces = [card_face(rows[i], issuer, catalogue, settings) for i in chunk if i in rows]
            session.expunge_all()  # photos of printed chunks are not kept for the rest of the batch
        yield from faces


# --- drawing (faces in, PDF bytes out) -------------------------------------------------------------


def render_card(face: CardFace, *, font: CardFont) -> bytes:
    """A one-page PDF whose page is the card itself (85.6 x 53.98 mm), as card printers take it."""
    out = io.BytesIO()
    canvas = _canvas(out, (CARD_WIDTH, CARD_HEIGHT), f"{TITLE} {face.serial}")
    _draw_card(canvas, face, font, 0, 0)
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def render_sheets(faces: Iterable[CardFace], *, font: CardFont) -> bytes:
    """A4 pages of 10 cards each (2 x 5), crop marks outside every card; an empty batch gives one empty page."""
    out = io.BytesIO()
    canvas = _canvas(out, A4, TITLE)
    slot = 0
    for face in faces:
        if slot == CARDS_PER_SHEET:
            canvas.showPage()
            slot = 0
        x, y = sheet_position(slot)
        _draw_crop_marks(canvas, x, y)
        _draw_card(canvas, face, font, x, y)
        slot += 1
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def sheet_position(slot: int) -> tuple[float, float]:
    """The lower-left corner (points) of card ``slot`` (0-9, row by row from the top left) on an A4 page."""
    page_width, page_height = A4
    block_width = SHEET_COLUMNS * CARD_WIDTH + (SHEET_COLUMNS - 1) * COLUMN_GAP
    block_height = SHEET_ROWS * CARD_HEIGHT + (SHEET_ROWS - 1) * ROW_GAP
    row, column = divmod(slot, SHEET_COLUMNS)
    left = (page_width - block_width) / 2 + column * (CARD_WIDTH + COLUMN_GAP)
    top = page_height - (page_height - block_height) / 2 - row * (CARD_HEIGHT + ROW_GAP)
    return left, top - CARD_HEIGHT


def _canvas(out: io.BytesIO, size: tuple[float, float], title: str) -> Canvas:
    # The Latin font as the initial one: otherwise ReportLab names Helvetica, a font the PDF would not embed.
    canvas = Canvas(out, pagesize=size, pageCompression=1, invariant=1, initialFontName=LATIN_FONT)
    canvas.setTitle(title)
    canvas.setCreator("certseal")
    return canvas


def _draw_crop_marks(canvas: Canvas, x: float, y: float) -> None:
    canvas.setStrokeColorRGB(0, 0, 0)
    canvas.setLineWidth(CROP_MARK_WIDTH)
    near, far = CROP_MARK_OFFSET, CROP_MARK_OFFSET + CROP_MARK_LENGTH
    for cx, sx in ((x, -1), (x + CARD_WIDTH, 1)):
        for cy, sy in ((y, -1), (y + CARD_HEIGHT, 1)):
            canvas.line(cx + sx * near, cy, cx + sx * far, cy)  # along the horizontal cut line
            canvas.line(cx, cy + sy * near, cx, cy + sy * far)  # along the vertical cut line


def _draw_card(canvas: Canvas, face: CardFace, font: CardFont, x: float, y: float) -> None:
    top = y + CARD_HEIGHT
    # The card's outline, a hairline in light grey: it shows where to cut if the marks are clipped.
    canvas.setStrokeColorRGB(0.75, 0.75, 0.75)
    canvas.setLineWidth(0.2)
    canvas.setFillColorRGB(*HEADER_FILL)
    canvas.rect(x, top - HEADER_HEIGHT, CARD_WIDTH, HEADER_HEIGHT, stroke=0, fill=1)
    canvas.rect(x, y, CARD_WIDTH, CARD_HEIGHT, stroke=1, fill=0)
    canvas.setFillColorRGB(0, 0, 0)
    _text(canvas, font, x + PADDING, top - HEADER_HEIGHT + 2 * mm, TITLE, 9.5, CARD_WIDTH / 2)
    _text_right(canvas, font, x + CARD_WIDTH - PADDING, top - HEADER_HEIGHT + 2.1 * mm, face.issuing_authority, 6.5)

    qr_side = (face.qr.size + 2 * QUIET_ZONE) * QR_MODULE
    qr_x = x + CARD_WIDTH - qr_side - 1 * mm
    qr_y = top - HEADER_HEIGHT - qr_side - 0.5 * mm
    _draw_qr(canvas, face.qr, qr_x, qr_y)

    photo_x, photo_y = x + PADDING, top - HEADER_HEIGHT - 1.5 * mm - PHOTO_HEIGHT
    _draw_photo(canvas, face.photo, photo_x, photo_y, font)

    # Name and masked ID beside the photo, the rest in rows below it; every value shrinks to fit its space.
    text_x = photo_x + PHOTO_WIDTH + 2 * mm
    text_width = qr_x - text_x  # the QR's white square is its quiet zone: no text inside it
    line = top - HEADER_HEIGHT - 5 * mm
    _text(canvas, font, text_x, line, face.holder_name, 11, text_width)
    rows_beside = (
        ("身份证号", face.masked_id),
        ("作业类别", face.category),
        ("准操项目", face.item),
        ("证号", face.serial),
    )
    line -= 5.2 * mm
    for label, value in rows_beside:
        _field(canvas, font, text_x, line, label, value, text_width)
        line -= 4.2 * mm

    # Below the photo and the QR: the whole width of the card.
    line = photo_y - 4 * mm
    full_width = CARD_WIDTH - 2 * PADDING
    dates = f"{face.issue_date:%Y-%m-%d} 至 {face.valid_until:%Y-%m-%d}"
    _field(canvas, font, x + PADDING, line, "有效期", dates, full_width)
    line -= 4.2 * mm
    review = f"{face.review_due:%Y-%m-%d}" if face.review_due else "—"
    _field(canvas, font, x + PADDING, line, "应复审日期", review, full_width / 2)
    _field(canvas, font, x + PADDING + full_width / 2, line, "发证日期", f"{face.issue_date:%Y-%m-%d}", full_width / 2)
    line -= 4.2 * mm
    _field(canvas, font, x + PADDING, line, "发证机关", face.issuing_authority, full_width)


def _draw_qr(canvas: Canvas, symbol: crypto.QrSymbol, x: float, y: float) -> None:
    """Dark modules as horizontal runs on a white square that includes the quiet zone.

    The runs are written as PDF operators in module units under one scaling transform: whole numbers,
    exact module edges, a small page stream, and no per-number formatting by ReportLab (its pure-Python
    number formatter made the QR most of a card's drawing time).
    """
    side = (symbol.size + 2 * QUIET_ZONE) * QR_MODULE
    canvas.setFillColorRGB(1, 1, 1)
    canvas.rect(x, y, side, side, stroke=0, fill=1)
    runs: list[str] = []
    for row_number, row in enumerate(symbol.modules):
        bottom = symbol.size - 1 - row_number  # PDF's y axis points up
        runs += [f"{run.start()} {bottom} {run.end() - run.start()} 1 re" for run in _DARK_RUN.finditer(bytes(row))]
    origin_x, origin_y = x + QUIET_ZONE * QR_MODULE, y + QUIET_ZONE * QR_MODULE
    canvas.addLiteral(f"q 0 g {QR_MODULE:.6f} 0 0 {QR_MODULE:.6f} {origin_x:.4f} {origin_y:.4f} cm\n")
    canvas.addLiteral("\n".join(runs) + "\nf Q")


def _draw_photo(canvas: Canvas, photo: bytes | None, x: float, y: float, font: CardFont) -> None:
    canvas.setStrokeColorRGB(0.6, 0.6, 0.6)
    canvas.setLineWidth(0.3)
    canvas.rect(x, y, PHOTO_WIDTH, PHOTO_HEIGHT, stroke=1, fill=0)
    if photo is None:
        canvas.setFillColorRGB(0.55, 0.55, 0.55)
        _text(canvas, font, x + PHOTO_WIDTH / 2 - 3.3 * mm, y + PHOTO_HEIGHT / 2, "无照片", 6.5, PHOTO_WIDTH)
        canvas.setFillColorRGB(0, 0, 0)
        return
    canvas.drawImage(
        ImageReader(io.BytesIO(photo)),
        x,
        y,
        PHOTO_WIDTH,
        PHOTO_HEIGHT,
        preserveAspectRatio=True,
        anchor="c",
    )


def _field(canvas: Canvas, font: CardFont, x: float, y: float, label: str, value: str, width: float) -> None:
    canvas.setFillColorRGB(0.35, 0.35, 0.35)
    label_width = _text(canvas, font, x, y, label, 5.5, width)
    canvas.setFillColorRGB(0, 0, 0)
    _text(canvas, font, x + label_width + 1.2 * mm, y, value, 7, width - label_width - 1.2 * mm)


def _text_right(canvas: Canvas, font: CardFont, right: float, y: float, text: str, size: float) -> None:
    width = _width(font, text, size)
    _text(canvas, font, right - width, y, text, size, width)


def _text(canvas: Canvas, font: CardFont, x: float, y: float, text: str, size: float, width: float) -> float:
    """Draw mixed CJK and Latin text, shrunk (to 4 pt at least) to fit ``width``; return the width drawn."""
    natural = _width(font, text, size)
    if natural > width:
        size = max(4.0, size * width / natural)
    cursor = x
    for name, run in _runs(font, text):
        canvas.setFont(name, size)
        canvas.drawString(cursor, y, run)
        cursor += pdfmetrics.stringWidth(run, name, size)
    return cursor - x


def _width(font: CardFont, text: str, size: float) -> float:
    return sum(pdfmetrics.stringWidth(run, name, size) for name, run in _runs(font, text))


def _runs(font: CardFont, text: str) -> Iterator[tuple[str, str]]:
    """Split text into runs of one font each: the CJK font for what it covers (not ASCII), Vera for the rest."""
    start = 0
    current: str | None = None
    for index, character in enumerate(text):
        name = font.cjk if ord(character) > 0x7F and ord(character) in font.covered else LATIN_FONT
        if name != current:
            if current is not None:
                yield current, text[start:index]
            current, start = name, index
    if current is not None:
        yield current, text[start:]
