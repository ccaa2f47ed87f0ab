"""The inner back seen through a crew neck in a product photo is made transparent (issue #12).

A drawn T-shirt, photographed from the front: its silhouette's top is the back's collar, between two neck
points, with the shoulders sloping down from them; below it the inner back (darker, with a white brand
label) shows down to the front neckline, a U curve. Worn, the inner back is behind the neck: pasted on the
body it put the label on the chest.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.warp.backend import (
    NECK_HALF_WIDTH,
    NECK_RISE,
    GarmentWarper,
    find_landmarks,
    inner_back,
    separate_garment,
    without_inner_back,
)
from tests.services.warp.test_fidelity import SHOULDER_Y, TARGET, _keypoints
from tryon.types import GarmentCategory, WarpInput

BACKDROP = (245, 245, 245)
FRONT = (200, 60, 60)
INSIDE = (120, 35, 35)
LABEL = (250, 250, 250)
CENTRE, RADIUS, NECK_Y, DEPTH = 384, 54, 120, 40  # the neckline: the neck points at y=120, 40 px deep
LABEL_BOX = (slice(134, 146), slice(372, 397))


def _tshirt(
    inner_back_shows: bool = True,
    stripes: bool = False,
    radius: int = RADIUS,
    depth: int = DEPTH,
    shoulders_y: int = 160,
) -> np.ndarray:
    photo = np.full((1024, 768, 3), BACKDROP, np.uint8)
    outline = np.array(
        [
            (CENTRE - radius, NECK_Y), (CENTRE, NECK_Y + 8), (CENTRE + radius, NECK_Y),  # the back's collar
            (520, shoulders_y), (640, 300), (585, 350), (520, 280),  # shoulder, sleeve
            (520, 760), (248, 760),  # the hem
            (248, 280), (183, 350), (128, 300), (248, shoulders_y),  # the other sleeve, shoulder
        ],
        np.int32,
    )  # fmt: skip
    cv2.fillPoly(photo, [outline], FRONT)
    if stripes:
        silhouette = np.all(photo == FRONT, axis=2)
        for y in range(0, 1024, 16):
            photo[y : y + 6][silhouette[y : y + 6]] = (40, 40, 90)
    if inner_back_shows:
        xs = np.arange(CENTRE - radius + 1, CENTRE + radius)
        front_y = NECK_Y + depth * np.sqrt(1.0 - ((xs - CENTRE) / radius) ** 2)
        tops = np.argmax(np.any(photo != BACKDROP, axis=2), axis=0)
        for x, y in zip(xs, front_y, strict=True):
            photo[tops[x] : int(y), x] = INSIDE
        photo[LABEL_BOX] = LABEL
    return photo


def _alpha_without_inner_back(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rgb, alpha = separate_garment(photo)
    landmarks = find_landmarks(alpha, GarmentCategory.UPPER_BODY)
    return alpha, without_inner_back(alpha, inner_back(rgb, alpha, landmarks))


def test_the_front_neckline_is_found_where_the_inner_back_ends() -> None:
    rgb, alpha = separate_garment(_tshirt())
    neckline = inner_back(rgb, alpha, find_landmarks(alpha, GarmentCategory.UPPER_BODY))
    assert neckline is not None
    assert abs(neckline.centre - CENTRE) <= 4
    assert abs(neckline.radius - RADIUS) <= 6
    assert abs(neckline.top + neckline.depth - (NECK_Y + DEPTH)) <= 4


def test_the_inner_back_and_its_label_become_transparent_and_the_front_stays() -> None:
    alpha, cut = _alpha_without_inner_back(_tshirt())
    assert (alpha[LABEL_BOX] > 127).all()  # the premise: the label is part of the silhouette
    assert (cut[LABEL_BOX] == 0).all()
    inside = np.zeros(alpha.shape, bool)
    inside[NECK_Y + 10 : NECK_Y + DEPTH - 12, CENTRE - 30 : CENTRE + 30] = True
    assert (cut[inside] == 0).all()
    assert np.array_equal(cut[NECK_Y + DEPTH + 5 :], alpha[NECK_Y + DEPTH + 5 :])  # the front, the rest
    outside_the_neck = np.ones(alpha.shape, bool)
    outside_the_neck[:, CENTRE - RADIUS - 4 : CENTRE + RADIUS + 5] = False
    assert np.array_equal(cut[outside_the_neck], alpha[outside_the_neck])


@pytest.mark.parametrize("photo", ["plain neck", "striped"])
def test_nothing_is_cut_without_an_inner_back_showing(photo: str) -> None:
    """No edge where a front neckline would be (a plain colour up to the collar), or edges everywhere (a
    striped top): nothing is taken for an inner back."""
    alpha, cut = _alpha_without_inner_back(_tshirt(inner_back_shows=False, stripes=photo == "striped"))
    assert np.array_equal(cut, alpha)


def test_the_warped_top_carries_no_label() -> None:
    inputs = WarpInput(
        garment=_tshirt(), keypoints=_keypoints(), target_size=TARGET, category=GarmentCategory.UPPER_BODY
    )
    warped = GarmentWarper().run(inputs).warped_garment[:400]  # the neck lands by the shoulders, y=300
    opaque = warped[..., 3] > 127
    label_coloured = np.all(warped[..., :3] > 235, axis=2)
    inside_coloured = np.all(np.abs(warped[..., :3].astype(int) - INSIDE) < 12, axis=2)
    assert (opaque & label_coloured).sum() == 0
    assert (opaque & inside_coloured).sum() < 20


def _collar(
    radius: int, depth: int = DEPTH, shoulders_y: int = 160, inner_back_shows: bool = True
) -> tuple[int, int, int]:
    """The warped top's collar on the body: its corners' height (the highest rows either side of the
    axis), the opening's width between them, and the front neckline's height on the axis."""
    garment = _tshirt(inner_back_shows, radius=radius, depth=depth, shoulders_y=shoulders_y)
    inputs = WarpInput(garment, _keypoints(), TARGET, GarmentCategory.UPPER_BODY)
    opaque = GarmentWarper().run(inputs).warped_garment[..., 3] > 127
    tops = np.where(opaque.any(axis=0), np.argmax(opaque, axis=0), TARGET[0])
    left = CENTRE - 150 + int(np.argmin(tops[CENTRE - 150 : CENTRE]))
    right = CENTRE + int(np.argmin(tops[CENTRE : CENTRE + 150]))
    return (int(tops[left]) + int(tops[right])) // 2, right - left, int(tops[CENTRE])


SHOULDERS_WIDTH = 240  # the body's (``_keypoints``)
NECK_BASE_Y = SHOULDER_Y - NECK_RISE * SHOULDERS_WIDTH
NECK_HALF = NECK_HALF_WIDTH * SHOULDERS_WIDTH


@pytest.mark.parametrize(
    ("radius", "depth", "shoulders_y"), [(80, DEPTH, 160), (RADIUS, DEPTH, 160), (80, 28, 130)]
)
def test_a_wide_collar_is_narrowed_to_the_neck(radius: int, depth: int, shoulders_y: int) -> None:
    """A loose top's collar, fitted through the shoulders alone, was up to twice as wide as the neck (a
    crew neck worn as a scoop neck): it is as wide as the neck's base, its front neckline as deep below
    its corners as the photo's, relative to its width, and it is not below the neck's base. Flat
    shoulders (130) and a shallow neckline put the back's top, where the similarity puts it, below the
    front neckline's place: followed, it folded the front neckline down to a narrow U."""
    corners_y, width, front_y = _collar(radius, depth, shoulders_y)
    assert abs(width - 2 * NECK_HALF) <= 12
    assert abs(front_y - corners_y - depth / radius * NECK_HALF) <= 8
    assert corners_y <= NECK_BASE_Y + 6


@pytest.mark.parametrize(("radius", "depth"), [(80, 28), (RADIUS, DEPTH)])
def test_a_collar_below_the_neck_base_is_lifted_onto_it(radius: int, depth: int) -> None:
    """Flat shoulders: the similarity through the shoulders puts the collar below the neck's base (the
    premise, measured on the same top without a collar to find); it is lifted onto it."""
    assert _collar(radius, depth, 130, inner_back_shows=False)[0] > NECK_BASE_Y + 6
    assert abs(_collar(radius, depth, 130)[0] - NECK_BASE_Y) <= 6


def test_a_collar_above_the_neck_base_stays() -> None:
    """Steep shoulders put the collar above the neck's base: it stays where the similarity puts it (the
    base is an estimate; lowered, the collar bared the shoulders' top on the sample people)."""
    similarity_y = _collar(80, DEPTH, 180, inner_back_shows=False)[0]
    assert similarity_y < NECK_BASE_Y - 12  # the premise
    assert abs(_collar(80, DEPTH, 180)[0] - similarity_y) <= 4


def test_a_narrow_collar_is_not_widened() -> None:
    assert _collar(30)[1] < 2 * NECK_HALF - 20
