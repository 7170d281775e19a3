"""QR text and QR images: digit packing, URL rules, symbol size, privacy, PNG/SVG rendering and reading."""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import qrcode
from conftest import TEST_BASE_URL, TEST_ID_NUMBER
from PIL import Image, ImageFilter

import crypto
from crypto import qrtext

TAIL_DIGITS = {0: 0, 1: 3, 2: 5, 3: 8, 4: 10, 5: 13, 6: 15}
BASE_URL_32 = "https://tzzy.yjgl.gd.gov.cn/cert"  # a realistic provincial base URL of 32 characters
MAX_CARD_VERSION = 13  # about 0.32 mm a module on a 25 mm code: what worn cards and cheap phones still read


# --- digit packing ---


@pytest.mark.parametrize("length", range(1, 201))
def test_packing_round_trip_and_digit_count(length):
    """Bytes of every length 1..200 (random, all zero, all 0xff) pack to the exact digit count and back."""
    rng = random.Random(length)  # noqa: S311 - reproducible test data, not key material
    samples = [bytes(rng.randrange(256) for _ in range(length)), b"\x00" * length, b"\xff" * length]
    expected_digits = 17 * (length // 7) + TAIL_DIGITS[length % 7]

    packed = [qrtext.pack_digits(sample) for sample in samples]

    assert all(len(digits) == expected_digits for digits in packed)
    assert all(digits.isascii() and digits.isdigit() for digits in packed)
    assert [qrtext.unpack_digits(digits) for digits in packed] == samples


def test_packing_of_empty_bytes_is_refused_on_the_way_back():
    """Zero bytes pack to no digits, and no digits are refused as ``malformed`` (a credential is never empty)."""
    packed = qrtext.pack_digits(b"")

    with pytest.raises(crypto.Malformed):
        qrtext.unpack_digits(packed)

    assert packed == ""


def test_tail_digits_are_the_fewest_that_fit():
    """Each short final group uses the fewest digits that can hold 256^n - 1."""
    fewest = {n: len(str(256**n - 1)) for n in range(1, 7)}

    table = qrtext.TAIL_DIGITS

    assert table == fewest
    assert len(str(256**7 - 1)) == qrtext.GROUP_DIGITS


@pytest.mark.parametrize("remainder", range(17))
def test_each_digit_count_remainder(remainder):
    """Digit counts whose remainder mod 17 is not a final-group size are refused; the others unpack."""
    digits = "0" * (17 + remainder)
    valid = remainder in TAIL_DIGITS.values()

    if valid:
        unpacked = qrtext.unpack_digits(digits)
        assert len(unpacked) == 7 + {v: k for k, v in TAIL_DIGITS.items()}[remainder]
    else:
        with pytest.raises(crypto.Malformed):
            qrtext.unpack_digits(digits)


@pytest.mark.parametrize("n", range(1, 8))
def test_group_at_256_power_n_is_refused(n):
    """A group of n bytes holds at most 256^n - 1; 256^n in the same digits is ``malformed``."""
    width = 17 if n == 7 else TAIL_DIGITS[n]
    largest, too_big = str(256**n - 1).zfill(width), str(256**n).zfill(width)

    unpacked = qrtext.unpack_digits(largest)

    assert unpacked == b"\xff" * n
    assert len(too_big) == width
    with pytest.raises(crypto.Malformed):
        qrtext.unpack_digits(too_big)


def test_unpack_limit_is_4096_digits():
    """4096 digits are the most that unpack; one more is ``malformed``."""
    fits = "0" * (4096 - 4096 % 17)

    unpacked = qrtext.unpack_digits(fits)

    assert len(unpacked) == 7 * (4096 // 17)
    with pytest.raises(crypto.Malformed):
        qrtext.unpack_digits("0" * (4096 + 17 - 4096 % 17))


URL_CASES = json.loads((Path(__file__).parent / "vectors" / "url-cases.json").read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", URL_CASES, ids=[case["name"] for case in URL_CASES])
def test_url_rule(case):
    """Each case of the shared URL table (also run in the browser) gets its envelope, or its code and message."""
    text = case["text"]

    try:
        outcome = (None, None, crypto.envelope_from_qr_text(text).hex())
    except crypto.VerificationError as error:
        outcome = (error.code, error.detail, None)

    assert outcome == (case["code"], case["message"], case["envelope_hex"])


def test_bare_digits_and_whitespace(genuine_qr_text, trust):
    """Tools may pass the bare digits; surrounding whitespace from a scanner is ignored."""
    digits = genuine_qr_text.partition("#")[2]

    from_digits = crypto.envelope_from_qr_text(digits)
    from_padded = crypto.envelope_from_qr_text(f"  {genuine_qr_text}\r\n")

    assert from_digits == from_padded == crypto.envelope_from_qr_text(genuine_qr_text)


# --- URLs ---


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://cert.example.gov.cn", "https://cert.example.gov.cn"),
        ("https://cert.example.gov.cn/", "https://cert.example.gov.cn"),
        ("https://cert.example.gov.cn/gd/", "https://cert.example.gov.cn/gd"),
        ("https://cert.example.gov.cn:8443", "https://cert.example.gov.cn:8443"),
    ],
)
def test_base_url_normalized(base, expected):
    """An https base URL loses its trailing slash and keeps everything else."""
    normalized = crypto.normalize_base_url(base)

    assert normalized == expected


@pytest.mark.parametrize(
    "base",
    [
        "http://cert.example.gov.cn",
        "http://localhost:8000",
        "ftp://cert.example.gov.cn",
        "https://cert.example.gov.cn/?a=1",
        "https://cert.example.gov.cn/#x",
        "https://user:pw@cert.example.gov.cn",
        "https:///path",
        "https://cert.example.gov.cn:99999",
        "cert.example.gov.cn",
    ],
)
def test_base_url_refused(base):
    """Anything but https://host[/path] is refused (plain http only for localhost in demo mode)."""
    with pytest.raises(crypto.InvalidInput):
        crypto.normalize_base_url(base)


@pytest.mark.parametrize("base", ["http://localhost:8000", "http://127.0.0.1", "http://[::1]:8080"])
def test_localhost_http_only_in_demo_mode(base, genuine_envelope):
    """http on a loopback host is allowed when the caller opts in, for demos."""
    text = crypto.encode_qr_text(genuine_envelope, base, allow_insecure_localhost=True)

    envelope = crypto.envelope_from_qr_text(text)

    assert text.startswith(base + "/c1#")
    assert envelope == genuine_envelope


def test_http_non_local_refused_even_in_demo_mode():
    """Demo mode does not open plain http to other hosts."""
    with pytest.raises(crypto.InvalidInput):
        crypto.normalize_base_url("http://cert.example.gov.cn", allow_insecure_localhost=True)


def test_qr_text_shape(genuine_qr_text, genuine_envelope):
    """QR text is ``<base>/c1#<digits>`` carrying the envelope."""
    match = re.fullmatch(r"https://cert\.example\.gov\.cn/c1#([0-9]+)", genuine_qr_text)

    assert match is not None
    assert qrtext.unpack_digits(match[1]) == genuine_envelope


# --- size ---


def test_full_certificate_fits_version_13_at_level_q(full_claims, es256_key, record_property):
    """A full ES256 certificate under a 32-character base URL fits QR version 13 or less at level Q."""
    text = crypto.encode_qr_text(crypto.sign_certificate(full_claims, es256_key), BASE_URL_32)

    symbol = crypto.make_symbol(text, error_level="Q")

    print(f"full certificate: {len(text)} characters of QR text -> QR version {symbol.version} at level Q")
    record_property("qr_version", symbol.version)
    assert len(BASE_URL_32) == 32
    assert symbol.error_level == "Q"
    assert symbol.version <= MAX_CARD_VERSION
    assert symbol.size == 17 + 4 * symbol.version


def test_digits_are_encoded_in_numeric_mode(genuine_qr_text):
    """The segmented symbol is no larger than qrcode's own optimised encoding of the same text."""
    reference = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_Q)
    reference.add_data(genuine_qr_text)
    reference.make(fit=True)

    symbol = crypto.make_symbol(genuine_qr_text)

    assert symbol.version <= reference.version


