"""LiteSegmentation: body-region geometry on hand-written landmarks, then the backend on real photos.

skimage's astronaut is a half-body portrait (face, orange suit, a helmet held at the bottom right; hips
out of the frame); skimage's cat and a blank image have no person.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from services.pose.lite import LitePose
from services.segmentation.body import (
    Capsule,
    Frame,
    body_outline,
    body_shapes,
    category_reach,
    category_regions,
    draw_capsules,
    draw_feet,
    draw_polygons,
    lower_garment_underneath,
    skin_underneath,
)
from services.segmentation.garment import (
    GENERIC_SKIN_MODEL,
    GarmentEstimate,
    SkinModel,
    estimate_garment,
    fit_skin_model,
    grow_mask,
)
from services.segmentation.lite import (
    GARMENT_RIM,
    OFF_BODY_GROWTH,
    LiteSegmentation,
    _continues_above_high_waist,
    bare_skin,
    garment_beside_the_hands,
    hands_in_front,
    in_front_of_garments,
    strap_lines,
)
from tests.imagegen import person_photo
from tryon.types import (
    KP,
    NO_PERSON_FOUND,
    ClothesLabel,
    GarmentCategory,
    Keypoints,
    PoseInput,
    SegmentationInput,
    SegmentationOutput,
    StageInputError,
)
from tryon.vision.mask_kinds import (
    BACKDROP,
    MAY_COVER,
    MAY_COVER_BACKDROP,
    REPLACE_BELOW,
    REPLACE_LIMB,
    REPLACE_NEAREST,
    REPLACE_OFF_BODY,
    REPLACE_SKIN,
    SKIN_SOURCE,
    replace_region,
)
from tryon.vision.mediapipe_landmarks import MediaPipePoseLandmarker

# ------------------------------------------------------------------------------------------ geometry

GEOMETRY_SHAPE = (384, 288)  # (height, width)


def _standing_person() -> np.ndarray:
    """MediaPipe's 33 landmarks (pixels) of a person facing the camera: their right is on the image left."""
    points = np.zeros((33, 2))
    for index, xy in {
        0: (144, 40), 2: (150, 34), 5: (138, 34), 7: (158, 38), 8: (130, 38), 9: (149, 50), 10: (139, 50),
        11: (174, 80), 12: (114, 80), 13: (184, 130), 14: (104, 130), 15: (188, 175), 16: (100, 175),
        17: (190, 185), 18: (98, 185), 19: (189, 187), 20: (99, 187), 21: (185, 182), 22: (103, 182),
        23: (162, 190), 24: (126, 190), 25: (164, 270), 26: (124, 270), 27: (165, 350), 28: (123, 350),
        29: (167, 358), 30: (121, 358), 31: (170, 368), 32: (118, 368),
    }.items():  # fmt: skip
        points[index] = xy
    return points


@pytest.fixture(scope="module")
def regions() -> dict[GarmentCategory, object]:
    shapes = body_shapes(_standing_person())
    frame = Frame(*GEOMETRY_SHAPE)
    return {category: category_regions(shapes, category, frame) for category in GarmentCategory}


def test_a_dress_continues_above_the_high_waist_and_trousers_do_not() -> None:
    """Trousers replace a dress below a regular waistband only (the dress's top stays, tucked in); worn
    trousers, which end at their own waistband, are replaced whole."""
    shapes = body_shapes(_standing_person())
    frame = Frame(*GEOMETRY_SHAPE)
    person = draw_polygons(frame, shapes.torso, shapes.pelvis, shapes.skirt)
    dress = person.copy()  # shoulders to below the knees
    trousers = person & draw_polygons(frame, shapes.below_waistband)
    assert _continues_above_high_waist(dress, person, shapes)
    assert not _continues_above_high_waist(trousers, person, shapes)
    # A long top over the hips continues too; high-waisted trousers up to just under the line do not.
    high_waisted = person & draw_polygons(frame, shapes.below_high_waist_strip)
    assert not _continues_above_high_waist(high_waisted, person, shapes)


def test_a_dress_may_reach_a_full_skirts_hem_beside_the_ankles() -> None:
    """A flared dress is far wider than the legs below the knees: cut to their capsules, its skirt ended
    in steps along them. The reach flares out to a full skirt's hem; what a dress replaces and the body's
    outline (beyond which a worn skirt stands off the body) do not grow with it."""
    shapes = body_shapes(_standing_person())
    frame = Frame(*GEOMETRY_SHAPE)
    dress = category_reach(shapes, GarmentCategory.DRESS, frame, carve_hands_feet=False)
    outline = body_outline(shapes, GarmentCategory.DRESS, frame, OFF_BODY_GROWTH)
    replaced = category_regions(shapes, GarmentCategory.DRESS, frame).target
    trousers = category_reach(shapes, GarmentCategory.LOWER_BODY, frame)
    ankles_mid = 144  # the ankles at x = 123 and 165, y = 350; the body unit is 77 px
    for row, out in ((340, 95), (300, 80), (250, 60)):  # below the knees, out to a flared hem
        for x in (ankles_mid - out, ankles_mid + out):
            assert dress[row, x], (row, x)
            assert not (outline[row, x] or replaced[row, x] or trousers[row, x]), (row, x)
    assert not dress[GEOMETRY_SHAPE[0] - 1, 5]  # not the whole frame's bottom


def test_a_dress_may_reach_around_the_hands_when_they_are_not_carved() -> None:
    """The lite backend carves only the hands' own pixels (the person mask) out of a new garment's reach:
    the capsule around a hand by the hip also holds backdrop, where a wide skirt shows."""
    points = _standing_person()
    shapes = body_shapes(points)
    frame = Frame(*GEOMETRY_SHAPE)
    hands = draw_capsules(frame, shapes.hands["right"] + shapes.hands["left"])
    carved = category_reach(shapes, GarmentCategory.DRESS, frame)
    kept = category_reach(shapes, GarmentCategory.DRESS, frame, carve_hands_feet=False)
    assert not (carved & hands).any()
    assert (kept & hands).sum() > 0.5 * hands.sum()
    # The head column above the shoulders' caps (a top's shoulder seam may lie on them).
    head = draw_polygons(frame, shapes.head) & ~draw_polygons(frame, *shapes.shoulder_tops)
    head[round(min(points[11][1], points[12][1]) - 0.4 * shapes.unit) :] = False
    assert head.any() and not (kept & head & ~hands).any()


