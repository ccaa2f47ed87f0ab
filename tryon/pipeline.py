"""The in-process try-on pipeline: the five stage backends run in one process.

This is what ``tryon run`` uses, and what the gRPC chain must reproduce: the services call the very same
backend objects. Segmentation and pose are independent, so they run concurrently.
"""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tryon import imaging
from tryon.settings import StageSettings
from tryon.types import (
    STAGES,
    BlendInput,
    GarmentCategory,
    GenerationOptions,
    InpaintInput,
    InpaintOutput,
    PoseInput,
    PoseOutput,
    RGBImage,
    SegmentationInput,
    SegmentationOutput,
    StageBackend,
    StageInputError,
    WarpInput,
    WarpOutput,
)

ProgressCallback = Callable[[str, str, float], None]  # (stage, "start" | "done", seconds)


@dataclass(frozen=True)
class TryOnResult:
    image: RGBImage  # the final try-on, person frame at working resolution
    person: RGBImage  # the input person at working resolution (EXIF-corrected, long side 1024)
    segmentation: SegmentationOutput
    pose: PoseOutput
    warp: WarpOutput
    inpaint: InpaintOutput
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, and "total"


def load_image(
    path: str | Path,
    *,
    field: str,
    mode: imaging.ColourMode = "RGB",
    min_side: int = 1,
    max_side: int | None = None,
) -> Any:
    """Read an image file as the pipeline wants it; every failure is a :class:`StageInputError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise StageInputError(f"{field}: cannot read {path}: {error.strerror}", field=field) from error
    return imaging.decode_image(data, field=field, mode=mode, min_side=min_side, max_side=max_side)


def prepare_person(person: RGBImage) -> RGBImage:
    if person.ndim != 3 or person.shape[2] != 3:
        raise StageInputError("person: expected an RGB image", field="person")
    if min(person.shape[:2]) < imaging.MIN_PERSON_SIDE:
        raise StageInputError(
            f"person: image of {person.shape[1]}x{person.shape[0]} is too small "
            f"(the short side must be at least {imaging.MIN_PERSON_SIDE} px)",
            field="person",
        )
    return imaging.to_working_resolution(person)


def prepare_garment(garment: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    if garment.ndim != 3 or garment.shape[2] not in (3, 4):
        raise StageInputError("garment: expected an RGB or RGBA image", field="garment")
    if min(garment.shape[:2]) < imaging.MIN_GARMENT_SIDE:
        raise StageInputError(
            f"garment: image of {garment.shape[1]}x{garment.shape[0]} is too small "
            f"(the short side must be at least {imaging.MIN_GARMENT_SIDE} px)",
            field="garment",
        )
    if max(garment.shape[:2]) > imaging.GARMENT_LONG_SIDE:
        return imaging.to_working_resolution(garment, imaging.GARMENT_LONG_SIDE)
    return garment


class TryOnPipeline:
    """Runs the five stages on one person + garment. Thread-safe if the backends are."""

    def __init__(self, backends: Mapping[str, StageBackend[Any, Any]]) -> None:
        missing = set(STAGES) - set(backends)
        if missing:
            raise ValueError(f"missing backends for stages: {sorted(missing)}")
        self.backends = dict(backends)
        self._parallel = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tryon-pipeline")

    @classmethod
    def from_settings(cls, settings: StageSettings) -> TryOnPipeline:
        from tryon.backends import create_backend

        return cls({stage: create_backend(stage, settings) for stage in STAGES})

    def setup(self) -> None:
        """Load and warm every backend once, one after the other.

        Not in parallel: transformers' and diffusers' loaders create modules on the meta device by patching
        torch globally (accelerate's init_empty_weights), so two concurrent loads corrupt each other.
        """
        for backend in self.backends.values():
            backend.setup()

    def close(self) -> None:
        self._parallel.shutdown(wait=True)

    def run(
        self,
        person: RGBImage,
        garment: npt.NDArray[np.uint8],
        *,
        category: GarmentCategory = GarmentCategory.UPPER_BODY,
        options: GenerationOptions | None = None,
        progress: ProgressCallback | None = None,
    ) -> TryOnResult:
        options = options or GenerationOptions()
        options.validate()
        report = progress or (lambda stage, event, seconds: None)
        timings: dict[str, float] = {}
        started = time.perf_counter()

        def timed(stage: str, call: Callable[[], Any]) -> Any:
            report(stage, "start", 0.0)
            stage_started = time.perf_counter()
            result = call()
            timings[stage] = time.perf_counter() - stage_started
            report(stage, "done", timings[stage])
            return result

        person = prepare_person(person)
        garment = prepare_garment(garment)

        # Each task runs in a copy of the caller's context: the job id, trace and progress reporter (all
        # ContextVars) reach the stage calls made from the pool's threads.
        segmentation_future = self._parallel.submit(
            contextvars.copy_context().run, timed, "segmentation",
            lambda: self.backends["segmentation"].run(SegmentationInput(person=person, category=category)),
        )  # fmt: skip
        pose_future = self._parallel.submit(
            contextvars.copy_context().run,
            timed,
            "pose",
            lambda: self.backends["pose"].run(PoseInput(person=person)),
        )
        # Pose errors ("no person found") are the more useful message, so surface them first.
        pose: PoseOutput = pose_future.result()
        segmentation: SegmentationOutput = segmentation_future.result()

        height, width = person.shape[:2]
        warp: WarpOutput = timed(
            "warp",
            lambda: self.backends["warp"].run(
                WarpInput(
                    garment=garment,
                    keypoints=pose.keypoints,
                    target_size=(height, width),
                    category=category,
                )
            ),
        )
        inpaint: InpaintOutput = timed(
            "inpaint",
            lambda: self.backends["inpaint"].run(
                InpaintInput(
                    person=person,
                    clothing_mask=segmentation.clothing_mask,
                    warped_garment=warp.warped_garment,
                    pose_image=pose.pose_image,
                    category=category,
                    options=options,
                    keypoints=pose.keypoints,  # pose_image drawn from them: a remote stage sends only these
                )
            ),
        )
        blended = timed(
            "blend",
            lambda: self.backends["blend"].run(
                BlendInput(
                    person=person,
                    generated=inpaint.image,
                    clothing_mask=segmentation.clothing_mask,
                    face_mask=segmentation.face_mask,
                )
            ),
        )
        timings["total"] = time.perf_counter() - started
        return TryOnResult(
            image=blended.image,
            person=person,
            segmentation=segmentation,
            pose=pose,
            warp=warp,
            inpaint=inpaint,
            timings=timings,
        )


def save_intermediates(result: TryOnResult, directory: Path) -> list[Path]:
    """Write every intermediate as PNG (and keypoints as JSON) for inspection."""
    directory.mkdir(parents=True, exist_ok=True)
    images = {
        "person.png": result.person,
        "label_map.png": result.segmentation.label_map,
        "clothing_mask.png": result.segmentation.clothing_mask,
        "face_mask.png": result.segmentation.face_mask,
        "person_mask.png": result.segmentation.person_mask,
        "pose.png": result.pose.pose_image,
        "warped_garment.png": result.warp.warped_garment,
        "inpainted.png": result.inpaint.image,
        "result.png": result.image,
    }
    written = []
    for name, image in images.items():
        path = directory / name
        path.write_bytes(imaging.encode_png(image))
        written.append(path)
    keypoints_path = directory / "keypoints.json"
    keypoints_path.write_text(
        json.dumps(
            {
                "format": "coco18",
                "keypoints": result.pose.keypoints.tolist(),
                "garment_landmarks": result.warp.garment_landmarks,
                "timings_s": result.timings,
            },
            indent=2,
        )
    )
    written.append(keypoints_path)
    return written
