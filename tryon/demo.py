"""The built-in example: a person photo and garments the project may ship, for a first run with no photos.

* The person is NASA's portrait of astronaut Eileen Collins (public domain: "no known copyright
  restrictions"), the same file scikit-image distributes as ``skimage.data.astronaut()``; a lossless copy
  ships in ``tryon/data/astronaut.png`` so the example needs nothing beyond the base install. It shows the
  upper body only, so the example garment is an upper-body one.
* The garment is drawn here: a flat-lay T-shirt with a printed emblem on a light studio background, the
  kind of product photo the lite backend is built for. Drawn, so it is ours to ship.

``tryon demo`` runs the main job on them; the gateway serves them as ``/api/examples/*.png`` for the web
page's "try the example" control.
"""

from __future__ import annotations

from importlib import resources

import cv2
import numpy as np
import numpy.typing as npt

from tryon import imaging
from tryon.types import GarmentCategory, RGBImage, StageInputError

#: The categories the example person allows (the photo ends at the waist).
EXAMPLE_CATEGORIES = (GarmentCategory.UPPER_BODY,)
PERSON_CREDIT = "NASA portrait of astronaut Eileen Collins (public domain), as shipped by scikit-image"

# A T-shirt laid flat, front view, on a unit square (x right, y down), clockwise from the left shoulder.
_TSHIRT_OUTLINE = (
    (0.35, 0.10), (0.43, 0.07), (0.50, 0.12), (0.57, 0.07), (0.65, 0.10),  # collar
    (0.88, 0.23), (0.80, 0.37), (0.71, 0.32),  # sleeve on the image right
    (0.71, 0.92), (0.29, 0.92),  # hem
    (0.29, 0.32), (0.20, 0.37), (0.12, 0.23),  # sleeve on the image left
)  # fmt: skip
_FABRIC = (38, 70, 140)  # denim blue
_PRINT = (244, 196, 48)  # yellow emblem
_BACKGROUND = (236, 236, 233)  # light studio grey


def example_person() -> RGBImage:
    """The example person photo (512 x 512 RGB)."""
    data = resources.files("tryon").joinpath("data/astronaut.png").read_bytes()
    return imaging.decode_image(data, field="person")


def example_garment(
    category: GarmentCategory = GarmentCategory.UPPER_BODY, size: tuple[int, int] = (768, 1024)
) -> RGBImage:
    """The example garment for ``category``, ``size`` = (width, height), as a product photo would show it."""
    category = GarmentCategory(category)
    if category not in EXAMPLE_CATEGORIES:
        raise StageInputError(
            f"category: the example person shows only the upper body; examples exist for "
            f"{', '.join(c.value for c in EXAMPLE_CATEGORIES)}",
            field="category",
        )
    width, height = size
    outline = np.array([(x * width, y * height) for x, y in _TSHIRT_OUTLINE], np.float64)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(outline * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)

    garment = np.empty((height, width, 3), np.float32)
    garment[:] = _FABRIC
    # A soft weave and a little shading from the top, so the fabric is not a flat fill.
    rows = np.linspace(1.06, 0.92, height, dtype=np.float32)[:, None, None]
    weave = (np.sin(np.arange(width, dtype=np.float32) / 2.5) * 4)[None, :, None]
    garment = garment * rows + weave
    _draw_emblem(garment, centre=(0.5 * width, 0.36 * height), radius=0.09 * width)

    photo = np.empty((height, width, 3), np.float32)
    photo[:] = _BACKGROUND
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    return np.clip(garment * alpha + photo * (1 - alpha), 0, 255).astype(np.uint8)


def _draw_emblem(canvas: npt.NDArray[np.float32], centre: tuple[float, float], radius: float) -> None:
    """A printed star in a ring with a bar beneath: a logo-like print whose preservation one can see."""
    cx, cy = centre
    cv2.circle(canvas, (round(cx), round(cy)), round(radius), _PRINT, round(radius * 0.14), cv2.LINE_AA)
    angles = np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, radius * 0.72, radius * 0.3)
    star = np.stack([cx + radii * np.cos(angles), cy - radii * np.sin(angles)], axis=1)
    cv2.fillPoly(canvas, [np.round(star * 16).astype(np.int32)], _PRINT, cv2.LINE_AA, shift=4)
    bar_top = round(cy + radius * 1.35)
    cv2.rectangle(
        canvas,
        (round(cx - radius * 1.1), bar_top),
        (round(cx + radius * 1.1), bar_top + round(radius * 0.28)),
        _PRINT,
        thickness=-1,
    )


def side_by_side(
    person: RGBImage, garment: RGBImage, result: RGBImage, gap: int = 8
) -> npt.NDArray[np.uint8]:
    """``person | garment | result`` at the result's height on a white strip (garment RGBA flattened)."""
    height = result.shape[0]
    panels = []
    for image in (person, garment, result):
        if image.shape[2] == 4:
            alpha = image[..., 3:].astype(np.float32) / 255.0
            image = (image[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
        width = max(1, round(image.shape[1] * height / image.shape[0]))
        panels.append(imaging.resize_to(image, height, width))
    spacer = np.full((height, gap, 3), 255, np.uint8)
    return np.concatenate([panels[0], spacer, panels[1], spacer, panels[2]], axis=1)
