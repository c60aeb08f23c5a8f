"""How the runner hands events to their function: over HTTP (push) or in this process (pull).

Each transport reports an attempt's outcome the same way: `deliver` returns on success and
raises DeliveryFailed (what happened, the HTTP status, retryable or not) otherwise;
`deliver_batch` returns one such outcome per event (None: handled).

A function that renders several events in one call reports `max_batch` in its readiness
(`/readyz` over HTTP); `ready()` reads it into `max_batch`, and the runner then delivers up
to that many entries in one batch (HTTP: the batched content mode, one request).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urljoin

import urllib3

from shared.event_route import classify_error, run_batch
from shared.events import (
    CloudEvent,
    read_batch_reply,
    to_http_batch,
    to_http_binary,
    validate_event,
)
from shared.runtime import function_readiness

log = logging.getLogger("proteus.runner")


class DeliveryFailed(Exception):
    """One failed attempt: what happened, the HTTP status (None: no answer), retryable or not."""

    def __init__(self, message: str, *, status: int | None, retryable: bool, unreachable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.unreachable = unreachable


class Delivery(Protocol):
    """How events reach their function."""

    max_batch: int  # the most events one deliver_batch call may carry (1: no batches)

    def deliver(self, event: CloudEvent) -> None:
        """Return on success; raise DeliveryFailed otherwise."""

    def deliver_batch(self, events: Sequence[CloudEvent]) -> list[DeliveryFailed | None]:
        """One outcome per event: None when handled, else why its delivery failed."""

    def ready(self) -> bool:
        """Whether the function can take events now (and how many at once: max_batch)."""


def batch_limit(readiness: Mapping[str, Any]) -> int:
    """The `max_batch` a function reports in its readiness (1 when it reports none)."""
    try:
        return max(1, int(readiness.get("max_batch") or 1))
    except (TypeError, ValueError):
        return 1


class HttpDelivery:
    """POST events to the function's URL (push mode): one in binary mode, several in batched mode.

    urllib3 directly, with a keep-alive pool and no retries of its own (the runner retries):
    it costs a third less per delivery than requests, on every hop of every job. The pool is
    the function's own (one host), so no URL is parsed and no pool looked up per delivery.
    """

    def __init__(self, url: str, timeout_s: float, connections: int = 2) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.http = urllib3.connection_from_url(url, retries=False, maxsize=connections)
        self.path = urllib3.util.parse_url(url).request_uri
        self.max_batch = 1

    def deliver(self, event: CloudEvent) -> None:
        """POST the event. Only an answer, or no answer in time on an open connection, is an
        attempt; a function that cannot be reached (refused, connect timeout, dropped before
        answering) is `unreachable`: the runner waits for its readiness and counts nothing."""
        headers, body = to_http_binary(event)
        response = self._post(headers, body)
        if not 200 <= response.status < 300:
            raise self._refused(response)

    def deliver_batch(self, events: Sequence[CloudEvent]) -> list[DeliveryFailed | None]:
        headers, body = to_http_batch(events)
        try:
            response = self._post(headers, body)
            if not 200 <= response.status < 300:
                raise self._refused(response)
            outcomes = read_batch_reply(response.data, len(events))
        except DeliveryFailed as failure:
            return [failure] * len(events)
        except ValueError as exc:
            unreadable = DeliveryFailed(f"unreadable batch reply from {self.url}: {exc}", status=None, retryable=True)
            return [unreadable] * len(events)
        return [
            None
            if outcome.ok
            else DeliveryFailed(
                f"HTTP {outcome.status} from {self.url}: {outcome.message or outcome.code or 'no message'}",
                status=outcome.status,
                retryable=not 400 <= outcome.status < 500,
            )
            for outcome in outcomes
        ]

    def ready(self) -> bool:
        try:
            response = self.http.urlopen("GET", urljoin(self.path, "readyz"), timeout=5, redirect=False)
        except urllib3.exceptions.HTTPError:
            return False
        if response.status < 300:
            try:
                state = json.loads(response.data)
            except ValueError:
                state = {}
            self.max_batch = batch_limit(state if isinstance(state, dict) else {})
            return True
        return response.status == 404  # 404: no probe there

    def _post(self, headers: dict[str, str], body: bytes) -> urllib3.BaseHTTPResponse:
        try:
            return self.http.urlopen(
                "POST", self.path, body=body, headers=headers, timeout=self.timeout_s, redirect=False
            )
        except urllib3.exceptions.ReadTimeoutError:
            raise DeliveryFailed(
                f"no answer from {self.url} within {self.timeout_s:g}s", status=None, retryable=True
            ) from None
        except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
            # urllib3 2.x: a refused connection (NewConnectionError) is a TimeoutError too,
            # so it is told apart here, before any timeout handling.
            raise DeliveryFailed(
                f"cannot reach {self.url}: {_reason(exc)}", status=None, retryable=True, unreachable=True
            ) from None
        except urllib3.exceptions.HTTPError as exc:  # ProtocolError: dropped before an answer
            raise DeliveryFailed(
                f"{self.url} closed the connection without an answer: {_reason(exc)}",
                status=None,
                retryable=True,
                unreachable=True,
            ) from None

    def _refused(self, response: urllib3.BaseHTTPResponse) -> DeliveryFailed:
        status = response.status
        return DeliveryFailed(
            f"HTTP {status} from {self.url}: {_response_error(response)}",
            status=status,
            retryable=not 400 <= status < 500,
        )


class PullDelivery:
    """Call a function object in this process (pull mode): handle() for one event,
    handle_batch() for several (a function that reports max_batch)."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.max_batch = 1

    def deliver(self, event: CloudEvent) -> None:
        (failure,) = self._deliver_one(event)
        if failure is not None:
            raise failure

    def deliver_batch(self, events: Sequence[CloudEvent]) -> list[DeliveryFailed | None]:
        if not self._batches:
            return [outcome for event in events for outcome in self._deliver_one(event)]
        return [
            None if error is None else DeliveryFailed(error.message, status=error.status, retryable=error.retryable)
            for error in run_batch(self.function, events)
        ]

    def ready(self) -> bool:
        state = function_readiness(self.function)
        self.max_batch = batch_limit(state) if self._batches else 1
        return bool(state["ready"])

    @property
    def _batches(self) -> bool:
        return callable(getattr(self.function, "handle_batch", None))

    def _deliver_one(self, event: CloudEvent) -> list[DeliveryFailed | None]:
        """handle() of a function without handle_batch (a reply is discarded, as in push mode)."""
        try:
            validate_event(event)
            self.function.handle(event)
        except Exception as exc:
            error = classify_error(exc, self.function)
            return [DeliveryFailed(error.message, status=error.status, retryable=error.retryable)]
        return [None]


def _response_error(response: urllib3.BaseHTTPResponse) -> str:
    text = response.data.decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except ValueError:
        pass
    return text[:500] or response.reason or "no body"


def _reason(exc: BaseException) -> str:
    """The innermost cause of a urllib3 error, e.g. 'ConnectionRefusedError: [Errno 111] ...'."""
    cause: BaseException = exc
    while cause.__cause__ is not None or (cause.args and isinstance(cause.args[-1], BaseException)):
        cause = cause.__cause__ or cause.args[-1]
    text = str(cause).split(": ", 1)[-1] if isinstance(cause, urllib3.exceptions.HTTPError) else str(cause)
    return f"{cause.__class__.__name__}: {text}"[:300]
