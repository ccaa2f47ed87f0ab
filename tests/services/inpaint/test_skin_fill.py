"""The lite inpainter's bare skin: the person's own skin colour, smoothly shaded, never the old garment's.

Drawn scenes with known surfaces. The clothing mask marks the person's visible skin (face, neck, hands) as
:data:`tryon.vision.mask_kinds.SKIN_SOURCE`; the new garment leaves part of the old one uncovered, and
there the result must be the person's skin: not the old garment, not other skin-coloured-ish pixels
nearby (a beige backdrop, skin darkened by a mesh sleeve), and not the old garment's print as shading.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.color import deltaE_ciede2000, rgb2lab

from services.inpaint.lite import LiteInpaint
from tryon.types import InpaintInput
from tryon.vision import mask_kinds

SKIN = (205, 150, 120)  # the person's face, neck and hands
BEIGE_BACKDROP = (225, 200, 175)  # a warm studio wall, inside the YCrCb "skin" box
MESH_SKIN = (110, 75, 60)  # skin seen through a black mesh sleeve: skin-coloured chroma, far too dark
OLD = (25, 25, 30)  # the old high-neck, long-sleeved top
OLD_SLEEVE = (180, 30, 40)
NEW = (240, 220, 60)
H, W = 480, 360


def _delta_e(rgb: np.ndarray, reference: tuple[int, int, int]) -> float:
    lab = rgb2lab(np.asarray(rgb, np.float64).reshape(1, 1, 3) / 255.0)
    lab_reference = rgb2lab(np.array(reference, np.float64).reshape(1, 1, 3) / 255.0)
    return float(deltaE_ciede2000(lab, lab_reference)[0, 0])


def _mean(image: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    return image[rows, cols].reshape(-1, 3).astype(np.float64).mean(axis=0)


def _run(person: np.ndarray, mask: np.ndarray, garment: np.ndarray) -> np.ndarray:
    return (
        LiteInpaint()
        .run(InpaintInput(person=person, clothing_mask=mask, warped_garment=garment, pose_image=person))
        .image
    )


@pytest.fixture(scope="module")
def neckline() -> dict[str, np.ndarray]:
    """A strappy top over a person in a dark high-neck top with mesh sleeves: the chest between the
    straps is bare. Only the face and neck show the person's skin; the nearest skin-coloured pixels are
    the mesh sleeves (darkened skin) and the beige wall beside them, which the new garment may cover."""
    person = np.zeros((H, W, 3), np.uint8)
    person[:] = BEIGE_BACKDROP
    person[20:110, 140:220] = SKIN  # the face and neck
    person[110:330, 70:290] = MESH_SKIN  # the arms in mesh sleeves, beside the torso
    person[110:330, 110:250] = OLD  # the old top over the torso
    # The old top has a bold print: black and white stripes, which must not show through as shading.
    person[150:250:8, 110:250] = (235, 235, 235)
    person[151:250:8, 110:250] = (235, 235, 235)
    mask = np.full((H, W), mask_kinds.BACKDROP, np.uint8)
    mask[20:110, 140:220] = mask_kinds.SKIN_SOURCE
    mask[100:360, 40:320] = mask_kinds.MAY_COVER  # the arms and the wall around them
    mask[110:330, 110:250] = mask_kinds.REPLACE_SKIN  # a top's upper part: skin underneath
    garment = np.zeros((H, W, 4), np.uint8)
    garment[250:330, 110:250] = (*NEW, 255)  # the new top starts far lower: the chest is bare
    garment[110:250, 115:125] = (*NEW, 255)  # its straps
    garment[110:250, 235:245] = (*NEW, 255)
    return {"person": person, "mask": mask, "garment": garment, "result": _run(person, mask, garment)}


def test_bare_chest_is_the_persons_skin_colour(neckline: dict[str, np.ndarray]) -> None:
    chest = _mean(neckline["result"], slice(130, 240), slice(135, 225))
    to_skin = _delta_e(chest, SKIN)
    assert to_skin < 6, chest
    # Nearer the skin than any other surface around, by a margin: the old top and its print, the mesh
    # sleeves and the wall (the wall is itself only ~15 from the skin).
    for other in (OLD, (235, 235, 235), MESH_SKIN, BEIGE_BACKDROP):
        assert _delta_e(chest, other) > to_skin + 8, (chest, other)


def test_bare_chest_is_smooth_not_the_old_prints_shading(neckline: dict[str, np.ndarray]) -> None:
    chest = neckline["result"][130:240, 135:225].astype(np.float32)
    # The stripes (8 px period, black / white) must not come through, even toned down.
    assert np.abs(np.diff(chest, axis=0)).max() < 4
    assert chest.reshape(-1, 3).std(axis=0).max() < 6


def test_bare_skin_meets_the_neck_without_an_edge(neckline: dict[str, np.ndarray]) -> None:
    result = neckline["result"].astype(np.float32)
    neck = result[100:108, 150:210].reshape(-1, 3).mean(axis=0)
    below = result[112:120, 150:210].reshape(-1, 3).mean(axis=0)
    assert np.abs(neck - below).max() < 12


def test_old_sleeve_on_the_arm_is_removed_and_filled_with_skin() -> None:
    """A short-sleeved tee over an old long red sleeve: the arm below the new sleeve is bare skin, coloured
    like the person's hand and face, not the sleeve and not the beige wall around the arm."""
    person = np.zeros((H, W, 3), np.uint8)
    person[:] = BEIGE_BACKDROP
    person[10:80, 150:210] = SKIN  # the face
    person[80:300, 140:260] = OLD  # the torso in the old top
    person[80:380, 90:140] = OLD_SLEEVE  # the arm in its long sleeve, down to the wrist
    person[380:430, 90:140] = SKIN  # the hand
    mask = np.full((H, W), mask_kinds.BACKDROP, np.uint8)
    mask[10:80, 150:210] = mask_kinds.SKIN_SOURCE
    mask[380:430, 90:140] = mask_kinds.SKIN_SOURCE
    mask[70:390, 60:290] = mask_kinds.MAY_COVER  # the arm's reach: the wall around it included
    mask[80:300, 140:260] = mask_kinds.REPLACE_NEAREST
    mask[80:380, 90:140] = mask_kinds.REPLACE_LIMB  # the old sleeve on the arm
    garment = np.zeros((H, W, 4), np.uint8)
    garment[80:300, 140:260] = (*NEW, 255)  # the tee's body
    garment[80:150, 90:140] = (*NEW, 255)  # and its short sleeve
    result = _run(person, mask, garment)
    arm = _mean(result, slice(170, 370), slice(95, 135))
    to_skin = _delta_e(arm, SKIN)
    assert to_skin < 6, arm
    assert _delta_e(arm, OLD_SLEEVE) > to_skin + 20
    assert _delta_e(arm, BEIGE_BACKDROP) > to_skin + 8
    # No trace of the red sleeve anywhere on the arm.
    red = result[150:380, 90:140].astype(np.int32)
    assert not ((red[..., 0] - red[..., 1] > 80) & (red[..., 0] - red[..., 2] > 80)).any()


