"""The error hierarchy: each class says its HTTP status and whether a retry can help.

Bad input is a 4xx and is never retried; a transient failure is a 5xx and is retried.
Every message says what was wrong and with what value.
"""

from __future__ import annotations

from typing import Any


class ProteusError(Exception):
    """Base of every error the project raises on purpose. Maps to HTTP 500, retryable."""

    status: int = 500
    retryable: bool = True
    code: str = "internal_error"
    reason: str | None = None  # a stage's own finer reason, where it has one (tailor: no_garment...)

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: `error` and `message` (both read by clients), `code`, `field`."""
        body: dict[str, Any] = {
            "error": self.message,
            "message": self.message,
            "code": self.code,
            "field": self.field,
        }
        if self.details:
            body["details"] = self.details
        return body


class ClientError(ProteusError, ValueError):
    """The request itself is wrong (4xx); retrying the same request cannot help."""

    status = 400
    retryable = False
    code = "bad_request"


class BadRequest(ClientError):
    """HTTP 400: malformed or invalid input."""


class Unauthorized(ClientError):
    """HTTP 401: no or invalid credentials."""

    status = 401
    code = "unauthorized"


class Forbidden(ClientError):
    """HTTP 403: authenticated, but not allowed."""

    status = 403
    code = "forbidden"


class LicenceRestricted(Forbidden):
    """HTTP 403: the request needs a component this deployment's licence setting does not run."""

    code = "licence_restricted"


class ModelNotLoaded(BadRequest):
    """HTTP 400: the request names a model this deployment does not serve."""

    code = "model_not_loaded"


class NotFound(ClientError, LookupError):
    """HTTP 404: no such thing (or not the caller's: we never reveal which)."""

    status = 404
    code = "not_found"


class Conflict(ClientError):
    """HTTP 409: the request conflicts with the current state."""

    status = 409
    code = "conflict"


class PayloadTooLarge(ClientError):
    """HTTP 413: a file or image exceeds its limit."""

    status = 413
    code = "too_large"


class UnsupportedMediaType(ClientError):
    """HTTP 415: a content type we do not accept."""

    status = 415
    code = "unsupported_media_type"


class RateLimited(ClientError):
    """HTTP 429: too many requests."""

    status = 429
    code = "rate_limited"


class InvalidImage(BadRequest):
    """HTTP 400: bytes that are not a readable image, or an image of unusable size."""

    code = "invalid_image"


class ImageTooLarge(PayloadTooLarge):
    """HTTP 413: an image over the pixel or byte limit (refused before decoding)."""

    code = "image_too_large"


class TransientError(ProteusError):
    """HTTP 500, retryable: something failed that may work on a second try."""


class DependencyUnavailable(TransientError):
    """HTTP 503, retryable: a dependency (database, Redis, storage, model) is down."""

    status = 503
    code = "dependency_unavailable"
