"""Segmentation and pose run in the pipeline's thread pool: the caller's job id and trace still reach them
(the ContextVars are copied into each task), so their stage calls carry x-tryon-job-id and traceparent."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.imagegen import draw_garment, person_photo
from tryon import observability
from tryon.backends import create_backend
from tryon.observability import tracing
from tryon.pipeline import TryOnPipeline
from tryon.settings import StageSettings
from tryon.stages import STAGES
from tryon.types import BackendKind


class Recording:
    """A real lite backend that notes the job and trace it was called in."""

    def __init__(self, backend: Any, seen: dict[str, tuple[str | None, str | None]], stage: str) -> None:
        self.backend, self.seen, self.stage = backend, seen, stage

    def setup(self) -> None:
        self.backend.setup()

    def info(self) -> Any:
        return self.backend.info()

    def run(self, inputs: Any, /, **kwargs: Any) -> Any:
        self.seen[self.stage] = (observability.current_job_id(), tracing.current_trace_id())
        return self.backend.run(inputs, **kwargs)


def test_every_stage_runs_in_the_callers_job_and_trace(exporter: InMemorySpanExporter) -> None:
    settings = StageSettings(backend=BackendKind.LITE)
    seen: dict[str, tuple[str | None, str | None]] = {}
    pipeline = TryOnPipeline({s: Recording(create_backend(s, settings), seen, s) for s in STAGES})
    try:
        pipeline.setup()
        with observability.job_context("job-pool01"), tracing.span("job") as job_span:
            pipeline.run(person_photo(384), draw_garment(size=(288, 384)))
    finally:
        pipeline.close()
    trace_id = format(job_span.get_span_context().trace_id, "032x")
    assert seen == {stage: ("job-pool01", trace_id) for stage in STAGES}
