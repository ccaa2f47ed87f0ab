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


# A long column dress (straps, a straight body flaring a little to an ankle-length hem): at the shoulders'
# width of a body of the usual proportions it would end well below the ankles.
COLUMN_DRESS = [
    (0.36, 0.04), (0.42, 0.04), (0.50, 0.09), (0.58, 0.04), (0.64, 0.04),
    (0.65, 0.30), (0.66, 0.60), (0.69, 0.97), (0.31, 0.97), (0.34, 0.60), (0.35, 0.30),
]  # fmt: skip


def outline_mask(outline: list[tuple[float, float]], size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """The silhouette (0/255) of an outline on the unit square, for an image of ``size`` = (width, height)."""
    width, height = size
    points = np.array([(x * width, y * height) for x, y in outline], dtype=np.float64)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 255, lineType=cv2.LINE_8, shift=4)
    return mask


def garment_mask(category: GarmentCategory, size: tuple[int, int] = (768, 1024)) -> npt.NDArray[np.uint8]:
    """The drawn garment's silhouette (0/255) for an image of ``size`` = (width, height)."""
    return outline_mask(OUTLINES[category], size)


def draw_garment(
    category: GarmentCategory = GarmentCategory.UPPER_BODY,
    color: Colour = (200, 30, 30),
    size: tuple[int, int] = (768, 1024),
    background: Colour = (245, 245, 245),
    rgba: bool = False,
    outline: list[tuple[float, float]] | None = None,
) -> npt.NDArray[np.uint8]:
    """A flat-lay garment of one colour, with a little fabric texture, on a plain background (or RGBA);
    the category's outline (:data:`OUTLINES`) unless ``outline`` is given."""
    mask = outline_mask(outline, size) if outline is not None else garment_mask(category, size)
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


# A fitted T-shirt with sleeves longer than they are wide (so a sleeve's axis is its principal axis), in a
# unit square: collar, the image-right sleeve (top edge, cuff, underside), the hem, the image-left sleeve.
_FITTED_TSHIRT = [
    (0.36, 0.08), (0.44, 0.06), (0.50, 0.12), (0.56, 0.06), (0.64, 0.08),
    (0.84, 0.26), (0.77, 0.33), (0.70, 0.24),
    (0.70, 0.92), (0.30, 0.92),
    (0.30, 0.24), (0.23, 0.33), (0.16, 0.26),
]  # fmt: skip


# A long-sleeved T-shirt: each sleeve runs from the shoulder, out and down at ~20 degrees, to a cuff at
# about half the garment's height (a sleeve as long as an arm, for a torso as wide as the shoulders).
_LONG_SLEEVED_TSHIRT = [
    (0.36, 0.08), (0.44, 0.06), (0.50, 0.12), (0.56, 0.06), (0.64, 0.08),
    (0.70, 0.10), (0.88, 0.44), (0.80, 0.48), (0.70, 0.26),
    (0.70, 0.92), (0.30, 0.92),
    (0.30, 0.26), (0.20, 0.48), (0.12, 0.44), (0.30, 0.10),
]  # fmt: skip


def two_tone_tshirt(
    size: tuple[int, int] = (768, 1024),
    torso_colour: Colour = (220, 190, 40),
    sleeve_colour: Colour = (30, 40, 130),
    background: Colour = (245, 245, 245),
    fitted: bool = True,
    long_sleeves: bool = False,
) -> npt.NDArray[np.uint8]:
    """A T-shirt whose sleeves (beyond its torso's sides) differ in colour from its torso, on a plain
    backdrop: the warped sleeves can be told from the torso by colour. Short sleeves: fitted, longer than
    wide, out at ~40 degrees; else the common cut (:data:`OUTLINES`): wide, out at ~30 degrees. Long
    sleeves: as long as an arm, out at ~20 degrees."""
    width, height = size
    if long_sleeves:
        shape, (left, right) = _LONG_SLEEVED_TSHIRT, (0.30, 0.70)
    else:
        shape, (left, right) = (_FITTED_TSHIRT, (0.30, 0.70)) if fitted else (_TSHIRT, (0.28, 0.72))
    mask = outline_mask(shape, size)
    columns = np.arange(width)[None, :]
    sleeves = (mask > 0) & ((columns < left * width - 1) | (columns > right * width + 1))
    image = np.empty((height, width, 3), np.uint8)
    image[:] = background
    image[mask > 0] = torso_colour
    image[sleeves] = sleeve_colour
    return image


