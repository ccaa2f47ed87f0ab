"""bench/invariance_lite.py's variants and how a person variant's result is mapped back onto the plain
frame (a wrong mapping would read as the pipeline's variance)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

SCRIPT_DIR = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(SCRIPT_DIR))
import invariance_lite  # noqa: E402


def _person_mask(height: int = 400, width: int = 300) -> npt.NDArray[np.bool_]:
    mask = np.zeros((height, width), bool)
    mask[80:360, 120:180] = True
    return mask


@pytest.mark.parametrize("frame_scale", [1.0, 2.0, 0.5])
def test_a_shifted_photos_result_maps_back_onto_the_plain_frame(frame_scale: float) -> None:
    """The result frame may be the photo at another size (the pipeline's working resolution)."""
    mask = _person_mask()
    shifted = invariance_lite.person_shift((mask * 255).astype(np.uint8)) > 127
    frame = (round(mask.shape[0] * frame_scale), round(mask.shape[1] * frame_scale))
    in_frame = invariance_lite.onto(shifted, frame)
    back = invariance_lite.back_from_shift(in_frame, mask.shape[1])
    assert invariance_lite.iou(invariance_lite.onto(back, mask.shape), mask) >= 0.97
    assert invariance_lite.iou(invariance_lite.onto(in_frame, mask.shape), mask) < 0.5  # it did move


def test_the_margin_variant_centres_the_photo_and_continues_its_backdrop() -> None:
    photo = np.full((100, 80, 3), 230, np.uint8)
    photo[:, :40] = 220  # a backdrop shading from left to right
    photo[20:80, 20:60] = (200, 30, 30)
    framed = invariance_lite.garment_margin(photo)
    assert framed.shape == (200, 160, 3)
    assert np.array_equal(framed[50:150, 40:120], photo)
    assert (framed[:, :40] == 220).all() and (framed[:, 120:] == 230).all()
    assert (framed[:50, 40:80] == 220).all() and (framed[150:, 80:120] == 230).all()


def test_the_tilt_variant_turns_the_photo_by_its_angle() -> None:
    photo = np.full((400, 300, 3), 240, np.uint8)
    photo[50:350, 145:155] = 20  # a vertical bar
    tilted = invariance_lite.garment_tilt(photo)
    ys, xs = np.nonzero(tilted[..., 0] < 128)
    line = cv2.fitLine(np.stack([xs, ys], axis=1).astype(np.float32), cv2.DIST_L2, 0, 0.01, 0.01).ravel()
    angle = abs(np.degrees(np.arctan2(line[0], line[1])))
    angle = min(angle, 180 - angle)
    assert angle == pytest.approx(invariance_lite.TILT_DEGREES, abs=0.3)


def test_the_shade_variant_darkens_the_colours_downwards_and_keeps_the_alpha() -> None:
    """An RGBA photo's alpha shaded too read as a cut-out whose alpha covers the whole photo."""
    photo = np.full((100, 80, 4), 200, np.uint8)
    photo[..., 3] = 255
    shaded = invariance_lite.garment_shade(photo)
    assert (shaded[..., 3] == 255).all()
    assert shaded[0, :, :3].min() == 200
    assert shaded[-1, :, :3].max() == round(200 * (1 - invariance_lite.SHADE))
