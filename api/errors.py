"""One error shape for every response: ``{"error": {"code", "message", "details"}}``.

Handlers never echo submitted values (FastAPI's default 422 does, which could leak an ID number),
and an unexpected exception becomes a generic 500 with no traceback in the body.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.api import ErrorResponse, Strict

from .db import LaneUnavailable
from .metrics import REGISTRY_READ_ERRORS, UNMATCHED_ROUTE
from .services.errors import (
    Busy,
    CardFontMissing,
    Conflict,
    Forbidden,
    InvalidPhoto,
    Limited,
    NotFound,
    PhotoTooLarge,
    PhotoTooManyPixels,
    RegistryUnavailable,
    ServiceError,
    Unprocessable,
)

log = logging.getLogger("certseal.api")


class ApiError(Exception):
    """An error with an HTTP status and a stable machine-readable code."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """Build the error JSON."""
    return {"error": {"code": code, "message": message, "details": details}}


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


# Where FastAPI says a parameter came from; their names are the ones the routes declare.
_PARAMETER_LOCATIONS = frozenset({"query", "path", "header", "cookie"})


def _body_field_names() -> frozenset[str]:
    """The field names (and aliases) of every request body model: the only names a body location may show."""
    names: set[str] = set()
    pending: list[type[Strict]] = [Strict]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        for name, field in model.model_fields.items():
            names.add(name)
            names.update(alias for alias in (field.alias, field.validation_alias) if isinstance(alias, str))
    return frozenset(names)


def _names_only_the_schema(loc: tuple[Any, ...], known: frozenset[str]) -> bool:
    """True if every part of a location is a list index or a name the API itself defines (never a sent key)."""
    if loc and loc[0] in _PARAMETER_LOCATIONS:
        return True
    parts = loc[1:] if loc and loc[0] == "body" else loc
    return all(isinstance(part, int) or part in known for part in parts)


def _validation_details(
    exc: RequestValidationError | ValidationError, prefix: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Location and error type of each error: never the input, never pydantic's message (it may quote input).

    A location that would contain a name the client chose (an unknown field, a dict key) is given
    as ``body`` with a count of such fields per error type instead, so a key is never echoed either.
    """
    known = _body_field_names()
    details: list[dict[str, Any]] = []
    unnamed: dict[str, int] = {}
    for error in exc.errors():
        loc = (*prefix, *error.get("loc", ()))
        kind = str(error.get("type"))
        if kind == "extra_forbidden" or not _names_only_the_schema(loc, known):
            unnamed[kind] = unnamed.get(kind, 0) + 1
        else:
            details.append({"loc": [str(part) for part in loc], "type": kind})
    details.extend({"loc": ["body"], "type": kind, "count": count} for kind, count in unnamed.items())
    return details


def validation_error(exc: ValidationError) -> ApiError:
    """Turn a body's pydantic error into the 400 (not JSON) or 422 (wrong shape) ApiError."""
    details = _validation_details(exc, ("body",))
    if any(d["type"] == "json_invalid" for d in details):
        return ApiError(400, "invalid_json", "request body is not valid JSON")
    return ApiError(422, "validation_error", "request does not match the schema", details)


# Domain errors to HTTP: the services know nothing of status codes.
_SERVICE_STATUS: tuple[tuple[type[ServiceError], int], ...] = (
    (RegistryUnavailable, 503),
    (Busy, 503),
    (CardFontMissing, 503),
    (Limited, 429),
    (Conflict, 409),
    (PhotoTooLarge, 413),
    (InvalidPhoto, 422),
    (PhotoTooManyPixels, 422),
    (NotFound, 404),
    (Forbidden, 403),
    (Unprocessable, 422),
)
# The database did not answer in time, or the connection broke: the caller may retry (never a 500).
# With RegistryUnavailable above, this is the one place that answers 503 registry_unavailable.
_DATABASE_UNAVAILABLE = (
    LaneUnavailable,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
)


# OpenAPI: every endpoint that reads or writes the database may answer this.
DATABASE_UNAVAILABLE_RESPONSE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "the database did not answer in time: `registry_unavailable`"}
}


def service_status(exc: ServiceError) -> int:
    """The HTTP status of a domain error."""
    return next((status for kind, status in _SERVICE_STATUS if isinstance(exc, kind)), 400)


def _route(request: Request) -> str:
    """The route template of a request for the log, never its path (which may carry anything a client sent)."""
    return str(getattr(request.scope.get("route"), "path", UNMATCHED_ROUTE))


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = None  # a 429 is a Limited service error, which knows when its window frees
        if exc.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}  # RFC 6750 section 3: every 401 names the scheme
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status, headers=headers)

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        status = service_status(exc)
        headers = None
        if isinstance(exc, Limited):  # the seconds until the window frees, as the message says
            headers = {"Retry-After": str(exc.retry_after)}
        elif status == 503:
            headers = {"Retry-After": "1"}
        return JSONResponse(error_body(exc.code, exc.message), status_code=status, headers=headers)

    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, _route(request), type(exc).__name__)
        if isinstance(exc, LaneUnavailable):
            REGISTRY_READ_ERRORS.labels("deadline").inc()
        body = error_body(RegistryUnavailable.code, RegistryUnavailable.message)
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    for kind in _DATABASE_UNAVAILABLE:
        app.add_exception_handler(kind, _database_unavailable)

    @app.exception_handler(sa_exc.DataError)
    async def _value_the_database_refuses(request: Request, exc: sa_exc.DataError) -> JSONResponse:
        # A value from the request that the database cannot hold (e.g. a NUL character in a path segment
        # on PostgreSQL): the caller's input, never a 500. Ids are checked before any query; this is the net.
        log.warning("database refused a value on %s %s: %s", request.method, _route(request), type(exc.orig).__name__)
        return JSONResponse(error_body("invalid_value", "a value in the request is not valid"), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return JSONResponse(error_body("invalid_json", "request body is not valid JSON"), status_code=400)
        return JSONResponse(
            error_body("validation_error", "request does not match the schema", details), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the server's log only; the body stays generic.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, _route(request), exc_info=exc)
        return JSONResponse(error_body("internal_error", "internal error"), status_code=500)
