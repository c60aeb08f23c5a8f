"""The gateway's metrics and traces: a span and two metrics per request, and GET /metrics.

Each request is a server span (continuing a `traceparent` header if the client sent one);
events the request publishes carry its context on (shared.events.make_event). The route
label is the URL rule (`/vton/<vton_id>`), never the path, so ids never become labels.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from shared.config import Settings
from shared.observability import tracing
from shared.observability.metrics import (
    HTTP_DURATION,
    HTTP_REQUESTS,
    RATE_LIMITED,
    exposition,
)

UNMATCHED = "unmatched"  # 404s: any path a client makes up stays one label value


def init_app(app: Flask, settings: Settings) -> None:
    tracing.configure_tracing(settings, "gateway")
    app.before_request(_before)
    app.after_request(_after)
    app.teardown_request(_teardown)
    app.add_url_rule("/metrics", "metrics", metrics)


def metrics() -> Response:
    body, content_type = exposition()
    return Response(body, status=200, content_type=content_type)


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def _before() -> None:
    g.proteus_started = time.perf_counter()
    if tracing.enabled() and request.path != "/metrics":
        route = _route()
        g.proteus_span = tracing.start_span(
            f"{request.method} {route}",
            carrier={k.lower(): v for k, v in request.headers.items()},
            attributes={"http.request.method": request.method, "http.route": route},
        )


def _after(response: Response) -> Response:
    route, method = _route(), request.method
    started = g.pop("proteus_started", None)
    HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
    if started is not None and not route.startswith("/ws"):  # a socket's "request" lasts its whole life
        HTTP_DURATION.labels(route, method).observe(time.perf_counter() - started)
    if response.status_code == 429:
        RATE_LIMITED.labels(route).inc()
    span = g.pop("proteus_span", None)
    if span is not None:
        tracing.end_span(span[0], span[1], response.status_code)
    return response


def _teardown(_exc: BaseException | None) -> None:
    span = g.pop("proteus_span", None)  # a request that ended without a response
    if span is not None:
        tracing.end_span(span[0], span[1], 500)
