"""Typed inputs and outputs of the five stages.

Every backend (lite or full), the in-process pipeline and the gRPC servicers exchange these objects, so a
stage's contract is written once. Images are numpy arrays in the person photo's working frame:

* colour images: ``uint8`` ``(H, W, 3)`` RGB; garments may be ``(H, W, 4)`` RGBA;
* masks: ``uint8`` ``(H, W)`` with 0 outside and 255 inside;
* label maps: ``uint8`` ``(H, W)`` holding :class:`ClothesLabel` values;
* keypoints: ``float32`` ``(18, 3)`` rows of ``(x, y, confidence)`` in pixels, OpenPose COCO-18 order
  (:data:`COCO18_NAMES`); a missing keypoint has confidence 0 and x = y = 0.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from tryon.stages import STAGES as STAGES  # re-exported; the registry is tryon/stages.py

RGBImage = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.uint8]
Keypoints = npt.NDArray[np.float32]


#: OpenPose COCO-18 keypoint order (the order controlnet_aux's body estimator uses).
COCO18_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip
NUM_KEYPOINTS = len(COCO18_NAMES)
KP = {name: index for index, name in enumerate(COCO18_NAMES)}


class ClothesLabel(enum.IntEnum):
    """The 18 labels of the Segformer B2 Clothes model (mattmdjaga/segformer_b2_clothes)."""

    BACKGROUND = 0
    HAT = 1
    HAIR = 2
    SUNGLASSES = 3
    UPPER_CLOTHES = 4
    SKIRT = 5
    PANTS = 6
    DRESS = 7
    BELT = 8
    LEFT_SHOE = 9
    RIGHT_SHOE = 10
    FACE = 11
    LEFT_LEG = 12
    RIGHT_LEG = 13
    LEFT_ARM = 14
    RIGHT_ARM = 15
    BAG = 16
    SCARF = 17


class GarmentCategory(enum.StrEnum):
    UPPER_BODY = "upper_body"
    LOWER_BODY = "lower_body"
    DRESS = "dress"


class BackendKind(enum.StrEnum):
    LITE = "lite"
    FULL = "full"
    AUTO = "auto"


class StageInputError(ValueError):
    """The caller's input cannot be processed (bad image, no person found, mismatched sizes, ...).

    ``field`` names the offending request field where there is one; servicers map this error to
    ``INVALID_ARGUMENT`` and the CLI prints it as a one-line error.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


#: The message of every backend that finds no person in a person photo (with ``field="person"``).
NO_PERSON_FOUND = "no person found in the photo"


class StageOverloadedError(RuntimeError):
    """The stage cannot take this call now (e.g. CUDA out of memory); the call may be retried later.

    Servicers map it to ``RESOURCE_EXHAUSTED``. The backend must have freed what it could before raising.
    """


class ModelUnavailableError(RuntimeError):
    """A ``full`` backend was asked for but its weights are not present (message names the fix)."""


@dataclass(frozen=True)
class GenerationOptions:
    """Options of the generative (inpaint) stage; the lite inpainter uses ``seed`` only."""

    seed: int = 0
    steps: int = 30
    guidance_scale: float = 5.0
    strength: float = 0.99
    prompt: str = ""
    negative_prompt: str = ""

    def validate(self) -> None:
        if not 0 <= self.seed < 2**63:
            raise StageInputError("seed must be in [0, 2**63)", field="options.seed")
        if not 1 <= self.steps <= 150:
            raise StageInputError("steps must be in [1, 150]", field="options.steps")
        if not 0.0 <= self.guidance_scale <= 30.0:
            raise StageInputError("guidance_scale must be in [0, 30]", field="options.guidance_scale")
        if not 0.0 < self.strength <= 1.0:
            raise StageInputError("strength must be in (0, 1]", field="options.strength")
        if len(self.prompt) > 2000 or len(self.negative_prompt) > 2000:
            raise StageInputError("prompts are limited to 2000 characters", field="options.prompt")


@dataclass(frozen=True)
class ModelInfo:
    name: str  # role, e.g. "segformer", "unet", "mediapipe_pose"
    source: str  # Hugging Face id, local path, or "bundled:<package>"


@dataclass(frozen=True)
class BackendInfo:
    stage: str
    #: "lite" or "full" (never "auto": auto has been resolved); "single" for warp and blend, whose one
    #: implementation every deployment runs.
    backend: str
    device: str  # "cpu", "cuda:0", ...
    models: tuple[ModelInfo, ...] = ()


def _require_person(person: object) -> tuple[int, int]:
    """``person`` is a uint8 RGB image; returns its (height, width), the frame of the other images."""
    if not isinstance(person, np.ndarray) or person.ndim != 3 or person.shape[2] != 3:
        raise StageInputError("person: expected an RGB image (H, W, 3)", field="person")
    if person.dtype != np.uint8:
        raise StageInputError(f"person: expected uint8, got {person.dtype}", field="person")
    return person.shape[0], person.shape[1]


