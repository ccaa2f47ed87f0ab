"""The stage registry: what each of the five stages is, written once.

Everything that needs to know a stage's port, metrics port, device class, implementations, gRPC service
name, address setting or default deadline reads it from :data:`STAGE_TABLE` (the service entrypoint, the
backend chooser, the gRPC clients, the model registry, the CLI and the deployment consistency tests).
This module imports nothing from the rest of the package, so anything may import it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    port: int  # default gRPC port
    metrics_port: int  # default Prometheus /metrics port
    #: GPU stages run one model call at a time per device: concurrent CUDA calls only contend for memory.
    gpu: bool
    service: str  # the gRPC service's full name
    #: "module:Class" of the weight-free implementation (the only one of warp and blend).
    lite_backend: str
    #: "module:Class" of the model-backed implementation (constructed with the ModelSettings), if any.
    full_backend: str | None
    #: Packages the full implementation imports (the project's ``full`` extra).
    full_packages: tuple[str, ...]
    #: Default per-call deadline of clients (``TRYON_<STAGE>_TIMEOUT_S``).
    timeout_s: float

    @property
    def address_setting(self) -> str:
        """The environment variable holding the service's address for clients."""
        return f"TRYON_{self.name.upper()}_ADDR"

    @property
    def timeout_setting(self) -> str:
        return f"TRYON_{self.name.upper()}_TIMEOUT_S"

    @property
    def default_address(self) -> str:
        return f"localhost:{self.port}"

    @property
    def has_models(self) -> bool:
        """Whether the stage has a full (model-backed) implementation with weights to fetch."""
        return self.full_backend is not None

    def max_concurrency(self) -> int:
        """Calls executed at once unless ``TRYON_MAX_CONCURRENCY`` says otherwise."""
        return 1 if self.gpu else max(1, len(os.sched_getaffinity(0)))


STAGE_TABLE: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            name="segmentation",
            port=50051,
            metrics_port=9101,
            gpu=True,
            service="tryon.v1.Segmentation",
            lite_backend="services.segmentation.lite:LiteSegmentation",
            full_backend="services.segmentation.full:FullSegmentation",
            full_packages=("torch", "transformers"),
            timeout_s=60.0,
        ),
        Stage(
            name="pose",
            port=50052,
            metrics_port=9102,
            gpu=True,
            service="tryon.v1.Pose",
            lite_backend="services.pose.lite:LitePose",
            full_backend="services.pose.full:FullPose",
            full_packages=("torch", "controlnet_aux"),
            timeout_s=60.0,
        ),
        Stage(
            name="warp",
            port=50053,
            metrics_port=9103,
            gpu=False,
            service="tryon.v1.Warp",
            lite_backend="services.warp.backend:GarmentWarper",
            full_backend=None,
            full_packages=(),
            timeout_s=30.0,
        ),
        Stage(
            name="inpaint",
            port=50054,
            metrics_port=9104,
            gpu=True,
            service="tryon.v1.Inpaint",
            lite_backend="services.inpaint.lite:LiteInpaint",
            full_backend="services.inpaint.full:FullInpaint",
            full_packages=("torch", "diffusers", "transformers"),
            # SDXL on a GPU: seconds, or minutes on a small card.
            timeout_s=300.0,
        ),
        Stage(
            name="blend",
            port=50055,
            metrics_port=9105,
            gpu=False,
            service="tryon.v1.Blend",
            lite_backend="services.blend.backend:Blender",
            full_backend=None,
            full_packages=(),
            timeout_s=30.0,
        ),
    )
}

#: The stages in pipeline order.
STAGES: tuple[str, ...] = tuple(STAGE_TABLE)
#: Stages that have a full (model) backend, in pipeline order.
MODEL_STAGES: tuple[str, ...] = tuple(name for name, stage in STAGE_TABLE.items() if stage.has_models)
#: ``BackendInfo.backend`` of stages with one implementation (warp, blend): every deployment, lite or
#: full, runs the same code.
SINGLE_IMPLEMENTATION = "single"

# Exit statuses of the CLI and of the service processes.
EXIT_OK = 0
#: Bad input or usage (the one-line message says what).
EXIT_BAD_INPUT = 2
#: The requested backend cannot be served (weights or packages missing): restarting will not help.
EXIT_NO_MODEL = 3
#: A service's backend failed to load or warm up (``setup()`` raised); a restart may help.
EXIT_SETUP_FAILED = 4


def stage(name: str) -> Stage:
    try:
        return STAGE_TABLE[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r} (stages: {', '.join(STAGES)})") from None
