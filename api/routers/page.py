"""The site manager's page at the QR URL's path ``/c1``, its assets, service worker and web app manifest.

The page verifies the credential in the browser (``api/static/verify.js``) before it asks
``POST /v1/verify``; the service worker keeps it working without a network. Configuration reaches
the page in a ``data-config`` attribute. The one inline script (it shows "page failed to load, retry" when a
module fails to load or the engine lacks what the page needs) is allowed by its SHA-256 in the page's
Content-Security-Policy, never by ``'unsafe-inline'``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import re
from functools import cache
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, FastAPI, Request, Response
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

import crypto
from schemas.catalogue import Catalogue

from ..deps import CatalogueDep, SettingsDep
from ..keyring import public_jwk
from ..settings import Settings

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PAGE_TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "c1.html"
SERVICE_WORKER = STATIC_DIR / "sw.js"
PAGE_PATH = "/c1"
# What the service worker precaches: the page and every file its first verdict needs, plus the scanner module.
SHELL_ASSETS = (
    "app.css",
    "app.js",
    "early-verify.js",
    "cbor.js",
    "digits.js",
    "name-chars.js",
    "verify.js",
    "status.js",
    "i18n.js",
    "scanner.js",
    "icon.svg",
)
SHELL = (PAGE_PATH, *(f"/static/{name}" for name in SHELL_ASSETS), "/manifest.webmanifest")
# The in-page scanner's decoder (~0.4 MB gzip): not in the install; the service worker caches it after a verdict.
DECODER_ASSETS = (
    "qr-decoder.js",
    "vendor/zxing-wasm/es/reader/index.js",
    "vendor/zxing-wasm/es/share.js",
    "vendor/zxing-wasm/reader/zxing_reader.wasm",
)
DECODER = tuple(f"/static/{name}" for name in DECODER_ASSETS)

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
LANGUAGES = ("zh", "en")
HTML_LANG = {"zh": "zh-CN", "en": "en"}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
}


def negotiate_language(accept_language: str | None) -> str:
    """Return ``"en"`` when the client ranks English above Chinese, else ``"zh"`` (the default)."""
    best: tuple[float, int, str] | None = None
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and (best is None or (-quality, index) < (-best[0], best[1])):
            best = (quality, index, primary)
    return best[2] if best else "zh"


def origin_of(url: str) -> str:
    """The origin (scheme://host[:port], lower case, default port dropped) of a URL, as browsers write it."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}.get(scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{scheme}://{host}{port}"


def trust_anchor_config(pem: str | None) -> dict[str, Any] | None:
    """The pinned trust-anchor key for the page: ``{"kid": hex, "jwk": {...}}`` (ES256), or None when unset.

    The page verifies the trust list (``GET /v1/trust-list``) against this key only, never against a
    key that came with a response; without it the page fetches no lists and stays amber offline.
    """
    if not pem:
        return None
    key = crypto.load_public_key(pem.encode())
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the trust-anchor public key must be an ES256 (P-256) key")
    return {"kid": crypto.key_id(key).hex(), "jwk": public_jwk(pem)}


def amber_advice(settings: Settings) -> dict[str, str] | None:
    """``{"zh": ..., "en": ...}`` from CERTSEAL_PAGE_AMBER_ADVICE_ZH/_EN (one set serves both languages), or None."""
    zh = (settings.page_amber_advice_zh or "").strip()
    en = (settings.page_amber_advice_en or "").strip()
    if not zh and not en:
        return None
    return {"zh": zh or en, "en": en or zh}


def page_config(settings: Settings, catalogue: Catalogue, *, trust_anchor_pem: str | None) -> dict[str, Any]:
    """What the page needs besides its code: official origins, review rule, trust anchor and the catalogue's names."""
    origins = list(dict.fromkeys(origin_of(url) for url in settings.official_origin_list))
    items = sorted(catalogue.items.values(), key=lambda item: item.operation)
    return {
        "official_origins": origins,
        "trust_anchor": trust_anchor_config(trust_anchor_pem),
        "review_required": settings.review_required,
        # The site's own rule for an amber (unconfirmed) verdict, from CERTSEAL_PAGE_AMBER_ADVICE_ZH/_EN.
        "amber_advice": amber_advice(settings),
        "hot_work_category": catalogue.hot_work_category,
        "catalogue": [
            {
                "code": item.code,
                "category": item.operation.category,
                "zh": item.zh,
                "en": item.en,
                "category_zh": item.category_zh,
                "category_en": item.category_en,
            }
            for item in items
        ],
    }


@cache
def asset_version() -> str:
    """A hash of the page template, the service worker and every precached asset: it names the SW caches."""
    digest = hashlib.sha256()
    for path in (PAGE_TEMPLATE, SERVICE_WORKER, *(STATIC_DIR / name for name in SHELL_ASSETS)):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@cache
def page_csp() -> str:
    """The page's CSP: :data:`CSP` plus the SHA-256 of each inline script of the template (the boot guard)."""
    hashes = [
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in INLINE_SCRIPT.findall(PAGE_TEMPLATE.read_text(encoding="utf-8"))
    ]
    return CSP.replace("script-src 'self'", " ".join(["script-src 'self'", *hashes]), 1)


@cache
def decoder_version() -> str:
    """A hash of the decoder's files: it names the service worker's decoder cache, which page updates keep."""
    digest = hashlib.sha256()
    for name in DECODER_ASSETS:
        digest.update(name.encode() + b"\0" + (STATIC_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


@cache
def _service_worker_script() -> bytes:
    script = SERVICE_WORKER.read_text(encoding="utf-8")
    script = script.replace('const VERSION = "dev";', f"const VERSION = {json.dumps(asset_version())};", 1)
    script = script.replace('const SHELL = ["/c1"];', f"const SHELL = {json.dumps(list(SHELL))};", 1)
    script = script.replace(
        'const DECODER_VERSION = "dev";', f"const DECODER_VERSION = {json.dumps(decoder_version())};", 1
    )
    script = script.replace(
        'const DECODER = ["/static/qr-decoder.js"];', f"const DECODER = {json.dumps(list(DECODER))};", 1
    )
    return script.encode()


def _render_page(lang: str, settings: Settings, catalogue: Catalogue, trust_anchor_pem: str | None) -> bytes:
    config = json.dumps(
        page_config(settings, catalogue, trust_anchor_pem=trust_anchor_pem), ensure_ascii=False, separators=(",", ":")
    )
    text = Template(PAGE_TEMPLATE.read_text(encoding="utf-8")).substitute(
        html_lang=HTML_LANG[lang], lang=lang, config=html.escape(config, quote=False).replace("'", "&#x27;")
    )
    return text.encode()


def _page_bytes(request: Request, lang: str, settings: Settings, catalogue: Catalogue) -> tuple[bytes, bytes]:
    """The rendered page and its gzip form, built once per language and app."""
    rendered: dict[str, tuple[bytes, bytes]] | None = getattr(request.app.state, "certseal_pages", None)
    if rendered is None:
        rendered = request.app.state.certseal_pages = {}
    if lang not in rendered:
        body = _render_page(lang, settings, catalogue, request.app.state.trust_lists.anchor.public_pem)
        rendered[lang] = (body, gzip.compress(body, compresslevel=9, mtime=0))
    return rendered[lang]


def _accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


@router.get(PAGE_PATH)
def verification_page(request: Request, settings: SettingsDep, catalogue: CatalogueDep) -> Response:
    """The verification page; the credential stays in the URL fragment, which no request carries."""
    lang = negotiate_language(request.headers.get("accept-language"))
    body, compressed = _page_bytes(request, lang, settings, catalogue)
    headers = {
        "Content-Language": HTML_LANG[lang],
        "Content-Security-Policy": page_csp(),
        "Cache-Control": "no-cache",
        "Vary": "Accept-Language, Accept-Encoding",
    }
    if _accepts_gzip(request):
        headers["Content-Encoding"] = "gzip"
        body = compressed
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


@router.get("/sw.js")
def service_worker() -> Response:
    """The service worker script with this build's version; always revalidated so updates arrive."""
    return Response(
        _service_worker_script(),
        media_type=MEDIA_TYPES[".js"],
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP},
    )


@router.get("/manifest.webmanifest")
def manifest(request: Request) -> Response:
    """The web app manifest, so the page can be added to the home screen and opened offline."""
    lang = negotiate_language(request.headers.get("accept-language"))
    body = {
        "name": "特种作业操作证核验 certseal" if lang == "zh" else "certseal certificate check",
        "short_name": "证书核验" if lang == "zh" else "certseal",
        "lang": HTML_LANG[lang],
        "start_url": PAGE_PATH,
        "scope": PAGE_PATH,
        "display": "standalone",
        "background_color": "#f5f5f0",
        "theme_color": "#111111",
        "icons": [{"src": "/static/icon.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any"}],
    }
    return Response(
        json.dumps(body, ensure_ascii=False).encode(),
        media_type="application/manifest+json",
        headers={"Cache-Control": "no-cache", "Vary": "Accept-Language"},
    )


class PageAssets(StaticFiles):
    """``api/static`` with explicit media types (``.wasm`` as ``application/wasm``), revalidated by ETag."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """Serve the file; ``no-cache`` means "revalidate", which costs a 304 and keeps versions consistent."""
        response = await super().get_response(path, scope)
        media_type = MEDIA_TYPES.get(Path(path).suffix)
        if media_type and response.status_code == 200:
            response.headers["Content-Type"] = media_type
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount_static(app: FastAPI) -> None:
    """Mount the page's assets at ``/static``, gzip-compressed (the wasm decoder shrinks from 931 to 403 KiB)."""
    app.mount("/static", GZipMiddleware(PageAssets(directory=STATIC_DIR), minimum_size=512), name="static")
