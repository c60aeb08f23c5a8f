"""The CloudEvents runtime: turn a function object into a Flask app.

A function has `handle(event) -> CloudEvent | None` and optionally `readiness() -> dict`
(with a `"ready"` bool; other keys are shown by /healthz), `ready() -> bool` (the short form),
`close()`, and `handle_batch(events) -> [exception or None]` for a function that renders
several events in one call (its readiness then reports `max_batch`, the most it takes at
once). It never sees HTTP; this module and shared/event_route.py (POST /, also a WSGI
shortcut in front of Flask for the events themselves) decode, validate, map errors and log.

Routes:
    POST /      a binary- or structured-mode event. 200 + the reply event in binary mode,
                or 202 with no body when handle() returns None. Errors are JSON bodies
                `{"error", "message", "code", "field"}`: 400 invalid event, 415 wrong
                Content-Type, a ProteusError's own status, 503 a dependency down, 500 a bug
                (shared/http_errors.py: the same mapping as the gateway's). With handle_batch,
                also a batch (`application/cloudevents-batch+json`): 200 + per event its
                status (shared.events.batch).
    GET /healthz  200 while the process is alive, with the readiness details.
    GET /readyz   200 when readiness()["ready"], else 503.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Final, Protocol

from cloudevents.core.base import BaseCloudEvent
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from shared.config import Settings
from shared.event_route import MAX_EVENT_BYTES, EventRoute, json_response
from shared.events import CloudEvent, load_schemas
from shared.http_errors import error_body, from_http_exception
from shared.observability import tracing
from shared.observability.metrics import FUNCTION_READY, exposition

log = logging.getLogger("proteus.runtime")

FUNCTION_EXTENSION: Final = "proteus.function"


class Function(Protocol):
    """What create_function_app wraps (readiness/ready/close are optional)."""

    def handle(self, event: CloudEvent) -> BaseCloudEvent | None: ...


def create_function_app(function: Function, settings: Settings) -> Flask:
    """The Flask app serving `function` (gunicorn: `functions.<name>.main:create_app()`)."""
    if not callable(getattr(function, "handle", None)):
        raise TypeError(f"{type(function).__name__} has no handle(event) method")
    configure_logging(settings.log_level)
    load_schemas()
    tracing.configure_tracing(settings, function_label(function))
    app = Flask(type(function).__module__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_EVENT_BYTES
    app.config["PROTEUS_SETTINGS"] = settings
    app.extensions[FUNCTION_EXTENSION] = function
    label = function_label(function)

    receive = EventRoute(function, label)

    @app.post("/")
    def receive_event() -> Response:  # a body without Content-Length (chunked); see EventRoute
        return receive(dict(request.headers), request.get_data(cache=False))

    @app.get("/metrics")
    def metrics() -> Response:
        FUNCTION_READY.labels(label).set(1 if function_readiness(function)["ready"] else 0)
        body, content_type = exposition()
        return Response(body, status=200, content_type=content_type)

    @app.get("/healthz")
    def healthz() -> Response:
        return json_response({"alive": True, **function_readiness(function)}, 200)

    @app.get("/readyz")
    def readyz() -> Response:
        state = function_readiness(function)
        return json_response(state, 200 if state["ready"] else 503)

    app.register_error_handler(HTTPException, _http_error_body)
    app.wsgi_app = receive.in_front_of(app.wsgi_app)  # type: ignore[method-assign,assignment]
    return app


def close_function_app(app: Flask) -> None:
    """Call the wrapped function's close() once (gunicorn's worker_exit hook calls this)."""
    function = app.extensions.pop(FUNCTION_EXTENSION, None)
    close = getattr(function, "close", None)
    if callable(close):
        close()


def function_readiness(function: Any) -> dict[str, Any]:
    """`{"ready": bool, ...}` from readiness(), else ready(), else ready; never raises."""
    try:
        if callable(getattr(function, "readiness", None)):
            state = dict(function.readiness())
            state["ready"] = bool(state.get("ready", False))
            return state
        if callable(getattr(function, "ready", None)):
            return {"ready": bool(function.ready())}
    except Exception as exc:
        log.warning("readiness check of %s failed: %r", type(function).__name__, exc)
        return {"ready": False, "error": f"readiness check failed: {exc.__class__.__name__}"}
    return {"ready": True}


def _http_error_body(exc: HTTPException) -> Response:
    """404, 405, 413... as the same JSON error body (the gateway's mapping)."""
    error = from_http_exception(exc, request.method, request.path)
    return json_response(error_body(error), error.status)


def function_label(function: Any) -> str:
    """`weave` for functions.weave.handler.WeaveFunction: the metrics' `function` label."""
    parts = type(function).__module__.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "functions" else type(function).__name__


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's `fields`, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


_logging_lock = threading.Lock()


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the whole process, unless logging is already configured."""
    root = logging.getLogger()
    with _logging_lock:
        if not root.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(JsonFormatter())
            root.addHandler(handler)
            root.setLevel(level)
