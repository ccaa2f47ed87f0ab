"""Failures around the worker: a stage that is down, a worker killed mid-job, in-process stages and local
storage. Real processes throughout (redis-server, lite gRPC services, Celery workers)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import numpy.typing as npt
import pytest

from tests.orchestrator.conftest import JobStack, base_env, decode_png, make_stack, service_env
from tryon.jobs import storage as keys
from tryon.jobs.state import JobStatus
from tryon.jobs.storage import LocalStorage
from tryon.local_services import RunningService, free_port, start_service


def outage_stack(
    redis_url: str, services: dict[str, RunningService], tmp: Path, port: int, retries: int
) -> JobStack:
    """A worker whose inpaint address is ``port``; the other stages are the running lite services."""
    env = {
        **base_env(redis_url, f"outage-{port}"),
        **service_env(services),
        "TRYON_INPAINT_ADDR": f"127.0.0.1:{port}",
        "TRYON_STORAGE_DIR": str(tmp / "files"),
        "TRYON_JOB_MAX_RETRIES": str(retries),
        "TRYON_JOB_RETRY_BACKOFF_S": "0.5",
        "TRYON_JOB_RETRY_BACKOFF_MAX_S": "2",
    }
    stack = make_stack(env, tmp)
    stack.start_worker(tmp)
    return stack


def test_stage_never_back_fails_after_the_retry_budget(
    redis_url: str, lite_services: dict[str, RunningService], tmp_path: Path
) -> None:
    stack = outage_stack(redis_url, lite_services, tmp_path, free_port(), retries=2)
    try:
        job_id = stack.submit()
        final = stack.wait(job_id, 120)
        assert final.status is JobStatus.FAILED and final.error_code == "stage_unavailable", final
        assert final.attempts == 3  # the first try and 2 retries
        assert final.error_message.startswith("a processing stage is unavailable (inpaint: UNAVAILABLE")
        assert final.error_message.endswith("gave up after 3 attempts")
        assert not stack.storage.exists(keys.result_key(job_id))
    finally:
        stack.close()


@pytest.mark.slow
def test_stage_down_at_first_and_started_5s_later_succeeds_through_retries(
    redis_url: str, lite_services: dict[str, RunningService], tmp_path: Path
) -> None:
    port = free_port()  # the inpaint service's address, with nothing listening yet
    stack = outage_stack(redis_url, lite_services, tmp_path, port, retries=10)
    service: RunningService | None = None
    try:
        job_id = stack.submit()
        # It fails on inpaint and is queued for a retry.
        stack.wait(job_id, 60, lambda r: r.final or (r.status is JobStatus.QUEUED and r.attempts >= 1))
        time.sleep(5)
        service = start_service("inpaint", port=port)
        final = stack.wait(job_id, 120)
        assert final.status is JobStatus.SUCCEEDED, final
        assert final.attempts >= 2 and final.error_message is None
        assert stack.storage.exists(keys.result_key(job_id))
    finally:
        if service is not None:
            service.stop()
        stack.close()


@pytest.fixture(scope="module")
def kill_stack(
    redis_url: str, lite_services: dict[str, RunningService], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[JobStack, Path]]:
    tmp = tmp_path_factory.mktemp("kill")
    env = {
        **base_env(redis_url, "kill"),
        **service_env(lite_services),
        "TRYON_STORAGE_DIR": str(tmp / "files"),
        # Short here so the broker re-delivers within seconds; production keeps it above the longest job
        # (2 h by default: docs/ORCHESTRATOR.md).
        "TRYON_BROKER_VISIBILITY_TIMEOUT_S": "8",
        "TRYON_BROKER_RESTORE_INTERVAL_S": "1",
        "TRYON_JOB_SOFT_TIME_LIMIT_S": "20",
        "TRYON_JOB_TIME_LIMIT_S": "25",
        "TRYON_WORKER_CONCURRENCY": "1",
    }
    stack = make_stack(env, tmp)
    yield stack, tmp
    stack.close()


@pytest.mark.slow
def test_kill_9_of_a_pool_process_requeues_the_job(
    kill_stack: tuple[JobStack, Path], expected_result: npt.NDArray[np.uint8]
) -> None:
    """reject_on_worker_lost: the main process sees its child die and puts the job back at once."""
    stack, tmp = kill_stack
    worker = stack.start_worker(tmp)
    job_id = stack.submit()
    stack.wait(job_id, 60, lambda r: r.final or r.status is JobStatus.RUNNING)
    (child,) = worker.pool_pids()
    os.kill(child, signal.SIGKILL)
    final = stack.wait(job_id, 60)
    assert final.status is JobStatus.SUCCEEDED and final.attempts == 2, final
    assert np.array_equal(decode_png(stack.storage.get(final.result_key)), expected_result)
    time.sleep(2)
    assert stack.store.get(job_id).attempts == 2 and stack.broker_idle()
    worker.stop()


@pytest.mark.slow
def test_kill_9_of_the_whole_worker_redelivers_the_job(
    kill_stack: tuple[JobStack, Path], expected_result: npt.NDArray[np.uint8]
) -> None:
    """The worker and its pool die together (node lost): the unacknowledged job goes to the next worker
    after the visibility timeout, runs once more and succeeds; nothing is lost or run twice."""
    stack, tmp = kill_stack
    worker = stack.start_worker(tmp)
    jobs = [stack.submit() for _ in range(3)]
    stack.wait(jobs[0], 60, lambda r: r.final or r.status is JobStatus.RUNNING)
    worker.kill()
    assert stack.store.get(jobs[0]).status is JobStatus.RUNNING
    replacement = stack.start_worker(tmp)
    finals = [stack.wait(job_id, 120) for job_id in jobs]
    assert [record.status for record in finals] == [JobStatus.SUCCEEDED] * 3, finals
    assert finals[0].attempts == 2 and [record.attempts for record in finals[1:]] == [1, 1]
    for record in finals:
        assert np.array_equal(decode_png(stack.storage.get(record.result_key)), expected_result)
    time.sleep(6)  # past another visibility timeout: nothing comes back a second time
    assert [stack.store.get(job_id).attempts for job_id in jobs] == [2, 1, 1]
    assert stack.broker_idle()
    replacement.stop()


def test_inprocess_mode_with_local_storage(
    redis_url: str, expected_result: npt.NDArray[np.uint8], tmp_path: Path
) -> None:
    """The stages run inside the worker (no services at all); the result lands in the local directory
    and its signed URL verifies."""
    env = {
        **base_env(redis_url, "inprocess"),
        "TRYON_STAGE_MODE": "inprocess",
        "TRYON_BACKEND": "lite",
        "TRYON_STORAGE_DIR": str(tmp_path / "files"),
        "TRYON_SIGNING_KEY": "local-test-key",
        "TRYON_WORKER_CONCURRENCY": "1",
        # Nothing listens there: a worker that tried gRPC would fail.
        **{
            f"TRYON_{stage.upper()}_ADDR": "127.0.0.1:9"
            for stage in ("segmentation", "pose", "warp", "inpaint", "blend")
        },
    }
    stack = make_stack(env, tmp_path)
    try:
        # Started the documented way, without the console script's flags.
        stack.start_worker(tmp_path, [sys.executable, "-m", "celery", "-A", "orchestrator", "worker"])
        job_id = stack.submit()
        seen = []
        final = stack.wait(job_id, 120, lambda r: (seen.append(r), r.final)[1])
        assert final.status is JobStatus.SUCCEEDED, final
        assert {"segmentation", "pose", "warp", "inpaint", "blend"} <= set(final.timings)
        assert len({r.stage for r in seen if r.status is JobStatus.RUNNING} - {None}) >= 3
        storage = stack.storage
        assert isinstance(storage, LocalStorage)
        assert np.array_equal(decode_png(storage.path(final.result_key).read_bytes()), expected_result)
        url = storage.url(final.result_key, 60)
        query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
        assert urlsplit(url).path == f"/api/files/{final.result_key}"
        assert storage.verify_signature(final.result_key, query["expires"], query["signature"])
    finally:
        stack.close()
