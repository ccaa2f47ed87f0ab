"""Synthetic test images: garments drawn as polygons on plain backgrounds, and a person photo from skimage.

Tests must not depend on the licensed sample photos, so they draw their own garments here. Shapes are
flat-lay silhouettes as a product photo shows them, front view (the wearer's right on the image left).
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import numpy.typing as npt
import skimage.data

from tryon import imaging
from tryon.types import GarmentCategory

Colour = tuple[int, int, int]

# Outlines on a unit square (x right, y down), traced clockwise from the left shoulder/waist.
_TSHIRT = [
    (0.36, 0.08), (0.44, 0.06), (0.50, 0.12), (0.56, 0.06), (0.64, 0.08),  # collar
    (0.88, 0.22), (0.80, 0.36), (0.72, 0.31),  # right-hand sleeve
    (0.72, 0.92), (0.28, 0.92),  # hem
    (0.28, 0.31), (0.20, 0.36), (0.12, 0.22),  # left-hand sleeve
]  # fmt: skip
_TROUSERS = [
    (0.30, 0.06), (0.70, 0.06), (0.76, 0.94), (0.56, 0.94), (0.50, 0.36), (0.44, 0.94), (0.24, 0.94),
]  # fmt: skip
_DRESS = [
    (0.38, 0.05), (0.46, 0.05), (0.50, 0.10), (0.54, 0.05), (0.62, 0.05),  # straps and neckline
    (0.64, 0.30), (0.60, 0.42), (0.80, 0.95), (0.20, 0.95), (0.40, 0.42), (0.36, 0.30),
]  # fmt: skip
OUTLINES = {
    GarmentCategory.UPPER_BODY: _TSHIRT,
    GarmentCategory.LOWER_BODY: _TROUSERS,
    GarmentCategory.DRESS: _DRESS,
}


def garment_mask(category: GarmentCategory, size: tuple[int, int] = (768, 1024)) -> npt.NDArray[np.uint8]:
    """The drawn garment's silhouette (0/255) for an image of ``size`` = (width, height)."""
    width, height = size
    outline = np.array([(x * width, y * height) for x, y in OUTLINES[category]], dtype=np.float64)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(outline * 16).astype(np.int32)], 255, lineType=cv2.LINE_8, shift=4)
    return mask


def draw_garment(
    category: GarmentCategory = GarmentCategory.UPPER_BODY,
    color: Colour = (200, 30, 30),
    size: tuple[int, int] = (768, 1024),
    background: Colour = (245, 245, 245),
    rgba: bool = False,
) -> npt.NDArray[np.uint8]:
    """A flat-lay garment of one colour, with a little fabric texture, on a plain background (or RGBA)."""
    mask = garment_mask(category, size)
    height, width = mask.shape
    # Gentle deterministic texture (weave-like stripes) so the garment is not a perfectly flat fill.
    texture = (np.sin(np.arange(width) / 3.0)[None, :] * 3).astype(np.float32)
    garment = np.clip(np.array(color, np.float32)[None, None, :] + texture[..., None], 0, 255).astype(
        np.uint8
    )
    if rgba:
        image = np.zeros((height, width, 4), np.uint8)
        image[..., :3] = np.where(mask[..., None] > 0, garment, 0)
        image[..., 3] = mask
        return image
    image = np.empty((height, width, 3), np.uint8)
    image[:] = background
    return np.where(mask[..., None] > 0, garment, image).astype(np.uint8)


def person_photo(long_side: int = 1024) -> npt.NDArray[np.uint8]:
    """skimage's astronaut (a person, upper body, facing the camera) at the working resolution."""
    return imaging.to_working_resolution(skimage.data.astronaut(), long_side)


def png_header_only(width: int, height: int, colour_type: int = 0) -> bytes:
    """A PNG claiming ``width`` x ``height`` in its header with no pixel data: a decompression bomb's
    header in a few dozen bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
