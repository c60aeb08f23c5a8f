"""Every error answers JSON `{"error", "message", "code", "field"}` (shared.errors.ProteusError).

ProteusError subclasses carry their own status; Werkzeug's HTTP errors (unknown route,
wrong method, body too large, rate limit) are mapped onto the same shape; anything else is
logged and answers a 500 that reveals nothing, or a 503 when the database or Redis is down.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from shared import errors as e

log = logging.getLogger("proteus.gateway")

_BY_STATUS: dict[int, type[e.ProteusError]] = {
    400: e.BadRequest,
    401: e.Unauthorized,
    403: e.Forbidden,
    404: e.NotFound,
    409: e.Conflict,
    413: e.PayloadTooLarge,
    415: e.UnsupportedMediaType,
    429: e.RateLimited,
}


def error_response(error: e.ProteusError) -> Response:
    response = jsonify(error.to_dict())
    response.status_code = error.status
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="proteus"'
    return response


def _proteus(error: e.ProteusError) -> Response:
    if error.status >= 500:
        log.warning("%s %s: %s", request.method, request.path, error.message)
    return error_response(error)


def _http(error: HTTPException) -> Response:
    status = error.code or 500
    if status == 404:
        mapped: e.ProteusError = e.NotFound(f"no route {request.method} {request.path}")
    elif status == 405:
        mapped = e.ClientError(f"method {request.method} is not allowed on {request.path}")
        mapped.status, mapped.code = 405, "method_not_allowed"
    elif status == 413:
        mapped = e.PayloadTooLarge("the request body is too large")
    elif status == 429:
        mapped = e.RateLimited(f"too many requests: limit {error.description}; try again later")
    else:
        cls = _BY_STATUS.get(status)
        mapped = cls(error.description or error.name) if cls else e.ProteusError(error.name)
        mapped.status = status
    response = error_response(mapped)
    if status == 405 and getattr(error, "valid_methods", None):
        response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return response


def _unexpected(error: Exception) -> Response:
    if _is_dependency_error(error):
        log.warning("%s %s: dependency unavailable: %r", request.method, request.path, error)
        return error_response(e.DependencyUnavailable("a dependency (database or Redis) is unavailable; try again"))
    log.exception("%s %s failed", request.method, request.path)
    return error_response(e.ProteusError("internal error"))


def _is_dependency_error(error: Exception) -> bool:
    import redis
    import sqlalchemy.exc

    return isinstance(error, (redis.ConnectionError, redis.TimeoutError, sqlalchemy.exc.OperationalError))


def init_app(app: Flask) -> None:
    app.register_error_handler(e.ProteusError, _proteus)
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(Exception, _unexpected)