def _require_frame(field: str, array: object, size: tuple[int, int], channels: int | None) -> None:
    """``array`` is uint8 at ``size``: a mask (``channels`` None) or an image of ``channels`` channels."""
    expected = f"({size[0]}, {size[1]}{f', {channels}' if channels else ''})"
    if not isinstance(array, np.ndarray):
        raise StageInputError(f"{field}: expected an array of shape {expected}", field=field)
    ndim = 2 if channels is None else 3
    if array.ndim != ndim or array.shape[:2] != size or (channels and array.shape[2] != channels):
        raise StageInputError(f"{field}: expected shape {expected}, got {array.shape}", field=field)
    if array.dtype != np.uint8:
        raise StageInputError(f"{field}: expected uint8, got {array.dtype}", field=field)


# ---------------------------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class SegmentationInput:
    person: RGBImage
    category: GarmentCategory = GarmentCategory.UPPER_BODY


@dataclass(frozen=True)
class SegmentationOutput:
    label_map: npt.NDArray[np.uint8]  # ClothesLabel values
    clothing_mask: Mask  # where the new garment goes: target region + the garment it replaces
    face_mask: Mask  # face pixels to restore after generation
    person_mask: Mask  # the whole person (foreground)


@dataclass(frozen=True)
class PoseInput:
    person: RGBImage


@dataclass(frozen=True)
class PoseOutput:
    keypoints: Keypoints  # (18, 3) float32, COCO-18
    pose_image: RGBImage  # OpenPose rendering (black background) at the person's size


@dataclass(frozen=True)
class WarpInput:
    garment: npt.NDArray[np.uint8]  # (h, w, 3) RGB or (h, w, 4) RGBA product / flat-lay photo
    keypoints: Keypoints  # the person's COCO-18 keypoints in the target frame
    target_size: tuple[int, int]  # (height, width) of the person's working frame
    category: GarmentCategory = GarmentCategory.UPPER_BODY


@dataclass(frozen=True)
class WarpOutput:
    warped_garment: npt.NDArray[np.uint8]  # (H, W, 4) RGBA in the person frame; (0, 0, 0, 0) = no garment
    garment_landmarks: dict[str, tuple[float, float]] = field(default_factory=dict)  # in the garment photo


@dataclass(frozen=True)
class InpaintInput:
    person: RGBImage
    clothing_mask: Mask
    warped_garment: npt.NDArray[np.uint8]  # RGBA, same frame as person
    pose_image: RGBImage
    category: GarmentCategory = GarmentCategory.UPPER_BODY
    options: GenerationOptions = GenerationOptions()
    #: The keypoints ``pose_image`` was drawn from (``tryon.vision.openpose.draw_openpose``), when it was:
    #: the backends read ``pose_image``; the gRPC client sends these 18 points instead of the image, and
    #: the inpaint service draws the same pixels again.
    keypoints: Keypoints | None = None

    def validate(self) -> None:
        """Types, shapes (everything in the person's frame) and a non-empty clothing mask; every backend
        calls it first."""
        if not isinstance(self.options, GenerationOptions):
            raise StageInputError("options: expected GenerationOptions", field="options")
        self.options.validate()
        try:
            GarmentCategory(self.category)
        except ValueError as error:
            raise StageInputError(f"category: unknown {self.category!r}", field="category") from error
        size = _require_person(self.person)
        _require_frame("clothing_mask", self.clothing_mask, size, None)
        _require_frame("warped_garment", self.warped_garment, size, 4)
        _require_frame("pose_image", self.pose_image, size, 3)
        if not (self.clothing_mask > 127).any():
            raise StageInputError(
                "clothing_mask: empty, there is no region to put the garment in", field="clothing_mask"
            )


@dataclass(frozen=True)
class InpaintOutput:
    image: RGBImage  # same size as the person


@dataclass(frozen=True)
class BlendInput:
    person: RGBImage  # the original photo at working resolution
    generated: RGBImage  # the inpaint stage's output, same size
    clothing_mask: Mask
    face_mask: Mask

    def validate(self) -> None:
        """uint8 RGB images of one size, masks of that size, a non-empty clothing mask."""
        size = _require_person(self.person)
        _require_frame("generated", self.generated, size, 3)
        _require_frame("clothing_mask", self.clothing_mask, size, None)
        _require_frame("face_mask", self.face_mask, size, None)
        if not (self.clothing_mask > 127).any():
            raise StageInputError("clothing_mask: empty, there is nothing to blend", field="clothing_mask")


@dataclass(frozen=True)
class BlendOutput:
    image: RGBImage


# ---------------------------------------------------------------------------------------------- contract

In = TypeVar("In", contravariant=True)
Out = TypeVar("Out", covariant=True)


class StageBackend(Protocol[In, Out]):
    """The cog-style contract every stage implementation follows.

    ``setup()`` loads models and runs one warm-up inference; it is called once per process before the
    backend is served. ``run()`` is the work itself; it raises :class:`StageInputError` for bad input and
    must be safe to call from several threads unless the service serialises calls (GPU stages do).
    """

    def setup(self) -> None: ...

    def run(self, inputs: In, /) -> Out: ...

    def info(self) -> BackendInfo: ...
