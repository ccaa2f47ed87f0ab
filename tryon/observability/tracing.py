"""OpenTelemetry tracing: one trace per job, gateway -> worker -> every stage call.

``setup_tracing(service_name)`` installs an SDK tracer provider exporting over OTLP/HTTP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set. Without it nothing is
installed: the API's no-op tracer still carries an incoming ``traceparent`` through (spans are not recorded
but the ids pass on), so a process without an exporter does not break the trace of the others.

The exporter speaks OTLP/HTTP with JSON encoding (``opentelemetry-exporter-otlp-json-http``): every
collector accepts it, and unlike the protobuf encoding it does not need protobuf >= 5 (mediapipe pins this
project to protobuf 4.25).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Tracer

from tryon.observability.settings import ObservabilitySettings

log = logging.getLogger("tryon.tracing")

TRACER_NAME = "tryon"
_installed: Any = None  # the SDK TracerProvider this process installed, if any


def setup_tracing(
    service_name: str, settings: ObservabilitySettings | None = None, *, exporter: Any = None
) -> bool:
    """Install the process's tracer provider; True when spans are recorded (an exporter is configured).

    ``exporter`` (a SpanExporter, e.g. an in-memory one in tests) replaces the OTLP one. Idempotent: a
    second call in the same process keeps the first provider (OpenTelemetry allows only one).
    """
    global _installed
    settings = settings or ObservabilitySettings()
    if _installed is not None:
        return True
    if exporter is None and not settings.traces_url:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.service_name or service_name})
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=settings.traces_url), schedule_delay_millis=settings.export_delay_ms
            )
        )
        log.info("tracing: exporting spans of %s to %s", service_name, settings.traces_url)
    trace.set_tracer_provider(provider)
    _installed = provider
    return True


def shutdown_tracing() -> None:
    """Flush and stop the exporter (also done at interpreter exit by the SDK)."""
    if _installed is not None:
        _installed.shutdown()


def get_tracer() -> Tracer:
    return trace.get_tracer(TRACER_NAME)


def inject(carrier: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Write the current trace context (W3C ``traceparent``/``tracestate``) into ``carrier``."""
    propagate.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str]) -> otel_context.Context:
    """The trace context carried by ``carrier`` (an empty context when it has none)."""
    return propagate.extract(carrier)


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: otel_context.Context | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A span around the block, child of ``parent`` (default: the current context); errors are recorded."""
    with get_tracer().start_as_current_span(
        name, context=parent, kind=kind, attributes=dict(attributes or {})
    ) as current:
        yield current


def current_trace_id() -> str | None:
    """The active trace id as 32 hex digits, or None."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None
