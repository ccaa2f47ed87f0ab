"""The public document of a job: what GET /api/tryon/{id} answers, each server-sent event carries, and the
webhook delivers. Built from the record (tryon.jobs.state) by :func:`job_document`, so the gateway and the
worker send the same thing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from tryon.jobs.state import JobRecord, JobStatus
from tryon.jobs.storage import Storage

EXAMPLE_ID = "q8Zk3nV1sT0yXw2pLm4aBg"
#: Where the gateway mounts the job routes (status_url, events_url and download_url are built on it).
API_PREFIX = "/api"


class JobError(BaseModel):
    code: str = Field(
        description="Machine-readable reason, e.g. invalid_input, stage_unavailable, cancelled."
    )
    message: str = Field(description="What went wrong, for a person to read.")


class JobDocument(BaseModel):
    """A try-on job as the API shows it (also the body of the webhook and of each server-sent event)."""

    id: str = Field(
        description="The job's id (unguessable; treat it as a secret link).", examples=[EXAMPLE_ID]
    )
    status: JobStatus = Field(description="queued, running, succeeded, failed or cancelled.")
    stage: str | None = Field(
        default=None,
        description="The stage running now (segmentation, pose, warp, inpaint, blend) while running.",
        examples=["warp"],
    )
    progress: int = Field(ge=0, le=100, description="Overall progress in percent.", examples=[40])
    timings: dict[str, float] = Field(
        default_factory=dict, description="Seconds spent per finished stage, and in total."
    )
    category: str = Field(description="The garment category submitted.", examples=["upper_body"])
    options: dict[str, Any] = Field(default_factory=dict, description="Generation options submitted.")
    error: JobError | None = Field(default=None, description="Why the job failed or was cancelled.")
    result_url: str | None = Field(
        default=None,
        description="Once succeeded: a signed URL of the result PNG, valid until result_expires_at. Ask for "
        "the status again for a fresh one.",
    )
    result_expires_at: datetime | None = Field(default=None, description="When result_url stops working.")
    download_url: str | None = Field(
        default=None, description="Once succeeded: the result as a file download, through this API."
    )
    status_url: str = Field(description="This document's URL.", examples=[f"/api/tryon/{EXAMPLE_ID}"])
    events_url: str = Field(
        description="Server-sent events of this document's changes.",
        examples=[f"/api/tryon/{EXAMPLE_ID}/events"],
    )
    created_at: datetime
    updated_at: datetime


def job_document(
    record: JobRecord,
    *,
    storage: Storage | None = None,
    url_expiry_s: int = 900,
    api_prefix: str = API_PREFIX,
) -> JobDocument:
    """The document of ``record``; with ``storage``, a succeeded job's result_url is signed for
    ``url_expiry_s`` seconds. The worker's webhook sends ``job_document(...).model_dump(mode="json")``."""
    base = f"{api_prefix}/tryon/{record.id}"
    succeeded = record.status == JobStatus.SUCCEEDED and record.result_key is not None
    result_url = None
    if succeeded and storage is not None and record.result_key:
        result_url = storage.url(record.result_key, url_expiry_s)
    error = None
    if record.error_code or record.error_message:
        error = JobError(code=record.error_code or "error", message=record.error_message or "")
    return JobDocument(
        id=record.id,
        status=record.status,
        stage=record.stage,
        progress=record.progress,
        timings=record.timings,
        category=record.category,
        options=record.options,
        error=error,
        result_url=result_url,
        result_expires_at=datetime.now(UTC) + timedelta(seconds=url_expiry_s) if result_url else None,
        download_url=f"{base}/result" if succeeded else None,
        status_url=base,
        events_url=f"{base}/events",
        created_at=record.created_at,
        updated_at=record.updated_at,
    )
