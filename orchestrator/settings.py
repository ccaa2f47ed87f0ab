"""The worker's settings: the shared job settings plus how this worker runs stages and jobs.

One object per worker process (:func:`load_worker_settings`), from ``TRYON_*`` environment variables; the
stage clients' settings (``TRYON_<STAGE>_ADDR``, deadlines) and, in ``inprocess`` mode, the stages' own
settings (``TRYON_BACKEND``, ``TRYON_MODELS__*``) are read into it as nested objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tryon.client import ClientSettings
from tryon.jobs.settings import JobSettings
from tryon.settings import StageSettings

#: Prometheus port of the worker (the stages use 9101..9105).
DEFAULT_METRICS_PORT = 9100


class WorkerSettings(JobSettings):
    model_config = SettingsConfigDict(env_prefix="TRYON_", env_nested_delimiter="__", extra="ignore")

    #: ``remote``: the five gRPC stage services (tryon.client); ``inprocess``: the stages run inside the
    #: worker (one machine, one GPU: the models load once per worker process).
    stage_mode: Literal["remote", "inprocess"] = "remote"
    #: Jobs run at once (prefork processes). None: 4 in remote mode (the worker mostly waits on gRPC),
    #: 1 in inprocess mode (each process holds its own copy of the models).
    worker_concurrency: int | None = Field(default=None, ge=1, le=64)
    #: Prometheus /metrics of the worker; 0 or None: no listener.
    worker_metrics_port: int | None = Field(default=DEFAULT_METRICS_PORT, ge=0, le=65535)
    #: Where the worker's processes keep their metric files (prometheus_client multiprocess mode);
    #: None: a fresh temporary directory per worker start.
    worker_metrics_dir: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    #: A job still running after the soft limit is stopped and failed with error "timeout"; the hard limit
    #: kills its process if it does not stop (a stuck native call). The soft limit must exceed the slowest
    #: honest job: SDXL on a small GPU takes minutes.
    job_soft_time_limit_s: float = Field(default=900.0, gt=0)
    job_time_limit_s: float = Field(default=960.0, gt=0)
    #: Retries of a transient failure (a stage UNAVAILABLE / RESOURCE_EXHAUSTED / DEADLINE_EXCEEDED, the
    #: store unreachable), each after an exponential backoff with jitter: base * 2**n, capped, times a
    #: random factor in [0.5, 1] so that jobs failed together do not retry together.
    job_max_retries: int = Field(default=5, ge=0, le=50)
    job_retry_backoff_s: float = Field(default=2.0, gt=0)
    job_retry_backoff_max_s: float = Field(default=120.0, gt=0)
    #: Starts of one job (redeliveries after a lost worker, plus retries) after which it is failed instead
    #: of started again: a job that kills its worker every time (out of memory) must not loop forever.
    job_max_attempts: int = Field(default=10, ge=1, le=100)

    #: The backstop for a job whose record waits with no task in the broker (orchestrator/orphans.py): how
    #: often the worker looks (0: never), and how long a queued record must sit unchanged before its task is
    #: published again. A running record qualifies after the hard time limit plus a minute.
    orphan_sweep_interval_s: float = Field(default=60.0, ge=0)
    orphan_queued_after_s: float = Field(default=300.0, gt=0)

    client: ClientSettings = Field(default_factory=ClientSettings)
    stages: StageSettings = Field(default_factory=StageSettings)

    @property
    def orphan_running_after_s(self) -> float:
        return self.job_time_limit_s + 60.0

    @property
    def concurrency(self) -> int:
        if self.worker_concurrency is not None:
            return self.worker_concurrency
        return 4 if self.stage_mode == "remote" else 1

    def problems(self) -> list[str]:
        """Settings that are valid one by one but wrong together (logged as warnings at start)."""
        problems = []
        if self.job_soft_time_limit_s >= self.job_time_limit_s:
            problems.append("TRYON_JOB_SOFT_TIME_LIMIT_S should be below TRYON_JOB_TIME_LIMIT_S")
        if self.broker_visibility_timeout_s <= self.job_time_limit_s + self.job_retry_backoff_max_s:
            problems.append(
                "TRYON_BROKER_VISIBILITY_TIMEOUT_S should exceed the longest job (TRYON_JOB_TIME_LIMIT_S + "
                "TRYON_JOB_RETRY_BACKOFF_MAX_S): a job still running then is delivered to a second worker"
            )
        return problems


def load_worker_settings(**overrides: Any) -> WorkerSettings:
    return WorkerSettings(**{key: value for key, value in overrides.items() if value is not None})
