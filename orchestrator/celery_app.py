"""The Celery app of the worker: reliability settings, the try-on task and the webhook task.

``celery -A orchestrator worker`` (or the ``tryon-worker`` console script) runs it. Every setting below
that matters for long GPU jobs says why it is set.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from functools import partial
from typing import Any

from celery import Celery, Task, signals
from celery.exceptions import SoftTimeLimitExceeded
from kombu.entity import Queue

from orchestrator import metrics as metrics_module
from orchestrator.runner import JobRunner, TransientJobError
from orchestrator.settings import WorkerSettings
from tryon.jobs.queue import broker_config, queue_depth
from tryon.jobs.settings import TASK_NAME, WEBHOOK_TASK_NAME
from tryon.observability import celery_hooks

log = logging.getLogger("orchestrator")

#: kombu's retry policy for the worker's own publishes (retries of jobs): 0.2 s, 0.7 s, ... capped at 2 s,
#: 30 tries, about 55 s in all: longer than a Redis restart.
PUBLISH_RETRY_POLICY = {"max_retries": 30, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2.0}


def celery_config(settings: WorkerSettings) -> dict[str, Any]:
    return {
        # Broker URL, queues, serialisation and the Redis visibility timeout, shared with the gateway's
        # producer (tryon.jobs.queue). The visibility timeout must exceed the longest job including its
        # retries' waits (the Redis transport's default of 1 h would hand a longer job to a second worker
        # while the first still runs it).
        **broker_config(settings),
        # Acknowledge a task when it ENDS, not when it starts: a worker that dies mid-job (OOM, node lost,
        # deploy) leaves the message unacknowledged, and the broker delivers it again.
        "task_acks_late": True,
        # With late acks, a pool process killed by a signal (SIGKILL by the OOM killer) would otherwise still
        # ack its task ("failed: WorkerLostError") and the job would be lost; reject re-queues it instead.
        # A job that kills its process every time is stopped by TRYON_JOB_MAX_ATTEMPTS.
        "task_reject_on_worker_lost": True,
        # Each pool process reserves one job at a time: a job waits in the broker for a free process
        # rather than behind a minutes-long job in another worker's prefetch buffer.
        "worker_prefetch_multiplier": 1,
        # Soft limit: SoftTimeLimitExceeded is raised in the job, which fails it ("timeout"). Hard limit:
        # the process is killed if the job ignores the soft one (stuck in native code).
        "task_soft_time_limit": settings.job_soft_time_limit_s,
        "task_time_limit": settings.job_time_limit_s,
        # A job that failed or ran out of time is acknowledged: its record already says failed, and a
        # redelivery would only repeat it. (Retries of transient errors are scheduled by the task itself,
        # with exponential backoff and jitter; nothing is retried implicitly.)
        "task_acks_on_failure_or_timeout": True,
        "worker_concurrency": settings.concurrency,
        # gRPC channels and CUDA do not survive fork: each pool process builds its own pipeline on first use.
        "worker_pool": "prefork",
        # Restart pool processes that leak (a long-running GPU process keeps its models; remote mode is
        # light either way): never by task count, since reloading SDXL costs a minute.
        "worker_max_tasks_per_child": None,
        # A lost connection to Redis is retried for ever rather than ending the worker.
        "broker_connection_max_retries": None,
        # A task's retry is a new message: if Redis is restarting when it is published, keep trying for about
        # a minute (Celery's default gives up after ~0.6 s and then rejects the message: the job is lost).
        # The gateway's publish of a new job retries for ~3 s only (SUBMIT_RETRY_POLICY in tryon.jobs.queue):
        # it answers 503 with Retry-After rather than holding a request for a minute.
        "task_publish_retry": True,
        "task_publish_retry_policy": PUBLISH_RETRY_POLICY,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }


def _finish_or_retry(task: Task, finish: Callable[[], object], job_id: str) -> None:
    """Write a job's final state; if the record store is down, retry the task instead of losing the job.

    A task that raises is acknowledged (task_acks_on_failure_or_timeout), so an exception here would leave
    the record ``running`` for ever. Retrying runs the job's task again once Redis is back: it then reaches
    the same verdict and writes it.
    """
    import redis

    try:
        finish()
    except redis.RedisError as error:
        log.warning("job %s: could not record its final state (%s); retrying the task", job_id, error)
        raise task.retry(countdown=1.0, max_retries=None) from None


def backoff_s(settings: WorkerSettings, retries: int) -> float:
    """Exponential backoff with jitter: base * 2**retries, capped, times a random factor in [0.5, 1]."""
    ceiling = min(settings.job_retry_backoff_max_s, settings.job_retry_backoff_s * 2**retries)
    return ceiling * random.uniform(0.5, 1.0)


class _Worker:
    """Per-process state: settings, stores and the runner (built lazily, after the pool forked)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._runner: JobRunner | None = None
        self._pid = 0

    @property
    def runner(self) -> JobRunner:
        if self._runner is None or self._pid != os.getpid():
            from tryon.jobs.state import JobStore
            from tryon.jobs.storage import build_storage

            self._pid = os.getpid()
            store = JobStore.from_url(self.settings.redis_url, self.settings.job_ttl_s)
            self._runner = JobRunner(
                self.settings, store, build_storage(self.settings), metrics_module.metrics()
            )
        return self._runner


