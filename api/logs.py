"""Service logging: JSON or text lines with the request id, on the standard library's ``logging``.

The request id lives in a context variable set by :class:`api.middleware.RequestContextMiddleware` for
the time of one request; :class:`RequestIdFilter` (on the handler) copies it onto every record, so every
line logged while a request runs carries it, whichever logger wrote it (the verify lane runs its calls in
the request's context too). Access lines come from the ``certseal.access`` logger with their fields as
record attributes; :class:`JsonFormatter` writes them as JSON keys, never the query string or body.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import time
from contextvars import ContextVar
from typing import Any, Literal

import orjson

LogFormat = Literal["json", "text"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
ACCESS_LOGGER = "certseal.access"
# The fields of an access line (record attributes set through ``extra``), in the order JSON shows them.
ACCESS_FIELDS = ("method", "route", "status", "duration_ms", "client")

request_id_var: ContextVar[str] = ContextVar("certseal_request_id", default="-")

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def accepted_request_id(value: bytes | None) -> str:
    """The client's ``X-Request-Id`` if it is 1-64 characters of ``[A-Za-z0-9._-]``, else a new random one."""
    if value is not None and len(value) <= 64:
        text = value.decode("latin-1")
        if _VALID_REQUEST_ID.fullmatch(text):
            return text
    return secrets.token_hex(16)


class RequestIdFilter(logging.Filter):
    """Put the current request id (``-`` outside a request) on every record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ISO 8601, ms), level, logger, message, request_id, fields.

    Access lines add method, route, status, duration_ms and client; an exception adds its traceback
    under ``exception`` (the server's log only, never a response).
    """

    _second = -1
    _second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        if seconds != self._second:  # strftime once a second: it was a third of the line's cost
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            self._second = seconds
        line: dict[str, Any] = {
            "timestamp": f"{self._second_text}.{int((record.created - seconds) * 1000):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        fields = record.__dict__
        if "route" in fields:  # an access line: all five fields
            for field in ACCESS_FIELDS:
                line[field] = fields[field]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def make_handler(log_format: LogFormat) -> logging.Handler:
    """A stderr handler with the request-id filter and the chosen formatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(level: str | int, log_format: LogFormat) -> None:
    """Replace the root logger's handlers with one stderr handler in ``log_format`` at ``level``."""
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    root.addHandler(make_handler(log_format))
    root.setLevel(level)
    # Neither format shows the thread, process or source line: don't look them up for every record
    # (the logging HOWTO's "Optimization"; the caller lookup walks the stack).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # type: ignore[attr-defined]
