"""Distributed traces with OpenTelemetry: one try-on is one trace across every process.

A W3C trace context starts at the gateway's request and rides every event as the
CloudEvents distributed-tracing extension (`traceparent`, `tracestate` attributes; in
binary mode the `ce-traceparent` header, in a stream entry inside the structured JSON).
Each stage continues it: the runtime opens its span as a child of the event's context and
every event made while handling (make_event) carries the new span's context on.

Tracing is on only when OTEL_EXPORTER_OTLP_ENDPOINT is set: then spans are batched and
exported over OTLP/HTTP (protobuf) to `<endpoint>/v1/traces`. Otherwise nothing is set up,
every helper here returns at its first line, and no span object is ever made.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Final

from shared.config import Settings

log = logging.getLogger("proteus.tracing")

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
_state: dict[str, Any] = {"enabled": False, "provider": None, "service": None}


def enabled() -> bool:
    return bool(_state["enabled"])


def configure_tracing(settings: Settings, service: str) -> bool:
    """Export this process' spans as `proteus-<service>` when an OTLP endpoint is set.

    Returns whether tracing is on. Calling it again (a second app in one process) keeps the
    first set-up.
    """
    if not settings.otel_exporter_otlp_endpoint:
        return False
    if _state["enabled"]:
        return True
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {"service.name": f"proteus-{service}", "service.namespace": settings.otel_service_namespace}
    )
    provider = TracerProvider(resource=resource)
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    _state.update(enabled=True, provider=provider, service=service)
    log.info("exporting traces to %s as proteus-%s", endpoint, service)
    return True


def shutdown_tracing() -> None:
    """Flush the spans still queued (at process exit)."""
    provider = _state.get("provider")
    if provider is not None:
        provider.shutdown()
    _state.update(enabled=False, provider=None)


def _tracer() -> Any:
    from opentelemetry import trace

    return trace.get_tracer("proteus")


def _propagator() -> Any:
    from opentelemetry.trace.propagation.tracecontext import (
        TraceContextTextMapPropagator,
    )

    return TraceContextTextMapPropagator()


def context_from(carrier: Mapping[str, str]) -> Any:
    """The trace context in a `traceparent`/`tracestate` carrier (None when there is none)."""
    if not carrier.get(TRACEPARENT):
        return None
    return _propagator().extract(carrier=dict(carrier))


def event_carrier(event: Any) -> dict[str, str]:
    """The event's distributed-tracing extension attributes."""
    carrier = {}
    for name in (TRACEPARENT, TRACESTATE):
        value = event.get_extension(name)
        if value:
            carrier[name] = str(value)
    return carrier


def inject_current(attributes: MutableMapping[str, Any]) -> None:
    """Write the current span's context as `traceparent`/`tracestate` into event attributes."""
    if not _state["enabled"]:
        return
    carrier: dict[str, str] = {}
    _propagator().inject(carrier)
    attributes.update({k: v for k, v in carrier.items() if k in (TRACEPARENT, TRACESTATE) and v})


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    kind: str = "internal",
    attributes: Mapping[str, Any] | None = None,
    links: list[Mapping[str, str]] | None = None,
) -> Iterator[Any]:
    """A span around a block (a child of `parent`'s context when given, else of the current one).

    Yields the span, or None when tracing is off (then nothing at all is made).
    """
    if not _state["enabled"]:
        yield None
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode

    kinds = {
        "internal": SpanKind.INTERNAL,
        "server": SpanKind.SERVER,
        "consumer": SpanKind.CONSUMER,
        "producer": SpanKind.PRODUCER,
        "client": SpanKind.CLIENT,
    }
    context = context_from(parent) if parent else None
    with _tracer().start_as_current_span(
        name,
        context=context,
        kind=kinds[kind],
        attributes=dict(attributes or {}),
        links=links_to(list(links or [])),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_status(Status(StatusCode.ERROR, exc.__class__.__name__))
            raise


def set_status(current: Any, status: int) -> None:
    """Mark a span as failed for a 5xx answer (4xx are the caller's mistake, not ours)."""
    if current is None or status < 500:
        return
    from opentelemetry.trace import Status, StatusCode

    current.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
    current.set_attribute("http.response.status_code", status)


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, for log lines; None when tracing is off."""
    if not _state["enabled"]:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def trace_id_of(carrier: Mapping[str, str]) -> str | None:
    """The trace id inside a `traceparent` (for logs where tracing is off but the header came)."""
    parts = (carrier.get(TRACEPARENT) or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def start_span(
    name: str,
    *,
    carrier: Mapping[str, str] | None = None,
    kind: str = "server",
    attributes: Mapping[str, Any] | None = None,
) -> tuple[Any, Any]:
    """Start a span and make it current until `end_span` (for before/after-request hooks).

    Returns (span, token); (None, None) when tracing is off.
    """
    if not _state["enabled"]:
        return None, None
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    kinds = {"server": SpanKind.SERVER, "internal": SpanKind.INTERNAL, "consumer": SpanKind.CONSUMER}
    parent = context_from(carrier) if carrier else None
    current = _tracer().start_span(name, context=parent, kind=kinds[kind], attributes=dict(attributes or {}))
    token = otel_context.attach(trace.set_span_in_context(current))
    return current, token


def end_span(current: Any, token: Any, status: int | None = None) -> None:
    """End a span from `start_span` and restore the context before it."""
    if current is None:
        return
    from opentelemetry import context as otel_context

    if status is not None:
        current.set_attribute("http.response.status_code", status)
        set_status(current, status)
    current.end()
    otel_context.detach(token)


def current_carrier() -> dict[str, str]:
    """The current context as a `traceparent`/`tracestate` carrier ({} when off or none)."""
    carrier: dict[str, str] = {}
    inject_current(carrier)
    return carrier


@contextlib.contextmanager
def attached(carrier: Mapping[str, str] | None) -> Iterator[None]:
    """Make `carrier`'s context current for a block without a span of its own (events made in
    the block continue that trace: a batch's per-job events keep their own job's trace)."""
    if not _state["enabled"] or not carrier:
        yield
        return
    from opentelemetry import context as otel_context

    token = otel_context.attach(context_from(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)


def links_to(carriers: list[Mapping[str, str]]) -> list[Any]:
    """Span links to other traces (the other jobs of a batch)."""
    if not _state["enabled"]:
        return []
    from opentelemetry import trace
    from opentelemetry.trace import Link

    found = []
    for carrier in carriers:
        context = context_from(carrier) if carrier else None
        if context is not None:
            span_context = trace.get_current_span(context).get_span_context()
            if span_context.is_valid:
                found.append(Link(span_context))
    return found
