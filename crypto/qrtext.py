"""QR text: the credential as an https URL whose fragment packs the COSE bytes into decimal digits.

``<base URL>/c1#<digits>``: the path ``/c1`` names version 1 of this format forever. Digits are
used because QR numeric mode stores 3 digits in 10 bits (0.415 bytes a digit against 1 byte a
character in byte mode), so 7 bytes in 17 digits cost 56.7 bits instead of 56 plus base64's 33%.
The fragment never reaches a server in an HTTP request, so the credential stays on the phone.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .errors import InvalidInput, Malformed, UnsupportedFormat

VERSION_PATH = "/c1"
GROUP_BYTES = 7
GROUP_DIGITS = 17
# Digits of a final group of n bytes: the fewest that can hold 256**n - 1.
TAIL_DIGITS = {1: 3, 2: 5, 3: 8, 4: 10, 5: 13, 6: 15}
_TAIL_BYTES = {digits: n for n, digits in TAIL_DIGITS.items()} | {0: 0}
MAX_QR_TEXT = 4096
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
# Stripped from both ends of QR text: Unicode White_Space, the information separators U+001C-U+001F
# (Python's str.isspace), and the invisible characters scanners and chat apps leave around a link:
# zero-width space, non-joiner and joiner (U+200B-U+200D), word joiner (U+2060), BOM (U+FEFF).
SURROUNDING_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200E))
    + "\u2028\u2029\u202f\u205f\u2060\u3000\ufeff"
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def pack_digits(data: bytes) -> str:
    """Pack bytes into decimal digits: 17 for every 7 bytes, fewer for a final short group."""
    full = len(data) - len(data) % GROUP_BYTES
    parts = [
        f"{int.from_bytes(data[i : i + GROUP_BYTES], 'big'):0{GROUP_DIGITS}d}" for i in range(0, full, GROUP_BYTES)
    ]
    if tail := data[full:]:
        parts.append(f"{int.from_bytes(tail, 'big'):0{TAIL_DIGITS[len(tail)]}d}")
    return "".join(parts)


def unpack_digits(digits: str) -> bytes:
    """Reverse :func:`pack_digits`; any non-digit, impossible length or oversized group is malformed."""
    if len(digits) > MAX_QR_TEXT or not (digits.isascii() and digits.isdigit()):
        raise Malformed("payload is not 1-4096 ASCII digits")
    full, remainder = divmod(len(digits), GROUP_DIGITS)
    tail_bytes = _TAIL_BYTES.get(remainder)
    if tail_bytes is None:
        raise Malformed(f"digit count {len(digits)} is not a valid packing")
    end = full * GROUP_DIGITS
    try:
        # int() also takes "_", signs and spaces, which the isdigit() check above has excluded.
        # to_bytes() is big-endian by default (Python 3.11+); naming it costs measurably on this hot path.
        packed = b"".join(
            [int(digits[i : i + GROUP_DIGITS]).to_bytes(GROUP_BYTES) for i in range(0, end, GROUP_DIGITS)]
        )
        if tail_bytes:
            packed += int(digits[end:]).to_bytes(tail_bytes)
    except OverflowError:
        raise Malformed("a digit group exceeds its byte range") from None
    return packed


def normalize_base_url(base_url: str, *, allow_insecure_localhost: bool = False) -> str:
    """Check a public base URL (https, no query or fragment) and return it without a trailing slash.

    ``http://localhost`` and ``http://127.0.0.1`` are allowed only for demos and tests, because
    browsers give WebCrypto and service workers to https and localhost origins only.
    """
    try:
        parts = urlsplit(base_url)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        raise InvalidInput("base URL is not a URL") from None
    host = (parts.hostname or "").lower()
    host_label = f"[{host}]" if ":" in host else host
    secure = parts.scheme == "https"
    local = parts.scheme == "http" and allow_insecure_localhost and host_label in LOCAL_HOSTS
    if not (secure or local) or not host or parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidInput("base URL must be https://host[/path] (http only for localhost in demo mode)")
    return base_url.rstrip("/")


def to_qr_text(envelope: bytes, base_url: str) -> str:
    """Return the QR text ``<base URL>/c1#<digits>`` for an envelope; ``base_url`` must be normalized."""
    return f"{base_url}{VERSION_PATH}#{pack_digits(envelope)}"


def strip_qr_text(text: str) -> str:
    """Remove the characters of :data:`SURROUNDING_SPACE` from both ends of ``text``."""
    return text.strip(SURROUNDING_SPACE)


def envelope_from_qr_text(text: str) -> bytes:
    """Return the envelope bytes from QR text: a certseal URL or, for tools, the bare digits.

    The URL rule of ``docs/credential-format.md`` section 1, tested on ``tests/vectors/url-cases.json``
    (the page's ``api/static/digits.js`` mirrors it): surrounding space is stripped, the query is
    ignored, the path must end with ``/c1`` exactly and the digits follow a literal ``#``. Every
    refusal's ``detail`` says what is wrong.
    """
    if not isinstance(text, str) or len(text) > MAX_QR_TEXT:
        raise Malformed("QR text missing or longer than 4096 characters")
    text = strip_qr_text(text)
    if not text:
        raise Malformed("QR text is empty")
    location, hash_sign, fragment = text.partition("#")
    if not hash_sign:
        if "%23" in text:
            raise UnsupportedFormat("%23 is not a fragment: the digits must follow a literal '#'")
        if _SCHEME.match(text):
            raise UnsupportedFormat("URL has no credential fragment ('#' and digits)")
        return unpack_digits(text)
    path = location.partition("?")[0]  # the query is ignored: WeChat appends ?from=...&isappinstalled=0
    if not path.endswith(VERSION_PATH):
        if path[-len(VERSION_PATH) :].lower() == VERSION_PATH:
            raise UnsupportedFormat("URL path must end with /c1: the version path is case-sensitive")
        raise UnsupportedFormat("URL path is not a known credential version (it must end with /c1)")
    return unpack_digits(fragment)