def test_a_long_sleeve_in_shadow_by_the_hips_is_the_worn_top() -> None:
    """A drawn person in a red long-sleeved top whose forearms, hanging by the hips, are in shadow (a darker
    red): the whole sleeve is the worn garment, down to the wrist (so the lite inpainter can remove it under
    a short-sleeved new top), and the black trousers beside it are not."""
    shapes = body_shapes(_standing_person())
    frame = Frame(*GEOMETRY_SHAPE)
    skin, top, shadow, trousers = (205, 150, 120), (150, 25, 40), (95, 18, 30), (25, 25, 30)
    lower_half = np.indices(GEOMETRY_SHAPE)[0] > 150
    face = draw_capsules(frame, [Capsule((144.0, 34.0), (144.0, 54.0), 16.0, 16.0)])
    neck = draw_capsules(frame, shapes.neck)
    torso = draw_polygons(frame, shapes.torso)
    arms = draw_capsules(frame, shapes.arms["right"] + shapes.arms["left"])
    forearms = draw_capsules(frame, [shapes.arms["right"][1], shapes.arms["left"][1]])
    hands = draw_capsules(frame, shapes.hands["right"] + shapes.hands["left"])
    legs = draw_capsules(frame, shapes.legs["right"] + shapes.legs["left"])
    legs |= draw_polygons(frame, shapes.pelvis)
    photo = np.full((*GEOMETRY_SHAPE, 3), 225, np.uint8)
    photo[legs] = trousers
    photo[torso | arms] = top
    photo[forearms & lower_half] = shadow
    photo[neck | face | hands] = skin
    person = face | neck | torso | arms | hands | legs
    skin_model = fit_skin_model(np.array([skin] * 50, np.uint8))
    worn = estimate_garment(photo, person, shapes, GarmentCategory.UPPER_BODY, skin_model).garment
    sleeve_ends = forearms & lower_half & ~hands
    assert (worn & sleeve_ends).sum() > 0.9 * sleeve_ends.sum()
    trousers_only = legs & ~torso & ~arms
    assert (worn & trousers_only).sum() < 0.02 * trousers_only.sum()
    assert not (worn & (face | hands)).any()


SKIN_RGB = (225, 180, 155)  # a pale chest
PALE_FACE_MODEL = SkinModel(cr=146.0, cb=118.0, cr_sigma=8.0, cb_sigma=8.0)  # reaches neutral greys


def _neckline_scene(garment_rows: slice = slice(120, 300)) -> tuple[np.ndarray, np.ndarray, GarmentEstimate]:
    """A torso region (rows 40-300) whose worn top starts at ``garment_rows``: above it the bare chest, with
    a pale highlight on it that fails a colour test, and a thin dark strap running from the top up over
    the chest; the estimate as GrabCut gives it (the top's body, not the strap: too thin for its pixels)."""
    photo = np.full((320, 240, 3), 235, np.uint8)
    photo[40:300, 30:210] = SKIN_RGB
    photo[60:80, 100:140] = (250, 246, 240)  # a highlight: nearly white, so not skin-coloured
    photo[garment_rows, 30:210] = (30, 30, 35)  # the worn top
    photo[40:120, 60:63] = (30, 30, 35)  # its strap, three pixels wide
    replace = np.zeros((320, 240), bool)
    replace[40:300, 30:210] = True
    garment = np.zeros_like(replace)
    garment[garment_rows, 30:210] = True
    model = fit_skin_model(np.array([SKIN_RGB] * 50, np.uint8))
    estimate = GarmentEstimate(garment=garment, grown_garment=grow_mask(garment, 3), skin=model.mask(photo))
    return photo, replace, estimate


# A thin black strap's pixels in a photo are its black mixed with the skin either side: the skin's chroma
# (YCrCb 152, 108 as SKIN_RGB's), far too dark (Y 70 against 191).
DARK_SKIN_CHROMA = (104, 60, 35)


@pytest.mark.parametrize("strap", [(30, 30, 35), DARK_SKIN_CHROMA], ids=["black", "skin-chroma dark"])
def test_bare_skin_inside_the_region_is_kept_and_the_straps_are_not(strap: tuple[int, int, int]) -> None:
    """The chest a neckline shows stays the photo's (highlight included); the worn top and its thin
    strap over the chest are replaced."""
    photo, replace, estimate = _neckline_scene()
    photo[40:120, 60:63] = strap
    model = fit_skin_model(np.array([SKIN_RGB] * 50, np.uint8))
    kept = bare_skin(photo, replace, estimate, model)
    chest = np.zeros_like(replace)
    chest[45:110, 70:205] = True
    assert kept[chest].all()
    assert kept[60:80, 100:140].all()  # the highlight stays with the chest around it
    assert not kept[40:120, 60:63].any()  # the strap
    assert not (kept & estimate.grown_garment).any()