def create_app(settings: WorkerSettings) -> Celery:
    app = Celery("tryon-worker", set_as_current=True)
    app.conf.update(celery_config(settings))
    # The worker consumes the job queue and the webhook queue (celery -A orchestrator worker, no flags).
    app.conf.task_queues = (Queue(settings.queue_name), Queue(settings.webhook_queue_name))
    worker = _Worker(settings)
    app.tryon_worker = worker
    # Each task runs as its job (log lines carry the id) in the trace its publisher started.
    celery_hooks.install()

    # shared=False: registered on this app only. A shared task is added to every Celery app created later
    # in the process too (the gateway's producer app, a test's), where it shadows their own task of the
    # same name.
    @app.task(
        name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, shared=False
    )
    def run_job(self: Task, job_id: str) -> None:
        """Run one job; transient failures are retried here with backoff until the budget is spent."""
        runner = worker.runner
        retries = int(self.request.retries or 0)
        try:
            final = runner.run(job_id)
        except SoftTimeLimitExceeded:
            message = f"the job took longer than {settings.job_soft_time_limit_s:.0f}s"
            _finish_or_retry(self, partial(runner.fail, job_id, "timeout", message), job_id)
            return
        except TransientJobError as error:
            if retries >= settings.job_max_retries:
                _finish_or_retry(self, partial(runner.give_up, job_id, error, retries + 1), job_id)
                return
            delay = backoff_s(settings, retries)
            log.warning("job %s: %s: %s; retry %d in %.1fs", job_id, error.code, error, retries + 1, delay)
            try:
                runner.requeue(job_id, error, delay)
            except Exception:  # the record store may be what failed; the retry still goes ahead
                log.exception("job %s: could not mark the record queued", job_id)
            raise self.retry(countdown=delay, max_retries=None) from None
        if final is not None and final.final and final.webhook_url:
            app.send_task(WEBHOOK_TASK_NAME, args=[job_id])

    @app.task(name=WEBHOOK_TASK_NAME, bind=True, acks_late=True, max_retries=None, shared=False)
    def deliver_webhook(self: Task, job_id: str) -> None:
        """POST the job's final document to its webhook URL (tryon.jobs.webhooks retries and signs)."""
        from tryon.jobs import webhooks
        from tryon.jobs.document import job_document

        runner = worker.runner
        record = runner.store.get(job_id)
        if record is None or not record.final or not record.webhook_url:
            return
        # The same document GET /api/tryon/{id} answers (tryon.jobs.document), result URL signed afresh.
        final = job_document(record, storage=runner.storage, url_expiry_s=settings.url_expiry_s)
        document = final.model_dump(mode="json")
        try:
            webhooks.deliver(
                record.webhook_url,
                document,
                secret=settings.webhook_secret.get_secret_value(),
                allow_private=settings.webhook_allow_private,
                timeout_s=settings.webhook_timeout_s,
                attempts=settings.webhook_attempts,
            )
        except (webhooks.WebhookRefused, webhooks.WebhookFailed) as error:
            log.warning("job %s: webhook not delivered: %s", job_id, error)

    _connect_signals(app, settings)
    return app


def _connect_signals(app: Celery, settings: WorkerSettings) -> None:
    @signals.worker_init.connect(weak=False)
    def on_worker_init(**_: Any) -> None:
        """Main process, before the pool starts: memory reuse, warnings, /metrics, the local-storage sweeper
        and the orphan sweep."""
        from tryon.memory import retain_freed_memory

        # The pool processes inherit it: each job's megabyte gRPC messages reuse memory (tryon/memory.py).
        retain_freed_memory()
        for problem in settings.problems():
            log.warning("settings: %s", problem)
        if settings.worker_metrics_port:
            import redis

            client = redis.Redis.from_url(settings.effective_broker_url)
            metrics_module.start_server(
                settings.worker_metrics_port, lambda: queue_depth(client, settings.queue_name)
            )
            log.info("metrics on :%d/metrics", settings.worker_metrics_port)
        if settings.storage_backend == "local" and settings.sweep_interval_s > 0:
            from tryon.jobs.storage import LocalStorage, build_storage, start_sweeper

            storage = build_storage(settings)
            assert isinstance(storage, LocalStorage)
            start_sweeper(storage, settings.job_ttl_s, settings.sweep_interval_s)
        if settings.orphan_sweep_interval_s > 0:
            import redis

            from orchestrator.orphans import start_orphan_sweeper
            from tryon.jobs.queue import JobQueue
            from tryon.jobs.state import JobStore

            start_orphan_sweeper(
                JobStore.from_url(settings.redis_url, settings.job_ttl_s),
                redis.Redis.from_url(settings.effective_broker_url),
                JobQueue(settings, app),
                interval_s=settings.orphan_sweep_interval_s,
                queued_after_s=settings.orphan_queued_after_s,
                running_after_s=settings.orphan_running_after_s,
            )

    @signals.worker_process_shutdown.connect(weak=False)
    def on_process_shutdown(pid: int | None = None, **_: Any) -> None:
        runner = app.tryon_worker._runner
        if runner is not None:
            runner.close()
        if pid is not None:
            metrics_module.mark_process_dead(pid)

    @signals.worker_process_init.connect(weak=False)
    def on_process_init(**_: Any) -> None:
        # A process replacing a dead one must not reuse the parent's (unforkable) state.
        app.tryon_worker._runner = None
