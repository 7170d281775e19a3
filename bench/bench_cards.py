"""Printable cards: 500 cards as A4 sheets (10 a page) and as single card pages; pages/s, cards/s, bytes a card.

Signs N distinct certificates with a fresh ES256 key (distinct names, ID numbers, items, dates, serials),
gives every other one a photo stored as the service stores it (``clean_photo``: a 900 x 1200 JPEG
reduced to 600 px, EXIF-free), and builds the in-memory ``Certificate`` rows the service would read.
Then, best of ``--rounds``, it times:

* faces: ``card_face`` for every certificate (QR text and symbol, catalogue names, masked ID);
* sheets: ``render_sheets`` over the faces (the batch endpoint's work after the database read);
* singles: ``render_card`` for each face (the single-card endpoint's work).

It prints pages/s and cards/s for each and the PDF bytes a card, and checks the output: page 1 of the
sheets is rasterised at 300 dpi with pypdfium2 and every QR on it must decode (zxing-cpp) to its
certificate's QR text. Not part of the test run. From the project root:

    python3 bench/bench_cards.py [-n 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import io
import random
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pypdfium2  # noqa: E402 -- after the path setup
import zxingcpp  # noqa: E402
from PIL import Image  # noqa: E402

import crypto  # noqa: E402
from api.models import Certificate, Issuer  # noqa: E402
from api.services import cards  # noqa: E402
from api.services.photos import clean_photo  # noqa: E402
from api.settings import Settings  # noqa: E402
from schemas.catalogue import BUILTIN_CATALOGUE, load_catalogue  # noqa: E402
from schemas.idnumber import check_character  # noqa: E402

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
T = TypeVar("T")
ITEMS = ["1.1", "1.2", "2.1", "2.2", "2.3", "3.1", "3.2", "4.1"]


def stored_photo(rng: random.Random) -> bytes:
    """A photo as the registry holds it: a 900 x 1200 JPEG of a gradient face-sized blob, cleaned."""
    picture = Image.new("RGB", (900, 1200), (rng.randrange(150, 230), 160, 140))
    for y in range(0, 1200, 8):
        picture.paste((rng.randrange(60, 200), 120, 110), (200, y, 700, y + 8))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=90)
    photo, _ = clean_photo(base64.b64encode(out.getvalue()).decode(), max_bytes=10_000_000)
    return photo


def certificates(count: int, issuer: Issuer, rng: random.Random) -> list[Certificate]:
    """``count`` signed certificates, as rows the service would read (not stored anywhere)."""
    key = crypto.SigningKey.generate("ES256")
    rows = []
    for n in range(count):
        birth = date(1965, 1, 1) + timedelta(days=rng.randrange(0, 12_000))
        first17 = f"440106{birth:%Y%m%d}{rng.randrange(1000):03d}"
        masked = crypto.mask_visible(first17 + check_character(first17))
        issued = date(2026, 6, 15) - timedelta(days=rng.randrange(0, 700))
        photo = stored_photo(rng) if n % 2 == 0 else None
        claims = crypto.CertificateClaims.issue(
            issuer=issuer.code,
            holder_name=rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))),
            masked_id=masked,
            operation=crypto.Operation.parse(rng.choice(ITEMS)),
            valid_from=issued,
            valid_until=issued + timedelta(days=6 * 365),
            review_due=issued + timedelta(days=3 * 365),
            photo_digest=crypto.photo_digest(photo) if photo else None,
            status_index=rng.randrange(1 << 20),
        )
        rows.append(
            Certificate(
                serial=claims.serial.hex(),
                issuer_id=issuer.id,
                holder_name=claims.holder_name,
                masked_id=masked,
                operation=str(claims.operation),
                issue_date=claims.valid_from,
                valid_until=claims.valid_until,
                review_due=claims.review_due,
                photo=photo,
                photo_type="image/jpeg" if photo else None,
                envelope=crypto.sign_certificate(claims, key),
            )
        )
    return rows


def best(rounds: int, run: Callable[[], T]) -> tuple[float, T]:
    """The shortest wall time over ``rounds`` calls of ``run`` and the last result."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=500, help="cards (default 500)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    settings = Settings.for_demo(database_url="sqlite:///:memory:", public_base_url="https://cert.example.gov.cn")
    catalogue = load_catalogue(settings.catalogue_path or BUILTIN_CATALOGUE)
    issuer = Issuer(id="0" * 32, code="CN-44", name="广东省应急管理厅", region="广东")
    rng = random.Random(2026)
    print(f"signing {args.n} certificates (every other one with a photo) ...", flush=True)
    rows = certificates(args.n, issuer, rng)
    start = time.perf_counter()
    font = cards.card_font(settings)
    print(f"font registered once: {1000 * (time.perf_counter() - start):.0f} ms")

    face_time, faces = best(args.rounds, lambda: [cards.card_face(row, issuer, catalogue, settings) for row in rows])
    sheet_time, sheets = best(args.rounds, lambda: cards.render_sheets(faces, font=font))
    single_time, singles = best(args.rounds, lambda: [cards.render_card(face, font=font) for face in faces])

    document = pypdfium2.PdfDocument(sheets)
    pages = len(document)
    picture = document[0].render(scale=300 / 72).to_pil().convert("L")
    decoded = {r.text for r in zxingcpp.read_barcodes(picture, formats=zxingcpp.BarcodeFormat.QRCode) if r.valid}
    document.close()
    wanted = {crypto.encode_qr_text(row.envelope, settings.public_base_url) for row in rows[: cards.CARDS_PER_SHEET]}
    if decoded != wanted:
        raise SystemExit(f"page 1: {len(decoded & wanted)} of {len(wanted)} QR codes decoded")

    versions = sorted({face.qr.version for face in faces})
    module_mm = cards.QR_MODULE / 72 * 25.4
    print(f"QR versions {versions} (level {faces[0].qr.error_level}), module {module_mm:.4f} mm = 4 dots at 300 dpi")
    print(f"page 1 of the sheets: {len(decoded)} of {len(wanted)} QR codes decoded at 300 dpi\n")
    print(f"| step ({args.n} cards, best of {args.rounds}) | seconds | pages/s | cards/s | PDF bytes a card |")
    print("|---|---:|---:|---:|---:|")
    print(f"| faces (card_face) | {face_time:.2f} | — | {args.n / face_time:,.0f} | — |")
    print(
        f"| A4 sheets ({pages} pages) | {sheet_time:.2f} | {pages / sheet_time:,.1f} | "
        f"{args.n / sheet_time:,.0f} | {len(sheets) / args.n:,.0f} |"
    )
    single_bytes = sum(len(pdf) for pdf in singles) / args.n
    print(
        f"| single card pages | {single_time:.2f} | {args.n / single_time:,.1f} | "
        f"{args.n / single_time:,.0f} | {single_bytes:,.0f} |"
    )
    both = face_time + sheet_time
    print(f"\nbatch endpoint after its database read (faces + sheets): {args.n / both:,.0f} cards/s")


if __name__ == "__main__":
    main()
