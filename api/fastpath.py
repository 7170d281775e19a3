"""POST /v1/verify without FastAPI's routing: a pure ASGI middleware that answers the hot path itself.

The route in :mod:`api.routers.verify` stays (OpenAPI, and every other method or path falls through
to it and the rest of the app); this middleware runs the same function, :func:`verify_body`, and sends
the same answer: 200 with the verdict's JSON and ``Cache-Control: no-store``, or, for any error it
raises, whatever the app's own exception handlers answer (400 ``invalid_json``, 422, 401, 429, 503,
...). An error without a handler propagates, as from the route, to Starlette's 500 handler.

It is installed as the innermost user middleware, so CORS, the body limit (413), the security headers
and any per-request hook added later (access log, metrics) wrap it exactly as they wrap the route.
It sets ``scope["route"]`` and ``scope["endpoint"]`` to the route's, as routing would, so a hook
that labels requests by route template sees ``/v1/verify``. What it skips, per request: the router's
matching of every route, FastAPI's request handler and dependency machinery, ``Request``/``Response``
objects and the exception middleware's send wrapper (bench/README.md, bench_cores.py).
"""

from __future__ import annotations

import inspect
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .routers.verify import router as verify_router
from .routers.verify import verify_body

PATH = "/v1/verify"
_JSON = (b"content-type", b"application/json")
_NO_STORE = (b"cache-control", b"no-store")


class VerifyFastPath:
    """Answer ``POST /v1/verify`` as the route does; pass every other request on unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._handlers: dict[type[BaseException], Any] | None = None
        self._verify_route: tuple[Any, Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        raw = b""
        while True:
            message = await receive()
            if message["type"] == "http.request":
                raw += message.get("body", b"")
                if not message.get("more_body", False):
                    break
            elif message["type"] == "http.disconnect":
                return  # the client left: nobody to answer
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        client = scope.get("client")
        app = scope["app"]
        # What routing would have left in the scope, for per-request hooks that label by route (metrics).
        scope["route"], scope["endpoint"], scope["path_params"] = *self._route(), {}
        try:
            content = await verify_body(
                app.state, raw, authorization=authorization, address=client[0] if client else "-"
            )
        except Exception as exc:
            handler = self._handler(app, exc)
            if handler is None:
                raise  # to Starlette's ServerErrorMiddleware: the generic 500, as from the route
            response = handler(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
            await response(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_NO_STORE, (b"content-length", str(len(content)).encode()), _JSON],
            }
        )
        await send({"type": "http.response.body", "body": content})

    def _route(self) -> tuple[Any, Any]:
        """The ``POST /v1/verify`` route of :mod:`api.routers.verify` and its endpoint (found once)."""
        if self._verify_route is None:
            route = next(
                (r for r in verify_router.routes if getattr(r, "path", None) == PATH and "POST" in r.methods),  # type: ignore[attr-defined]
                None,
            )
            self._verify_route = (route, getattr(route, "endpoint", None))
        return self._verify_route

    def _handler(self, app: Any, exc: Exception) -> Any:
        """The app's handler for ``exc`` as Starlette's ExceptionMiddleware finds it (by class, nearest first)."""
        if self._handlers is None:
            # The catch-all (Exception / 500) belongs to ServerErrorMiddleware, outside: leave it there.
            self._handlers = {
                kind: handler
                for kind, handler in app.exception_handlers.items()
                if isinstance(kind, type) and kind is not Exception
            }
        for kind in type(exc).__mro__:
            if kind in self._handlers:
                return self._handlers[kind]
        return None
