"""POST /v1/verify answered by the fast path (api/fastpath.py) is byte for byte what the route answers.

The same requests go to the app as built and to the same app with the fast path taken out (so FastAPI's
route answers); status, headers and body must be equal, for accepts, rejects and every error.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from api.fastpath import VerifyFastPath


def _answers(client: TestClient, requests: list[dict[str, Any]]) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    answers = []
    for request in requests:
        # A fixed request id: otherwise each answer echoes a fresh random one.
        headers = {"X-Request-Id": "same-for-both", **request.get("headers", {})}
        response = client.request(**{**request, "headers": headers})
        answers.append((response.status_code, list(response.headers.multi_items()), response.content))
    return answers


def test_the_fast_path_answers_exactly_as_the_route(app_client, make_app, settings, issuer, issue):
    """Accept, reject, 400, 422, 401 (malformed and unknown), CORS and other methods: the same answers."""
    qr = issue(issuer)["qr_text"]
    requests: list[dict[str, Any]] = [
        {"method": "POST", "url": "/v1/verify", "json": {"qr": qr, "purpose": "hot_work"}},
        {"method": "POST", "url": "/v1/verify", "json": {"qr": qr}, "headers": {"Origin": "https://example.org"}},
        {"method": "POST", "url": "/v1/verify", "json": {"qr": "https://example.org/c1/123"}},
        {"method": "POST", "url": "/v1/verify", "content": b"{", "headers": {"Content-Type": "application/json"}},
        {"method": "POST", "url": "/v1/verify", "json": {"qr": 5, "unknown": 1}},
        {"method": "POST", "url": "/v1/verify", "json": {"qr": qr}, "headers": {"Authorization": "Basic eA=="}},
        {"method": "POST", "url": "/v1/verify", "json": {"qr": qr}, "headers": {"Authorization": "Bearer nope"}},
        {"method": "POST", "url": "/v1/verify", "json": {"qr": qr, "holder_id_number": "12"}},
        {"method": "GET", "url": "/v1/verify"},
    ]
    fast = _answers(app_client, requests)

    route_only = make_app(settings)
    route_only.user_middleware = [m for m in route_only.user_middleware if m.cls is not VerifyFastPath]
    with TestClient(route_only) as client:
        routed = _answers(client, requests)

    assert fast[0][0] == 200
    assert b'"accept"' in fast[0][2]
    for request, mine, theirs in zip(requests, fast, routed, strict=True):
        assert mine == theirs, request


def test_a_hook_around_the_fast_path_sees_the_verify_route(app):
    """A per-request hook added after create_app (e.g. metrics) wraps verify and finds its route template."""
    seen: list[tuple[str, str | None]] = []

    class Hook:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await self.inner(scope, receive, send)
            if scope["type"] == "http":
                seen.append((scope["path"], getattr(scope.get("route"), "path", None)))

    app.add_middleware(Hook)
    with TestClient(app) as client:
        assert client.post("/v1/verify", json={"qr": "x"}).status_code == 200

    assert seen == [("/v1/verify", "/v1/verify")]
