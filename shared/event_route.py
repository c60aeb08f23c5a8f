"""POST / of a function: one event (binary or structured mode) or a batch, to handle() and back.

`EventRoute` decodes the request, validates the event, runs the function inside a span,
maps its errors to JSON error bodies (shared/http_errors.py) and logs and counts each event.
It is the function app's `POST /` view, and it also sits in front of the Flask app as a WSGI
shortcut for the requests that are every hop of every job: a POST / with a Content-Length
within MAX_EVENT_BYTES goes straight to it, without Flask's request context, URL matching
and response finalisation (about a quarter of a stream hop's cost in the function). Anything
else (a chunked body, one too large, every other route) goes to Flask, which answers it the
same way.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from flask import Response
from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import HTTPException

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
    to_http_binary,
    validate_event,
)
from shared.http_errors import as_proteus_error, error_body, from_http_exception, internal_error
from shared.observability import tracing
from shared.observability.metrics import EVENT_DURATION, EVENTS_HANDLED, bounded, outcome_of
from shared.streams.publish import was_published

log = logging.getLogger("proteus.runtime")

MAX_EVENT_BYTES: Final = 1024 * 1024  # events carry ids and keys, never image bytes

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class EventRoute:
    """Turns one POST / (headers and body) into the function's answer."""

    def __init__(self, function: Any, label: str) -> None:
        self.function = function
        self.name = type(function).__name__
        self.label = label
        self.batches = callable(getattr(function, "handle_batch", None))

    def __call__(self, headers: Mapping[str, str], body: bytes) -> Response:
        started = time.perf_counter()
        if self.batches and is_batch(headers):
            return self._batch(headers, body, started)
        event: CloudEvent | None = None
        try:
            event = from_http(headers, body)
            validate_event(event)
            with tracing.span(
                f"{self.label} {event.get_type()}",
                parent=tracing.event_carrier(event),
                kind="consumer",
                attributes=_span_attributes(event),
            ) as current:
                response = self._handle(event)
                tracing.set_status(current, response.status_code)
                self._log(event, headers, response.status_code, started)  # in the span: its trace id
                return response
        except Exception as exc:
            response = self._error(exc)
        self._log(event, headers, response.status_code, started)
        return response

    def in_front_of(self, app: WsgiApp) -> WsgiApp:
        """A WSGI app that answers POST / with a Content-Length itself and passes the rest to `app`."""

        def shortcut(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == "/":
                length = _content_length(environ)
                if length is not None and length <= MAX_EVENT_BYTES:
                    body = environ["wsgi.input"].read(length) if length else b""
                    response = self(dict(EnvironHeaders(environ)), body)
                    return response(environ, start_response)
            return app(environ, start_response)

        return shortcut

    def _handle(self, event: CloudEvent) -> Response:
        try:
            reply = self.function.handle(event)
            if reply is None:
                return Response(status=202)
            _check_reply(reply, self.name)
            headers, body = to_http_binary(reply)
            return Response(body, status=200, headers=headers)
        except Exception as exc:
            return self._error(exc)

    def _batch(self, headers: Mapping[str, str], body: bytes, started: float) -> Response:
        """A batched request: one handle_batch call, and per event what happened (each logged
        and counted as if it had come alone)."""
        try:
            entries = from_http_batch(headers, body)
        except Exception as exc:
            return self._error(exc)
        errors = run_batch(self.function, entries)
        outcomes = [
            BatchOutcome.handled(_id(entry)) if error is None else BatchOutcome.failed(_id(entry), error)
            for entry, error in zip(entries, errors, strict=True)
        ]
        for entry, outcome in zip(entries, outcomes, strict=True):
            self._log(None if isinstance(entry, BaseException) else entry, headers, outcome.status, started)
        reply_headers, reply = batch_reply(outcomes)
        return Response(reply, status=200, headers=reply_headers)

    def _error(self, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            error = from_http_exception(exc, "POST", "/")
            return json_response(error_body(error), error.status)
        mapped = as_proteus_error(exc)
        if mapped is None:
            log.exception("%s failed with an unexpected error", self.name)
            return json_response(error_body(internal_error("internal error; see the function's log")), 500)
        if mapped.status >= 500:
            log.warning("%s: %s (%s)", self.name, mapped.message, exc.__class__.__name__)
        return json_response(error_body(mapped), mapped.status)

    def _log(self, event: CloudEvent | None, headers: Mapping[str, str], status: int, started: float) -> None:
        """One JSON line per event handled (ids and outcome, never the data) and its metrics."""
        seconds = time.perf_counter() - started
        event_type = event.get_type() if event else _header(headers, "ce-type")
        outcome = outcome_of(status)
        known_type = bounded(event_type, ALL_TYPES, other="invalid")
        EVENTS_HANDLED.labels(self.label, known_type, outcome).inc()
        EVENT_DURATION.labels(self.label, known_type).observe(seconds)
        if not log.isEnabledFor(logging.INFO):
            return
        log.info(
            "event handled",
            extra={
                "fields": {
                    "function": self.label,
                    "type": event_type,
                    "event_id": event.get_id() if event else _header(headers, "ce-id"),
                    "job_id": event.get_subject() if event else _header(headers, "ce-subject"),
                    "trace_id": tracing.current_trace_id()
                    or (tracing.trace_id_of(tracing.event_carrier(event)) if event else None),
                    "status": status,
                    "outcome": outcome,
                    "ms": round(seconds * 1000, 1),
                }
            },
        )


def json_response(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body, default=str), status=status, mimetype="application/json")


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


def _check_reply(reply: CloudEvent, name: str) -> None:
    """An invalid reply is the function's bug (500), not the caller's (400). An event the
    function published (validated on its way into the stream) is not checked again."""
    if was_published(reply):
        return
    try:
        validate_event(reply)
    except InvalidEvent as exc:
        raise RuntimeError(f"{name} replied with an invalid event: {exc.message}") from exc


def _content_length(environ: Mapping[str, Any]) -> int | None:
    """The request's Content-Length, or None when it has none (chunked) or it is not a number."""
    raw = environ.get("CONTENT_LENGTH")
    if not raw or environ.get("HTTP_TRANSFER_ENCODING"):
        return None
    try:
        length = int(raw)
    except ValueError:
        return None
    return length if length >= 0 else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _id(entry: CloudEvent | BaseException) -> str | None:
    return None if isinstance(entry, BaseException) else entry.get_id()


def _span_attributes(event: CloudEvent) -> dict[str, str]:
    attributes = {
        "cloudevents.event_id": event.get_id(),
        "cloudevents.event_type": event.get_type(),
        "cloudevents.event_source": event.get_source(),
    }
    if event.get_subject():
        attributes["proteus.job_id"] = str(event.get_subject())
    return attributes
