"""The worker's reliability settings as Celery receives them, and the retry backoff."""

from __future__ import annotations

from orchestrator.celery_app import backoff_s, celery_config
from orchestrator.settings import WorkerSettings


def test_reliability_settings() -> None:
    settings = WorkerSettings(
        job_time_limit_s=600, job_soft_time_limit_s=540, broker_visibility_timeout_s=7200
    )
    config = celery_config(settings)
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    assert config["broker_transport_options"]["visibility_timeout"] == 7200
    assert (config["task_soft_time_limit"], config["task_time_limit"]) == (540, 600)
    assert settings.problems() == []
    assert WorkerSettings(broker_visibility_timeout_s=600).problems()  # below the default hard limit
    assert WorkerSettings().concurrency == 4 and WorkerSettings(stage_mode="inprocess").concurrency == 1
    delays = [backoff_s(settings, retries) for retries in range(10) for _ in range(20)]
    assert min(delays) >= 1.0 and max(delays) <= settings.job_retry_backoff_max_s
    first = [backoff_s(settings, 0) for _ in range(50)]
    assert 1.0 <= min(first) < max(first) <= 2.0  # jitter spreads retries of jobs that failed together
