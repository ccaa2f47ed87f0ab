"""The API's documents: what the OpenAPI schema shows and what the routes answer."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from tryon.jobs.document import EXAMPLE_ID, JobDocument, JobError, job_document
from tryon.types import GarmentCategory


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
        """The options the worker passes to the inpaint stage (names of tryon.types.GenerationOptions)."""
        named = {
            "seed": self.seed,
            "steps": self.steps,
            "guidance_scale": self.guidance,
            "strength": self.strength,
        }
        return {name: value for name, value in named.items() if value is not None}


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


__all__ = ["EXAMPLE_ID", "JobDocument", "JobError", "job_document"]
