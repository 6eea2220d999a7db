"""Request ids and structured logs.

Every request gets an id: the caller's ``X-Request-Id`` when it is well formed (a load
balancer's or a client's trace id), else a new one. It is in the response's
``X-Request-Id``, in every log line written while the request runs, and, for a
recommendation, it is the id of the logged exposure. Log lines are JSON objects, one per
line, for a log pipeline; ``FEEDLAB_LOG_FORMAT=text`` gives plain lines for a terminal.
"""

import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-Id"
# Long enough that two callers' ids do not collide by accident: a recommendation's id is its
# exposure's primary key, so a repeated id would store only the first exposure.
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{16,128}")

current_request_id: ContextVar[str | None] = ContextVar("feedlab_request_id", default=None)

access_log = logging.getLogger("feedlab.access")

# Attributes every LogRecord has; anything else was passed as ``extra`` and is logged too.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(value: str | None) -> str | None:
    """``value`` when it is usable as a request id (16-128 of ``A-Za-z0-9._:-``), else None."""
    if value is not None and _VALID_ID.fullmatch(value):
        return value
    return None


class RequestIdMiddleware:
    """Gives each HTTP request its id (``scope["state"]["request_id"]`` and
    :data:`current_request_id`), sets ``X-Request-Id`` on the response and writes one
    access log line when the response starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER)
        request_id = accepted_request_id(incoming) or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        token = current_request_id.set(request_id)
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                _log_access(scope, message["status"], started, incoming, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)


def _log_access(
    scope: Scope, status: int, started: float, incoming: str | None, request_id: str
) -> None:
    fields: dict[str, Any] = {
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    if incoming is not None and incoming != request_id:
        fields["ignored_request_id"] = incoming[:64]  # malformed; truncated, it is untrusted
    access_log.info("%s %s %d", scope["method"], scope["path"], status, extra=fields)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record written while a request runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, the record's
    ``extra`` fields, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and value is not None and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def log_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter("%(levelname)s:     %(name)s: %(message)s")


def uvicorn_log_config(log_format: str, level: str) -> dict[str, Any]:
    """uvicorn's ``log_config``: its own loggers in the service's format. Its access log is
    off (``access_log=False``): :class:`RequestIdMiddleware` writes one with the id."""
    formatter = (
        {"()": f"{__name__}.JsonFormatter"}
        if log_format == "json"
        else {"format": "%(levelname)s:     %(name)s: %(message)s"}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "service",
        "filters": ["request_id"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"service": formatter},
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "handlers": {"service": handler},
        "loggers": {
            "uvicorn": {"handlers": ["service"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
