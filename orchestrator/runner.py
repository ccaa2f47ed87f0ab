"""One job, start to end: what the ``tryon.run_job`` task does, without Celery in the way.

:meth:`JobRunner.run` loads the record and the inputs, runs the five stages (over gRPC or in process),
writes progress and timings into the record as each stage starts and ends (and as the inpaint stage
reports its steps), uploads the PNG result and sets the final state. It never decides about retries: a
transient failure comes out as :class:`TransientJobError` and the task retries it; everything else ends
the job here.

Idempotent: a redelivered job whose record is already final is skipped; a job that was interrupted starts
again from its inputs and overwrites its own partial output (the result key is fixed per job).
Cancellation: the record's status is checked before the job starts, at every stage boundary and between
inpaint steps (throttled); in process, the same check is installed for tryon.cancellation, so backends
that poll it between denoising steps stop too; over gRPC, leaving the inpaint stream cancels the call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc

from orchestrator.metrics import JobMetrics
from orchestrator.settings import WorkerSettings
from tryon import cancellation, imaging, progress
from tryon.client import RemoteStageError
from tryon.imaging import MIN_GARMENT_SIDE, MIN_PERSON_SIDE
from tryon.jobs import storage as storage_keys
from tryon.jobs.state import JobRecord, JobStatus, JobStore
from tryon.jobs.storage import ObjectNotFound, Storage, StorageError
from tryon.pipeline import TryOnPipeline
from tryon.types import (
    GarmentCategory,
    GenerationOptions,
    ModelUnavailableError,
    StageInputError,
    StageOverloadedError,
)

log = logging.getLogger("orchestrator")

#: Share of the progress bar each stage fills when it ends (segmentation and pose run side by side).
#: Inpaint fills its share step by step as it reports. The rest (5) is the upload.
STAGE_WEIGHTS = {"segmentation": 8, "pose": 7, "warp": 10, "inpaint": 60, "blend": 10}
#: Seconds between progress writes / cancellation reads during the inpaint steps.
PROGRESS_INTERVAL_S = 0.2
CANCEL_POLL_S = 0.5

#: gRPC codes worth another try later: the stage was down, overloaded or too busy to answer in time.
RETRYABLE_CODES = {
    grpc.StatusCode.UNAVAILABLE: "stage_unavailable",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "stage_overloaded",
    grpc.StatusCode.DEADLINE_EXCEEDED: "stage_timeout",
}
USER_MESSAGES = {
    "stage_unavailable": "a processing stage is unavailable",
    "stage_overloaded": "the service is overloaded",
    "stage_timeout": "a processing stage did not answer in time",
    "storage_unavailable": "the file store is unavailable",
    "state_unavailable": "the job store is unavailable",
}


class JobCancelled(Exception):
    """The job's record says cancelled: stop here."""


class TransientJobError(Exception):
    """A failure that may pass (the task retries the job later)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class JobFailed(Exception):
    """A failure that retrying cannot fix; ``message`` is for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def classify(error: BaseException) -> Exception:
    """Map an exception of a stage / the store to :class:`TransientJobError` or :class:`JobFailed`."""
    import redis

    if isinstance(error, JobFailed | TransientJobError | JobCancelled):
        return error
    if isinstance(error, StageInputError):
        return JobFailed("invalid_input", str(error))
    if isinstance(error, ModelUnavailableError):
        return JobFailed("model_unavailable", f"the service is misconfigured: {error}")
    if isinstance(error, StageOverloadedError):
        return TransientJobError("stage_overloaded", str(error))
    if isinstance(error, RemoteStageError):
        code = RETRYABLE_CODES.get(error.code)
        if code is not None:
            return TransientJobError(code, str(error))
        return JobFailed("stage_error", f"the {error.stage} stage failed ({error.code.name})")
    if isinstance(error, ObjectNotFound):
        return JobFailed("inputs_missing", "the job's input files are gone (expired or deleted)")
    if isinstance(error, StorageError):
        return TransientJobError("storage_unavailable", str(error))
    if isinstance(error, redis.RedisError):
        return TransientJobError("state_unavailable", str(error))
    return JobFailed("internal", "internal error")


@dataclass
class _Clock:
    last_write: float = 0.0
    last_poll: float = 0.0


