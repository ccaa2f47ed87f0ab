"""Conversions between the protobuf messages of ``tryon.v1`` and the typed stage objects.

Servicers use the ``*_from_proto`` direction on requests and ``*_to_proto`` on responses; the gRPC client
does the reverse. Keeping both directions here means a field is mapped in exactly one place.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from tryon import imaging
from tryon.types import (
    NUM_KEYPOINTS,
    BackendInfo,
    GarmentCategory,
    GenerationOptions,
    Keypoints,
    Mask,
    StageInputError,
)
from tryon.v1 import common_pb2

_CATEGORY_TO_PROTO = {
    GarmentCategory.UPPER_BODY: common_pb2.GARMENT_CATEGORY_UPPER_BODY,
    GarmentCategory.LOWER_BODY: common_pb2.GARMENT_CATEGORY_LOWER_BODY,
    GarmentCategory.DRESS: common_pb2.GARMENT_CATEGORY_DRESS,
}
_CATEGORY_FROM_PROTO = {value: key for key, value in _CATEGORY_TO_PROTO.items()}
_CATEGORY_FROM_PROTO[common_pb2.GARMENT_CATEGORY_UNSPECIFIED] = GarmentCategory.UPPER_BODY


WireFormat = Literal["png", "raw"]


def image_to_proto(image: npt.NDArray[np.uint8], wire: WireFormat = "png") -> common_pb2.Image:
    raw = wire == "raw"
    return common_pb2.Image(
        data=imaging.encode_raw(image) if raw else imaging.encode_png(image),
        media_type=imaging.RAW_MEDIA_TYPE if raw else "image/png",
        width=image.shape[1],
        height=image.shape[0],
    )


def wire_of(message: common_pb2.Image) -> WireFormat:
    """The format to answer in: raw callers (our own services) get raw pixels back, everyone else PNG."""
    return "raw" if message.media_type == imaging.RAW_MEDIA_TYPE else "png"


def image_from_proto(
    message: common_pb2.Image,
    *,
    field: str,
    mode: imaging.ColourMode = "RGB",
    min_side: int = 1,
    max_side: int | None = None,
) -> npt.NDArray[np.uint8]:
    """Decode an image; with ``max_side`` (services: the working resolution) it arrives scaled down to
    that long side, so no stage works on more pixels than it needs, whatever the caller sent."""
    if message.media_type == imaging.RAW_MEDIA_TYPE:
        return imaging.decode_raw(
            message.data,
            message.width,
            message.height,
            field=field,
            mode=mode,
            min_side=min_side,
            max_side=max_side,
        )
    return imaging.decode_image(message.data, field=field, mode=mode, min_side=min_side, max_side=max_side)


def mask_from_proto(
    message: common_pb2.Image, *, field: str, shape: tuple[int, int], max_side: int | None = None
) -> Mask:
    """Decode a mask and check it matches the person image (``shape`` = (height, width), after both are
    scaled to ``max_side``)."""
    mask = image_from_proto(message, field=field, mode="L", max_side=max_side)
    if mask.shape != shape:
        raise StageInputError(
            f"{field}: mask is {mask.shape[1]}x{mask.shape[0]} but the person image is {shape[1]}x{shape[0]}",
            field=field,
        )
    # Masks may arrive anti-aliased or JPEG-compressed: below 128 is outside. Values above are kept: the
    # lite stages carry surface kinds in the clothing mask's values (tryon.vision.mask_kinds).
    return np.where(mask >= 128, mask, 0).astype(np.uint8)


def require_size(image: npt.NDArray[np.uint8], shape: tuple[int, int], *, field: str) -> None:
    """Images of a request share the person's frame: check ``image`` is ``shape`` = (height, width)."""
    if image.shape[:2] != shape:
        raise StageInputError(
            f"{field}: image is {image.shape[1]}x{image.shape[0]} but the person image is "
            f"{shape[1]}x{shape[0]}",
            field=field,
        )


def rgba_from_proto(
    message: common_pb2.Image, *, field: str, shape: tuple[int, int], max_side: int | None = None
) -> npt.NDArray[np.uint8]:
    image = image_from_proto(message, field=field, mode="RGBA", max_side=max_side)
    require_size(image, shape, field=field)
    return image


def category_to_proto(category: GarmentCategory) -> int:
    return _CATEGORY_TO_PROTO[GarmentCategory(category)]


def category_from_proto(value: int) -> GarmentCategory:
    try:
        return _CATEGORY_FROM_PROTO[value]
    except KeyError:
        raise StageInputError(f"category: unknown garment category {value}", field="category") from None


def keypoints_to_proto(keypoints: Keypoints) -> common_pb2.BodyPose:
    return common_pb2.BodyPose(
        keypoints=[common_pb2.Keypoint(x=float(x), y=float(y), confidence=float(c)) for x, y, c in keypoints]
    )


def keypoints_from_proto(message: common_pb2.BodyPose, *, field: str = "pose") -> Keypoints:
    if len(message.keypoints) != NUM_KEYPOINTS:
        raise StageInputError(
            f"{field}: expected {NUM_KEYPOINTS} COCO-18 keypoints, got {len(message.keypoints)}", field=field
        )
    keypoints = np.array([(k.x, k.y, k.confidence) for k in message.keypoints], dtype=np.float32)
    if not np.all(np.isfinite(keypoints)):
        raise StageInputError(f"{field}: keypoints must be finite numbers", field=field)
    if np.any((keypoints[:, 2] < 0) | (keypoints[:, 2] > 1)):
        raise StageInputError(f"{field}: keypoint confidence must be in [0, 1]", field=field)
    return keypoints


def options_to_proto(options: GenerationOptions) -> common_pb2.GenerationOptions:
    return common_pb2.GenerationOptions(
        seed=options.seed,
        steps=options.steps,
        guidance_scale=options.guidance_scale,
        strength=options.strength,
        prompt=options.prompt,
        negative_prompt=options.negative_prompt,
    )


def options_from_proto(message: common_pb2.GenerationOptions) -> GenerationOptions:
    defaults = GenerationOptions()
    options = GenerationOptions(
        seed=message.seed if message.HasField("seed") else defaults.seed,
        steps=message.steps if message.HasField("steps") else defaults.steps,
        guidance_scale=(
            message.guidance_scale if message.HasField("guidance_scale") else defaults.guidance_scale
        ),
        strength=message.strength if message.HasField("strength") else defaults.strength,
        prompt=message.prompt,
        negative_prompt=message.negative_prompt,
    )
    options.validate()
    return options


def info_to_proto(info: BackendInfo, version: str) -> common_pb2.ServiceInfo:
    return common_pb2.ServiceInfo(
        stage=info.stage,
        backend=info.backend,
        device=info.device,
        models=[common_pb2.ModelInfo(name=m.name, source=m.source) for m in info.models],
        version=version,
    )
