"""Conversions between the protobuf messages of ``tryon.v1`` and the typed stage objects.

Servicers use the ``*_from_proto`` direction on requests and ``*_to_proto`` on responses; the gRPC client
does the reverse. Keeping both directions here means a field is mapped in exactly one place.
"""

from __future__ import annotations

import io
import zlib
from typing import Any, Literal, TypeVar

import cv2
import numpy as np
import numpy.typing as npt
from google.protobuf.message import Message
from PIL import Image

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
from tryon.vision import mask_kinds
from tryon.vision.images import shrunk_size

M = TypeVar("M", bound=Message)

_CATEGORY_TO_PROTO = {
    GarmentCategory.UPPER_BODY: common_pb2.GARMENT_CATEGORY_UPPER_BODY,
    GarmentCategory.LOWER_BODY: common_pb2.GARMENT_CATEGORY_LOWER_BODY,
    GarmentCategory.DRESS: common_pb2.GARMENT_CATEGORY_DRESS,
}
_CATEGORY_FROM_PROTO: dict[int, GarmentCategory] = {value: key for key, value in _CATEGORY_TO_PROTO.items()}
_CATEGORY_FROM_PROTO[common_pb2.GARMENT_CATEGORY_UNSPECIFIED] = GarmentCategory.UPPER_BODY


WireFormat = Literal["png", "raw"]

#: Trailing metadata key of RESOURCE_EXHAUSTED refusals: milliseconds after which a retry may find room
#: (sent by tryon.runtime's interceptor, honoured by tryon.client).
RETRY_AFTER_KEY = "retry-after-ms"

#: The response form this package's clients ask for and its servers can answer (see common.proto).
WIRE_VERSION = 2
#: Masks at 1 bit per pixel (wire version 2, raw callers): 1/8 of raw, and packing costs well under a ms.
BITMASK_MEDIA_TYPE = "image/x-bitmask"
#: image/x-raw compressed as one zlib stream: label maps (mostly long runs) shrink ~50x.
RAW_DEFLATE_MEDIA_TYPE = "image/x-raw-deflate"
#: zlib level 1: level 6 makes label maps half as small again at three times the cost.
DEFLATE_LEVEL = 1


def build(message_type: type[M], **fields: Any) -> M:
    """``message_type(**fields)``, with the message-valued fields copied in by ``CopyFrom``: upb's
    constructor copies a nested message of megabytes several times slower (0.8 ms against 0.1 ms for a
    1024 x 768 raw image)."""
    nested = {name: value for name, value in fields.items() if isinstance(value, Message)}
    message = message_type(**{name: value for name, value in fields.items() if name not in nested})
    for name, value in nested.items():
        getattr(message, name).CopyFrom(value)
    return message


def image_to_proto(image: npt.NDArray[np.uint8], wire: WireFormat = "png") -> common_pb2.Image:
    raw = wire == "raw"
    return common_pb2.Image(
        data=imaging.encode_raw(image) if raw else imaging.encode_png(image),
        media_type=imaging.RAW_MEDIA_TYPE if raw else "image/png",
        width=image.shape[1],
        height=image.shape[0],
    )


def mask_to_proto(mask: Mask, wire: WireFormat = "png", version: int = 1) -> common_pb2.Image:
    """A mask, for raw wire version 2 in its smallest exact form: image/x-bitmask when it holds only 0 and
    255, else (the lite clothing mask carries surface kinds in its values) image/x-raw-deflate."""
    if wire != "raw" or version < 2:
        return image_to_proto(mask, wire)
    if cv2.countNonZero(cv2.inRange(mask, 1, 254)):
        return label_map_to_proto(mask, wire, version)
    return common_pb2.Image(
        data=np.packbits(mask).tobytes(),  # 255 -> 1, 0 -> 0: the bits are the bytes' top bits
        media_type=BITMASK_MEDIA_TYPE,
        width=mask.shape[1],
        height=mask.shape[0],
    )


def label_map_to_proto(
    labels: npt.NDArray[np.uint8], wire: WireFormat = "png", version: int = 1
) -> common_pb2.Image:
    """A label map: image/x-raw-deflate for raw wire version 2, else as an image."""
    if wire != "raw" or version < 2:
        return image_to_proto(labels, wire)
    return common_pb2.Image(
        data=zlib.compress(imaging.encode_raw(labels), DEFLATE_LEVEL),
        media_type=RAW_DEFLATE_MEDIA_TYPE,
        width=labels.shape[1],
        height=labels.shape[0],
    )


