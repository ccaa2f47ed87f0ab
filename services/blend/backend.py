"""Blend: put the generated garment region back into the original photo.

The inpaint stage's output may differ from the photo outside the garment (a diffusion model's VAE round
trip drifts colours and softens detail). Blending keeps the photo everywhere but the garment:

1. **Colour match.** A per-channel tone curve maps the generated image's pixels *outside* the (dilated)
   clothing mask onto the original's (quantile matching), and is applied to the whole generated image, so
   a global colour cast of the generator is undone on the garment too. Where the generated image already
   agrees with the photo outside the garment (the lite inpainter), the curve is the identity.
2. **Poisson clone.** The region (clothing mask, slightly dilated) is cloned into the photo with
   ``cv2.seamlessClone`` in ``NORMAL_CLONE`` mode: generated gradients inside, the photo on the region's
   edge, i.e. the generated image plus a harmonic correction of the mismatch along that edge.
   ``MIXED_CLONE`` keeps the stronger of the two gradients and would bring the old garment's folds and
   prints back. Because the region's edge lies outside the garment, where the generated image continues
   the photo, the correction is only the generator's residual drift there: a garment is not pulled
   towards the colours around it (pasted against a different background, NORMAL_CLONE would). The
   correction is smooth, so it is solved at reduced resolution on the region's bounding box and
   upsampled; the full-resolution detail is the generated image's own.
3. **Composite.** The clone inside the clothing mask, ramping to the original over the dilation band;
   outside the dilated mask the output *is* the original, bit-exact.
4. **Face restore.** The original face under the face mask, feathered outwards over the non-garment
   pixels around it.

An empty face mask (a photo cropped below the chin, a back view) is valid: there is no face to restore.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from tryon.stages import SINGLE_IMPLEMENTATION
from tryon.types import BackendInfo, BlendInput, BlendOutput, RGBImage
from tryon.vision.images import shrink_factor

FloatImage = npt.NDArray[np.float32]
BoolMask = npt.NDArray[np.bool_]

#: The clothing mask grows by this fraction of the long side into the cloned region: the seam then lies
#: where the generated image continues the photo, and the composite ramps back to the photo over it.
REGION_DILATION = 0.006
#: The face mask's feather, as a fraction of the long side.
FACE_FEATHER = 0.006
#: The Poisson correction is solved at this long side (of the region's bounding box).
POISSON_LONG_SIDE = 192
#: The solve's region grows by this many solver pixels beyond the (downscaled) region: OpenCV erodes the
#: mask by 3 px before taking the generated image's gradients.
POISSON_GUARD = 4
#: Quantiles matched by the colour curve; the ends are trimmed so a few outliers cannot bend it.
MATCH_QUANTILES = np.linspace(0.01, 0.99, 50)
#: The colour curve never moves a level further than this: a larger "drift" means the two images show
#: different things, not the same thing in different colours.
MATCH_MAX_SHIFT = 48.0
#: Fewer non-garment pixels than this (fraction of the image) carry no reliable colour statistics.
MATCH_MIN_FRACTION = 0.02
WARMUP_SIZE = (256, 192)


class Blender:
    """Colour match + Poisson clone + face restore (CPU, deterministic, thread-safe)."""

    def setup(self) -> None:
        """Nothing to load; one small run so the first request pays no OpenCV first-call costs."""
        height, width = WARMUP_SIZE
        person = np.full((height, width, 3), 128, np.uint8)
        generated = person.copy()
        clothing = np.zeros((height, width), np.uint8)
        clothing[height // 3 :, width // 4 : 3 * width // 4] = 255
        generated[clothing > 0] = (200, 30, 30)
        face = np.zeros((height, width), np.uint8)
        face[height // 10 : height // 4, width // 3 : 2 * width // 3] = 255
        self.run(BlendInput(person=person, generated=generated, clothing_mask=clothing, face_mask=face))

    def run(self, inputs: BlendInput, /) -> BlendOutput:
        inputs.validate()
        person = inputs.person
        height, width = person.shape[:2]
        long_side = max(height, width)
        clothing = inputs.clothing_mask > 127
        face = inputs.face_mask > 127

        dilation = max(2, round(REGION_DILATION * long_side))
        region = cv2.dilate(clothing.astype(np.uint8), _disk(dilation)).astype(bool)
        rows, cols = _bounding_box(region)
        scale = shrink_factor(rows.stop - rows.start, cols.stop - cols.start, POISSON_LONG_SIDE)
        # Photo pixels around the region, enough for the solver's guard band: its boundary is the photo.
        rows, cols = _bounding_box(region, margin=dilation + math.ceil((POISSON_GUARD + 2) / scale))

        generated = match_colours(inputs.generated, person, reference_pixels=~region)
        person_box = person[rows, cols]
        region_box = region[rows, cols]
        cloned = poisson_clone(generated[rows, cols], person_box, region_box, scale=scale)

        # 1 on the clothing mask, ramping to 0 at the dilated region's edge.
        weight = np.clip(_inside_distance(region_box) / dilation, 0.0, 1.0)
        weight[clothing[rows, cols]] = 1.0
        weight = weight[..., None]
        blended = person_box.astype(np.float32) * (1.0 - weight) + cloned * weight

        image = person.copy()
        image[rows, cols] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        if face.any():
            restore_face(image, person, face, clothing, feather=max(2, round(FACE_FEATHER * long_side)))
        return BlendOutput(image=image)

    def info(self) -> BackendInfo:
        return BackendInfo(stage="blend", backend=SINGLE_IMPLEMENTATION, device="cpu", models=())


# ---------------------------------------------------------------------------------------------- steps


def match_colours(generated: RGBImage, original: RGBImage, *, reference_pixels: BoolMask) -> RGBImage:
    """``generated`` through per-channel tone curves that map its ``reference_pixels`` onto the original's.

    The curves interpolate matched quantiles linearly and continue with slope 1 beyond them, so colours
    the reference pixels do not contain (the new garment's) move by the drift at the nearest quantile
    rather than being clamped. Identical reference pixels give identity curves.
    """
    count = int(reference_pixels.sum())
    if count < MATCH_MIN_FRACTION * reference_pixels.size:
        return generated
    reference_mask = reference_pixels.astype(np.uint8)
    levels = np.arange(256, dtype=np.float64)
    curves = []
    for channel in range(3):
        source = _quantiles(generated, channel, reference_mask)
        target = _quantiles(original, channel, reference_mask)
        curves.append(_tone_curve(levels, source, target))
    lut = np.clip(np.stack(curves, axis=-1) + 0.5, 0, 255).astype(np.uint8).reshape(256, 1, 3)
    if all(np.array_equal(lut[:, 0, channel], levels) for channel in range(3)):
        return generated
    return cv2.LUT(generated, lut)


def poisson_clone(generated: RGBImage, original: RGBImage, region: BoolMask, *, scale: float) -> FloatImage:
    """``generated`` plus the harmonic correction that makes it meet ``original`` at ``region``'s edge.

    ``seamlessClone(NORMAL_CLONE)`` solved at ``scale``; the correction (clone minus generated, smooth by
    construction) is upsampled and added at full resolution. Float32 RGB.
    """
    height, width = region.shape
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small_generated = cv2.resize(generated, small_size, interpolation=cv2.INTER_AREA)
    small_original = cv2.resize(original, small_size, interpolation=cv2.INTER_AREA)
    small_region = cv2.resize(region.astype(np.uint8) * 255, small_size, interpolation=cv2.INTER_AREA) > 0

    # seamlessClone needs the region strictly inside the image (it clears the mask's outer ring). A region
    # touching the image border continues into a padding of the *generated* image's reflection, so the
    # border imposes no correction (the photo beyond it is unknown), rather than pulling towards the photo.
    pad = POISSON_GUARD + 2
    padded_generated = cv2.copyMakeBorder(small_generated, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    padded_original = padded_generated.copy()
    padded_original[pad:-pad, pad:-pad] = small_original
    padded_region = np.pad(small_region, pad, mode="edge").astype(np.uint8) * 255
    # OpenCV erodes the mask by 3 px before taking the generated gradients: grow it by more, so every
    # generated edge (the garment's silhouette) keeps its own gradient instead of the photo's.
    padded_region = cv2.dilate(padded_region, _disk(POISSON_GUARD))
    padded_region[[0, -1]] = 0
    padded_region[:, [0, -1]] = 0

    x, y, box_width, box_height = cv2.boundingRect(padded_region)
    # OpenCV places the mask's bounding box at centre - size // 2: this centre puts it back where it was.
    centre = (x + box_width // 2, y + box_height // 2)
    padded_clone = cv2.seamlessClone(
        padded_generated, padded_original, padded_region, centre, cv2.NORMAL_CLONE
    )
    # OpenCV truncates its float solution to uint8, a bias of up to -1 level; cloning the generated image
    # into itself has the same bias and no correction, so the difference of the two is the correction.
    padded_baseline = cv2.seamlessClone(
        padded_generated, padded_generated, padded_region, centre, cv2.NORMAL_CLONE
    )
    small_correction = (
        padded_clone[pad:-pad, pad:-pad].astype(np.float32) - padded_baseline[pad:-pad, pad:-pad]
    )
    correction = cv2.resize(small_correction, (width, height), interpolation=cv2.INTER_LINEAR)
    return generated.astype(np.float32) + correction


def restore_face(
    image: RGBImage, original: RGBImage, face: BoolMask, clothing: BoolMask, *, feather: int
) -> None:
    """Put the original face back into ``image`` (in place): weight 1 on the face, ramping to 0 over
    ``feather`` px around it, and 0 on the new garment (it wins where the two masks meet)."""
    rows, cols = _bounding_box(cv2.dilate(face.astype(np.uint8), _disk(feather)).astype(bool))
    outside_face = ~face[rows, cols]
    distance = cv2.distanceTransform(outside_face.astype(np.uint8), cv2.DIST_L2, 5)
    weight = np.clip(1.0 - distance / (feather + 1), 0.0, 1.0)
    weight[clothing[rows, cols] & outside_face] = 0.0
    weight = weight[..., None]
    restored = image[rows, cols].astype(np.float32) * (1.0 - weight) + original[rows, cols] * weight
    image[rows, cols] = np.clip(restored + 0.5, 0, 255).astype(np.uint8)


def _quantiles(image: RGBImage, channel: int, mask: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """:data:`MATCH_QUANTILES` of one channel of ``image`` under ``mask``, via its histogram (no sort)."""
    histogram = cv2.calcHist([image], [channel], mask, [256], [0, 256])[:, 0].astype(np.float64)
    cdf = np.cumsum(histogram) / histogram.sum()
    return np.searchsorted(cdf, MATCH_QUANTILES, side="left").astype(np.float64)


def _tone_curve(
    levels: npt.NDArray[np.float64], source: npt.NDArray[np.float64], target: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Piecewise-linear curve through (source, target) knots, slope 1 outside them, shift capped."""
    knots, inverse = np.unique(source, return_inverse=True)
    knot_targets = np.bincount(inverse, weights=target) / np.bincount(inverse)
    curve = np.interp(levels, knots, knot_targets)
    below, above = levels < knots[0], levels > knots[-1]
    curve[below] = levels[below] + (knot_targets[0] - knots[0])
    curve[above] = levels[above] + (knot_targets[-1] - knots[-1])
    return levels + np.clip(curve - levels, -MATCH_MAX_SHIFT, MATCH_MAX_SHIFT)


def _inside_distance(region: BoolMask) -> FloatImage:
    """Distance (px) of each region pixel to the nearest pixel outside it; 0 outside. The region is
    padded with its own edge, so the image border does not count as outside."""
    padded = np.pad(region, 1, mode="edge").astype(np.uint8)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]


def _disk(radius: int) -> npt.NDArray[np.uint8]:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _bounding_box(mask: BoolMask, *, margin: int = 0) -> tuple[slice, slice]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    return (
        slice(max(0, rows[0] - margin), min(height, rows[-1] + 1 + margin)),
        slice(max(0, cols[0] - margin), min(width, cols[-1] + 1 + margin)),
    )
