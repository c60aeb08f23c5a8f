"""Any exception as the HTTP answer it stands for: one mapping for the functions' runtime and the gateway.

`as_proteus_error(exc)`: the ProteusError itself; a Redis, database or object-storage
connection failure as DependencyUnavailable (503, retryable: the same status wherever it
happens); None for a bug (the caller answers a 500 that reveals nothing).
`from_http_exception(exc, method, path)`: Werkzeug's own errors (unknown route, wrong method,
body too large, rate limit) as the same ProteusError shape. `error_body(error)` is the JSON.
"""

from __future__ import annotations

import sys
from typing import Any, Final

from werkzeug.exceptions import HTTPException

from shared import errors as e

_BY_STATUS: Final[dict[int, type[e.ProteusError]]] = {
    400: e.BadRequest,
    401: e.Unauthorized,
    403: e.Forbidden,
    404: e.NotFound,
    409: e.Conflict,
    413: e.PayloadTooLarge,
    415: e.UnsupportedMediaType,
    429: e.RateLimited,
    503: e.DependencyUnavailable,
}
# (module, exception class names, what to call it): checked only when the library is imported.
_DEPENDENCIES: Final = (
    ("redis.exceptions", ("ConnectionError", "TimeoutError"), "Redis"),
    ("sqlalchemy.exc", ("OperationalError", "DisconnectionError", "TimeoutError"), "the database"),
    ("botocore.exceptions", ("ConnectionError", "HTTPClientError"), "object storage"),
)


def as_proteus_error(exc: BaseException) -> e.ProteusError | None:
    """The ProteusError an exception stands for, or None for an unexpected bug."""
    if isinstance(exc, e.ProteusError):
        return exc
    dependency = dependency_name(exc)
    if dependency:
        return e.DependencyUnavailable(f"{dependency} is unavailable ({exc.__class__.__name__}); try again")
    return None


def dependency_name(exc: BaseException) -> str | None:
    """Which dependency failed to answer, checking only libraries already imported."""
    for module_name, class_names, label in _DEPENDENCIES:
        module = sys.modules.get(module_name)
        if module is None:
            continue
        classes = tuple(getattr(module, n) for n in class_names if hasattr(module, n))
        if classes and isinstance(exc, classes):
            return label
    return None


def from_http_exception(exc: HTTPException, method: str, path: str) -> e.ProteusError:
    """Werkzeug's HTTP error as a ProteusError with the same status."""
    status = exc.code or 500
    mapped: e.ProteusError
    if status == 404:
        mapped = e.NotFound(f"no route {method} {path}")
    elif status == 405:
        mapped = e.ClientError(f"method {method} is not allowed on {path}")
    elif status == 413:
        mapped = e.PayloadTooLarge("the request body is too large")
    elif status == 429:
        mapped = e.RateLimited(f"too many requests: limit {exc.description}; try again later")
    else:
        cls = _BY_STATUS.get(status, e.ProteusError)
        mapped = cls(exc.description or exc.name)
    mapped.status = status
    if type(mapped).code in ("bad_request", "internal_error") or status in (405, 413):
        mapped.code = "_".join(exc.name.lower().split())  # method_not_allowed, request_entity_too_large...
    return mapped


def internal_error(message: str = "internal error") -> e.ProteusError:
    """The answer to a bug: a 500 that reveals nothing."""
    return e.ProteusError(message)


def error_body(error: e.ProteusError) -> dict[str, Any]:
    """`{"error", "message", "code", "field"}` (and `details` where there are some)."""
    return error.to_dict()


def from_error_body(status: int, body: Any, *, what: str) -> e.ProteusError:
    """The ProteusError another service answered with (`{"error"|"message", "code", "field"}`).

    A 4xx keeps its status, code, field and message (the caller's request was wrong); a 5xx
    or an unreadable answer becomes DependencyUnavailable naming `what` did not work.
    """
    if not isinstance(body, dict) or not 400 <= status < 500:
        detail = body.get("message") if isinstance(body, dict) else None
        return e.DependencyUnavailable(
            f"{what} failed (HTTP {status}{': ' + str(detail) if detail else ''}); try again in a moment"
        )
    message = str(body.get("message") or body.get("error") or f"{what} refused the request (HTTP {status})")
    field = body.get("field") if isinstance(body.get("field"), str) else None
    error = _BY_STATUS.get(status, e.ClientError)(message, field=field)
    error.status = status
    if isinstance(body.get("code"), str):
        error.code = body["code"]
    return error
