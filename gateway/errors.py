"""Every error answers JSON `{"error", "message", "code", "field"}` (shared.errors.ProteusError).

ProteusError subclasses carry their own status; Werkzeug's HTTP errors (unknown route,
wrong method, body too large, rate limit) are mapped onto the same shape; anything else is
logged and answers a 500 that reveals nothing, or a 503 when the database, Redis or object
storage is down. The mapping is shared with the functions' runtime (shared/http_errors.py).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from shared import errors as e
from shared.http_errors import as_proteus_error, from_http_exception, internal_error

log = logging.getLogger("proteus.gateway")


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
    response = error_response(from_http_exception(error, request.method, request.path))
    if error.code == 405 and getattr(error, "valid_methods", None):
        response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return response


def error_for(error: Exception, method: str, path: str) -> e.ProteusError:
    """What an exception no view answered stands for, logged: a dependency's outage is its
    503, a bug a 500 that reveals nothing."""
    mapped = as_proteus_error(error)
    if mapped is not None:
        log.warning("%s %s: %s (%r)", method, path, mapped.message, error)
        return mapped
    log.exception("%s %s failed", method, path)
    return internal_error()


def _unexpected(error: Exception) -> Response:
    return error_response(error_for(error, request.method, request.path))


def init_app(app: Flask) -> None:
    app.register_error_handler(e.ProteusError, _proteus)
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(Exception, _unexpected)
