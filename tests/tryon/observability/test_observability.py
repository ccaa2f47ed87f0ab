"""Job id in every log line and one trace across processes (client -> real stage service subprocess)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.imagegen import person_photo
from tests.tryon.observability.otlp_sink import OtlpSink
from tryon import observability
from tryon.client import PoseClient
from tryon.local_services import start_service
from tryon.observability import tracing
from tryon.observability.grpc import outgoing_metadata
from tryon.types import PoseInput


@pytest.fixture()
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    observability.configure_logging("INFO", json_format=True, service="test", stream=stream)
    yield stream
    root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def test_json_log_lines_carry_the_job_id_and_escape_messages(log_stream: io.StringIO) -> None:
    logger = logging.getLogger("tryon.test")
    with observability.job_context("job-123456"):
        logger.info('quoted "message"\nnext line')
    logger.info("outside any job")
    first, second = (json.loads(line) for line in log_stream.getvalue().splitlines())
    assert first["job_id"] == "job-123456"
    assert first["message"] == 'quoted "message"\nnext line'
    assert first["service"] == "test"
    assert second["job_id"] is None


def test_text_log_lines_carry_job_and_trace_id(exporter: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    handler = observability.configure_logging("INFO", stream=stream)
    try:
        with observability.job_context("job-abcdef"), tracing.span("work") as span:
            logging.getLogger("tryon.test").info("hello")
        trace_id = format(span.get_span_context().trace_id, "032x")
    finally:
        logging.getLogger().removeHandler(handler)
    assert f"[job=job-abcdef trace={trace_id}]: hello" in stream.getvalue()


def test_outgoing_metadata_carries_traceparent_and_job_id(exporter: InMemorySpanExporter) -> None:
    with observability.job_context("job-meta01"), tracing.span("parent") as parent:
        metadata = dict(outgoing_metadata([("x-other", "1")]))
    trace_id = format(parent.get_span_context().trace_id, "032x")
    assert metadata["x-tryon-job-id"] == "job-meta01"
    assert metadata["traceparent"].split("-")[1] == trace_id
    assert metadata["x-other"] == "1"


def test_one_trace_from_client_through_a_real_service(exporter: InMemorySpanExporter) -> None:
    """The client span (this process) and the service's server span (a subprocess exporting over OTLP/HTTP
    JSON to a local sink) share one trace id; the service's log line for the call names the job."""
    sink = OtlpSink()
    service = start_service(
        "pose", OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint, OTEL_BSP_SCHEDULE_DELAY="100", TRYON_LOG_JSON="1"
    )
    try:
        with PoseClient(service.address) as client:
            client.setup()
            with observability.job_context("job-trace1"), tracing.span("job") as job_span:
                client.run(PoseInput(person=person_photo(384)))
        trace_id = format(job_span.get_span_context().trace_id, "032x")
        server_spans = sink.wait_for(lambda spans: any(s["name"].endswith("/Estimate") for s in spans))
    finally:
        service.stop()
        sink.close()
        stderr = service.process.stderr.read() if service.process.stderr else ""
    client_spans = [s for s in exporter.get_finished_spans() if s.name == "tryon.v1.Pose/Estimate"]
    assert client_spans, "no client span"
    client_span = client_spans[-1]
    assert format(client_span.context.trace_id, "032x") == trace_id
    assert (
        client_span.parent is not None and client_span.parent.span_id == job_span.get_span_context().span_id
    )
    estimate = [s for s in server_spans if s["name"] == "tryon.v1.Pose/Estimate"]
    assert estimate, f"service exported no span for the call: {server_spans}"
    assert estimate[0]["traceId"] == trace_id
    assert estimate[0]["parentSpanId"] == format(client_span.context.span_id, "016x")
    assert estimate[0]["service"] == "tryon-pose"
    rpc_lines = [json.loads(line) for line in stderr.splitlines() if '"rpc /tryon.v1.Pose/Estimate' in line]
    assert rpc_lines and rpc_lines[-1]["job_id"] == "job-trace1", stderr[-2000:]
    assert rpc_lines[-1]["trace_id"] == trace_id


def test_tracing_is_a_no_op_without_an_endpoint() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    code = "from tryon.observability import setup_tracing; print(setup_tracing('x'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    settings = observability.ObservabilitySettings(otlp_endpoint="http://c:4318/")
    assert settings.traces_url == "http://c:4318/v1/traces"
