"""OpenTelemetry setup (OTLP when configured, otherwise a no-op exporter) and W3C context in Kafka headers."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

_configured = False


def setup_tracing(service: str, otlp_endpoint: str = "", exporter: SpanExporter | None = None) -> None:
    """Install a tracer provider once; spans are exported only when an endpoint or exporter is given."""
    global _configured
    if _configured:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": f"spvhub-{service}"}))
    if exporter is None and otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces")
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True


@lru_cache(maxsize=64)
def tracer(name: str = "spvhub") -> trace.Tracer:
    """One tracer per name for the process (hot paths open a span per invoice; `get_tracer` builds a new tracer
    each call, and reads the environment while no provider is set). One taken before `setup_tracing` is OTel's
    proxy, which follows the provider installed later."""
    return trace.get_tracer(name)


def children(metric: Any) -> Callable[..., Any]:
    """`metric.labels(*values)` remembered per label values (a Prometheus metric's children are never removed
    here): `labels()` checks and locks on every call, and a sync makes several labelled observations per invoice."""
    return lru_cache(maxsize=4096)(metric.labels)


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def kafka_headers(traceparent: str | None) -> list[tuple[str, bytes]]:
    return [("traceparent", traceparent.encode())] if traceparent else []


@contextmanager
def continue_trace(traceparent: str | None, span_name: str, **attributes: Any) -> Iterator[trace.Span]:
    """Open a span whose parent is the producer's context carried in the event (if any)."""
    ctx = propagate.extract({"traceparent": traceparent}) if traceparent else otel_context.get_current()
    with tracer().start_as_current_span(span_name, context=ctx, kind=trace.SpanKind.CONSUMER,
                                        attributes=attributes) as span:
        yield span


def headers_to_dict(headers: Mapping[str, Any] | list[tuple[str, bytes]] | None) -> dict[str, str]:
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in items}


def capture_spans() -> Any:
    """Tests: an in-memory exporter attached to the process's tracer provider (installed if needed)."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        setup_tracing("test")
        provider = trace.get_tracer_provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[attr-defined]
    return exporter
