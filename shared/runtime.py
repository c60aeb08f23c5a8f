"""The CloudEvents runtime: turn a function object into a Flask app.

A function has `handle(event) -> CloudEvent | None` and optionally `readiness() -> dict`
(with a `"ready"` bool; other keys are shown by /healthz), `ready() -> bool` (the short form),
`close()`, and `handle_batch(events) -> [exception or None]` for a function that renders
several events in one call (its readiness then reports `max_batch`, the most it takes at
once). It never sees HTTP; this module decodes, validates, maps errors and logs.

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
import time
from collections.abc import Sequence
from typing import Any, Final, Protocol

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from shared.config import Settings
from shared.errors import ProteusError
from shared.event_types import ALL_TYPES
from shared.events import (
    BatchOutcome,
    CloudEvent,
    InvalidEvent,
    batch_reply,
    from_http,
    from_http_batch,
    is_batch,
    load_schemas,
    to_http_binary,
    validate_event,
)
from shared.http_errors import (
    as_proteus_error,
    error_body,
    from_http_exception,
    internal_error,
)
from shared.observability import tracing
from shared.observability.metrics import (
    EVENT_DURATION,
    EVENTS_HANDLED,
    FUNCTION_READY,
    bounded,
    exposition,
    outcome_of,
)
from shared.streams.publish import was_published

log = logging.getLogger("proteus.runtime")

FUNCTION_EXTENSION: Final = "proteus.function"
MAX_EVENT_BYTES: Final = 1024 * 1024  # events carry ids and keys, never image bytes


class Function(Protocol):
    """What create_function_app wraps (readiness/ready/close are optional)."""

    def handle(self, event: CloudEvent) -> CloudEvent | None: ...


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
    name = type(function).__name__
    label = function_label(function)
    batches = callable(getattr(function, "handle_batch", None))

    @app.post("/")
    def receive() -> Response:
        started = time.perf_counter()
        event: CloudEvent | None = None
        if batches and is_batch(dict(request.headers)):
            return _receive_batch(function, name, started, label)
        try:
            event = from_http(dict(request.headers), request.get_data(cache=False))
            validate_event(event)
            with tracing.span(
                f"{label} {event.get_type()}",
                parent=tracing.event_carrier(event),
                kind="consumer",
                attributes=_span_attributes(event),
            ) as current:
                try:
                    reply = function.handle(event)
                    if reply is None:
                        response = Response(status=202)
                    else:
                        _check_reply(reply, name)
                        headers, body = to_http_binary(reply)
                        response = Response(body, status=200, headers=headers)
                except Exception as exc:
                    response = _error_response(exc, name)
                tracing.set_status(current, response.status_code)
                _log_request(event, response.status_code, started, label)
                return response
        except Exception as exc:
            response = _error_response(exc, name)
        _log_request(event, response.status_code, started, label)
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        FUNCTION_READY.labels(label).set(1 if function_readiness(function)["ready"] else 0)
        body, content_type = exposition()
        return Response(body, status=200, content_type=content_type)

    @app.get("/healthz")
    def healthz() -> Response:
        return _json({"alive": True, **function_readiness(function)}, 200)

    @app.get("/readyz")
    def readyz() -> Response:
        state = function_readiness(function)
        return _json(state, 200 if state["ready"] else 503)

    app.register_error_handler(HTTPException, _http_error_body)

    return app


def _receive_batch(function: Any, name: str, started: float, label: str) -> Response:
    """A batched request: one handle_batch call, and per event what happened (each logged
    and counted as if it had come alone)."""
    try:
        entries = from_http_batch(dict(request.headers), request.get_data(cache=False))
    except Exception as exc:
        return _error_response(exc, name)
    errors = run_batch(function, entries)
    outcomes = [
        BatchOutcome.handled(_id(entry)) if error is None else BatchOutcome.failed(_id(entry), error)
        for entry, error in zip(entries, errors, strict=True)
    ]
    for entry, outcome in zip(entries, outcomes, strict=True):
        _log_request(None if isinstance(entry, BaseException) else entry, outcome.status, started, label)
    headers, body = batch_reply(outcomes)
    return Response(body, status=200, headers=headers)


def run_batch(function: Any, entries: Sequence[CloudEvent | BaseException]) -> list[ProteusError | None]:
    """Validate each entry and hand the valid ones to one `function.handle_batch` call.

    Returns per entry None (handled) or the ProteusError that says its status and whether a
    retry can help; an entry that is already an exception (unparseable) keeps it. The HTTP
    batch route and the stream runner's pull mode both use this.
    """
    errors: list[ProteusError | None] = [None] * len(entries)
    valid: list[int] = []
    for index, entry in enumerate(entries):
        try:
            if isinstance(entry, BaseException):
                raise entry
            validate_event(entry)
            valid.append(index)
        except Exception as exc:
            errors[index] = classify_error(exc, function)
    if not valid:
        return errors
    try:
        results = list(function.handle_batch([entries[i] for i in valid]))
        if len(results) != len(valid):
            raise RuntimeError(f"handle_batch returned {len(results)} outcomes for {len(valid)} events")
    except Exception as exc:
        error = classify_error(exc, function)
        results = [error] * len(valid)
    for index, result in zip(valid, results):
        errors[index] = None if result is None else classify_error(result, function)
    return errors


def classify_error(exc: BaseException, function: Any) -> ProteusError:
    """The ProteusError for a failure of `function`; an unexpected one is logged and is a 500."""
    error = as_proteus_error(exc)
    if error is None:
        log.error("%s failed with an unexpected error", type(function).__name__, exc_info=exc)
        error = ProteusError(f"{exc.__class__.__name__}: {exc}")
    return error


def _id(entry: CloudEvent | BaseException) -> str | None:
    return None if isinstance(entry, BaseException) else entry.get_id()


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


def _check_reply(reply: CloudEvent, name: str) -> None:
    """An invalid reply is the function's bug (500), not the caller's (400). An event the
    function published (validated on its way into the stream) is not checked again."""
    if was_published(reply):
        return
    try:
        validate_event(reply)
    except InvalidEvent as exc:
        raise RuntimeError(f"{name} replied with an invalid event: {exc.message}") from exc


def _error_response(exc: Exception, name: str) -> Response:
    if isinstance(exc, HTTPException):
        return _http_error_body(exc)
    error = as_proteus_error(exc)
    if error is None:
        log.exception("%s failed with an unexpected error", name)
        return _json(error_body(internal_error("internal error; see the function's log")), 500)
    if error.status >= 500:
        log.warning("%s: %s (%s)", name, error.message, exc.__class__.__name__)
    return _json(error_body(error), error.status)


def _http_error_body(exc: HTTPException) -> Response:
    """404, 405, 413... as the same JSON error body (the gateway's mapping)."""
    error = from_http_exception(exc, request.method, request.path)
    return _json(error_body(error), error.status)


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body, default=str), status=status, mimetype="application/json")


