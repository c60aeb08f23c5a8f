"""Rate limits (Flask-Limiter): login, signup, job creation and upload presigning.

Each marked view gets `Settings.rate_limit` (default "20 per minute") per caller: the user
id of a well-signed token where the request has one, else the client address. Counters
live in Redis (RATE_LIMIT_STORAGE_URL, else REDIS_URL) so every replica shares them, under
the deployment's key prefix; without a Redis URL, or while Redis is down, in memory.
An exceeded limit answers 429 JSON with Retry-After (whole seconds, at least 1). Only
answers below 500 count: a request that failed on our side (a 5xx) is not held against
the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from shared.config import Settings

F = TypeVar("F", bound=Callable[..., Any])
MARK = "_proteus_rate_limited"


def rate_limited(view: F) -> F:
    """Mark a view for `Settings.rate_limit` (applied by `init_app` to this app's limiter)."""
    setattr(view, MARK, True)
    return view


def _caller() -> str:
    from gateway import auth, resources

    token, _ = auth.request_token()
    if token:
        try:
            return "user:" + auth.token_user_id(auth.decode_token(resources.settings(), token))
        except Exception:  # a bad token is limited by address
            pass
    return "ip:" + (get_remote_address() or "unknown")


def storage_uri(settings: Settings) -> str:
    url = settings.rate_limit_storage_url or settings.redis_url or "memory://"
    if url.startswith("unix://"):
        url = "redis+unix://" + url[len("unix://") :]
    return url


def counts(response: Response) -> bool:
    """Whether an answer counts against the caller's limit: not when the server failed."""
    return response.status_code < 500


def _retry_after_at_least_one(response: Response) -> Response:
    """Flask-Limiter rounds the seconds left down, to 0 in the window's last second."""
    value = response.headers.get("Retry-After")
    if value is not None and value.lstrip("-").isdigit() and int(value) < 1:
        response.headers["Retry-After"] = "1"
    return response


def init_app(app: Flask, settings: Settings) -> Limiter:
    """A limiter for this app; wraps every view marked with `rate_limited`."""
    # Registered before the limiter's own hook, so it runs after it (Flask runs them in reverse).
    app.after_request(_retry_after_at_least_one)
    uri = storage_uri(settings)
    options: dict[str, Any] = {}
    if uri.startswith(("redis", "rediss")):
        options = {"key_prefix": f"{settings.redis_key_prefix}proteus:ratelimit", "socket_connect_timeout": 2}
    limiter = Limiter(
        _caller,
        app=app,
        storage_uri=uri,
        storage_options=options,
        strategy="moving-window",
        headers_enabled=True,
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        default_limits=[],
    )
    limited: set[str] = set()
    for endpoint, view in list(app.view_functions.items()):
        if getattr(view, MARK, False):
            limited.add(endpoint)
            app.view_functions[endpoint] = limiter.limit(  # type: ignore[assignment]
                lambda: settings.rate_limit, deduct_when=counts
            )(view)
    # Every other request (history, /ws handshakes, files) skips the limiter's per-request
    # resolution of which limits apply: there are none.
    limiter.request_filter(lambda: request.endpoint not in limited)
    return limiter
