"""Process settings: one typed object per process, read from ``TRYON_*`` environment variables.

No other module reads ``os.environ``; entrypoints build a settings object once (``load_*``) and pass it
down. Bad values fail at start-up with pydantic's message naming the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tryon.types import BackendKind

Device = Literal["auto", "cpu", "cuda"]
DType = Literal["fp16", "bf16", "fp32"]


class ModelSettings(BaseModel):
    """Where the full backends' weights come from and how they run.

    Each ``*_model`` is a Hugging Face repo id or a local directory. Defaults are the public checkpoints
    the product is built on (docs/MODELS.md says why each was chosen).
    """

    segformer_model: str = "mattmdjaga/segformer_b2_clothes"
    openpose_model: str = "lllyasviel/Annotators"
    sdxl_inpaint_model: str = "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"
    controlnet_openpose_model: str = "thibaud/controlnet-openpose-sdxl-1.0"
    #: Optional fp16-safe VAE (madebyollin/sdxl-vae-fp16-fix); empty keeps the checkpoint's VAE in fp32.
    vae_model: str = ""
    cache_dir: Path | None = None  # None: huggingface_hub's default cache
    offline: bool = True  # never reach a hub at serve time; `tryon models pull` is the only downloader
    device: Device = "auto"
    dtype: DType = "fp16"
    cpu_offload: bool = False  # model CPU offload for 24 GB cards
    vae_tiling: bool = False
    attention_slicing: bool = False

    # Full inpaint: how the uploaded garment survives generation. docs/QUALITY.md ("Inpaint settings")
    # gives the reason for each default.
    #: IP-Adapter Plus SDXL (ViT-H image encoder) repo or directory; empty turns the image prompt off.
    ip_adapter_model: str = "h94/IP-Adapter"
    ip_adapter_scale: float = Field(default=0.55, ge=0.0, le=1.5)
    #: Optional second ControlNet on the warped garment's edges (canny SDXL); empty: off.
    controlnet_edges_model: str = ""
    edges_conditioning_scale: float = Field(default=0.5, ge=0.0, le=2.0)
    edges_guidance_end: float = Field(default=0.5, gt=0.0, le=1.0)
    #: Denoising strength inside the warped garment (its pixels are the init image there).
    garment_strength: float = Field(default=0.6, gt=0.0, le=1.0)
    #: Full-strength band inside the garment's edge, as a fraction of the generated canvas' long side.
    garment_edge_band: float = Field(default=0.025, ge=0.0, le=0.25)
    #: Return the warped garment's pixels (with the generated shading) inside its eroded, feathered mask.
    paste_back: bool = True
    paste_back_erode: float = Field(default=0.012, ge=0.0, le=0.25)  # fraction of the photo's long side
    paste_back_max_delta_e: float = Field(default=30.0, gt=0.0)  # CIE76 above which the warp is not trusted
    #: Generate a crop around the mask (this margin x its long side on each side) at up to the working size.
    crop_to_mask: bool = True
    crop_margin: float = Field(default=0.25, ge=0.0, le=4.0)
    crop_max_upscale: float = Field(default=4.0, ge=1.0, le=8.0)
    #: DeepCache-style reuse of the UNet's deep features (and the ControlNets' outputs): full UNet calls
    #: every this many steps, only the outermost blocks in between. 1: off (quality not yet measured).
    deep_cache_interval: int = Field(default=1, ge=1, le=8)


class StageSettings(BaseSettings):
    """Settings of one stage process (a gRPC service, or a stage inside the in-process pipeline)."""

    model_config = SettingsConfigDict(env_prefix="TRYON_", env_nested_delimiter="__", extra="ignore")

    backend: BackendKind = BackendKind.AUTO
    models: ModelSettings = Field(default_factory=ModelSettings)

    host: str = "0.0.0.0"
    port: int | None = Field(default=None, ge=0, le=65535)  # None: the stage's default port
    metrics_port: int | None = Field(default=None, ge=0, le=65535)  # None: no /metrics listener
    max_message_mb: int = Field(default=64, ge=1, le=2047)
    #: Calls executed at once. GPU stages serialise model calls per device regardless.
    max_concurrency: int | None = Field(default=None, ge=1, le=256)  # None: stage default
    #: Calls waiting beyond max_concurrency before RESOURCE_EXHAUSTED.
    max_queue: int = Field(default=16, ge=0, le=10_000)
    shutdown_grace_s: float = Field(default=30.0, ge=0, le=600)
    #: Close each client connection after this long (GOAWAY; calls on it finish first, for up to the grace
    #: period), so clients balancing round-robin re-resolve the name and find new replicas. None: never.
    max_connection_age_s: float | None = Field(default=None, gt=0)
    #: How long calls on an aged connection may still run: longer than the slowest call's deadline.
    max_connection_age_grace_s: float = Field(default=600.0, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False
    #: Keep freed memory for reuse (tryon/memory.py): each call's megabyte buffers are not faulted in
    #: afresh. Resident memory then stays near the process's peak; turn off where memory is tighter than time.
    retain_freed_memory: bool = True


def load_stage_settings(**overrides: Any) -> StageSettings:
    """Read the environment once; ``overrides`` (from CLI flags) win over it."""
    return StageSettings(**{k: v for k, v in overrides.items() if v is not None})
