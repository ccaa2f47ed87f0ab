"""The API's documents: what the OpenAPI schema shows and what the routes answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from tryon.jobs.state import JobRecord, JobStatus
from tryon.types import GarmentCategory

EXAMPLE_ID = "q8Zk3nV1sT0yXw2pLm4aBg"


class TryOnOptions(BaseModel):
    """The form fields of a submission besides the two photos (all optional but ``category``)."""

    model_config = ConfigDict(extra="forbid")

    category: GarmentCategory = Field(
        default=GarmentCategory.UPPER_BODY,
        description="What the garment photo shows: a top, trousers or a skirt, or a dress.",
    )
    seed: Annotated[int, Field(ge=0, lt=2**63)] | None = Field(
        default=None, description="Random seed of the generative stage; the same seed gives the same result."
    )
    steps: Annotated[int, Field(ge=1, le=150)] | None = Field(
        default=None, description="Denoising steps of the full (diffusion) backend; more is slower and finer."
    )
    guidance: Annotated[float, Field(ge=0.0, le=30.0, allow_inf_nan=False)] | None = Field(
        default=None, description="Classifier-free guidance scale of the full backend."
    )
    strength: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] | None = Field(
        default=None, description="How much of the masked region is repainted (full backend)."
    )
    webhook_url: Annotated[str, Field(min_length=1, max_length=2048)] | None = Field(
        default=None,
        description="http(s) URL that receives the final status document (POST, signed with HMAC-SHA256 in "
        "the X-Tryon-Signature header). Private and loopback addresses are refused.",
    )

    def pipeline_options(self) -> dict[str, Any]:
        """The options the worker passes to the inpaint stage (names of tryon.types.InpaintOptions)."""
        named = {
            "seed": self.seed,
            "steps": self.steps,
            "guidance_scale": self.guidance,
            "strength": self.strength,
        }
        return {name: value for name, value in named.items() if value is not None}


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
    record: JobRecord, *, api_prefix: str, result_url: str | None = None, url_expiry_s: int = 0
) -> JobDocument:
    base = f"{api_prefix}/tryon/{record.id}"
    succeeded = record.status == JobStatus.SUCCEEDED and record.result_key is not None
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
        result_url=result_url if succeeded else None,
        result_expires_at=datetime.now(UTC) + timedelta(seconds=url_expiry_s)
        if succeeded and result_url
        else None,
        download_url=f"{base}/result" if succeeded else None,
        status_url=base,
        events_url=f"{base}/events",
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


class Health(BaseModel):
    status: str = Field(description='"ok" while the process serves requests.', examples=["ok"])


class CheckResult(BaseModel):
    ok: bool
    detail: str = Field(description="What was checked, or why it failed.")
    seconds: float = Field(description="How long the check took.")


class Readiness(BaseModel):
    status: str = Field(description='"ready" when every dependency answers, else "unavailable".')
    checks: dict[str, CheckResult] = Field(description="redis, broker and storage.")


class Limits(BaseModel):
    """What the server accepts (the page shows these)."""

    max_upload_mb: int = Field(description="Largest photo accepted, per photo.")
    max_pixels: int = Field(description="Largest pixel count (width x height) accepted.")
    min_person_side: int = Field(description="Smallest short side of the person photo, in pixels.")
    min_garment_side: int = Field(description="Smallest short side of the garment photo, in pixels.")
    media_types: list[str] = Field(description="Accepted photo formats (judged by content).")
    categories: list[str] = Field(description="Garment categories.")
    example_categories: list[str] = Field(description="Categories the built-in example has a garment for.")
    api_key_required: bool = Field(description="Whether requests need an X-API-Key header.")
