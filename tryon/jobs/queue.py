"""Enqueue and revoke try-on jobs by task NAME, and read the queue depth (for backpressure and metrics).

The gateway uses this without importing the worker's code: :class:`JobQueue` builds a producer-only Celery
app from :class:`~tryon.jobs.settings.JobSettings`, with the same broker options the worker uses
(:func:`broker_config`), and sends ``tryon.run_job`` with the job id as task id, so a job is one task and
revoking the job revokes that task.
"""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery

from tryon.jobs.settings import TASK_NAME, WEBHOOK_TASK_NAME, JobSettings

#: kombu's Redis transport keeps one list per queue and priority step; these are its default steps.
_PRIORITY_STEPS = (0, 3, 6, 9)
_PRIORITY_SEP = "\x06\x16"


#: kombu's retry policy for queueing a submitted job: rides out a Redis restart of a second or two (0.1 s,
#: 0.3 s, ... capped at 0.5 s; about 3 s in all) before the gateway answers 503; Celery's default gives up
#: after 0.6 s.
SUBMIT_RETRY_POLICY = {"max_retries": 8, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5}


def broker_config(settings: JobSettings) -> dict[str, Any]:
    """Celery settings every producer and consumer of the job queue must share."""
    return {
        "broker_url": settings.effective_broker_url,
        "broker_transport_options": {
            # An unacknowledged task is re-delivered after this; see JobSettings.broker_visibility_timeout_s.
            "visibility_timeout": settings.broker_visibility_timeout_s,
            # Workers sweep for such tasks every interval (throttle 1: every sweep really scans).
            "unacked_restore_interval": settings.broker_restore_interval_s,
            "unacked_restore_throttle": 1,
        },
        "broker_connection_retry_on_startup": True,
        "task_default_queue": settings.queue_name,
        "task_routes": {
            TASK_NAME: {"queue": settings.queue_name},
            WEBHOOK_TASK_NAME: {"queue": settings.webhook_queue_name},
        },
        # Job state lives in tryon.jobs.state; Celery's own results would only duplicate it.
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
    }


def queue_list_names(queue_name: str) -> list[str]:
    """The Redis lists kombu keeps the waiting messages of ``queue_name`` in (one per priority step)."""
    return [queue_name] + [f"{queue_name}{_PRIORITY_SEP}{step}" for step in _PRIORITY_STEPS[1:]]


def queue_depth(client: redis.Redis, queue_name: str) -> int:
    """Tasks waiting in the broker for ``queue_name`` (not counting those a worker holds)."""
    with client.pipeline(transaction=False) as pipe:
        for name in queue_list_names(queue_name):
            pipe.llen(name)
        return int(sum(pipe.execute()))


class JobQueue:
    def __init__(self, settings: JobSettings, app: Celery | None = None) -> None:
        self.settings = settings
        if app is None:
            app = Celery("tryon-producer", set_as_current=False)
            app.conf.update(broker_config(settings))
        self.app = app
        self._redis: redis.Redis | None = None

    def enqueue(self, job_id: str, *, countdown_s: float | None = None) -> None:
        """Queue the job (task id = job id). The record must exist first: the worker reads it."""
        self.app.send_task(
            TASK_NAME, args=[job_id], task_id=job_id, queue=self.settings.queue_name, countdown=countdown_s,
            retry=True, retry_policy=SUBMIT_RETRY_POLICY,
        )  # fmt: skip

    def revoke(self, job_id: str) -> None:
        """Tell the workers to drop the job's task if it has not started (best effort, broadcast).

        Cancellation itself is the record's status (``JobStore.cancel``): a worker checks it before it
        starts a job and at every stage boundary, so a job is cancelled even if this broadcast is missed.
        """
        self.app.control.revoke(job_id)

    def depth(self) -> int:
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.settings.effective_broker_url)
        return queue_depth(self._redis, self.settings.queue_name)

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
        self.app.close()
