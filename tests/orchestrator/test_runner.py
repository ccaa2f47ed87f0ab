"""JobRunner without processes: how failures of the record store itself are classified."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from orchestrator.runner import JobRunner, TransientJobError
from orchestrator.settings import WorkerSettings


class _StoreDown:
    """A JobStore whose Redis connection is gone (every call raises what redis-py raises then)."""

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        return call


def test_a_record_store_outage_is_retried_not_raised_as_a_task_failure() -> None:
    runner = JobRunner(WorkerSettings(), _StoreDown(), storage=None, metrics=None)  # type: ignore[arg-type]
    with pytest.raises(TransientJobError) as raised:
        runner.run("0123456789abcdef")
    assert raised.value.code == "state_unavailable"
    assert "Connection refused" in str(raised.value)


def test_a_final_state_that_cannot_be_written_retries_the_task_instead_of_failing_it(redis_url: str) -> None:
    """Out of retries while Redis is down: writing ``failed`` raises too. The task must be retried (a new
    message in the broker), not fail: a failed task is acknowledged and the record stays running for ever."""
    from celery.exceptions import Retry

    from orchestrator.celery_app import create_app
    from tryon.jobs.queue import queue_depth
    from tryon.jobs.settings import TASK_NAME

    settings = WorkerSettings(redis_url=redis_url, queue_name="finish-or-retry", job_max_retries=0)
    app = create_app(settings)
    app.tryon_worker._runner = JobRunner(settings, _StoreDown(), storage=None, metrics=None)  # type: ignore[arg-type]
    app.tryon_worker._pid = __import__("os").getpid()
    task = app.tasks[TASK_NAME]
    client = redis.Redis.from_url(redis_url)
    client.delete("finish-or-retry")
    task.push_request(
        id="task-1", args=["0123456789abcdef"], kwargs={}, retries=0, delivery_info={}, called_directly=False
    )
    try:
        with pytest.raises(Retry):
            task.run("0123456789abcdef")
    finally:
        task.pop_request()
    assert queue_depth(client, "finish-or-retry") == 1  # the retry is in the broker: the job is not lost
