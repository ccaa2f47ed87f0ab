"""A real Celery worker (remote mode) against the five lite gRPC services, Redis and moto's S3 over HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import pytest

from tests.orchestrator.conftest import (
    PERSON_PNG,
    JobStack,
    base_env,
    decode_png,
    make_stack,
    s3_env,
    service_env,
)
from tryon import imaging
from tryon.jobs import storage as keys
from tryon.jobs.state import JobRecord, JobStatus
from tryon.jobs.webhooks import SIGNATURE_HEADER, verify_signature
from tryon.local_services import RunningService, free_port

WEBHOOK_SECRET = "hook-secret"


@pytest.fixture(scope="module")
def stack(
    redis_url: str,
    s3_endpoint: str,
    lite_services: dict[str, RunningService],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[JobStack]:
    tmp = tmp_path_factory.mktemp("remote-worker")
    env = {
        **base_env(redis_url, "remote"),
        **service_env(lite_services),
        **s3_env(s3_endpoint, "tryon-remote"),
        "TRYON_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TRYON_WEBHOOK_ALLOW_PRIVATE": "true",
        "TRYON_WORKER_METRICS_PORT": str(free_port()),
    }
    stack = make_stack(env, tmp)
    stack.start_worker(tmp)
    yield stack
    stack.close()


def follow(stack: JobStack, job_id: str, timeout_s: float = 60) -> tuple[JobRecord, list[JobRecord]]:
    seen: list[JobRecord] = []

    def until(record: JobRecord) -> bool:
        seen.append(record)
        return record.final

    return stack.wait(job_id, timeout_s, until), seen


def test_job_runs_through_every_stage_to_a_presigned_png(
    stack: JobStack, expected_result: npt.NDArray[np.uint8]
) -> None:
    job_id = stack.submit()
    final, seen = follow(stack, job_id)
    assert final.status is JobStatus.SUCCEEDED, final
    assert seen[0].status is JobStatus.QUEUED
    running = [record for record in seen if record.status is JobStatus.RUNNING]
    # Stages become visible as they start, and progress only moves forward.
    assert len({record.stage for record in running} - {None}) >= 3, [(r.stage, r.progress) for r in running]
    progress = [record.progress for record in running]
    assert progress == sorted(progress) and final.progress == 100
    # Inpaint reports its own steps: the bar moves between inpaint's start and end.
    inpaint = [r.progress for r in running if r.stage == "inpaint"]
    assert len(set(inpaint)) >= 2, [(r.stage, r.progress) for r in running]
    assert {"segmentation", "pose", "warp", "inpaint", "blend", "total", "upload", "queued"} <= set(
        final.timings
    )
    assert final.attempts == 1 and final.error_code is None
    assert final.result_key == keys.result_key(job_id)

    url = stack.storage.url(final.result_key, 60)
    assert url.startswith(stack.settings.s3_endpoint_url)
    reply = httpx.get(url)  # plain HTTP, what a browser does
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
    result = decode_png(reply.content)
    assert result.shape == expected_result.shape
    assert np.array_equal(result, expected_result)  # the gRPC chain reproduces the in-process pipeline


def test_bad_input_fails_at_once_with_the_message(stack: JobStack) -> None:
    job_id = stack.submit(person=b"this is not an image")
    final, _ = follow(stack, job_id)
    assert final.status is JobStatus.FAILED and final.error_code == "invalid_input"
    assert final.error_message.startswith("person: not a readable image")
    assert final.attempts == 1

    # A valid image without a person: the pose stage answers INVALID_ARGUMENT, its message reaches the user.
    empty = imaging.encode_png(np.full((600, 400, 3), 200, np.uint8))
    job_id = stack.submit(person=empty)
    final, _ = follow(stack, job_id)
    assert final.status is JobStatus.FAILED and final.error_code == "invalid_input", final
    assert "person" in final.error_message and final.attempts == 1
    assert not stack.storage.exists(keys.result_key(job_id))

    job_id = stack.submit(category="hat")
    final, _ = follow(stack, job_id)
    assert final.error_code == "invalid_input" and final.error_message.startswith("category:")
    job_id = stack.submit(options={"steps": 0})
    final, _ = follow(stack, job_id)
    assert final.error_code == "invalid_input" and "steps" in final.error_message


def test_cancel_queued_and_running_jobs(stack: JobStack) -> None:
    # Queued: cancelled before a worker takes it; the worker drops it.
    job_id = stack.submit()
    stack.store.cancel(job_id)
    # Running: cancelled once the first stages are under way; it stops at the next boundary.
    running_id = stack.submit()
    record = stack.wait(
        running_id, 60, lambda r: r.final or (r.status is JobStatus.RUNNING and r.stage is not None)
    )
    assert record.status is JobStatus.RUNNING and record.stage in {"segmentation", "pose"}, record
    assert stack.store.cancel(running_id) is not None
    final = stack.wait(running_id, 30)
    assert final.status is JobStatus.CANCELLED
    time.sleep(1.0)  # the worker has noticed by now (a stage takes < 1 s)
    after = stack.store.get(running_id)
    assert after.status is JobStatus.CANCELLED and "blend" not in after.timings
    assert not stack.storage.exists(keys.result_key(running_id))
    queued = stack.store.get(job_id)
    assert queued.status is JobStatus.CANCELLED and queued.attempts == 0
    assert not stack.storage.exists(keys.result_key(job_id))


def test_webhook_delivered_signed(stack: JobStack) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        job_id = stack.submit(webhook_url=f"http://127.0.0.1:{server.server_address[1]}/done")
        final, _ = follow(stack, job_id)
        assert final.status is JobStatus.SUCCEEDED
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
        headers, body = received[0]
        assert verify_signature(body, headers[SIGNATURE_HEADER], WEBHOOK_SECRET)
        document = json.loads(body)
        assert document["id"] == job_id and document["status"] == "succeeded"
        assert httpx.get(document["result_url"]).status_code == 200
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_count_jobs_stages_and_queue(stack: JobStack) -> None:
    job_id = stack.submit()
    assert stack.wait(job_id).status is JobStatus.SUCCEEDED
    failed = stack.submit(person=b"nope")
    assert stack.wait(failed).status is JobStatus.FAILED
    text = httpx.get(f"http://127.0.0.1:{stack.env['TRYON_WORKER_METRICS_PORT']}/metrics").text
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and line[0] != "#"
    }
    assert samples["tryon_jobs_succeeded_total"] >= 1 and samples["tryon_jobs_started_total"] >= 2
    assert samples['tryon_jobs_failed_total{error_code="invalid_input"}'] >= 1
    assert samples['tryon_stage_duration_seconds_count{stage="inpaint"}'] >= 1
    assert samples['tryon_job_latency_seconds_count{status="succeeded"}'] >= 1
    assert samples["tryon_queue_depth"] == 0


@pytest.mark.slow
def test_fifty_jobs_at_once_all_finish(stack: JobStack, tmp_path: Path) -> None:
    """50 submitted together (a few bad ones among them): every job ends, succeeded + failed = submitted."""
    bad = b"GIF89a broken"
    jobs = [stack.submit(person=bad if index % 10 == 0 else PERSON_PNG) for index in range(50)]
    finals = [stack.wait(job_id, 300) for job_id in jobs]
    succeeded = sum(record.status is JobStatus.SUCCEEDED for record in finals)
    failed = sum(record.status is JobStatus.FAILED for record in finals)
    assert succeeded + failed == 50 and failed == 5
    assert all(record.attempts == 1 for record in finals)
    assert all(stack.storage.exists(keys.result_key(r.id)) for r in finals if r.status is JobStatus.SUCCEEDED)
    assert stack.broker_idle()
