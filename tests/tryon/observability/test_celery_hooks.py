"""Job id and trace context cross a real Celery hop (Redis broker, an in-process worker)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tryon import observability
from tryon.local_services import free_port
from tryon.observability import celery_hooks, tracing

celery = pytest.importorskip("celery")
redis = pytest.importorskip("redis")
from celery.contrib.testing.worker import start_worker  # noqa: E402


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


def test_job_id_and_trace_cross_the_queue(redis_url: str, exporter: InMemorySpanExporter) -> None:
    memory = exporter
    app = celery.Celery("obs-test", broker=redis_url, backend=redis_url)
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])

    @app.task(name="tryon.run_job", shared=False)  # not into every app made later (create_app)
    def run_job(job_id: str) -> dict[str, str | None]:
        return {"job_id": observability.current_job_id(), "trace_id": tracing.current_trace_id()}

    celery_hooks.install()
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            with tracing.span("POST /api/jobs") as request_span:
                result = run_job.delay("job-celery1")
            seen = result.get(timeout=30)
    finally:
        celery_hooks.uninstall()
    trace_id = format(request_span.get_span_context().trace_id, "032x")
    assert seen == {"job_id": "job-celery1", "trace_id": trace_id}
    spans = {s.name: s for s in memory.get_finished_spans()}
    publish, run = spans["publish tryon.run_job"], spans["run tryon.run_job"]
    assert publish.context.trace_id == run.context.trace_id == request_span.get_span_context().trace_id
    assert run.parent is not None and run.parent.span_id == publish.context.span_id
    assert run.attributes["tryon.job_id"] == "job-celery1"
    assert run.attributes["celery.state"] == "SUCCESS"