def _span_attributes(event: CloudEvent) -> dict[str, str]:
    attributes = {
        "cloudevents.event_id": event.get_id(),
        "cloudevents.event_type": event.get_type(),
        "cloudevents.event_source": event.get_source(),
    }
    if event.get_subject():
        attributes["proteus.job_id"] = str(event.get_subject())
    return attributes


def function_label(function: Any) -> str:
    """`weave` for functions.weave.handler.WeaveFunction: the metrics' `function` label."""
    parts = type(function).__module__.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "functions" else type(function).__name__


def _log_request(event: CloudEvent | None, status: int, started: float, function: str) -> None:
    """One JSON line per event handled (ids and outcome, never the data) and its metrics."""
    seconds = time.perf_counter() - started
    event_type = event.get_type() if event else request.headers.get("ce-type")
    outcome = outcome_of(status)
    known_type = bounded(event_type, ALL_TYPES, other="invalid")
    EVENTS_HANDLED.labels(function, known_type, outcome).inc()
    EVENT_DURATION.labels(function, known_type).observe(seconds)
    log.info(
        "event handled",
        extra={
            "fields": {
                "function": function,
                "type": event_type,
                "event_id": event.get_id() if event else request.headers.get("ce-id"),
                "job_id": event.get_subject() if event else request.headers.get("ce-subject"),
                "trace_id": tracing.current_trace_id()
                or (tracing.trace_id_of(tracing.event_carrier(event)) if event else None),
                "status": status,
                "outcome": outcome,
                "ms": round(seconds * 1000, 1),
            }
        },
    )


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
