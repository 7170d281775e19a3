"""Holder photos: accept JPEG or PNG only, strip every metadata block (EXIF, GPS) by re-encoding."""

from __future__ import annotations

import base64
import binascii
import io

from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ApiError

MAX_PIXELS = 4096 * 4096  # refuse decompression bombs long before Pillow's own limit
STORED_MAX_SIDE = 600  # ample for a face on a phone screen; keeps the registry small


def clean_photo(photo_base64: str, *, max_bytes: int) -> tuple[bytes, str]:
    """Decode, check and re-encode a photo; return ``(bytes, media type)`` with no metadata left."""
    if len(photo_base64) > (max_bytes * 4) // 3 + 4:
        raise ApiError(413, "photo_too_large", f"photo exceeds {max_bytes} bytes")
    try:
        raw = base64.b64decode(photo_base64, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "invalid_photo", "photo is not valid base64") from None
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            kind = probe.format
            if kind not in ("JPEG", "PNG"):
                raise ApiError(422, "invalid_photo", "photo must be JPEG or PNG")
            if probe.width * probe.height > MAX_PIXELS:
                raise ApiError(422, "invalid_photo", "photo has too many pixels")
            probe.load()
            picture = ImageOps.exif_transpose(probe).convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, SyntaxError):
        raise ApiError(422, "invalid_photo", "photo cannot be decoded") from None
    picture.thumbnail((STORED_MAX_SIDE, STORED_MAX_SIDE))
    out = io.BytesIO()
    if kind == "PNG":
        picture.save(out, format="PNG", optimize=True)
        return out.getvalue(), "image/png"
    picture.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue(), "image/jpeg"