def add_print(garment: npt.NDArray[np.uint8], mask: npt.NDArray[np.uint8], seed: int = 0) -> None:
    """Paint a print rich in corners and blobs (what SIFT matches) inside the middle of ``mask``, in place."""
    rng = np.random.default_rng(seed)
    ys, xs = np.nonzero(mask > 0)
    y0, y1 = np.percentile(ys, (30, 70)).astype(int)
    x0, x1 = np.percentile(xs, (30, 70)).astype(int)
    for _ in range(60):
        x, y = int(rng.integers(x0, x1)), int(rng.integers(y0, y1))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            size = int(rng.integers(6, 22))
            cv2.rectangle(garment, (x, y), (x + size, y + size // 2 + 3), colour, -1)
        else:
            cv2.circle(garment, (x, y), int(rng.integers(4, 14)), colour, -1)


def printed_garment(
    category: GarmentCategory = GarmentCategory.UPPER_BODY, size: tuple[int, int] = (768, 1024)
) -> npt.NDArray[np.uint8]:
    """A plain garment with a printed motif in its middle (for print-preservation measures)."""
    garment = draw_garment(category, color=(40, 90, 160), size=size)
    add_print(garment, garment_mask(category, size))
    return garment


def light_on_light_garment(
    category: GarmentCategory = GarmentCategory.UPPER_BODY, size: tuple[int, int] = (768, 1024)
) -> npt.NDArray[np.uint8]:
    """A white garment on a light studio backdrop with vignetting: the commonest hard product photo.

    The garment (~250) is closer to the backdrop (~228-240) than any fixed colour threshold would allow;
    only a faint seam shadow along its outline and the backdrop's smooth gradient tell them apart.
    """
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = np.hypot((xx - width / 2) / width, (yy - height / 2) / height)
    backdrop = (240.0 - 24.0 * radius**2)[..., None] * np.ones(3, np.float32)
    mask = garment_mask(category, size)
    garment = np.full((height, width, 3), 251.0, np.float32)
    garment += (np.sin(np.arange(width) / 3.0)[None, :] * 1.5)[..., None]
    image = np.where(mask[..., None] > 0, garment, backdrop)
    outline = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) > 0
    image[outline] -= 14.0  # the seam / soft shadow every product photo has at the garment's edge
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def garment_with_backdrop_coloured_patches(
    category: GarmentCategory = GarmentCategory.LOWER_BODY, size: tuple[int, int] = (768, 1024)
) -> npt.NDArray[np.uint8]:
    """A denim-blue garment with 40 patches of the backdrop's own colour inside it (the white frays of
    ripped jeans), on that backdrop: its mask is :func:`garment_mask`."""
    mask = garment_mask(category, size)
    garment = draw_garment(category, color=(60, 90, 150), size=size, background=(245, 245, 245))
    rng = np.random.default_rng(3)
    ys, xs = np.nonzero(cv2.erode(mask, np.ones((25, 25), np.uint8)))
    for index in rng.choice(len(ys), 40, replace=False):
        axes = (int(rng.integers(8, 22)), int(rng.integers(4, 10)))
        angle = float(rng.integers(0, 180))
        cv2.ellipse(garment, (int(xs[index]), int(ys[index])), axes, angle, 0, 360, (245, 245, 245), -1)
    return garment


def white_striped_garment(size: tuple[int, int] = (768, 1024)) -> npt.NDArray[np.uint8]:
    """A rectangle of navy and white stripes (12 px each), the white exactly the backdrop's colour, with
    the soft shadow a product photo has round the garment: its white stripes can be told from the backdrop
    by shape only. The garment spans x 200-567 and y 150-899."""
    width, height = size
    image = np.full((height, width, 3), 246.0, np.float32)
    shadow = np.zeros((height, width), np.float32)
    shadow[148:902, 198:570] = 1.0
    image *= (1.0 - 0.1 * cv2.GaussianBlur(shadow, (0, 0), 2.0))[..., None]
    white = (np.arange(height) // 12) % 2 == 1
    stripes = np.where(white[:, None], 246.0, np.array((30.0, 35.0, 60.0))[None, :])
    image[150:900, 200:568] = stripes[150:900, None, :]
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def unevenly_lit_garment(size: tuple[int, int] = (768, 1024)) -> npt.NDArray[np.uint8]:
    """A printed white T-shirt on a grey backdrop lit by a spot beside it: a bright patch the border's
    colours do not predict (it is off the straight line between them), touching the garment's side."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    across, down = (xx - 0.86 * width) / (0.12 * width), (yy - 0.3 * height) / (0.2 * height)
    spot = np.exp(-(across**2) - down**2)
    backdrop = (196.0 + 30.0 * spot)[..., None] * np.ones(3, np.float32)
    mask = garment_mask(GarmentCategory.UPPER_BODY, size)
    garment = np.full((height, width, 3), 250.0, np.float32)
    garment += (np.sin(np.arange(width) / 3.0)[None, :] * 1.5)[..., None]
    image = np.where(mask[..., None] > 0, garment, backdrop)
    image = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    add_print(image, mask)
    return image


def person_as_garment_photo() -> npt.NDArray[np.uint8]:
    """A photo of a person where a garment photo is expected: the astronaut on a plain studio backdrop.

    The backdrop is the colour beside her face, painted around the photo's border and beside the head, as a
    studio shot of a person would look to the warp stage.
    """
    photo = skimage.data.astronaut().copy()  # 512 x 512, face around (x 180-290, y 70-200)
    backdrop = (205, 205, 210)
    photo[:, :40] = backdrop
    photo[:, -40:] = backdrop
    photo[:20] = backdrop
    photo[:, 40:150][:260] = backdrop  # beside the head: the studio wall
    photo[:, 330:472][:230] = backdrop
    return photo


def face_print_garment() -> npt.NDArray[np.uint8]:
    """A T-shirt with the astronaut's face printed on its chest: fabric, not backdrop, beside the face."""
    garment = draw_garment(GarmentCategory.UPPER_BODY, color=(20, 20, 20), size=(768, 1024))
    face = skimage.data.astronaut()[40:230, 150:320]
    garment[380 : 380 + face.shape[0], 300 : 300 + face.shape[1]] = face
    return garment


def png_header_only(width: int, height: int, colour_type: int = 0) -> bytes:
    """A PNG claiming ``width`` x ``height`` in its header with no pixel data: a decompression bomb's
    header in a few dozen bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
