"""The lite inpainter's fill by kind of surface: each uncovered pixel from its own kind, never a mix.

A drawn scene with known surfaces: a backdrop, a bare forearm (skin) below an old long sleeve, trousers
below an old long top. The new garment (a short, narrow top) leaves parts of the old one uncovered; the
clothing mask's values (tryon.vision.mask_kinds) say which kind lies under each.
"""

from __future__ import annotations

import numpy as np
import pytest

from services.inpaint.lite import LiteInpaint
from tryon.types import InpaintInput
from tryon.vision import mask_kinds
from tryon.vision.fidelity import smear_share

BACKDROP = (226, 228, 232)
SKIN = (205, 150, 120)
TROUSERS = (40, 60, 120)
OLD = (200, 30, 30)
NEW = (30, 160, 60)
H, W = 400, 300


@pytest.fixture(scope="module")
def scene() -> dict[str, np.ndarray]:
    person = np.zeros((H, W, 3), np.uint8)
    person[:] = BACKDROP
    person[260:, 90:210] = TROUSERS
    person[60:330, 40:70] = SKIN  # the forearm, below the old sleeve
    person[80:270, 90:210] = OLD  # the old long top
    person[60:200, 40:70] = OLD  # its long sleeve on the arm
    mask = np.zeros((H, W), np.uint8)
    mask[40:360, 20:280] = mask_kinds.MAY_COVER  # the body around: the new garment may cover it
    mask[80:270, 90:210] = mask_kinds.REPLACE_NEAREST
    mask[200:270, 90:210] = mask_kinds.REPLACE_BELOW  # a top's lower part: trousers underneath
    mask[60:200, 40:70] = mask_kinds.REPLACE_LIMB  # the sleeve: an arm underneath
    garment = np.zeros((H, W, 4), np.uint8)
    garment[85:190, 100:200] = (*NEW, 255)  # short and narrow: covers neither the sides nor the sleeve
    result = (
        LiteInpaint()
        .run(InpaintInput(person=person, clothing_mask=mask, warped_garment=garment, pose_image=person))
        .image
    )
    return {"person": person, "mask": mask, "garment": garment, "result": result}


