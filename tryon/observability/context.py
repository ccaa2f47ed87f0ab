"""The job id of the work in progress, visible to every log record written on its behalf.

Set by the worker for each job (``celery_hooks``), by the gateway for requests about one job, and by the
stage servers from the gRPC metadata key :data:`JOB_ID_HEADER` (``observability.grpc``). ContextVars follow
threads started with ``contextvars.copy_context()`` and asyncio tasks; a gRPC server thread sets it per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: gRPC metadata key and Celery message header carrying the job id (metadata keys are lower case).
JOB_ID_HEADER = "x-tryon-job-id"

_JOB_ID: ContextVar[str | None] = ContextVar("tryon_job_id", default=None)


def current_job_id() -> str | None:
    """The job being worked on in this context, or None."""
    return _JOB_ID.get()


@contextmanager
def job_context(job_id: str | None) -> Iterator[None]:
    """Attribute everything logged (and every stage call made) inside the block to ``job_id``."""
    token = _JOB_ID.set(job_id)
    try:
        yield
    finally:
        _JOB_ID.reset(token)