def test_make_symbol_refusals():
    """An unknown error level or text too long for any QR symbol is ``InvalidInput``."""
    with pytest.raises(crypto.InvalidInput):
        crypto.make_symbol("https://x.cn/c1#1", error_level="X")
    with pytest.raises(crypto.InvalidInput):
        crypto.make_symbol("https://x.cn/c1#" + "1" * 8000)


# --- privacy ---


def test_no_id_number_nor_unkeyed_hash_in_credential(genuine_envelope, genuine_qr_text):
    """Neither the 18-digit ID number nor its SHA-256/SHA-1/MD5 (hex or raw) appears in the envelope or QR text."""
    id_bytes = TEST_ID_NUMBER.encode("ascii")
    digests = [hashlib.new(name, id_bytes).digest() for name in ("sha256", "sha1", "md5")]
    forbidden_text = [TEST_ID_NUMBER] + [d.hex() for d in digests] + [d.hex().upper() for d in digests]
    forbidden_bytes = [id_bytes, *digests, *(t.encode("ascii") for t in forbidden_text)]

    payload = crypto.cose.decode(genuine_envelope).payload

    assert not [t for t in forbidden_text if t in genuine_qr_text]
    assert not [b for b in forbidden_bytes if b in genuine_envelope or b in payload]
    assert not [d[:16] for d in digests if d[:16] in genuine_envelope]  # nor a truncated one
    assert TEST_ID_NUMBER[6:14] not in genuine_qr_text  # the birth date is not there either