def _mean(image: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    return image[rows, cols].reshape(-1, 3).mean(axis=0)


def test_each_kind_is_filled_from_its_own_surface(scene: dict[str, np.ndarray]) -> None:
    result = scene["result"]
    # The old sleeve's place is the arm's skin, the old top's lower part the trousers, its sides backdrop.
    np.testing.assert_allclose(_mean(result, slice(80, 180), slice(45, 65)), SKIN, atol=12)
    np.testing.assert_allclose(_mean(result, slice(215, 260), slice(120, 180)), TROUSERS, atol=12)
    np.testing.assert_allclose(_mean(result, slice(100, 180), slice(90, 96)), BACKDROP, atol=12)
    np.testing.assert_allclose(_mean(result, slice(100, 180), slice(120, 180)), NEW, atol=25)


def test_no_cross_kind_smear(scene: dict[str, np.ndarray]) -> None:
    replace = mask_kinds.replace_region(scene["mask"])
    uncovered = replace & (scene["garment"][..., 3] < 128)
    assert uncovered.sum() > 5000
    assert smear_share(scene["result"], replace, uncovered) < 0.05


def test_the_body_around_stays_where_the_new_garment_does_not_reach(scene: dict[str, np.ndarray]) -> None:
    may_cover = scene["mask"] == mask_kinds.MAY_COVER
    np.testing.assert_array_equal(scene["result"][may_cover], scene["person"][may_cover])


def test_old_garment_off_the_body_is_filled_with_the_backdrop() -> None:
    """A dress replaced by a short garment: between the legs the dress had the backdrop behind it, though
    the top above (another garment) is the nearest surface there."""
    top = (90, 90, 40)
    person = np.zeros((H, W, 3), np.uint8)
    person[:] = BACKDROP
    person[20:100, 60:240] = top  # the upper body, kept
    person[100:380, 80:130] = SKIN  # the legs
    person[100:380, 170:220] = SKIN
    person[100:300, 60:240] = OLD  # the dress's skirt over both legs and the gap between them
    mask = np.full((H, W), mask_kinds.BACKDROP, np.uint8)
    mask[20:100, 60:240] = 0  # the person: not backdrop, not edited
    mask[100:380, 80:130] = 0
    mask[100:380, 170:220] = 0
    mask[100:300, 60:240] = mask_kinds.REPLACE_SKIN  # the legs under the skirt
    mask[100:300, 130:170] = mask_kinds.REPLACE_OFF_BODY  # the cloth between the legs
    garment = np.zeros((H, W, 4), np.uint8)
    garment[100:150, 60:240] = (*NEW, 255)  # a short garment: the skirt below it is uncovered
    result = (
        LiteInpaint()
        .run(InpaintInput(person=person, clothing_mask=mask, warped_garment=garment, pose_image=person))
        .image
    )
    # Between the legs, nearer the kept top than any backdrop: still the backdrop shows.
    np.testing.assert_allclose(_mean(result, slice(155, 200), slice(138, 162)), BACKDROP, atol=10)
    np.testing.assert_allclose(_mean(result, slice(160, 290), slice(90, 120)), SKIN, atol=15)


def test_skin_copied_from_two_sides_meets_without_a_seam() -> None:
    """A neckline opening wider than the old one: skin comes from both shoulders, lit differently; the two
    must blend, not meet in a hard vertical edge down the chest."""
    lit, shaded = (215, 165, 135), (170, 120, 95)
    person = np.zeros((H, W, 3), np.uint8)
    person[:] = BACKDROP
    person[40:200, 20:80] = lit  # the shoulder on one side
    person[40:200, 220:280] = shaded  # and on the other
    person[40:200, 80:220] = OLD  # the old top between them
    mask = np.full((H, W), mask_kinds.BACKDROP, np.uint8)
    mask[40:200, 20:280] = 0
    mask[40:200, 80:220] = mask_kinds.REPLACE_SKIN
    garment = np.zeros((H, W, 4), np.uint8)
    garment[170:200, 80:220] = (*NEW, 255)  # the new top's neckline is far lower: the chest is skin
    result = (
        LiteInpaint()
        .run(InpaintInput(person=person, clothing_mask=mask, warped_garment=garment, pose_image=person))
        .image
    )
    row = result[100, 90:210].astype(np.float32)
    steps = np.abs(np.diff(row, axis=0)).max(axis=1)
    assert steps.max() < 6  # a gradient from one side's skin to the other's, no seam
    np.testing.assert_allclose(row[0], lit, atol=25)
    np.testing.assert_allclose(row[-1], shaded, atol=25)


def test_the_old_garments_rim_beyond_the_body_takes_the_backdrop_beside_it() -> None:
    """The old top's edge stands a few pixels beyond the person's outline (off the body, in the new
    garment's reach): it is refilled from the backdrop right beside it, in the reach too, not from the
    farther backdrop (a studio's vignetting makes that darker) nor from the person."""
    near, far = (236, 232, 226), (150, 150, 160)
    person = np.zeros((H, W, 3), np.uint8)
    person[:] = far
    person[30:370, 30:270] = near  # the lit backdrop around the body
    person[60:340, 100:200] = OLD  # the old top, its rim included
    mask = np.full((H, W), mask_kinds.BACKDROP, np.uint8)
    mask[30:370, 30:270] = mask_kinds.MAY_COVER_BACKDROP
    mask[60:340, 100:200] = mask_kinds.REPLACE_SKIN
    mask[60:340, 100:106] = mask_kinds.REPLACE_OFF_BODY  # the rim beyond the body's outline
    mask[60:340, 194:200] = mask_kinds.REPLACE_OFF_BODY
    garment = np.zeros((H, W, 4), np.uint8)
    garment[60:340, 110:190] = (*NEW, 255)  # a narrower garment: the rim is uncovered
    result = (
        LiteInpaint()
        .run(InpaintInput(person=person, clothing_mask=mask, warped_garment=garment, pose_image=person))
        .image
    )
    for columns in (slice(101, 105), slice(195, 199)):
        np.testing.assert_allclose(_mean(result, slice(80, 320), columns), near, atol=8)
