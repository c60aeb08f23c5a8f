"""How the runner hands an event to its function: over HTTP (push) or in this process (pull).

Each transport reports one attempt's outcome the same way: it returns on success and
raises DeliveryFailed (what happened, the HTTP status, retryable or not) otherwise.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urljoin

import urllib3

from shared.errors import ProteusError
from shared.events import CloudEvent, to_http_binary, validate_event
from shared.http_errors import as_proteus_error
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
    """How an event reaches its function."""

    def deliver(self, event: CloudEvent) -> None:
        """Return on success; raise DeliveryFailed otherwise."""

    def ready(self) -> bool:
        """Whether the function can take events now."""


class HttpDelivery:
    """POST the event in binary mode to the function's URL (push mode).

    urllib3 directly, with a keep-alive pool and no retries of its own (the runner retries):
    it costs a third less per delivery than requests, on every hop of every job.
    """

    def __init__(self, url: str, timeout_s: float, connections: int = 2) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.http = urllib3.PoolManager(retries=False, maxsize=connections)

    def deliver(self, event: CloudEvent) -> None:
        """POST the event. Only an answer, or no answer in time on an open connection, is an
        attempt; a function that cannot be reached (refused, connect timeout, dropped before
        answering) is `unreachable`: the runner waits for its readiness and counts nothing."""
        headers, body = to_http_binary(event)
        try:
            response = self.http.request("POST", self.url, body=body, headers=headers, timeout=self.timeout_s)
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
                status=None, retryable=True, unreachable=True,
            ) from None
        if 200 <= response.status < 300:
            return
        status = response.status
        raise DeliveryFailed(
            f"HTTP {status} from {self.url}: {_response_error(response)}",
            status=status,
            retryable=not 400 <= status < 500,
        )

    def ready(self) -> bool:
        try:
            response = self.http.request("GET", urljoin(self.url, "readyz"), timeout=5)
        except urllib3.exceptions.HTTPError:
            return False
        return response.status < 300 or response.status == 404  # 404: no probe there


class PullDelivery:
    """Call a function object's handle() in this process (pull mode).

    A function with `handle_batch(events) -> [exception or None]` (weave) gets the entries
    of one read together, so it can render them as one batch.
    """

    def __init__(self, function: Any) -> None:
        self.function = function

    @property
    def batches(self) -> bool:
        return callable(getattr(self.function, "handle_batch", None))

    def deliver(self, event: CloudEvent) -> None:
        try:
            validate_event(event)
            self.function.handle(event)  # a reply is discarded, as in push mode
        except Exception as exc:  # noqa: BLE001 - every failure is classified below
            raise self._failure(exc) from None

    def deliver_batch(self, events: Sequence[CloudEvent]) -> list[DeliveryFailed | None]:
        """One outcome per event: None when handled, else why its delivery failed."""
        outcomes: list[DeliveryFailed | None] = [None] * len(events)
        valid: list[int] = []
        for index, event in enumerate(events):
            try:
                validate_event(event)
                valid.append(index)
            except Exception as exc:  # noqa: BLE001
                outcomes[index] = self._failure(exc)
        if not valid:
            return outcomes
        try:
            results = self.function.handle_batch([events[i] for i in valid])
        except Exception as exc:  # noqa: BLE001
            failure = self._failure(exc)
            return [failure if i in valid else outcomes[i] for i in range(len(events))]
        for index, result in zip(valid, results):
            outcomes[index] = None if result is None else self._failure(result)
        return outcomes

    def _failure(self, exc: BaseException) -> DeliveryFailed:
        error = as_proteus_error(exc)
        if error is None:
            log.error("%s failed with an unexpected error", type(self.function).__name__, exc_info=exc)
            error = ProteusError(f"{exc.__class__.__name__}: {exc}")
        return DeliveryFailed(error.message, status=error.status, retryable=error.retryable)

    def ready(self) -> bool:
        return bool(function_readiness(self.function)["ready"])


def _reason(exc: BaseException) -> str:
    """The innermost cause of a urllib3 error, e.g. 'ConnectionRefusedError: [Errno 111] ...'."""
    cause: BaseException = exc
    while cause.__cause__ is not None or (cause.args and isinstance(cause.args[-1], BaseException)):
        cause = cause.__cause__ or cause.args[-1]
    text = str(cause).split(": ", 1)[-1] if isinstance(cause, urllib3.exceptions.HTTPError) else str(cause)
    return f"{cause.__class__.__name__}: {text}"[:300]


def _response_error(response: urllib3.BaseHTTPResponse) -> str:
    text = response.data.decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except ValueError:
        pass
    return text[:500] or response.reason or "no body"