def test_skin_beside_the_mask_tones_the_fill() -> None:
    """Bare shoulders in shade, darker than the face: the skin filled next to them follows them (the local
    tone), the face colour being only the fallback far from any bare skin."""
    shoulder = (178, 126, 98)
    person = np.zeros((H, W, 3), np.uint8)
    person[:] = BEIGE_BACKDROP
    person[20:90, 150:210] = SKIN
    person[100:300, 60:300] = shoulder
    person[100:300, 120:240] = OLD
    mask = np.full((H, W), mask_kinds.BACKDROP, np.uint8)
    mask[20:90, 150:210] = mask_kinds.SKIN_SOURCE
    mask[100:300, 60:300] = mask_kinds.MAY_COVER
    mask[100:300, 120:240] = mask_kinds.REPLACE_SKIN
    garment = np.zeros((H, W, 4), np.uint8)
    garment[240:300, 120:240] = (*NEW, 255)
    result = _run(person, mask, garment)
    beside = _mean(result, slice(120, 220), slice(122, 130))
    assert _delta_e(beside, shoulder) < 6, beside


def test_skin_the_old_garment_left_bare_stays_the_photos_and_its_straps_go() -> None:
    """The old top's wide neckline inside the replaced region: the photo's own skin there (its fine
    texture) is kept, not repainted; the old top's thin strap across it is filled with skin."""
    person = np.zeros((H, W, 3), np.uint8)
    person[:] = BEIGE_BACKDROP
    person[20:100, 150:210] = SKIN  # the face
    texture = np.random.default_rng(7).uniform(-6.0, 6.0, (120, 160, 1)).astype(np.float32)  # pores
    person[100:220, 100:260] = np.clip(np.array(SKIN, np.float32) + texture, 0, 255).astype(np.uint8)
    person[100:220, 128:131] = OLD  # a thin strap of the old top across the neckline
    person[220:330, 100:260] = OLD  # the old top below the neckline
    mask = np.full((H, W), mask_kinds.BACKDROP, np.uint8)
    mask[20:100, 150:210] = mask_kinds.SKIN_SOURCE
    mask[100:330, 100:260] = mask_kinds.REPLACE_SKIN  # the top's region, its neckline included
    garment = np.zeros((H, W, 4), np.uint8)
    garment[260:330, 100:260] = (*NEW, 255)  # a shorter new top: the neckline and the chest are bare
    result = _run(person, mask, garment)
    # The neckline's own skin, away from the strap and the old top's edge: the photo, texture included.
    kept = result[115:200, 160:240].astype(np.int32)
    assert np.abs(kept - person[115:200, 160:240].astype(np.int32)).max() <= 2
    # The strap is gone: every pixel where it was, and beside it, is skin, not a darker trace of it.
    strap = result[115:200, 124:136].astype(np.int32)
    assert np.abs(strap - np.array(SKIN)).max() < 14


