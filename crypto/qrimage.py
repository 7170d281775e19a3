"""QR symbols for credential URLs: segment-optimised encoding, fast PNG and SVG, and image reading."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidInput

ERROR_LEVELS = ("L", "M", "Q", "H")
# Q restores 25% damaged modules: scratched, creased and dirty cards still scan.
DEFAULT_ERROR_LEVEL = "Q"
QUIET_ZONE = 4  # modules of white border the QR standard requires
_DARK = bytes([1] + [0] * 255)  # zxing-cpp's symbol image: 0 is a dark module, 255 a light one


@dataclass(frozen=True, slots=True)
class QrSymbol:
    """The modules of one QR symbol (True = dark), without quiet zone."""

    version: int
    error_level: str
    modules: tuple[tuple[bool, ...], ...]

    @property
    def size(self) -> int:
        """Modules per side."""
        return len(self.modules)


def make_symbol(text: str, *, error_level: str = DEFAULT_ERROR_LEVEL) -> QrSymbol:
    """Encode QR text as the smallest symbol: the URL up to ``#`` in byte mode, the digits in numeric mode.

    zxing-cpp's writer (libzint) segments the text optimally and picks the mask by the standard's
    penalty rules, in C: about 25 times faster than the pure-Python ``qrcode`` package for a card's
    symbol, never a larger version (``tests/test_qr.py`` compares them), so a batch of printed
    cards is not bound by QR encoding.
    """
    import zxingcpp

    if error_level not in ERROR_LEVELS:
        raise InvalidInput("error level must be L, M, Q or H")
    try:
        barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=error_level)
    except ValueError:
        raise InvalidInput("text does not fit in a QR symbol") from None
    # zxingcpp.Image is a buffer (one byte a module, 0 = dark); its type stubs do not declare the protocol.
    pixels = memoryview(barcode.to_image(scale=1, add_quiet_zones=False))  # type: ignore[arg-type]
    side = pixels.shape[0] if pixels.shape else 0
    dark = pixels.tobytes().translate(_DARK)  # 1 where the module is dark: map(bool, ...) then runs in C
    modules = tuple(tuple(map(bool, dark[row * side : (row + 1) * side])) for row in range(side))
    return QrSymbol(version=(side - 17) // 4, error_level=error_level, modules=modules)


def render_png(symbol: QrSymbol, *, scale: int = 8, border: int = QUIET_ZONE) -> bytes:
    """Render a 1-bit PNG, ``scale`` pixels a module, with a white quiet zone of ``border`` modules."""
    from PIL import Image

    if not 1 <= scale <= 64 or not 0 <= border <= 16:
        raise InvalidInput("scale must be 1-64 and border 0-16")
    side = symbol.size + 2 * border
    grey = bytearray(b"\xff") * (side * side)
    for y, row in enumerate(symbol.modules):
        start = (y + border) * side + border
        grey[start : start + symbol.size] = bytes(0 if dark else 255 for dark in row)
    picture = Image.frombytes("L", (side, side), bytes(grey))
    picture = picture.resize((side * scale, side * scale), Image.Resampling.NEAREST).convert(
        "1", dither=Image.Dither.NONE
    )
    out = io.BytesIO()
    picture.save(out, format="PNG", compress_level=9)
    return out.getvalue()


def render_svg(symbol: QrSymbol, *, border: int = QUIET_ZONE) -> str:
    """Render a scalable SVG: one path of horizontal runs of dark modules on a white square."""
    runs: list[str] = []
    for y, row in enumerate(symbol.modules):
        x = 0
        while x < symbol.size:
            if row[x]:
                start = x
                while x < symbol.size and row[x]:
                    x += 1
                runs.append(f"M{start + border} {y + border}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    side = symbol.size + 2 * border
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" shape-rendering="crispEdges">'
        f'<rect width="{side}" height="{side}" fill="#fff"/><path fill="#000" d="{"".join(runs)}"/></svg>'
    )


def read_qr_texts(image: bytes | str | Path) -> list[str]:
    """Decode every QR code in an image (PNG, JPEG, ...) with zxing-cpp, a photo of a card included."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    try:
        source = io.BytesIO(image) if isinstance(image, bytes) else Path(image)
        with Image.open(source) as picture:
            picture.load()
            grey = picture.convert("L")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        raise InvalidInput("not a readable image") from None
    results = zxingcpp.read_barcodes(grey, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode))
    return [result.text for result in results if result.valid]
