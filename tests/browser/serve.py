"""Run the certseal app for the browser tests: ``python3 tests/browser/serve.py --port N --database PATH``.

Demo settings (the published demo secrets) on a SQLite file already migrated to head (the fixtures copy
the session's migrated template there; the app refuses any other); the public base URL is this server.

Test-only options for the status-list tests: ``--trust-anchor-pem FILE`` pins that public key in the page
(``CERTSEAL_TRUST_ANCHOR_PUBLIC_KEY_FILE``), and ``--fixtures DIR`` serves ``GET /v1/trust-list``,
``GET /v1/status-lists`` and ``GET /v1/status-lists/{issuer}/{n}`` from files the test writes there
(``trust-list.cbor``, ``status-lists.json``, ``status-lists/<issuer>/<n>.cwt``; 404 when missing), with
ETag and Cache-Control as the service sends them, ahead of any route of the app. Each request is
appended to ``DIR/requests.log``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from api.main import create_app  # noqa: E402
from api.settings import Settings  # noqa: E402


def fixture_routes(folder: Path) -> list[Route]:
    """Routes serving the trust list and status lists from files in ``folder`` (see the module docstring)."""

    def endpoint(media_type: str, max_age: int) -> object:
        async def serve(request: Request) -> Response:
            with (folder / "requests.log").open("a", encoding="utf-8") as log:
                log.write(f"{request.url.path} {request.headers.get('if-none-match', '-')}\n")
            issuer = request.path_params.get("issuer", "")
            name = {
                "/v1/trust-list": "trust-list.cbor",
                "/v1/status-lists": "status-lists.json",
            }.get(request.url.path, f"status-lists/{issuer}/{request.path_params.get('number')}.cwt")
            path = folder / name
            if not re.fullmatch(r"[A-Z0-9-]*", issuer) or not path.is_file():
                return JSONResponse({"error": {"code": "not_found", "message": "no such fixture"}}, status_code=404)
            body = path.read_bytes()
            headers = {
                "ETag": f'"{hashlib.sha256(body).hexdigest()[:16]}"',
                "Cache-Control": f"public, max-age={max_age}",
                "Access-Control-Allow-Origin": "*",
            }
            if request.headers.get("if-none-match") == headers["ETag"]:
                return Response(status_code=304, headers=headers)
            return Response(body, media_type=media_type, headers=headers)

        return serve

    return [
        Route("/v1/trust-list", endpoint("application/vnd.certseal.trust-list+cbor", 300)),  # type: ignore[arg-type]
        Route("/v1/status-lists", endpoint("application/json", 300)),  # type: ignore[arg-type]
        Route(
            "/v1/status-lists/{issuer}/{number:int}",
            endpoint("application/statuslist+cwt", 600),  # type: ignore[arg-type]
        ),
    ]


def main() -> None:
    """Start uvicorn on 127.0.0.1 with demo settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--trust-anchor-pem", help="the trust anchor's public key (PEM file), pinned in the page")
    parser.add_argument("--fixtures", help="serve the trust list and status lists from this folder")
    parser.add_argument(
        "--trust-anchor-key", help="the trust anchor's private key (encrypted under the demo passphrase): the app signs"
    )
    parser.add_argument("--status-list-ttl", type=int, default=600, help="seconds before verifiers refetch a list")
    parser.add_argument("--amber-advice-zh", help="CERTSEAL_PAGE_AMBER_ADVICE_ZH: the site's rule for an amber verdict")
    parser.add_argument("--amber-advice-en", help="CERTSEAL_PAGE_AMBER_ADVICE_EN")
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    settings = Settings.for_demo(
        database_url=f"sqlite:///{args.database}",
        public_base_url=base,
        trust_anchor_public_key_file=args.trust_anchor_pem,
        trust_anchor_key_file=args.trust_anchor_key,
        status_list_ttl_seconds=args.status_list_ttl,
        page_amber_advice_zh=args.amber_advice_zh,
        page_amber_advice_en=args.amber_advice_en,
    )
    app = create_app(settings)
    if args.fixtures:
        app.router.routes[0:0] = fixture_routes(Path(args.fixtures))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