@pytest.mark.parametrize("texture", [0.0, 3.0, 8.0])
def test_painted_skin_has_the_photos_skin_texture(texture: float) -> None:
    """Skin painted where the old top was carries the fine texture of the person's own skin (noise, pores):
    flat paint next to a textured face reads as a plate; a flat (synthetic) face gets flat paint."""
    rng = np.random.default_rng(3)
    person = np.zeros((H, W, 3), np.uint8)
    person[:] = BEIGE_BACKDROP
    face = np.array(SKIN, np.float32) + texture * rng.standard_normal((90, 80, 1)).astype(np.float32)
    person[20:110, 140:220] = np.clip(face + 0.5, 0, 255).astype(np.uint8)
    person[110:330, 90:270] = OLD
    mask = np.full((H, W), mask_kinds.BACKDROP, np.uint8)
    mask[20:110, 140:220] = mask_kinds.SKIN_SOURCE
    mask[110:330, 90:270] = mask_kinds.REPLACE_SKIN
    garment = np.zeros((H, W, 4), np.uint8)
    garment[280:330, 90:270] = (*NEW, 255)  # the chest above is bare
    chest = _run(person, mask, garment)[150:250, 120:240].astype(np.float32)
    detail = chest - np.stack([cv2.GaussianBlur(chest[..., c], (0, 0), 1.5) for c in range(3)], axis=-1)
    measured = float(detail.mean(axis=2).std())
    red = face[..., 0]
    expected = float((red - cv2.GaussianBlur(red, (0, 0), 1.5)).std())
    assert expected * 0.6 - 0.6 <= measured <= expected * 1.4 + 0.6, (measured, expected)
    assert _delta_e(chest.reshape(-1, 3).mean(axis=0), SKIN) < 3  # the texture does not shift the colour


def test_painted_skin_is_shaded_like_a_rounded_body() -> None:
    """A bare torso painted where a wide old top was: darker towards the body's outline than at its middle
    (the body turns away from the light there), evenly on both sides; its middle the person's skin."""
    person = np.zeros((H, W, 3), np.uint8)
    person[:] = BEIGE_BACKDROP
    person[20:110, 150:210] = SKIN  # the face and neck
    person[110:330, 60:300] = OLD  # the old top over the torso, outline to outline
    mask = np.full((H, W), mask_kinds.BACKDROP, np.uint8)
    mask[20:110, 150:210] = mask_kinds.SKIN_SOURCE
    mask[110:330, 60:300] = mask_kinds.REPLACE_SKIN
    garment = np.zeros((H, W, 4), np.uint8)
    garment[290:330, 60:300] = (*NEW, 255)  # a crop top far below: the torso above is bare
    result = _run(person, mask, garment).astype(np.float32)
    luminance = result[160:260].mean(axis=(0, 2))
    middle, left, right = luminance[170:190].mean(), luminance[64:74].mean(), luminance[286:296].mean()
    assert left < 0.9 * middle and right < 0.9 * middle, (left, middle, right)
    assert abs(left - right) < 0.03 * middle
    assert _delta_e(result[160:260, 170:190].reshape(-1, 3).mean(axis=0), SKIN) < 6