def wire_of(message: common_pb2.Image) -> WireFormat:
    """The format to answer in: raw callers (our own services) get raw pixels back, everyone else PNG."""
    return "raw" if message.media_type in _RAW_FAMILY else "png"


_RAW_FAMILY = (imaging.RAW_MEDIA_TYPE, RAW_DEFLATE_MEDIA_TYPE, BITMASK_MEDIA_TYPE)


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
    if message.media_type == RAW_DEFLATE_MEDIA_TYPE:
        data = _inflate(message, field=field)
        return imaging.decode_raw(
            data, message.width, message.height, field=field, mode=mode, min_side=min_side, max_side=max_side
        )
    if message.media_type == BITMASK_MEDIA_TYPE:
        if mode != "L":
            raise StageInputError(f"{field}: {BITMASK_MEDIA_TYPE} is for masks only", field=field)
        return _bounded_nearest(_decode_bitmask(message, field=field), max_side)
    return imaging.decode_image(message.data, field=field, mode=mode, min_side=min_side, max_side=max_side)


def long_side(message: common_pb2.Image) -> int:
    """The image's long side in pixels, from its header (0 when unreadable: decoding will say why)."""
    if message.media_type in _RAW_FAMILY:
        return max(message.width, message.height)
    try:
        with Image.open(io.BytesIO(message.data)) as probe:
            return max(probe.size)
    except Exception:
        return 0


def _bounded_nearest(mask: Mask, max_side: int | None) -> Mask:
    if max_side is None or max(mask.shape) <= max_side:
        return mask
    height, width = shrunk_size(mask.shape[0], mask.shape[1], max_side)
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)


def image_as_sent_from_proto(
    message: common_pb2.Image, *, field: str, max_side: int | None = None
) -> npt.NDArray[np.uint8]:
    """An RGB or RGBA image as sent: raw RGB pixels stay RGB (an opaque alpha would only cost a copy),
    everything else is decoded as RGBA. ``data`` is read once: each read of a bytes field copies it."""
    if message.media_type == imaging.RAW_MEDIA_TYPE:
        data = message.data
        mode: imaging.ColourMode = "RGB" if len(data) == 3 * message.width * message.height else "RGBA"
        return imaging.decode_raw(
            data, message.width, message.height, field=field, mode=mode, max_side=max_side
        )
    return image_from_proto(message, field=field, mode="RGBA", max_side=max_side)


def _check_raw_size(message: common_pb2.Image, *, field: str) -> None:
    if message.width <= 0 or message.height <= 0:
        raise StageInputError(f"{field}: {message.media_type} needs its width and height", field=field)
    if message.width * message.height > imaging.MAX_PIXELS:
        raise StageInputError(
            f"{field}: image of {message.width}x{message.height} exceeds {imaging.MAX_PIXELS} pixels",
            field=field,
        )


def _inflate(message: common_pb2.Image, *, field: str) -> bytes:
    _check_raw_size(message, field=field)
    limit = message.width * message.height * 4  # the most an image/x-raw image of this size can be
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(message.data, limit)
    except zlib.error as error:
        raise StageInputError(f"{field}: not a zlib stream ({error})", field=field) from error
    if inflater.unconsumed_tail or not inflater.eof:
        raise StageInputError(
            f"{field}: the zlib stream does not hold one {message.width}x{message.height} image", field=field
        )
    return data


def _decode_bitmask(message: common_pb2.Image, *, field: str) -> Mask:
    _check_raw_size(message, field=field)
    pixels = message.width * message.height
    if len(message.data) != (pixels + 7) // 8:
        raise StageInputError(
            f"{field}: {len(message.data)} bytes do not make a {message.width}x{message.height} bitmask "
            f"({(pixels + 7) // 8} expected)",
            field=field,
        )
    bits = np.unpackbits(np.frombuffer(message.data, np.uint8), count=pixels)
    # 1 -> 255 without a multiplication: -1 as int8 is 255 as uint8.
    return np.negative(bits.view(np.int8)).view(np.uint8).reshape(message.height, message.width)


