"""The gateway middleware: a request continues the caller's trace and runs as the job its path names."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from tryon import observability
from tryon.observability import tracing
from tryon.observability.asgi import TracingMiddleware


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = f"{observability.current_job_id()} {tracing.current_trace_id()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def test_request_span_continues_the_trace_and_names_the_job(exporter: InMemorySpanExporter) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    client = TestClient(TracingMiddleware(app))
    reply = client.get(
        "/api/tryon/AbCdEf123456/events", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    )
    assert reply.text == f"AbCdEf123456 {trace_id}"
    span = next(s for s in exporter.get_finished_spans() if s.name == "GET /api/tryon/AbCdEf123456/events")
    assert span.parent is not None and span.parent.span_id == 0x00F067AA0BA902B7
    assert span.attributes["tryon.job_id"] == "AbCdEf123456"
    assert span.attributes["http.response.status_code"] == 200


def test_requests_not_about_a_job_have_none() -> None:
    reply = TestClient(TracingMiddleware(app)).get("/api/ready")
    assert reply.text.startswith("None ")
