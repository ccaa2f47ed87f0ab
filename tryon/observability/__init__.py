"""Observability shared by every process: job-aware logging and OpenTelemetry tracing.

* :mod:`.context` — the current job id (a ContextVar) and ``job_context(job_id)``.
* :mod:`.logs` — ``configure_logging(...)``: one log format for every process (text or JSON); every record
  carries ``job_id`` (and ``trace_id`` when a span is active).
* :mod:`.tracing` — ``setup_tracing(service_name)``: OTLP/HTTP (JSON encoding) export when
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, a no-op otherwise; W3C ``traceparent`` inject/extract helpers.
* :mod:`.grpc` — the client interceptor (``tryon.client`` channels) and ``server_call(...)`` (stage runtime):
  job id and trace context travel in gRPC metadata.
* :mod:`.celery_hooks` — ``install()``: Celery signal handlers carrying them through message headers.
* :mod:`.asgi` — ``TracingMiddleware`` for the gateway.
"""

from tryon.observability.context import JOB_ID_HEADER, current_job_id, job_context
from tryon.observability.logs import configure_logging
from tryon.observability.settings import ObservabilitySettings
from tryon.observability.tracing import get_tracer, setup_tracing

__all__ = [
    "JOB_ID_HEADER",
    "ObservabilitySettings",
    "configure_logging",
    "current_job_id",
    "get_tracer",
    "job_context",
    "setup_tracing",
]