class JobRunner:
    """Runs jobs in one worker process; the pipeline (gRPC channels or models) is built on first use."""

    def __init__(
        self,
        settings: WorkerSettings,
        store: JobStore,
        storage: Storage,
        metrics: JobMetrics,
        pipeline_factory: Callable[[], TryOnPipeline] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.storage = storage
        self.metrics = metrics
        self._pipeline_factory = pipeline_factory or self._default_pipeline
        self._pipeline: TryOnPipeline | None = None

    def _default_pipeline(self) -> TryOnPipeline:
        if self.settings.stage_mode == "inprocess":
            pipeline = TryOnPipeline.from_settings(self.settings.stages)
            pipeline.setup()  # load and warm the models once per process
            return pipeline
        from tryon.client import remote_backends

        # No setup(): it waits for every service to be SERVING; a down stage should fail the call
        # (UNAVAILABLE, retried by the task) rather than hold the job here.
        return TryOnPipeline(remote_backends(self.settings.client))

    @property
    def pipeline(self) -> TryOnPipeline:
        if self._pipeline is None:
            self._pipeline = self._pipeline_factory()
        return self._pipeline

    def close(self) -> None:
        if self._pipeline is not None:
            for backend in self._pipeline.backends.values():
                close = getattr(backend, "close", None)
                if close is not None:
                    close()
            self._pipeline.close()
            self._pipeline = None

    # --- the job ----------------------------------------------------------------------------------------

    def run(self, job_id: str) -> JobRecord | None:
        """Run the job to a final state, or raise :class:`TransientJobError` for the task to retry.

        Returns the final record (None when there was nothing to do: no record, or already final).
        """
        import redis

        try:
            return self._run_attempt(job_id)
        except redis.RedisError as error:
            # The record store itself failed (Redis restarting): reading the record, moving it, or checking
            # for cancellation while handling another error. Retried like any transient failure; a task that
            # raised it instead would be acknowledged and its job left `running` for ever.
            raise TransientJobError("state_unavailable", str(error)) from error

    def _run_attempt(self, job_id: str) -> JobRecord | None:
        record = self.store.get(job_id)
        if record is None:
            log.warning("job %s: no record (expired or deleted); dropped", job_id)
            return None
        if record.final:
            log.info("job %s: already %s; nothing to do (redelivered)", job_id, record.status)
            return None
        if record.attempts >= self.settings.job_max_attempts:
            return self.fail(
                job_id,
                "too_many_attempts",
                f"the job was started {record.attempts} times without finishing; giving up",
            )
        running = self.store.transition(
            job_id, JobStatus.RUNNING, count_attempt=True, stage=None, error_code=None, error_message=None
        )
        if running is None:  # cancelled (or finished by another delivery) meanwhile
            return None
        if running.attempts == 1:
            self.metrics.started.inc()
            queued_s = (running.updated_at - running.created_at).total_seconds()
            self.store.update_progress(job_id, timings={"queued": queued_s})
        log.info("job %s: attempt %d", job_id, running.attempts)
        try:
            return self._run(running)
        except Exception as error:
            outcome = classify(error)
            if isinstance(outcome, JobCancelled) or self.store.status(job_id) is JobStatus.CANCELLED:
                log.info("job %s: cancelled; stopped", job_id)
                self.metrics.cancelled.inc()
                return self.store.get(job_id)
            if isinstance(outcome, TransientJobError):
                raise outcome from error
            assert isinstance(outcome, JobFailed)
            if outcome.code == "internal":
                log.exception("job %s: unexpected error", job_id)
            return self.fail(job_id, outcome.code, outcome.message)

    def _run(self, record: JobRecord) -> JobRecord | None:
        job_id = record.id
        person, garment, category, options = self._inputs(record)
        is_cancelled = self._cancel_check(job_id)
        done: set[str] = set()
        started = time.monotonic()

        def on_stage(stage: str, event: str, seconds: float) -> None:
            if event == "start":
                if is_cancelled(force=True):
                    raise JobCancelled(job_id)
                self.store.update_progress(job_id, stage=stage, progress=self._progress(done))
            else:
                done.add(stage)
                self.metrics.stage_duration.labels(stage).observe(seconds)
                self.store.update_progress(job_id, progress=self._progress(done), timings={stage: seconds})

        clock = _Clock()
        base = sum(STAGE_WEIGHTS[s] for s in ("segmentation", "pose", "warp"))

        def on_step(steps_done: int, total: int) -> None:
            now = time.monotonic()
            if now - clock.last_write >= PROGRESS_INTERVAL_S or steps_done >= total:
                clock.last_write = now
                share = STAGE_WEIGHTS["inpaint"] * steps_done / max(total, 1)
                self.store.update_progress(job_id, progress=int(base + share))
            if is_cancelled():
                raise JobCancelled(job_id)

        with self._cancellable(is_cancelled), progress.reporting(on_step):
            result = self.pipeline.run(person, garment, category=category, options=options, progress=on_stage)
        if is_cancelled(force=True):
            raise JobCancelled(job_id)

        upload_started = time.monotonic()
        key = storage_keys.result_key(job_id)
        self.storage.put(key, imaging.encode_png(result.image), "image/png")
        timings = {"upload": time.monotonic() - upload_started, "total": time.monotonic() - started}
        self.store.update_progress(job_id, timings=timings)
        final = self.store.transition(job_id, JobStatus.SUCCEEDED, stage=None, progress=100, result_key=key)
        if final is None:  # cancelled during the upload: the cancellation stands
            raise JobCancelled(job_id)
        self.metrics.succeeded.inc()
        self._observe_latency(final)
        log.info("job %s: succeeded in %.2fs", job_id, timings["total"])
        return final

    def _inputs(self, record: JobRecord) -> tuple[Any, Any, GarmentCategory, GenerationOptions]:
        try:
            category = GarmentCategory(record.category)
        except ValueError:
            choices = ", ".join(c.value for c in GarmentCategory)
            raise JobFailed("invalid_input", f"category: must be one of {choices}") from None
        try:
            options = GenerationOptions(**record.options)
        except TypeError as error:
            raise JobFailed("invalid_input", f"options: {error}") from None
        images = []
        for name, mode, min_side in (
            ("person", "RGB", MIN_PERSON_SIDE),
            ("garment", "RGBA", MIN_GARMENT_SIDE),
        ):
            key = record.input_keys.get(name)
            if not key:
                raise JobFailed("invalid_input", f"{name}: the job has no {name} image")
            data = self.storage.get(key)
            images.append(imaging.decode_image(data, field=name, mode=mode, min_side=min_side))  # type: ignore[arg-type]
        return images[0], images[1], category, options

    def _progress(self, done: set[str]) -> int:
        return sum(STAGE_WEIGHTS[stage] for stage in done)

    def _cancel_check(self, job_id: str) -> Any:
        state = {"last": 0.0, "cancelled": False}

        def is_cancelled(force: bool = False) -> bool:
            now = time.monotonic()
            if not state["cancelled"] and (force or now - state["last"] >= CANCEL_POLL_S):
                state["last"] = now
                state["cancelled"] = self.store.status(job_id) is JobStatus.CANCELLED
            return bool(state["cancelled"])

        return is_cancelled

    @contextmanager
    def _cancellable(self, is_cancelled: Callable[[], bool]) -> Iterator[None]:
        # In process, backends that loop (SDXL's denoising) poll tryon.cancellation between steps.
        with cancellation.cancellable(is_cancelled):
            yield

    # --- endings ----------------------------------------------------------------------------------------

    def fail(self, job_id: str, code: str, message: str) -> JobRecord | None:
        final = self.store.transition(
            job_id, JobStatus.FAILED, stage=None, error_code=code, error_message=message
        )
        if final is not None:
            self.metrics.failed.labels(code).inc()
            self._observe_latency(final)
            log.warning("job %s: failed (%s): %s", job_id, code, message)
        return final

    def give_up(self, job_id: str, error: TransientJobError, attempts: int) -> JobRecord | None:
        """The retry budget is spent: fail the job with a message naming what kept failing."""
        summary = USER_MESSAGES.get(error.code, "a transient error persisted")
        return self.fail(
            job_id, error.code, f"{summary} ({error.message}); gave up after {attempts} attempts"
        )

    def requeue(self, job_id: str, error: TransientJobError, delay_s: float) -> None:
        """Mark the job queued again while its retry waits; the message says why."""
        self.metrics.retries.labels(error.code).inc()
        self.store.transition(
            job_id,
            JobStatus.QUEUED,
            error_code=None,
            error_message=f"retrying in {delay_s:.0f}s: {USER_MESSAGES.get(error.code, error.code)}",
        )

    def _observe_latency(self, record: JobRecord) -> None:
        seconds = (datetime.now(UTC) - record.created_at).total_seconds()
        self.metrics.latency.labels(record.status.value).observe(max(0.0, seconds))
