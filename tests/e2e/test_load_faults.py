"""Load and faults against the running stack.

* load: 200 jobs with bounded concurrency, all succeed;
* each of the issue's faults during a load of its own: a stage service killed with -9 and restarted, the
  worker (with its pool) killed with -9 and restarted, Redis restarted (append-only persistence), the
  storage unavailable for 10 s.

Afterwards every job has a final state, none is lost or duplicated (one job record per submission, the
Idempotency-Key making retried submissions safe), every succeeded job's result downloads, and every failed
job's error says why. Figures are printed (pytest -s) and appended to <run dir>/load-report.txt; the
figures in docs/BENCHMARKS.md come from bench/bench_e2e.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e import api
from tests.e2e.load import LoadReport, after, kill_and_restart, restart_redis, run_load, storage_unavailable
from tryon.jobs.queue import queue_list_names
from tryon.jobs.settings import JobSettings
from tryon.jobs.state import KEY_PREFIX
from tryon.localstack import LocalStack

pytestmark = pytest.mark.e2e

JOBS = 200
#: Jobs of each fault's load: enough that the fault lands while several are in flight.
FAULT_JOBS = 40
CONCURRENCY = 16
#: How long a job may take to reach a final state under a fault (a crashed worker's jobs come back after
#: the broker's visibility timeout, 50 s in this stack).
FAULT_TIMEOUT_S = 240


def _job_records(stack: LocalStack) -> set[str]:
    client = redis.Redis.from_url(stack.config.redis_url)
    try:
        return {key.decode()[len(KEY_PREFIX) :] for key in client.scan_iter(f"{KEY_PREFIX}*", count=1000)}
    finally:
        client.close()


def _record(stack: LocalStack, title: str, report: LoadReport) -> None:
    text = f"== {title}\n{report.summary()}\n"
    print("\n" + text)
    with open(Path(stack.config.run_dir) / "load-report.txt", "a") as out:
        out.write(text)


def _check(report: LoadReport, stack: LocalStack, client: httpx.Client, before: set[str]) -> None:
    ids = [o.job_id for o in report.outcomes]
    assert len(set(ids)) == report.jobs, "a submission was lost or answered twice"
    created = _job_records(stack) - before
    assert created == set(ids), (
        f"{len(created - set(ids))} unexpected records, {len(set(ids) - created)} missing"
    )
    stuck = [(o.job_id, o.document.get("status"), o.document.get("stage")) for o in report.not_final()]
    assert not stuck, f"{len(stuck)} jobs never reached a final state: {stuck[:5]}"
    for outcome in report.outcomes:
        if outcome.status == "succeeded":
            image = api.download(client, outcome.job_id)
            assert min(image.size) > 0
        else:
            error = outcome.document.get("error") or {}
            assert error.get("code") and error.get("message"), f"{outcome.job_id} failed without a reason"


def _recovered(stack: LocalStack, client: httpx.Client) -> None:
    assert all(stack.status().values()), stack.status()
    assert api.wait_final(client, api.submit(client).job_id, 120)["status"] == "succeeded"


def _under_fault(stack: LocalStack, client: httpx.Client, title: str, fault: object) -> LoadReport:
    before = _job_records(stack)
    report = run_load(stack.config.url, FAULT_JOBS, CONCURRENCY, timeout_s=FAULT_TIMEOUT_S, faults=fault)  # type: ignore[arg-type]
    _record(stack, title, report)
    assert len(report.faults) == 2, report.faults
    _check(report, stack, client, before)
    _recovered(stack, client)
    return report


@pytest.mark.timeout(900)
def test_load(stack: LocalStack, client: httpx.Client) -> None:
    before = _job_records(stack)
    report = run_load(stack.config.url, JOBS, CONCURRENCY)
    _record(stack, "load", report)
    _check(report, stack, client, before)
    assert report.by_status() == {"succeeded": JOBS}, report.summary()


@pytest.mark.timeout(600)
def test_stage_service_killed_and_restarted(stack: LocalStack, client: httpx.Client) -> None:
    fault = after(3, "kill -9 the warp service, restart it", lambda: kill_and_restart(stack, "warp"))
    report = _under_fault(stack, client, "kill -9 + restart a stage service (warp)", fault)
    # The clients retry UNAVAILABLE and the worker retries the job: the restart loses nothing.
    assert report.by_status() == {"succeeded": FAULT_JOBS}, report.summary()


@pytest.mark.timeout(600)
def test_worker_killed_and_restarted(stack: LocalStack, client: httpx.Client) -> None:
    fault = after(
        3, "kill -9 the worker and its pool, restart it", lambda: kill_and_restart(stack, "worker", 2)
    )
    report = _under_fault(stack, client, "kill -9 + restart the worker", fault)
    # Late acknowledgement: the jobs the dead worker held are delivered again and run to the end.
    assert report.by_status() == {"succeeded": FAULT_JOBS}, report.summary()


@pytest.mark.timeout(300)
def test_a_job_whose_message_is_lost_is_queued_again(stack: LocalStack, client: httpx.Client) -> None:
    """The race the worker-kill test can hit: the broker's message is gone (a worker killed between taking
    it off the queue and recording it as unacknowledged) while the record waits, queued. Made here on
    purpose: the worker stopped, a job submitted, its message deleted, the worker started again. Nothing
    redelivers it; the orphan sweep (TRYON_ORPHAN_QUEUED_AFTER_S, 60 s in this stack) queues it again."""
    stack.stop("worker")
    try:
        job_id = api.submit(client).job_id
        broker = redis.Redis.from_url(stack.config.redis_url)
        try:
            removed = 0
            for name in queue_list_names(JobSettings().queue_name):
                for message in broker.lrange(name, 0, -1):
                    if job_id.encode() in message:
                        removed += int(broker.lrem(name, 0, message))
        finally:
            broker.close()
        assert removed == 1, "the job's message was not waiting in the queue"
    finally:
        stack.start("worker")
    document = api.wait_final(client, job_id, 200)
    assert document["status"] == "succeeded", document
    log = (Path(stack.config.run_dir) / "logs" / "worker.log").read_text()
    assert f"job {job_id}: queued since" in log and "re-queued" in log


@pytest.mark.timeout(600)
def test_redis_restarted(stack: LocalStack, client: httpx.Client) -> None:
    fault = after(3, "restart redis", lambda: restart_redis(stack))
    _under_fault(stack, client, "restart Redis (append-only file)", fault)


@pytest.mark.timeout(600)
def test_storage_unavailable_for_10_s(stack: LocalStack, client: httpx.Client) -> None:
    def outage() -> None:
        with storage_unavailable(stack):
            time.sleep(10)

    report = _under_fault(
        stack, client, "storage unavailable for 10 s", after(3, "storage unavailable", outage)
    )
    for outcome in report.outcomes:
        if outcome.status == "failed":
            assert "stor" in outcome.document["error"]["message"].lower(), outcome.document["error"]