def test_painted_chest_takes_the_tone_of_the_bare_chest_above_it() -> None:
    """The old top's scoop neckline shows the person's chest, paler than their face (a face is pinker and
    in the chin's shadow); the new top is cut lower. The chest painted far below the neckline is that
    chest's tone, not the face's: painted in the face's colour it was a darker plate under its own skin."""
    face, chest = (205, 150, 120), (225, 175, 150)
    person = np.zeros((H, W, 3), np.uint8)
    person[:] = BEIGE_BACKDROP
    person[20:100, 150:210] = face
    person[100:360, 60:300] = OLD
    person[100:160, 100:260] = chest  # the old top's wide neckline: bare chest inside the replaced region
    mask = np.full((H, W), mask_kinds.BACKDROP, np.uint8)
    mask[20:100, 150:210] = mask_kinds.SKIN_SOURCE
    mask[100:360, 60:300] = mask_kinds.REPLACE_SKIN
    garment = np.zeros((H, W, 4), np.uint8)
    garment[330:360, 60:300] = (*NEW, 255)  # a crop top far below: the chest is bare
    result = _run(person, mask, garment).astype(np.float32)
    painted = result[250:310, 160:200].reshape(-1, 3).mean(axis=0)  # far from the neckline and the face
    assert _delta_e(painted, chest) < 5, painted
    assert _delta_e(painted, face) > _delta_e(painted, chest) + 5


def _kept_chest_scene(chest_rows: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The segmentation kept the bare chest a neckline shows (MAY_COVER_SKIN, not replaced); the old top
    below it is replaced, and a crop top far below leaves it bare, to be painted."""
    face, chest = (205, 150, 120), (228, 180, 156)
    person = np.zeros((H, W, 3), np.uint8)
    person[:] = BEIGE_BACKDROP
    person[20:100, 150:210] = face
    person[100:360, 60:300] = OLD
    person[chest_rows, 100:260] = chest
    mask = np.full((H, W), mask_kinds.BACKDROP, np.uint8)
    mask[20:100, 150:210] = mask_kinds.SKIN_SOURCE
    mask[100:360, 60:300] = mask_kinds.REPLACE_SKIN
    mask[chest_rows, 100:260] = mask_kinds.MAY_COVER_SKIN
    garment = np.zeros((H, W, 4), np.uint8)
    garment[330:360, 60:300] = (*NEW, 255)
    return person, mask, garment


def test_painted_chest_takes_the_tone_of_the_bare_chest_the_segmentation_kept() -> None:
    """As above, with the neckline's chest kept out of the replaced region by the segmentation: it stays
    the photo's, and the painted chest below takes its tone, not the face's."""
    chest = (228, 180, 156)
    person, mask, garment = _kept_chest_scene(slice(100, 160))
    result = _run(person, mask, garment)
    assert np.array_equal(result[100:140, 110:250], person[100:140, 110:250])
    painted = result[250:310, 160:200].reshape(-1, 3).astype(np.float32).mean(axis=0)
    assert _delta_e(painted, chest) < 5, painted
    assert _delta_e(painted, (205, 150, 120)) > _delta_e(painted, chest) + 5


def test_kept_skin_fades_into_the_painted_skin_without_a_step() -> None:
    """A small kept patch of chest (too little to tone the fill: painted in the face's colour, darker)
    meets the painted skin below it in a ramp over a few pixels, not a step at the old garment's edge;
    away from the edge it stays the photo's."""
    person, mask, garment = _kept_chest_scene(slice(100, 112))
    result = _run(person, mask, garment).astype(np.float32)
    column = result[100:160, 160:200].mean(axis=(1, 2))  # luminance down the middle, across the edge
    difference = column[0] - column[-1]
    assert difference > 10  # the kept chest is paler than the skin painted far below it
    assert np.abs(np.diff(column)).max() < 0.25 * difference, column.round(1)
    assert np.array_equal(result[100:104, 110:250], person[100:104, 110:250].astype(np.float32))


def test_kept_skin_lit_brighter_at_its_edge_fades_into_the_painted_skin() -> None:
    """The kept chest brightens towards the old garment's edge (light on the bust); the painted skin beside
    it is the chest's average, darker. The kept pixels by the edge fade into the fill: no step larger
    than the chest's own gradient makes, twice over."""
    person, mask, garment = _kept_chest_scene(slice(100, 130))
    ramp = np.linspace(0.85, 1.1, 30)[:, None, None]
    person[100:130, 100:260] = np.clip(np.array((228, 180, 156)) * ramp, 0, 255).astype(np.uint8)
    result = _run(person, mask, garment).astype(np.float32)
    column = result[100:160, 160:200].mean(axis=(1, 2))
    own_gradient = float(np.median(np.diff(column[:20])))
    assert own_gradient > 1.0
    assert np.abs(np.diff(column)).max() < 2.0 * own_gradient, column.round(1)