def test_a_thin_strap_joined_to_the_worn_top_is_found_wherever_it_runs() -> None:
    """A worn top's strap runs up from it over the chest and the shoulder (out of the replaced region and
    past the person mask's edge), a stretch of it antialiased half into the skin; GrabCut's garment is
    the top's body only. The whole strap is found, but not a hair's strand apart from the top nor the
    inside of a broad shadow on the top's edge."""
    photo = np.full((1024, 768, 3), 235, np.uint8)
    photo[100:1000, 200:560] = SKIN_RGB
    photo[400:1000, 200:560] = (30, 30, 35)  # the worn top
    photo[150:400, 300:303] = (30, 30, 35)  # its strap, three pixels wide
    photo[250:280, 300:303] = (128, 105, 95)  # ... antialiased half into the skin for a stretch
    photo[200:350, 450:452] = (40, 30, 25)  # a strand of hair, clear of the top
    photo[300:400, 500:530] = (60, 50, 45)  # a broad shadow on the top's edge
    garment = np.zeros((1024, 768), bool)
    garment[400:1000, 200:560] = True
    model = fit_skin_model(np.array([SKIN_RGB] * 50, np.uint8))
    straps = strap_lines(photo, garment, np.ones_like(garment), model)
    assert straps[150:400, 300:303].all()
    assert not straps[200:350, 449:453].any()
    assert not straps[310:390, 506:524].any()
    allowed = np.ones_like(garment)
    allowed[:, :301] = False
    assert not strap_lines(photo, garment, allowed, model)[:, :301].any()  # only where allowed
    # ... but joined to the garment through what is not: the strap's stretch in the replaced region.
    allowed = np.ones_like(garment)
    allowed[300:400] = False
    assert strap_lines(photo, garment, allowed, model)[150:300, 300:303].all()


def test_no_skin_is_kept_when_no_worn_garment_was_found() -> None:
    """GrabCut found almost no garment in the region: what looks like skin may be a beige top."""
    photo, replace, estimate = _neckline_scene(garment_rows=slice(290, 300))
    model = fit_skin_model(np.array([SKIN_RGB] * 50, np.uint8))
    assert not bare_skin(photo, replace, estimate, model).any()


def test_grey_trousers_are_not_skin_to_a_pale_faces_model() -> None:
    """A pale face's skin model reaches neutral grey; the generic skin box does not: grey jeans inside a
    dress's region stay replaced."""
    photo, replace, estimate = _neckline_scene()
    photo[40:100, 30:210] = (110, 110, 112)  # grey jeans, clear of the worn top (skin between)
    photo[40:120, 60:63] = SKIN_RGB
    estimate = GarmentEstimate(
        garment=estimate.garment, grown_garment=estimate.grown_garment, skin=PALE_FACE_MODEL.mask(photo)
    )
    assert PALE_FACE_MODEL.mask(photo)[50, 150]  # the premise: the pale face's model takes grey for skin
    assert not bare_skin(photo, replace, estimate, PALE_FACE_MODEL)[40:100].any()


@pytest.mark.parametrize("shoulders", ["covered", "bare"])
def test_a_crew_necks_shoulder_tops_are_the_worn_top(shoulders: str) -> None:
    """The torso's top edge runs level from the outer shoulder to the neck; a crew neck's shoulders rise
    above it towards the collar. Carved out with the head column, that part was never the worn garment and
    stayed in the result above a new top's lower neckline (a black yoke beside the neck). It is the neck's
    kind of place now: garment where GrabCut finds the top's colours, never where the shoulders are bare."""
    shapes = body_shapes(_standing_person())
    frame = Frame(*GEOMETRY_SHAPE)
    skin, top, trousers = (205, 150, 120), (30, 35, 60), (120, 110, 100)
    face = draw_capsules(frame, [Capsule((144.0, 34.0), (144.0, 54.0), 16.0, 16.0)])
    neck = draw_capsules(frame, shapes.neck)
    torso = draw_polygons(frame, shapes.torso)
    shoulder_tops = draw_polygons(frame, *shapes.shoulder_tops) & ~torso & ~neck
    arms = draw_capsules(frame, shapes.arms["right"] + shapes.arms["left"])
    hands = draw_capsules(frame, shapes.hands["right"] + shapes.hands["left"])
    legs = draw_capsules(frame, shapes.legs["right"] + shapes.legs["left"])
    legs |= draw_polygons(frame, shapes.pelvis)
    photo = np.full((*GEOMETRY_SHAPE, 3), 225, np.uint8)
    photo[legs] = trousers
    photo[torso | arms | shoulder_tops] = top
    photo[neck | face | hands] = skin
    if shoulders == "bare":
        photo[shoulder_tops] = skin
    person = face | neck | torso | shoulder_tops | arms | hands | legs
    skin_model = fit_skin_model(np.array([skin] * 50, np.uint8))
    worn = estimate_garment(photo, person, shapes, GarmentCategory.UPPER_BODY, skin_model).garment
    assert shoulder_tops.sum() > 0.01 * torso.sum()
    covered = (worn & shoulder_tops).sum() / shoulder_tops.sum()
    assert covered > 0.8 if shoulders == "covered" else covered < 0.05
    excluded = category_regions(shapes, GarmentCategory.UPPER_BODY, frame).excluded
    assert not (excluded & shoulder_tops).any()
    # On the body, where a new garment may reach: a worn yoke there is not backdrop-filled as if it stood
    # off the body (at the torso's top edge it was, in dashes, from the outline's coarser raster).
    outline = body_outline(shapes, GarmentCategory.UPPER_BODY, frame, OFF_BODY_GROWTH)
    assert outline[shoulder_tops].all()


def test_bare_legs_under_a_skirt_are_legs_not_the_room_left_for_trousers() -> None:
    """The skin under a worn skirt or loose trousers, which a shorter or narrower new garment leaves bare,
    has the legs' own width: two legs with a gap between them at mid-thigh, each about a thigh wide. Drawn
    as wide as the capsules a new garment may reach, each was 0.45 body units across here, and on a person
    standing with her legs together they merged into one block of skin the skirt's width: narrow new
    trousers stood between columns of it."""
    points = _standing_person()
    shapes = body_shapes(points)
    frame = Frame(*GEOMETRY_SHAPE)
    skin = skin_underneath(shapes, GarmentCategory.LOWER_BODY, frame)
    mid_thigh = round((points[23][1] + points[25][1]) / 2)
    row = skin[mid_thigh].astype(np.int8)
    starts, ends = np.flatnonzero(np.diff(row) == 1), np.flatnonzero(np.diff(row) == -1)
    assert len(starts) == len(ends) == 2, "the two legs, apart"
    assert ((ends - starts) <= 0.36 * shapes.unit).all()  # a thigh: ~0.2-0.3 body units across
    assert ((ends - starts) >= 0.2 * shapes.unit).all()
    # The arms are bare skin under a top's sleeves whatever the category.
    assert skin[int(points[13][1]), int(points[13][0])]


