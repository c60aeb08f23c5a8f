"""Each API key's rate limit: a fixed window in Redis shared by every gateway replica.

Every /v1 answer carries the IETF `RateLimit-Policy` ("key";q=<limit>;w=<window s>) and
`RateLimit` ("key";r=<remaining>;t=<seconds to reset>) headers; beyond the limit the answer
is 429 RateLimitExceeded with `Retry-After`. Without Redis the counters live in memory.
"""

from __future__ import annotations

import math
import time
from typing import Any

from flask import Flask, current_app, g
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from gateway.limits import storage_uri
from shared.config import Settings
from shared.errors import RateLimited

EXTENSION = "proteus_key_limiter"
POLICY = "key"


class KeyLimiter:
    def __init__(self, settings: Settings) -> None:
        uri = storage_uri(settings)
        options: dict[str, Any] = {}
        if uri.startswith(("redis", "rediss")):
            options = {"key_prefix": f"{settings.redis_key_prefix}proteus:keylimit", "socket_connect_timeout": 2}
        self.limiter = FixedWindowRateLimiter(storage_from_string(uri, **options))
        self._parsed: dict[str, RateLimitItem] = {}

    def item(self, limit: str) -> RateLimitItem:
        if limit not in self._parsed:
            self._parsed[limit] = parse(limit)
        return self._parsed[limit]


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions[EXTENSION] = KeyLimiter(settings)
    app.after_request(_add_headers)


def check_rate_limit(key_id: str, limit: str) -> None:
    """Count this request against the key; RateLimited (with Retry-After) beyond its limit."""
    limiter: KeyLimiter = current_app.extensions[EXTENSION]
    item = limiter.item(limit)
    allowed = limiter.limiter.hit(item, key_id)
    stats = limiter.limiter.get_window_stats(item, key_id)
    reset = max(0, math.ceil(stats.reset_time - time.time()))
    g.rate_limit_headers = {
        "RateLimit-Policy": f'"{POLICY}";q={item.amount};w={item.get_expiry()}',
        "RateLimit": f'"{POLICY}";r={max(0, stats.remaining)};t={reset}',
    }
    if not allowed:
        g.rate_limit_headers["Retry-After"] = str(max(1, reset))
        raise RateLimited(
            f"too many requests for this API key: its limit is {limit}; try again in {max(1, reset)} s",
            field="Authorization",
        )


def _add_headers(response: Any) -> Any:
    for name, value in getattr(g, "rate_limit_headers", {}).items():
        response.headers[name] = value
    return response
