"""Image codec shared by every process: decode with EXIF orientation and limits, encode PNG, resize.

Decoding is where untrusted bytes enter the system, so every failure becomes a :class:`StageInputError`
naming the field, and decompression bombs are refused before pixels are allocated.
"""

from __future__ import annotations

import io
import warnings
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from tryon.types import StageInputError
from tryon.vision.images import shrunk_size

#: Larger than any photo a phone takes (50 MP) and far below what would exhaust memory. Checked from the
#: image header, before any pixel is decoded.
MAX_PIXELS = 64_000_000
#: Pillow's own bomb check (at open) then refuses anything over twice this, instead of its 179 MP default.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
#: People are processed with their long side at most this (the working resolution of every stage).
WORKING_LONG_SIDE = 1024
#: Garment photos are warped from at most this long side: more detail than the 1024 px output can show
#: only costs decode and warp time.
GARMENT_LONG_SIDE = 1024
#: A person photo smaller than this on its short side has too little detail for pose and segmentation.
MIN_PERSON_SIDE = 128
#: A garment photo smaller than this on its short side has too little detail to warp.
MIN_GARMENT_SIDE = 64

ColourMode = Literal["RGB", "RGBA", "L"]
#: Uncompressed pixels for hops between our own services: uint8, row-major, channels interleaved; the
#: message's width and height give the shape, the byte count the channels (1, 3 or 4). PNG costs tens of
#: milliseconds per 1024 px image to encode and decode, more than a lite stage's own work.
RAW_MEDIA_TYPE = "image/x-raw"
#: MPO is how Pillow names the multi-picture JPEGs many phones write (the first picture is the photo).
_MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "MPO": "image/jpeg", "WEBP": "image/webp"}


def decode_image(
    data: bytes,
    *,
    field: str = "image",
    mode: ColourMode = "RGB",
    min_side: int = 1,
    max_side: int | None = None,
) -> npt.NDArray[np.uint8]:
    """Decode PNG/JPEG/WebP bytes into a uint8 array (``(H, W, 3|4)`` or ``(H, W)`` for ``L``).

    EXIF orientation is applied, so a portrait phone photo comes out upright. The pixel count is checked
    from the header before decoding (decompression bombs). With ``max_side`` the image is scaled down to
    that long side while it is decoded (JPEGs decode at a reduced scale directly), so a huge photo never
    reaches the caller at full size.
    """
    if not data:
        raise StageInputError(f"{field}: empty image", field=field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                if probe.format not in _MEDIA_TYPES:
                    raise StageInputError(
                        f"{field}: unsupported image format {probe.format!r} (use PNG, JPEG or WebP)",
                        field=field,
                    )
                _check_pixels(probe.width, probe.height, field)
                if max_side is not None and max(probe.size) > max_side and probe.format == "JPEG":
                    # Decode at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling): memory follows the output.
                    draft_height, draft_width = shrunk_size(probe.height, probe.width, max_side)
                    probe.draft(probe.mode, (draft_width, draft_height))
                converted = _convert(ImageOps.exif_transpose(probe), mode)
                if max_side is not None and max(converted.size) > max_side:
                    height, width = working_size(converted.height, converted.width, max_side)
                    converted = converted.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    except StageInputError:
        raise
    except Image.DecompressionBombError as error:
        raise StageInputError(f"{field}: image exceeds {MAX_PIXELS} pixels ({error})", field=field) from error
    except UnidentifiedImageError as error:  # its message is Pillow's repr of our buffer: say what it means
        raise StageInputError(
            f"{field}: not a readable image (not PNG, JPEG or WebP data)", field=field
        ) from error
    except (OSError, ValueError, Image.DecompressionBombWarning) as error:
        raise StageInputError(f"{field}: not a readable image ({error})", field=field) from error
    if min(converted.size) < min_side:
        raise StageInputError(
            f"{field}: image of {converted.width}x{converted.height} is too small "
            f"(the short side must be at least {min_side} px)",
            field=field,
        )
    return np.asarray(converted, dtype=np.uint8).copy()


def _check_pixels(width: int, height: int, field: str) -> None:
    if width * height > MAX_PIXELS:
        raise StageInputError(f"{field}: image of {width}x{height} exceeds {MAX_PIXELS} pixels", field=field)


#: Pillow modes of 16-bit (and 32-bit integer) grayscale, e.g. 16-bit PNGs.
_WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _convert(image: Image.Image, mode: ColourMode) -> Image.Image:
    """``image.convert(mode)``, except that 16-bit grayscale keeps its tones: Pillow's own conversion
    clips every value above 255 to white."""
    if image.mode in _WIDE_GRAY_MODES:
        wide = np.asarray(image).astype(np.uint32)
        image = Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8), mode="L")
    return image.convert(mode)