def test_a_tops_midriff_is_skin_down_to_a_regular_waistband() -> None:
    """Between a short new top and the trousers is bare skin down to a regular waistband, where the
    trousers go on under an old long top; a dress's skin under the torso ends at the natural waist.
    Extended up to the natural waist, a skirt's waistband tucked under the old top stood over the belly as
    a smeared band."""
    points = _standing_person()
    shapes = body_shapes(points)
    frame = Frame(*GEOMETRY_SHAPE)
    top = skin_underneath(shapes, GarmentCategory.UPPER_BODY, frame)
    dress = skin_underneath(shapes, GarmentCategory.DRESS, frame)
    trousers = lower_garment_underneath(shapes, frame)
    hips_x = round((points[23][0] + points[24][0]) / 2)
    above_hips = np.arange(GEOMETRY_SHAPE[0]) < points[23][1]
    midriff = np.flatnonzero(~draw_polygons(frame, shapes.above_waist)[:, hips_x] & above_hips)
    # The natural waist down to the hips: skin, then the trousers from at least a quarter of the way down.
    assert len(midriff) >= 20
    assert top[midriff[: len(midriff) // 4], hips_x].all()
    assert not trousers[midriff[: len(midriff) // 4], hips_x].any()
    assert trousers[midriff[-3:], hips_x].all()
    assert not (top & trousers)[:, hips_x].any()
    assert not dress[midriff, hips_x].any()


def test_loose_trousers_beside_the_legs_stand_off_the_body() -> None:
    """The worn garment beyond the legs themselves (wide trousers, a skirt's flare) is off the body, where
    the backdrop shows once narrower trousers replace it: the body's outline draws the legs themselves, not
    the room their capsules leave for loose trousers (as a new garment's reach does)."""
    points = _standing_person()
    shapes = body_shapes(points)
    frame = Frame(*GEOMETRY_SHAPE)
    row = int((points[24][1] + points[26][1]) / 2)  # mid-thigh
    loose = category_reach(shapes, GarmentCategory.LOWER_BODY, frame, growth=OFF_BODY_GROWTH)[row]
    legs = body_outline(shapes, GarmentCategory.LOWER_BODY, frame, OFF_BODY_GROWTH)[row]
    loose_columns, legs_columns = np.flatnonzero(loose), np.flatnonzero(legs)
    # Narrower on both outer sides by at least 0.04 body units (the capsules' radius there is ~0.22) ...
    assert legs_columns[0] - loose_columns[0] >= 0.04 * shapes.unit
    assert loose_columns[-1] - legs_columns[-1] >= 0.04 * shapes.unit
    # ... and still over both thighs' centres.
    for hip, knee in ((23, 25), (24, 26)):
        assert legs[int((points[hip][0] + points[knee][0]) / 2)]


def test_the_cloth_between_legs_together_stands_off_the_body_for_trousers_only() -> None:
    """Legs standing close together: grown by the close-fitting allowance, the two legs' outlines meet,
    and a worn skirt's cloth between them counted as body, which every pair of new trousers leaves bare
    (filled as body, not as the backdrop behind it). Below the pelvis the gap between the legs is off the
    body for trousers; a dress covers it, so for dresses it stays."""
    points = _standing_person()
    points[25], points[26], points[27], points[28] = (158, 270), (130, 270), (156, 350), (132, 350)
    shapes = body_shapes(points)
    frame = Frame(*GEOMETRY_SHAPE)
    middle = int((points[23][0] + points[24][0]) / 2)
    trousers = body_outline(shapes, GarmentCategory.LOWER_BODY, frame, OFF_BODY_GROWTH)
    dress = body_outline(shapes, GarmentCategory.DRESS, frame, OFF_BODY_GROWTH)
    for row in (240, 270, 310):  # above the knees, at them, below them
        assert not trousers[row, middle - 1 : middle + 2].any()
        assert dress[row, middle]
        for knee in (25, 26):  # each leg itself is body
            assert trousers[row, int(points[knee][0])]
    assert trousers[int(points[23][1]) + 4, middle]  # the pelvis stays body


def test_the_feet_end_at_the_ankles() -> None:
    """Trousers are warped with their hems on the ankles. The feet stay in front of a new garment, but only
    below the ankle joints: the feet's capsules round up above them, and carved out of the new trousers
    they cut a notch into each hem that showed the old trousers through it."""
    points = _standing_person()
    shapes = body_shapes(points)
    frame = Frame(*GEOMETRY_SHAPE)
    ankle_row = int(max(points[27][1], points[28][1]))
    capsules = draw_capsules(frame, shapes.feet["right"] + shapes.feet["left"])
    assert capsules[:ankle_row].any()  # the capsules alone reach above the ankles
    feet = draw_feet(frame, shapes)
    assert not feet[:ankle_row].any()
    assert feet.sum() > 0.5 * capsules[ankle_row:].sum()  # below the ankles the feet are all there
    excluded = category_regions(shapes, GarmentCategory.LOWER_BODY, frame).excluded
    assert not excluded[ankle_row - 12 : ankle_row].any()  # the hems' rows: nothing carved


@pytest.mark.parametrize("hand_colour", [(200, 150, 125), (40, 40, 45)])  # bare, gloved
def test_only_the_hand_is_carved_out_of_its_capsule(hand_colour: tuple[int, int, int]) -> None:
    """A hand resting on the trousers: the hand stays in front of the new garment, the trousers around it
    (inside the hand's capsule, which is wider than the hand) are replaced like the rest of them. A gloved
    hand, not of the person's skin colour, keeps its whole capsule."""
    points = _standing_person()
    shapes = body_shapes(points)
    frame = Frame(*GEOMETRY_SHAPE)
    skin = (200, 150, 125)
    trousers = np.zeros(GEOMETRY_SHAPE, bool)
    trousers[150:, 80:210] = True
    photo = np.full((*GEOMETRY_SHAPE, 3), 235, np.uint8)
    photo[trousers] = (40, 70, 140)
    capsules = draw_capsules(frame, shapes.hands["right"] + shapes.hands["left"])
    hand = np.zeros(GEOMETRY_SHAPE, np.uint8)
    for wrist, index in ((15, 19), (16, 20)):  # a palm between the wrist and the fingers
        centre = (points[wrist] + points[index]) / 2
        cv2.circle(hand, (round(centre[0]), round(centre[1])), 7, 1, -1)
    hand = hand.astype(bool)
    assert (hand & ~capsules).sum() == 0 and (capsules & ~hand & trousers).sum() > 200
    photo[hand] = hand_colour
    model = fit_skin_model(np.array([skin] * 50, np.uint8))
    replace = trousers & ~capsules
    found = garment_beside_the_hands(photo, shapes, frame, model, replace, np.ones(GEOMETRY_SHAPE, bool))
    if hand_colour != skin:
        assert not found.any()
        return
    assert not (found & hand).any()
    beside = capsules & trousers & ~hand
    # All of the trousers in the capsules but a thin margin around the hand.
    margin = cv2.dilate(hand.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert (found & beside).sum() >= (beside & ~margin).sum()


@pytest.mark.parametrize("hand_colour", [(200, 150, 125), (240, 240, 240)], ids=["bare", "gloved"])
def test_a_new_garment_may_cover_the_trousers_around_a_hand_in_their_pocket(
    hand_colour: tuple[int, int, int],
) -> None:
    """A hand in a trouser pocket, under a top replaced by a longer one: the hand stays in front of the new
    top, the trousers around it (inside the hand's capsule) do not. Kept in front, they stood on the new
    top as a black mitten around the hand. A gloved hand keeps its whole capsule in front; the head always
    stays in front."""
    points = _standing_person()
    shapes = body_shapes(points)
    frame = Frame(*GEOMETRY_SHAPE)
    skin = (200, 150, 125)
    photo = np.full((*GEOMETRY_SHAPE, 3), 235, np.uint8)
    photo[150:, 80:210] = (20, 20, 25)  # black trousers, the hands on them
    capsules = draw_capsules(frame, shapes.hands["right"] + shapes.hands["left"])
    palm = np.zeros(GEOMETRY_SHAPE, np.uint8)
    for wrist, index in ((15, 19), (16, 20)):
        centre = (points[wrist] + points[index]) / 2
        cv2.circle(palm, (round(centre[0]), round(centre[1])), 7, 1, -1)
    palm = palm.astype(bool)
    photo[palm] = hand_colour
    model = fit_skin_model(np.array([skin] * 50, np.uint8))
    everywhere = np.ones(GEOMETRY_SHAPE, bool)
    hands = hands_in_front(photo, shapes, frame, model, everywhere)
    regions = category_regions(shapes, GarmentCategory.UPPER_BODY, frame)
    in_front = in_front_of_garments(regions, shapes, frame, hands, everywhere)
    head = regions.excluded & ~capsules  # the head column
    assert in_front[palm].all() and in_front[head].all()
    around = capsules & ~cv2.dilate(palm.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert around.sum() > 200
    if hand_colour == skin:
        assert not in_front[around].any()
    else:
        assert in_front[capsules].all()


def _rows(mask: np.ndarray) -> tuple[int, int]:
    rows = np.nonzero(mask.any(axis=1))[0]
    return int(rows.min()), int(rows.max())


def test_each_category_covers_its_part_of_the_body(regions: dict) -> None:
    upper, lower, dress = (regions[category] for category in GarmentCategory)
    # A top: from over the shoulders (y 80) down to the hip joints (y 190), the last part (below the
    # waist) only over the worn top or skin.
    assert 60 <= _rows(upper.target)[0] <= 80
    assert 140 <= _rows(upper.target)[1] <= 160
    assert 185 <= _rows(upper.target | upper.band)[1] <= 200
    # Trousers / skirt: from the waist (above the hip joints) to the ankles (y 350), not over the feet.
    assert 160 <= _rows(lower.target | lower.band)[0] <= 185
    assert 345 <= _rows(lower.target)[1] <= 360
    assert not lower.target[366, 170] and lower.excluded[366, 170]  # the left foot
    # A dress: the top's start, to below the knees (y 270).
    assert _rows(dress.target)[0] == _rows(upper.target)[0]
    assert 280 <= _rows(dress.target)[1] <= 320
    for category, region in regions.items():
        assert not np.any(region.core & ~(region.target | region.band)), category  # core: part of the region
        assert not np.any(region.target & region.excluded), category
        assert region.core.sum() > 100, category


def test_arms_hands_face_and_neck_are_carved_out(regions: dict) -> None:
    upper = regions[GarmentCategory.UPPER_BODY]
    assert upper.target[130, 144]  # the chest
    # The elbows (x 104 and 184 at y 130) are arms, not the top's region.
    assert upper.arms[130, 104] and upper.arms[130, 184]
    assert not (upper.target | upper.band)[130, 98:110].any()
    assert not (upper.target | upper.band)[130, 178:190].any()
    for category, region in regions.items():
        assert region.excluded[40, 144], category  # the nose: face
        # The neck, above the shoulder line: garment only where GrabCut finds a collar.
        assert region.neck[62, 144] and not region.core[62, 144], category
        assert region.excluded[195, 98], category  # the right hand
        assert not (region.target | region.band)[62, 144], category


@pytest.mark.parametrize("category", [GarmentCategory.UPPER_BODY, GarmentCategory.DRESS])
def test_a_new_top_may_reach_over_the_shoulders_caps_but_not_the_neck_or_face(
    category: GarmentCategory,
) -> None:
    """A top's shoulder seam lies on the shoulder's top, above the joint and outside it. The head column
    (above the torso's top edge, as wide as the outer shoulders) is never reached but for the shoulders'
    tops; a wedge of it beside each outer shoulder cut a notch into every new top's shoulder."""
    points = _standing_person()
    shapes = body_shapes(points)
    frame = Frame(*GEOMETRY_SHAPE)
    reach = category_reach(shapes, category, frame)
    unit = shapes.unit
    for joint, outward in ((points[12], -1.0), (points[11], 1.0)):  # the right shoulder is on the image left
        for along, up in ((0.12, 0.1), (0.14, 0.14), (0.05, 0.15)):
            x, y = joint[0] + outward * along * unit, joint[1] - up * unit
            assert reach[round(y), round(x)], (outward, along, up)
    face = draw_capsules(frame, [Capsule((144.0, 34.0), (144.0, 54.0), 14.0, 14.0)])
    assert not (reach & face).any()
    # The neck's middle above its base (its capsule is wide: the shoulders' tops, a yoke's place, overlap
    # its sides; below its base is the torso).
    neck = shapes.neck[0]
    middle = draw_capsules(frame, [Capsule(neck.start, neck.end, 0.1 * unit, 0.1 * unit)])
    middle[int(neck.end[1]) - 1 :] = False
    assert middle.any() and not (reach & middle).any()


def test_geometry_follows_a_leaning_person() -> None:
    # The same person rotated by 20 degrees about the hips: the chest stays inside the torso region.
    points = _standing_person()
    pivot = points[[23, 24]].mean(axis=0)
    angle = np.radians(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    leaning = (points - pivot) @ rotation.T + pivot
    frame = Frame(*GEOMETRY_SHAPE)
    region = category_regions(body_shapes(leaning), GarmentCategory.UPPER_BODY, frame)
    chest = (np.array([144.0, 130.0]) - pivot) @ rotation.T + pivot
    assert region.target[round(chest[1]), round(chest[0])]
    shoulder_mid = leaning[[11, 12]].mean(axis=0)
    above_neck = shoulder_mid + (shoulder_mid - pivot) * 0.25
    x, y = round(above_neck[0]), round(above_neck[1])
    assert region.excluded[y, x] or region.neck[y, x]
    assert not region.target[y, x]


def test_skin_model_learns_the_face_chroma() -> None:
    rng = np.random.default_rng(0)
    face = np.clip(rng.normal((200, 150, 125), 6, size=(400, 3)), 0, 255).astype(np.uint8)
    model = fit_skin_model(face)
    image = np.zeros((2, 3, 3), np.uint8)
    image[0] = (205, 152, 128)  # the same skin
    image[1] = (40, 90, 200)  # a blue garment
    mask = model.mask(image)
    assert mask[0].all() and not mask[1].any()
    assert GENERIC_SKIN_MODEL.mask(image)[0].all()


# ------------------------------------------------------------------------------------------ the backend

SIZE = 1024


@pytest.fixture(scope="module")
def segmentation() -> LiteSegmentation:
    backend = LiteSegmentation()
    backend.setup()
    return backend


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return person_photo(SIZE)  # upscaled to 1024 x 1024


@pytest.fixture(scope="module")
def outputs(
    segmentation: LiteSegmentation, astronaut: np.ndarray
) -> dict[GarmentCategory, SegmentationOutput]:
    return {
        category: segmentation.run(SegmentationInput(person=astronaut, category=category))
        for category in GarmentCategory
    }


@pytest.fixture(scope="module")
def keypoints(astronaut: np.ndarray) -> Keypoints:
    backend = LitePose()
    backend.setup()
    return backend.run(PoseInput(person=astronaut)).keypoints


def _at(mask: np.ndarray, keypoints: Keypoints, name: str) -> bool:
    x, y, score = keypoints[KP[name]]
    assert score > 0.5, name
    return bool(mask[round(float(y)), round(float(x))])


def test_outputs_are_binary_masks_and_a_label_map_at_the_photo_size(outputs: dict) -> None:
    for output in outputs.values():
        for mask in (output.clothing_mask, output.face_mask, output.person_mask):
            assert mask.shape == (SIZE, SIZE) and mask.dtype == np.uint8
        for mask in (output.face_mask, output.person_mask):
            assert set(np.unique(mask).tolist()) <= {0, 255}
        kinds = {0, BACKDROP, MAY_COVER, REPLACE_NEAREST, REPLACE_OFF_BODY, REPLACE_SKIN, REPLACE_LIMB}
        kinds |= {REPLACE_BELOW, SKIN_SOURCE, MAY_COVER_BACKDROP}
        assert set(np.unique(output.clothing_mask).tolist()) <= kinds
        assert output.label_map.shape == (SIZE, SIZE) and output.label_map.dtype == np.uint8
        assert int(output.label_map.max()) < len(ClothesLabel)


def test_person_mask_covers_the_astronaut(outputs: dict, keypoints: Keypoints) -> None:
    person = outputs[GarmentCategory.UPPER_BODY].person_mask > 0
    assert 0.3 < person.mean() < 0.8
    for name in ("nose", "neck", "right_shoulder", "left_shoulder", "right_eye"):
        assert _at(person, keypoints, name), name
    assert not person[:60, 900:].any()  # the backdrop at the top right corner
    assert not person[:300, :60].any()  # the flag at the left edge


def _grown(mask: np.ndarray, radius: int) -> np.ndarray:
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), disc).astype(bool)


def test_clothing_mask_is_inside_the_person_and_off_the_face(outputs: dict) -> None:
    """Inside the person but for the worn garment's rim just outside their outline, which is off the body
    (refilled from the backdrop)."""
    rim = round(GARMENT_RIM * SIZE)
    for category, output in outputs.items():
        clothing = replace_region(output.clothing_mask)
        person, face = output.person_mask > 0, output.face_mask > 0
        assert clothing.any(), category
        outside = clothing & ~person
        assert not np.any(outside & ~_grown(clothing & person, rim)), category
        assert np.all(output.clothing_mask[outside] == REPLACE_OFF_BODY), category
        assert not np.any((output.clothing_mask > 127) & face), category


def test_the_worn_garments_edge_outside_the_person_outline_is_replaced(
    astronaut: np.ndarray, outputs: dict
) -> None:
    """The person's outline (a low-resolution model's, upsampled) runs a few pixels inside the suit's own
    edge: the suit-coloured pixels there are replaced too, or they stay as an orange rim around the new
    garment."""
    output = outputs[GarmentCategory.UPPER_BODY]
    clothing, person = replace_region(output.clothing_mask), output.person_mask > 0
    suit = np.median(astronaut[clothing & person], axis=0)
    suit_like = np.linalg.norm(astronaut.astype(np.float32) - suit, axis=2) < 60
    edge = suit_like & ~person & _grown(clothing & person, round(GARMENT_RIM * SIZE))
    assert edge.sum() > 100  # the rim exists on this photo
    assert (edge & clothing).sum() >= 0.95 * edge.sum()


def test_upper_body_mask_is_the_suit_below_the_head(outputs: dict, keypoints: Keypoints) -> None:
    clothing = replace_region(outputs[GarmentCategory.UPPER_BODY].clothing_mask)
    assert clothing.mean() > 0.15
    assert clothing[650:800, 300:600].mean() > 0.9  # the chest below the helmet ring
    # The suit's sleeves are replaced too, as skin where the new garment leaves the arm uncovered.
    values = outputs[GarmentCategory.UPPER_BODY].clothing_mask
    x, y = (round(float(v)) for v in keypoints[KP["right_elbow"], :2])
    assert values[y, x] == REPLACE_LIMB
    # Nothing at head height between the ears; beside the neck the suit's shoulders and helmet ring rise
    # above the chin (the shoulders' tops, a high garment's yoke), and nothing at all above the nose.
    chin_y = keypoints[KP["nose"], 1] + 0.6 * (keypoints[KP["neck"], 1] - keypoints[KP["nose"], 1])
    ears = sorted(float(keypoints[KP[ear], 0]) for ear in ("right_ear", "left_ear"))
    assert not clothing[: round(float(chin_y)), round(ears[0]) : round(ears[1])].any()
    assert not clothing[: round(float(keypoints[KP["nose"], 1]))].any()
    assert not _at(clothing, keypoints, "nose")


def test_the_body_around_the_worn_garment_may_be_covered(outputs: dict, keypoints: Keypoints) -> None:
    values = outputs[GarmentCategory.UPPER_BODY].clothing_mask
    person = outputs[GarmentCategory.UPPER_BODY].person_mask > 0
    may_cover = (values == MAY_COVER) | (values == MAY_COVER_BACKDROP)
    # Around the suit (a new, looser or longer garment may reach there) but never on the face.
    assert may_cover.sum() > 0.05 * replace_region(values).sum()
    # The reach over the backdrop says so (the lite inpainter's backdrop, never its skin), on the body not.
    assert np.array_equal(values == MAY_COVER_BACKDROP, may_cover & ~person)
    assert (values == MAY_COVER_BACKDROP).sum() > 0.2 * may_cover.sum()
    assert not may_cover[outputs[GarmentCategory.UPPER_BODY].face_mask > 0].any()
    assert not _at(may_cover | replace_region(values), keypoints, "nose")


def test_lower_body_mask_stays_below_the_chest(outputs: dict, keypoints: Keypoints) -> None:
    # The hips are below the frame: trousers could only start near the bottom edge.
    clothing = replace_region(outputs[GarmentCategory.LOWER_BODY].clothing_mask)
    neck_y = round(float(keypoints[KP["neck"], 1]))
    assert not clothing[: neck_y + 300].any()
    upper = replace_region(outputs[GarmentCategory.UPPER_BODY].clothing_mask)
    assert clothing.sum() < 0.2 * upper.sum()


def test_dress_mask_covers_the_upper_body_region(outputs: dict) -> None:
    upper = replace_region(outputs[GarmentCategory.UPPER_BODY].clothing_mask)
    dress = replace_region(outputs[GarmentCategory.DRESS].clothing_mask)
    assert (upper & dress).sum() > 0.85 * upper.sum()


def test_face_mask_covers_the_face(outputs: dict, keypoints: Keypoints) -> None:
    face = outputs[GarmentCategory.UPPER_BODY].face_mask > 0
    for name in ("nose", "right_eye", "left_eye"):
        assert _at(face, keypoints, name), name
    nose_x, nose_y = (round(float(value)) for value in keypoints[KP["nose"], :2])
    assert face[nose_y - 40 : nose_y + 40, nose_x - 40 : nose_x + 40].all()
    assert not _at(face, keypoints, "neck")
    assert 0.015 < face.mean() < 0.08  # the face, not the head and hair


def test_the_persons_visible_skin_is_marked_as_the_source_of_bare_skin(
    astronaut: np.ndarray, outputs: dict, keypoints: Keypoints
) -> None:
    """The face's skin (not its eyes) is marked for the lite inpainter to colour bare skin with;
    it is outside the edit, and its colour is the astronaut's skin, not her suit's orange."""
    for output in outputs.values():
        source = output.clothing_mask == SKIN_SOURCE
        face = output.face_mask > 0
        assert (source & face).sum() > 0.3 * face.sum()
        for name in ("right_eye", "left_eye"):
            x, y = (round(float(value)) for value in keypoints[KP[name], :2])
            assert not source[y - 6 : y + 7, x - 6 : x + 7].any(), name
        colour = np.median(astronaut[source], axis=0)
        cr = 128 + 0.713 * (colour[0] - (0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]))
        assert 135 <= cr <= 173, colour  # skin chroma
        assert colour[0] > colour[2] and colour[1] > 0.45 * colour[0], colour  # not the saturated orange


def test_label_map_agrees_with_the_masks(outputs: dict, keypoints: Keypoints) -> None:
    garment_label = {
        GarmentCategory.UPPER_BODY: ClothesLabel.UPPER_CLOTHES,
        GarmentCategory.LOWER_BODY: ClothesLabel.PANTS,
        GarmentCategory.DRESS: ClothesLabel.DRESS,
    }
    for category, output in outputs.items():
        labels = output.label_map
        np.testing.assert_array_equal(labels == ClothesLabel.BACKGROUND, output.person_mask == 0)
        assert np.all(labels[output.face_mask > 0] == ClothesLabel.FACE)
        assert _at(labels == ClothesLabel.FACE, keypoints, "nose")
        nose_x, nose_y = keypoints[KP["nose"], :2]
        assert (
            labels[round(float(nose_y)) - 200, round(float(nose_x))] == ClothesLabel.HAIR
        )  # top of her head
        assert (labels == ClothesLabel.HAIR).mean() > 0.02
        clothing = replace_region(output.clothing_mask)
        assert np.mean(labels[clothing] == garment_label[category]) > 0.5, category
    labels = outputs[GarmentCategory.UPPER_BODY].label_map
    assert np.mean(labels[650:800, 300:600] == ClothesLabel.UPPER_CLOTHES) > 0.9
    # The hands at the bottom are arms; the person's right is on the image's left.
    right_x = np.nonzero(labels == ClothesLabel.RIGHT_ARM)[1]
    left_x = np.nonzero(labels == ClothesLabel.LEFT_ARM)[1]
    assert len(right_x) > 1000 and len(left_x) > 1000
    assert right_x.mean() < SIZE / 2 < left_x.mean()


def test_a_smaller_photo_gives_the_same_segmentation(segmentation: LiteSegmentation, outputs: dict) -> None:
    small = segmentation.run(SegmentationInput(person=person_photo(512)))
    assert small.clothing_mask.shape == (512, 512)
    big = outputs[GarmentCategory.UPPER_BODY]
    for name in ("clothing_mask", "face_mask", "person_mask"):
        downsampled = getattr(big, name)[::2, ::2] > 0
        agreement = np.mean(downsampled == (getattr(small, name) > 0))
        assert agreement > 0.95, name


def test_output_is_deterministic(astronaut: np.ndarray, outputs: dict) -> None:
    # A fresh backend with its own landmark detector (no shared cache) gives the same bytes.
    other = LiteSegmentation(MediaPipePoseLandmarker())
    other.setup()
    again = other.run(SegmentationInput(person=astronaut.copy(), category=GarmentCategory.UPPER_BODY))
    first = outputs[GarmentCategory.UPPER_BODY]
    for name in ("label_map", "clothing_mask", "face_mask", "person_mask"):
        assert getattr(first, name).tobytes() == getattr(again, name).tobytes(), name


def test_concurrent_calls_give_the_sequential_results(segmentation: LiteSegmentation) -> None:
    photos = [person_photo(384), np.ascontiguousarray(person_photo(448)[:, ::-1])]
    jobs = [(photo, category) for photo in photos for category in GarmentCategory]
    expected = [segmentation.run(SegmentationInput(photo, category)) for photo, category in jobs]
    results: dict[int, SegmentationOutput] = {}

    def worker(index: int) -> None:
        photo, category = jobs[index]
        results[index] = segmentation.run(SegmentationInput(photo, category))

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == len(jobs)
    for index, result in results.items():
        np.testing.assert_array_equal(result.clothing_mask, expected[index].clothing_mask)
        np.testing.assert_array_equal(result.label_map, expected[index].label_map)


@pytest.mark.parametrize(
    "photo",
    [skimage.data.chelsea(), np.full((480, 360, 3), 200, np.uint8)],
    ids=["cat", "blank"],
)
def test_no_person_is_a_stage_input_error(segmentation: LiteSegmentation, photo: np.ndarray) -> None:
    with pytest.raises(StageInputError) as error:
        segmentation.run(SegmentationInput(person=photo))
    assert str(error.value) == NO_PERSON_FOUND  # one wording in every backend
    assert error.value.field == "person"


@pytest.mark.parametrize(
    "photo",
    [np.zeros((64, 64), np.uint8), np.zeros((64, 64, 4), np.uint8), np.zeros((64, 64, 3), np.float64)],
    ids=["grey", "rgba", "float"],
)
def test_malformed_photos_are_stage_input_errors(segmentation: LiteSegmentation, photo: np.ndarray) -> None:
    with pytest.raises(StageInputError) as error:
        segmentation.run(SegmentationInput(person=photo))
    assert error.value.field == "person"


def test_info_names_the_bundled_models(segmentation: LiteSegmentation) -> None:
    info = segmentation.info()
    assert (info.stage, info.backend, info.device) == ("segmentation", "lite", "cpu")
    assert {model.name for model in info.models} >= {"mediapipe_pose", "mediapipe_selfie_segmentation"}
    assert all(model.source.startswith("bundled:mediapipe") for model in info.models)


def test_lite_segmentation_does_not_import_torch() -> None:
    code = (
        "import sys; from services.segmentation.lite import LiteSegmentation; "
        "from tests.imagegen import person_photo; from tryon.types import SegmentationInput; "
        "backend = LiteSegmentation(); backend.setup(); "
        "backend.run(SegmentationInput(person=person_photo(256))); "
        "assert 'torch' not in sys.modules, 'the lite segmentation path imported torch'"
    )
    repo_root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", code], timeout=120, cwd=repo_root, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_photo_of_two_people_is_noted_and_one_is_used(
    segmentation: LiteSegmentation, caplog: pytest.LogCaptureFixture
) -> None:
    one = person_photo(512)
    two = np.hstack([one, one[:, ::-1]])  # two astronauts side by side
    with caplog.at_level("WARNING", logger="services.segmentation.lite"):
        output = segmentation.run(SegmentationInput(person=two))
    assert "more than one person" in caplog.text
    person = output.person_mask > 0
    # One of them: the person mask lies on one half only.
    assert min(person[:, :512].sum(), person[:, 512:].sum()) < 0.05 * person.sum()
