"""Prometheus metrics of the worker.

Celery's prefork pool runs jobs in child processes, so the metrics use prometheus_client's multiprocess
mode: every process writes its samples to files in one directory and the main process's /metrics
listener adds them up. :func:`configure` must run before prometheus_client is first imported (the
orchestrator package does it on import, before anything else).

* ``tryon_jobs_started_total`` / ``tryon_jobs_succeeded_total`` / ``tryon_jobs_failed_total{error_code}`` /
  ``tryon_jobs_cancelled_total`` / ``tryon_job_retries_total{error_code}``
* ``tryon_stage_duration_seconds{stage}`` as the worker saw each stage (gRPC included in remote mode)
* ``tryon_job_latency_seconds{status}``: creation to final state (queueing included)
* ``tryon_queue_depth``: tasks waiting in the broker, read from Redis at scrape time
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client itself, at its import

_directory: Path | None = None  # set by configure(); inherited by the forked pool processes

STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


def configure(directory: Path | None) -> Path:
    """Point prometheus_client's multiprocess mode at ``directory`` (a fresh temporary one if None).

    Writes the environment variable prometheus_client reads; the forked pool processes inherit it.
    """
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="tryon-worker-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # samples of a previous run of this worker
        stale.unlink()
    os.environ[_ENV] = str(directory)
    global _directory
    _directory = directory
    return directory


class JobMetrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.started = Counter("tryon_jobs_started", "Jobs a worker started (first attempt).")
        self.succeeded = Counter("tryon_jobs_succeeded", "Jobs that finished with a result.")
        self.failed = Counter("tryon_jobs_failed", "Jobs that failed, by error code.", ["error_code"])
        self.cancelled = Counter("tryon_jobs_cancelled", "Jobs stopped because they were cancelled.")
        self.retries = Counter(
            "tryon_job_retries", "Job attempts that hit a transient failure and were retried.", ["error_code"]
        )
        self.stage_duration = Histogram(
            "tryon_stage_duration_seconds", "Stage wall time as the worker saw it.", ["stage"],
            buckets=STAGE_BUCKETS,
        )  # fmt: skip
        self.latency = Histogram(
            "tryon_job_latency_seconds", "Job creation to final state (queueing included).", ["status"],
            buckets=LATENCY_BUCKETS,
        )  # fmt: skip


_metrics: JobMetrics | None = None


def metrics() -> JobMetrics:
    global _metrics
    if _metrics is None:
        _metrics = JobMetrics()
    return _metrics


class _QueueDepthCollector:
    def __init__(self, depth: Callable[[], int]) -> None:
        self.depth = depth

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            value = float(self.depth())
        except Exception as error:  # Redis down: no sample rather than a failed scrape
            log.warning("queue depth unavailable: %s", error)
            return
        yield GaugeMetricFamily("tryon_queue_depth", "Jobs waiting in the broker queue.", value=value)


def start_server(port: int, depth: Callable[[], int]) -> Any:
    """Serve /metrics (all pool processes' samples, and the queue depth) from the main process."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    if _directory is not None:
        multiprocess.MultiProcessCollector(registry, path=str(_directory))
    registry.register(_QueueDepthCollector(depth))
    server, _thread = start_http_server(port, registry=registry)
    return server


def mark_process_dead(pid: int) -> None:
    from prometheus_client import multiprocess

    if _directory is not None:
        multiprocess.mark_process_dead(pid, path=str(_directory))
