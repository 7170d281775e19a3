"""Holder photos: JPEG or PNG in; out, a fresh image built from the decoded pixels alone.

Nothing of the uploaded file but its pixels survives: no EXIF (GPS, camera), XMP, ICC profile, JPEG
comment (COM) or APPn segment, PNG text/iTXt/zTXt/eXIf chunk, and no bytes after the image end. The
pixels are decoded, reduced to at most ``STORED_MAX_SIDE`` px on the longest side, copied into a new
image (``Image.new`` + ``paste``, so ``info`` is empty) and saved with no metadata arguments.

Memory is bounded three ways: images over ``MAX_PIXELS`` (16.8 MP) are refused from their header
before any decoding; JPEGs are decoded by libjpeg straight at 1/2, 1/4 or 1/8 scale (Pillow's
``draft``), the smallest scale that still covers the stored size (a 4096 x 4096 JPEG decodes at
1024 x 1024, 3 MiB instead of 48 MiB); and at most ``DECODE_SLOTS`` photos are decoded at once in the
process, a further upload waiting at most ``DECODE_WAIT_SECONDS`` before :class:`Busy` (503).
"""

from __future__ import annotations

import base64
import binascii
import io
import threading

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import Busy, InvalidPhoto, PhotoTooLarge, PhotoTooManyPixels

MAX_PIXELS = 4096 * 4096  # 16.8 MP: refuse decompression bombs long before Pillow's own limit
STORED_MAX_SIDE = 600  # ample for a face on a phone screen; keeps the registry small
DECODE_SLOTS = 2  # photo decodes running at once in this process (one per core on the reference machine)
DECODE_WAIT_SECONDS = 5.0  # longest wait for a decode slot before 503 busy
# Modes Image.reduce() handles in place of a full-size conversion (P, 1, I;16, CMYK... convert first).
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA"})

_decode_slots = threading.BoundedSemaphore(DECODE_SLOTS)


def clean_photo(photo_base64: str, *, max_bytes: int) -> tuple[bytes, str]:
    """Decode, check and re-encode a photo from its pixels only; return ``(bytes, media type)``.

    Raises :class:`PhotoTooLarge`, :class:`InvalidPhoto`, :class:`PhotoTooManyPixels`, or :class:`Busy`
    when every decode slot stayed taken for ``DECODE_WAIT_SECONDS``.
    """
    if len(photo_base64) > (max_bytes * 4) // 3 + 4:
        raise PhotoTooLarge(f"photo exceeds {max_bytes} bytes")
    try:
        raw = base64.b64decode(photo_base64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPhoto("photo is not valid base64") from None
    return clean_photo_bytes(raw, max_bytes=max_bytes)


def clean_photo_bytes(raw: bytes, *, max_bytes: int) -> tuple[bytes, str]:
    """:func:`clean_photo` for a photo already in bytes (a zip entry, a file): the same checks and re-encoding."""
    if len(raw) > max_bytes:
        raise PhotoTooLarge(f"photo exceeds {max_bytes} bytes")
    if not _decode_slots.acquire(timeout=DECODE_WAIT_SECONDS):
        raise Busy("every photo decoder is busy; try again shortly")
    try:
        picture, kind = _decode(raw)
    finally:
        _decode_slots.release()
    return _encode(picture, kind)


def stored_size(width: int, height: int) -> tuple[int, int]:
    """The size a ``width`` x ``height`` photo is stored at: the longest side at most ``STORED_MAX_SIDE``."""
    scale = min(1.0, STORED_MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _decode(raw: bytes) -> tuple[Image.Image, str]:
    """The upright RGB pixels, at most ``STORED_MAX_SIDE`` px a side, in a new image without any ``info``."""
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            kind = probe.format or ""
            if kind not in ("JPEG", "PNG"):
                raise InvalidPhoto("photo must be JPEG or PNG")
            if probe.width * probe.height > MAX_PIXELS:
                raise PhotoTooManyPixels(f"photo has more than {MAX_PIXELS} pixels")
            target = stored_size(*probe.size)
            if kind == "JPEG":
                probe.draft("RGB", target)  # libjpeg decodes at the smallest 1/n scale covering target
            probe.load()
            picture: Image.Image = probe
            if picture.mode in _REDUCIBLE_MODES:
                factor = min(picture.width // target[0], picture.height // target[1])
                if factor > 1:
                    picture = picture.reduce(factor)  # before any full-size copy is made
            picture = picture.convert("RGB")
            picture.thumbnail((STORED_MAX_SIDE, STORED_MAX_SIDE), Image.Resampling.LANCZOS)
            picture = ImageOps.exif_transpose(picture)  # reads the orientation from the copied info
    except Image.DecompressionBombError:
        raise PhotoTooManyPixels(f"photo has more than {MAX_PIXELS} pixels") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        raise InvalidPhoto("photo cannot be decoded") from None
    fresh = Image.new("RGB", picture.size)  # pixels only: info, EXIF, ICC and text stay behind
    fresh.paste(picture)
    return fresh, kind


def _encode(picture: Image.Image, kind: str) -> tuple[bytes, str]:
    out = io.BytesIO()
    if kind == "PNG":
        picture.save(out, format="PNG", optimize=True)
        return out.getvalue(), "image/png"
    picture.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue(), "image/jpeg"