def test_only_the_mask_of_the_id_number_is_signed(full_claims):
    """The credential carries 8 of the 18 characters: the first 4 and the last 4."""
    masked = full_claims.masked_id

    assert masked == TEST_ID_NUMBER[:4] + TEST_ID_NUMBER[-4:]


# --- images ---


def test_png_decodes_to_the_same_text(genuine_qr_text):
    """zxing-cpp reads the rendered PNG back as exactly the QR text."""
    png = crypto.render_png(crypto.make_symbol(genuine_qr_text))

    texts = crypto.read_qr_texts(png)

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert texts == [genuine_qr_text]


def test_png_dimensions_and_quiet_zone(genuine_qr_text):
    """The PNG is (modules + 2 x 4 quiet zone) x scale pixels square, with a white border."""
    symbol = crypto.make_symbol(genuine_qr_text)

    image = Image.open(io.BytesIO(crypto.render_png(symbol, scale=3))).convert("L")

    assert image.size == ((symbol.size + 8) * 3,) * 2
    assert image.crop((0, 0, image.width, 12)).getextrema() == (255, 255)
    assert image.getpixel((12, 12)) == 0  # the finder pattern's top-left dark module


def test_png_still_decodes_after_blur_downscale_and_jpeg(full_claims, es256_key):
    """A photo-like copy (blurred, downscaled to ~3.4 px a module, rotated 4 degrees, JPEG q60) still reads."""
    text = crypto.encode_qr_text(crypto.sign_certificate(full_claims, es256_key), BASE_URL_32)
    image = Image.open(io.BytesIO(crypto.render_png(crypto.make_symbol(text), scale=8))).convert("L")
    image = image.filter(ImageFilter.GaussianBlur(3))
    image = image.resize((int(image.width * 0.4),) * 2, Image.Resampling.BILINEAR)
    image = image.rotate(4, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=255)
    photo = io.BytesIO()
    image.convert("RGB").save(photo, "JPEG", quality=60)

    texts = crypto.read_qr_texts(photo.getvalue())

    assert texts == [text]


def test_read_qr_texts_refuses_non_images():
    """Bytes that are not an image are ``InvalidInput``."""
    with pytest.raises(crypto.InvalidInput):
        crypto.read_qr_texts(b"not an image")


@pytest.mark.parametrize(("scale", "border"), [(0, 4), (65, 4), (8, -1), (8, 17)])
def test_render_png_refuses_bad_sizes(scale, border, genuine_qr_text):
    """Scale outside 1-64 or border outside 0-16 is ``InvalidInput``."""
    symbol = crypto.make_symbol(genuine_qr_text)

    with pytest.raises(crypto.InvalidInput):
        crypto.render_png(symbol, scale=scale, border=border)


def test_svg_is_well_formed_and_draws_the_modules(genuine_qr_text):
    """The SVG parses as XML and its path covers exactly the dark modules, offset by the quiet zone."""
    symbol = crypto.make_symbol(genuine_qr_text)

    svg = crypto.render_svg(symbol)

    root = ET.fromstring(svg)  # noqa: S314 - our own output, parsed to prove it is well-formed
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    side = symbol.size + 8
    assert root.get("viewBox") == f"0 0 {side} {side}"
    path = root.find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    drawn = set()
    for x, y, width, back in re.findall(r"M(\d+) (\d+)h(\d+)v1h-(\d+)z", path.get("d", "")):
        assert width == back
        drawn |= {(int(x) + i - 4, int(y) - 4) for i in range(int(width))}
    dark = {(x, y) for y, row in enumerate(symbol.modules) for x, cell in enumerate(row) if cell}
    assert drawn == dark


def test_reference_qrcode_text_also_reads(genuine_qr_text):
    """The same text encoded by the qrcode package decodes identically, so readers see one credential."""
    buffer = io.BytesIO()
    qrcode.make(genuine_qr_text).save(buffer)

    texts = crypto.read_qr_texts(buffer.getvalue())

    assert texts == [genuine_qr_text]


def test_base_url_is_not_signed(genuine_envelope, trust):
    """The base URL is transport only: the same envelope under any https base verifies the same way."""
    from conftest import INSIDE_VALIDITY

    texts = [crypto.encode_qr_text(genuine_envelope, base) for base in (TEST_BASE_URL, BASE_URL_32)]

    serials = {crypto.verify_qr_text(t, trust, now=INSIDE_VALIDITY).claims.serial for t in texts}

    assert len(serials) == 1
