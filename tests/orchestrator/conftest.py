"""Real processes for the orchestrator tests: the five lite stage services, Celery workers, and helpers
to submit jobs the way the gateway does (inputs into storage, record, enqueue by task name)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import redis

from tryon import demo, imaging
from tryon.client import remote_backends
from tryon.jobs import storage as keys
from tryon.jobs.queue import JobQueue
from tryon.jobs.settings import JobSettings
from tryon.jobs.state import JobRecord, JobStore
from tryon.jobs.storage import Storage, build_storage
from tryon.local_services import REPO, RunningService, free_port, running_services
from tryon.stages import STAGES
from tryon.types import GarmentCategory

PERSON_PNG = imaging.encode_png(demo.example_person())
GARMENT_PNG = imaging.encode_png(demo.example_garment(GarmentCategory.UPPER_BODY))


@pytest.fixture(scope="session")
def lite_services() -> Iterator[dict[str, RunningService]]:
    """The five stage services with lite backends, SERVING."""
    with running_services(STAGES) as services:
        from tryon.client import ClientSettings

        settings = ClientSettings(**{f"{s}_addr": services[s].address for s in STAGES}, ready_timeout_s=120)
        for client in remote_backends(settings).values():
            client.setup()
            client.close()
        yield services


@pytest.fixture(scope="session")
def expected_result() -> npt.NDArray[np.uint8]:
    """The in-process lite pipeline's output for PERSON_PNG + GARMENT_PNG (what every job must produce)."""
    from tryon.pipeline import TryOnPipeline
    from tryon.settings import StageSettings

    pipeline = TryOnPipeline.from_settings(StageSettings(backend="lite"))
    pipeline.setup()
    person = imaging.decode_image(PERSON_PNG, field="person")
    garment = imaging.decode_image(GARMENT_PNG, field="garment", mode="RGBA")
    result = pipeline.run(person, garment, category=GarmentCategory.UPPER_BODY)
    pipeline.close()
    return result.image


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    killed: bool = False

    def kill(self) -> None:
        """kill -9 of the whole worker: the main process and its pool processes."""
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 20) -> None:
        self.killed = True  # an expected exit
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        else:
            with contextlib.suppress(ProcessLookupError):  # pool processes of a main process that died
                os.killpg(self.process.pid, signal.SIGKILL)

    def pool_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(pid) for pid in out.split()]

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


def start_worker(env: dict[str, str], log: Path, command: list[str] | None = None) -> Worker:
    """``python -m orchestrator`` (the console script), or ``command`` (``celery -A orchestrator worker``)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **env}
    command = command or [sys.executable, "-m", "orchestrator"]
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [*command, "--hostname", f"test-{free_port()}@%h"],
            cwd=REPO, env=full_env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return Worker(process, log, env)


@dataclass
class JobStack:
    """What a test needs to submit jobs and watch them: the same modules the gateway uses."""

    settings: JobSettings
    store: JobStore
    storage: Storage
    queue: JobQueue
    env: dict[str, str]
    workers: list[Worker] = field(default_factory=list)

    def submit(
        self,
        person: bytes = PERSON_PNG,
        garment: bytes = GARMENT_PNG,
        *,
        category: str = "upper_body",
        options: dict[str, Any] | None = None,
        webhook_url: str | None = None,
    ) -> str:
        from tryon.jobs.state import new_job_id

        job_id = new_job_id()
        input_keys = {
            "person": keys.input_key(job_id, "person"),
            "garment": keys.input_key(job_id, "garment"),
        }
        self.storage.put(input_keys["person"], person, "image/png")
        self.storage.put(input_keys["garment"], garment, "image/png")
        self.store.create(
            job_id=job_id,
            category=category,
            options=options or {},
            input_keys=input_keys,
            webhook_url=webhook_url,
        )
        self.queue.enqueue(job_id)
        return job_id

    def wait(
        self, job_id: str, timeout_s: float = 60, until: Callable[[JobRecord], bool] | None = None
    ) -> JobRecord:
        """Follow the record's change feed until it is final (or ``until`` holds); returns that record."""
        until = until or (lambda record: record.final)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for record in self.store.subscribe(job_id, timeout_s=1):
                if until(record):
                    return record
                if time.monotonic() > deadline:
                    break
            dead = [
                worker for worker in self.workers if not worker.killed and worker.process.poll() is not None
            ]
            if dead:
                raise AssertionError(f"a worker exited: {dead[0].output()}")
        record = self.store.get(job_id)
        logs = "\n".join(worker.output() for worker in self.workers)
        raise AssertionError(f"job {job_id} did not get there in {timeout_s}s: {record}\n{logs}")

    def start_worker(self, tmp: Path, command: list[str] | None = None) -> Worker:
        worker = start_worker(self.env, tmp / f"worker-{len(self.workers)}.log", command)
        self.workers.append(worker)
        return worker

    def broker_idle(self) -> bool:
        client = redis.Redis.from_url(self.settings.redis_url)
        try:
            return client.llen(self.settings.queue_name) == 0 and client.hlen("unacked") == 0
        finally:
            client.close()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.queue.close()
        self.store.close()


def make_stack(env: dict[str, str], tmp: Path) -> JobStack:
    settings = JobSettings(
        **{k.removeprefix("TRYON_").lower(): v for k, v in env.items() if k.startswith("TRYON_")}
    )
    storage = build_storage(settings)
    if settings.storage_backend == "s3":
        storage.ensure_bucket()  # type: ignore[union-attr]
    store = JobStore.from_url(settings.redis_url, settings.job_ttl_s)
    return JobStack(settings, store, storage, JobQueue(settings), env)


def base_env(redis_url: str, name: str) -> dict[str, str]:
    """Worker settings every test worker shares: its own Redis db and queue, fast retries, no metrics port."""
    return {
        "TRYON_REDIS_URL": redis_url,
        "TRYON_QUEUE_NAME": f"jobs-{name}",
        "TRYON_WEBHOOK_QUEUE_NAME": f"hooks-{name}",
        "TRYON_WORKER_METRICS_PORT": "0",
        "TRYON_JOB_RETRY_BACKOFF_S": "0.5",
        "TRYON_JOB_RETRY_BACKOFF_MAX_S": "2",
        "TRYON_WORKER_CONCURRENCY": "2",
        "TRYON_LOG_LEVEL": "INFO",
        "TRYON_SWEEP_INTERVAL_S": "0",
    }


def service_env(services: dict[str, RunningService]) -> dict[str, str]:
    return {f"TRYON_{stage.upper()}_ADDR": service.address for stage, service in services.items()}


def s3_env(endpoint: str, bucket: str) -> dict[str, str]:
    return {
        "TRYON_STORAGE_BACKEND": "s3",
        "TRYON_S3_ENDPOINT_URL": endpoint,
        "TRYON_S3_BUCKET": bucket,
        "TRYON_S3_PATH_STYLE": "true",
        "TRYON_S3_ACCESS_KEY_ID": "testing",
        "TRYON_S3_SECRET_ACCESS_KEY": "testing",
        "TRYON_S3_PREFIX": "jobs/",
    }


def decode_png(data: bytes) -> npt.NDArray[np.uint8]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return imaging.decode_image(data, field="result")