def encode_raw(image: npt.NDArray[np.uint8]) -> bytes:
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"cannot encode an array of shape {image.shape} and type {image.dtype}")
    # A crop (a strided view) copied contiguous first: ndarray.tobytes walks a non-contiguous array element
    # by element, ~80x slower than this strided copy plus memcpy (16 ms vs 0.2 ms for a 1 MB patch).
    return np.ascontiguousarray(image).tobytes()


def decode_raw(
    data: bytes,
    width: int,
    height: int,
    *,
    field: str = "image",
    mode: ColourMode = "RGB",
    min_side: int = 1,
    max_side: int | None = None,
) -> npt.NDArray[np.uint8]:
    """Decode :data:`RAW_MEDIA_TYPE` pixels, converting channels to ``mode`` and scaling down to
    ``max_side`` as :func:`decode_image` does."""
    if width <= 0 or height <= 0:
        raise StageInputError(f"{field}: a raw image needs its width and height", field=field)
    _check_pixels(width, height, field)
    channels, remainder = divmod(len(data), width * height)
    if remainder or channels not in (1, 3, 4):
        raise StageInputError(
            f"{field}: {len(data)} bytes of raw pixels do not make a {width}x{height} image "
            "of 1, 3 or 4 channels",
            field=field,
        )
    if min(width, height) < min_side:
        raise StageInputError(
            f"{field}: image of {width}x{height} is too small "
            f"(the short side must be at least {min_side} px)",
            field=field,
        )
    pixels = np.frombuffer(data, np.uint8).reshape(height, width, channels)
    if max_side is not None and max(width, height) > max_side:
        pixels = to_working_resolution(pixels, max_side)
        if channels == 1:
            pixels = pixels[..., np.newaxis]  # cv2.resize drops a single channel axis
        height, width = pixels.shape[:2]
    return _convert_channels(pixels, channels, mode)


def _convert_channels(
    pixels: npt.NDArray[np.uint8], channels: int, mode: ColourMode
) -> npt.NDArray[np.uint8]:
    """``pixels`` (H, W, channels), read-only, as a writable array of ``mode`` owned by the caller: one
    copy when the channels already match (the usual case on the wire), one conversion otherwise."""
    if mode == "L":
        if channels == 1:
            return pixels[..., 0].copy()
        return cv2.cvtColor(np.ascontiguousarray(pixels[..., :3]), cv2.COLOR_RGB2GRAY)
    if mode == "RGB":
        if channels == 3:
            return pixels.copy()
        if channels == 1:
            return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB)
    if channels == 4:
        return pixels.copy()
    # An image without alpha is opaque.
    return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGBA if channels == 1 else cv2.COLOR_RGB2RGBA)


def sniff_media_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def encode_png(image: npt.NDArray[np.uint8], *, compression: int = 1) -> bytes:
    """Encode RGB, RGBA or single-channel uint8 arrays as PNG.

    OpenCV's encoder is several times faster than Pillow's at 1024 px; level 1 keeps the bytes small enough
    for the wire while costing a few milliseconds. The output is deterministic for a given array.
    """
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    elif image.ndim == 2:
        bgr = image
    else:
        raise ValueError(f"cannot encode an array of shape {image.shape}")
    ok, buffer = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:  # pragma: no cover - OpenCV only fails on invalid arrays, rejected above
        raise ValueError("PNG encoding failed")
    return buffer.tobytes()


def working_size(height: int, width: int, long_side: int = WORKING_LONG_SIDE) -> tuple[int, int]:
    """The (height, width) with the long side ``long_side`` and the aspect ratio kept (nothing stretched)."""
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_to(image: npt.NDArray[np.uint8], height: int, width: int) -> npt.NDArray[np.uint8]:
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interpolation)


def to_working_resolution(
    image: npt.NDArray[np.uint8], long_side: int = WORKING_LONG_SIDE
) -> npt.NDArray[np.uint8]:
    return resize_to(image, *working_size(image.shape[0], image.shape[1], long_side))