def mask_from_proto(
    message: common_pb2.Image, *, field: str, shape: tuple[int, int], max_side: int | None = None
) -> Mask:
    """Decode a mask and check it matches the person image (``shape`` = (height, width), after both are
    scaled to ``max_side``). Masks are scaled by nearest neighbour: their values are kinds, not tones."""
    mask = _bounded_nearest(image_from_proto(message, field=field, mode="L"), max_side)
    if mask.shape != shape:
        raise StageInputError(
            f"{field}: mask is {mask.shape[1]}x{mask.shape[0]} but the person image is {shape[1]}x{shape[0]}",
            field=field,
        )
    if message.media_type == BITMASK_MEDIA_TYPE:
        return mask  # 0/255 by construction
    # Masks may arrive anti-aliased or JPEG-compressed: below 128 is outside. Values above are kept: the
    # lite stages carry surface kinds in the clothing mask's values (tryon.vision.mask_kinds), and so is the
    # kinds below 128 that are sources, not edits (the backdrop, the person's visible skin).
    # cv2.threshold's TOZERO is that, in one pass (np.where made two temporaries of the frame).
    kept = cv2.threshold(mask, 127, 255, cv2.THRESH_TOZERO)[1]
    for kind in mask_kinds.SOURCE_KINDS:
        source = mask == kind
        if source.any():
            kept[source] = kind
    return kept


# ---------------------------------------------------------------------------------------------- patches


def changed_box(image: npt.NDArray[np.uint8], base: npt.NDArray[np.uint8] | None) -> tuple[slice, slice]:
    """The bounding box of the pixels of ``image`` that differ from ``base`` (``None``: from all zeros);
    empty slices when none does. Exact: every byte is compared."""
    height = image.shape[0]
    flat = image.reshape(height, -1)
    changed = flat if base is None else cv2.compare(flat, base.reshape(height, -1), cv2.CMP_NE)
    x, y, width, box_height = cv2.boundingRect(changed)
    if width == 0:
        return slice(0, 0), slice(0, 0)
    channels = 1 if image.ndim == 2 else image.shape[2]
    return slice(y, y + box_height), slice(x // channels, (x + width - 1) // channels + 1)


def patch_to_proto(
    image: npt.NDArray[np.uint8], base: npt.NDArray[np.uint8] | None, wire: WireFormat = "png"
) -> common_pb2.ImagePatch:
    """``image`` as the patch of its pixels that differ from ``base`` (``None``: transparent black)."""
    rows, cols = changed_box(image, base)
    if rows.stop == rows.start:
        return common_pb2.ImagePatch(image=common_pb2.Image(media_type=imaging.RAW_MEDIA_TYPE))
    return common_pb2.ImagePatch(image=image_to_proto(image[rows, cols], wire), x=cols.start, y=rows.start)


def patch_from_proto(
    message: common_pb2.ImagePatch,
    *,
    field: str,
    base: npt.NDArray[np.uint8],
    mode: imaging.ColourMode = "RGB",
) -> npt.NDArray[np.uint8]:
    """The full frame: a copy of ``base`` with the patch written at its place (checked to fit)."""
    frame = base.copy()
    image = message.image
    if image.width == 0 and image.height == 0 and not image.data:
        return frame
    pixels = _raw_view(image, channels=frame.shape[2] if frame.ndim == 3 else 1)
    if pixels is None:  # another encoding, or channels to convert: decode it first
        pixels = image_from_proto(image, field=f"{field}.image", mode=mode)
    height, width = pixels.shape[:2]
    if message.x + width > frame.shape[1] or message.y + height > frame.shape[0]:
        raise StageInputError(
            f"{field}: a {width}x{height} patch at ({message.x}, {message.y}) does not fit the "
            f"{frame.shape[1]}x{frame.shape[0]} image",
            field=field,
        )
    frame[message.y : message.y + height, message.x : message.x + width] = pixels.reshape(
        height, width, *frame.shape[2:]
    )
    return frame


def _raw_view(message: common_pb2.Image, *, channels: int) -> npt.NDArray[np.uint8] | None:
    """The pixels of an image/x-raw image of ``channels`` channels as a read-only (H, W, C) view of its
    bytes (no copy: a patch is written into its frame straight from it); None for anything else."""
    if message.media_type != imaging.RAW_MEDIA_TYPE or message.width <= 0 or message.height <= 0:
        return None
    data = message.data
    if len(data) != channels * message.width * message.height:
        return None
    return np.frombuffer(data, np.uint8).reshape(message.height, message.width, channels)


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
