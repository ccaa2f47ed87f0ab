from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.warp.backend import (
    GarmentWarper,
    find_landmarks,
    separate_garment,
    upright,
    warp_to_person,
)
from services.warp.tps import ThinPlateSpline
from tests.imagegen import draw_garment, garment_mask, white_striped_garment
from tryon.types import KP, GarmentCategory, StageInputError, WarpInput

TARGET = (1024, 768)  # (height, width) of the person frame


def _keypoints() -> np.ndarray:
    """A frontal body in a 768 x 1024 frame: shoulders 300 px apart at y=300, hips at y=620."""
    keypoints = np.zeros((18, 3), np.float32)
    points = {
        "nose": (384, 180), "neck": (384, 300),
        "right_shoulder": (234, 300), "left_shoulder": (534, 300),
        "right_elbow": (200, 460), "left_elbow": (568, 460),
        "right_hip": (300, 620), "left_hip": (468, 620),
        "right_knee": (300, 800), "left_knee": (468, 800),
        "right_ankle": (300, 980), "left_ankle": (468, 980),
    }  # fmt: skip
    for name, (x, y) in points.items():
        keypoints[KP[name]] = (x, y, 0.9)
    return keypoints


@pytest.fixture(scope="module")
def warper() -> GarmentWarper:
    backend = GarmentWarper()
    backend.setup()
    return backend


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("category", list(GarmentCategory))
def test_separation_recovers_the_drawn_silhouette(category: GarmentCategory) -> None:
    _, alpha = separate_garment(draw_garment(category, background=(250, 250, 250)))
    assert _iou(alpha > 127, garment_mask(category) > 0) >= 0.95


def test_white_print_inside_a_garment_on_white_is_kept() -> None:
    garment = draw_garment(GarmentCategory.UPPER_BODY, color=(20, 20, 90), background=(255, 255, 255))
    garment[400:600, 300:470] = 255  # a white print, same colour as the background
    _, alpha = separate_garment(garment)
    assert (alpha[420:580, 320:450] > 127).all()


def _sleeves_along_the_torso() -> np.ndarray:
    """A long-sleeved top laid with its sleeves along the torso, 24 px from it, on a 768 x 1024 photo."""
    photo = np.full((1024, 768, 3), 240, np.uint8)
    colour = (150, 40, 40)
    cv2.rectangle(photo, (254, 150), (514, 900), colour, -1)  # the torso, 260 px wide
    cv2.rectangle(photo, (170, 150), (598, 260), colour, -1)  # the shoulders, joining the sleeves
    cv2.rectangle(photo, (170, 150), (230, 860), colour, -1)  # the sleeves, a 24 px gap to the torso
    cv2.rectangle(photo, (538, 150), (598, 860), colour, -1)
    return photo


def test_a_garment_small_in_a_wide_frame_is_separated_at_its_own_scale() -> None:
    """In three times its frame, the sleeves' gaps beside the torso closed at the frame's resolution (2 px
    there): the sleeves were taken for the torso."""
    photo = _sleeves_along_the_torso()
    wide = np.full((3072, 2304, 3), 240, np.uint8)
    top, left = 1024, 768
    wide[top : top + 1024, left : left + 768] = photo
    _, alpha = separate_garment(photo)
    _, wide_alpha = separate_garment(wide)
    assert not wide_alpha[:top].any() and not wide_alpha[top + 1024 :].any()
    assert _iou(wide_alpha[top : top + 1024, left : left + 768] > 127, alpha > 127) >= 0.97
    assert not (wide_alpha[top + 400 : top + 800, left + 236 : left + 248] > 127).any()  # the gap
    landmarks = find_landmarks(alpha, GarmentCategory.UPPER_BODY)
    wide_landmarks = find_landmarks(wide_alpha, GarmentCategory.UPPER_BODY)
    for name, (x, y) in landmarks.items():
        assert name in wide_landmarks, name
        assert wide_landmarks[name] == pytest.approx((x + left, y + top), abs=6), name
    assert "left_sleeve" in landmarks and "right_sleeve" in landmarks


@pytest.mark.parametrize("category", [GarmentCategory.UPPER_BODY, GarmentCategory.DRESS])
def test_a_garment_laid_turned_is_read_upright(warper: GarmentWarper, category: GarmentCategory) -> None:
    """Turned by 4 degrees, the garment is turned back before its landmarks are read: the warped garment
    is the upright photo's (IoU >= 0.93; 0.7-0.8 read as turned), and the landmarks reported are in the
    turned photo (the upright photo's landmarks turned with it, within 8 px)."""
    photo = draw_garment(category, background=(245, 245, 245))
    turn = cv2.getRotationMatrix2D((384.0, 512.0), 4.0, 1.0)
    turned = cv2.warpAffine(photo, turn, (768, 1024), borderMode=cv2.BORDER_REPLICATE)
    inputs = {"keypoints": _keypoints(), "target_size": TARGET, "category": category}
    upright_run = warper.run(WarpInput(garment=photo, **inputs))  # type: ignore[arg-type]
    turned_run = warper.run(WarpInput(garment=turned, **inputs))  # type: ignore[arg-type]
    a, b = upright_run.warped_garment[..., 3] > 127, turned_run.warped_garment[..., 3] > 127
    assert _iou(a, b) >= 0.93
    for name, (x, y) in upright_run.garment_landmarks.items():
        expected = turn @ np.array([x, y, 1.0])
        assert turned_run.garment_landmarks[name] == pytest.approx(tuple(expected), abs=8), name


def test_an_upright_garment_is_left_as_photographed() -> None:
    _, alpha = separate_garment(draw_garment(GarmentCategory.UPPER_BODY))
    rgb = np.zeros((*alpha.shape, 3), np.uint8)
    same_rgb, same_alpha, turn = upright(rgb, alpha)
    assert same_alpha is alpha and same_rgb is rgb
    assert np.array_equal(turn, [[1, 0, 0], [0, 1, 0]])


def test_rgba_cut_out_keeps_its_alpha() -> None:
    rgba = draw_garment(GarmentCategory.DRESS, rgba=True)
    rgb, alpha = separate_garment(rgba)
    assert _iou(alpha > 127, rgba[..., 3] > 127) >= 0.99
    assert np.array_equal(rgb, rgba[..., :3])


def test_upper_body_landmarks_sit_on_the_drawn_tshirt() -> None:
    landmarks = find_landmarks(garment_mask(GarmentCategory.UPPER_BODY), GarmentCategory.UPPER_BODY)
    width, height = 768, 1024
    assert landmarks["left_shoulder"][0] < landmarks["neckline"][0] < landmarks["right_shoulder"][0]
    assert abs(landmarks["neckline"][0] - 0.5 * width) < 5
    assert landmarks["left_shoulder"][1] == landmarks["right_shoulder"][1]  # a mirrored pair
    # Within the torso's sides (0.28 and 0.72 of the width), at SHOULDER_FRACTION of its half-width.
    assert landmarks["left_shoulder"][0] == pytest.approx(width / 2 - 0.85 * 0.22 * width, abs=8)
    assert landmarks["left_hem"][1] == pytest.approx(0.90 * height, abs=0.03 * height)
    assert landmarks["left_hem"][0] == pytest.approx(0.28 * width, abs=5)
    assert landmarks["right_hem"][0] == pytest.approx(0.72 * width, abs=5)
    # Each sleeve's tip: the middle of its end edge, (0.12, 0.22)-(0.20, 0.36) on the left (mirrored).
    for side, x_range in (("left", (0.11, 0.21)), ("right", (0.79, 0.89))):
        x, y = landmarks[f"{side}_sleeve"]
        assert x_range[0] * width <= x <= x_range[1] * width, side
        assert 0.2 * height <= y <= 0.37 * height, side


def _sleeveless_dress(strap_edges: tuple[int, int] = (150, 175)) -> np.ndarray:
    """A sleeveless dress's silhouette on a 768 x 1024 photo, its axis at x = 384: straps from y = 100 (a
    round neck between them) down to the armholes' bottom at y = 300, the bodice 400 px wide below them,
    the skirt flaring to the hem at y = 1000. ``strap_edges``: each strap's outer edge from the axis, the
    person's right and left, inside the columns where the shoulder landmarks sit (0.85 x 200 = 170 px)
    or not."""
    mask = np.zeros((1024, 768), np.uint8)
    axis = 384
    bodice_and_skirt = [(axis - 200, 300), (axis + 200, 300), (axis + 300, 1000), (axis - 300, 1000)]
    cv2.fillPoly(mask, [np.array(bodice_and_skirt)], 255)
    mask[100:301, axis - strap_edges[0] : axis + strap_edges[1] + 1] = 255
    cv2.ellipse(mask, (axis, 100), (60, 50), 0, 0, 180, 0, -1)
    return mask


@pytest.mark.parametrize("strap_edges", [(150, 175), (180, 160), (150, 150)])
def test_a_sleeveless_garments_shoulders_are_its_straps_top_not_its_armholes(
    strap_edges: tuple[int, int],
) -> None:
    """Where a shoulder landmark's column is in an armhole, the height is read on the straps: the
    armhole's bottom (y = 300) lifted the dress by 200 px, its round neck up to the chin."""
    landmarks = find_landmarks(_sleeveless_dress(strap_edges), GarmentCategory.DRESS)
    for side in ("left", "right"):
        x, y = landmarks[f"{side}_shoulder"]
        assert y == pytest.approx(100, abs=4), side
        # The columns (the width fit) stay: 0.85 of the bodice's half-width, in the armholes.
        assert abs(x - 384) > max(strap_edges), side
    assert landmarks["left_shoulder"][0] + landmarks["right_shoulder"][0] == pytest.approx(2 * 384, abs=2)


def _camisole() -> np.ndarray:
    """A camisole's silhouette on a 768 x 1024 photo, its axis at x = 384: a bodice 400 px wide from its
    V neckline (corners at y = 300, the V's point at y = 420) to the hem at y = 700, and two thin straps
    (12 px) standing up from its top corners, their outer edges 176 px from the axis, to y = 120."""
    mask = np.zeros((1024, 768), np.uint8)
    axis = 384
    bodice = [(axis - 200, 300), (axis, 420), (axis + 200, 300), (axis + 200, 700), (axis - 200, 700)]
    cv2.fillPoly(mask, [np.array(bodice)], 255)
    for sign in (-1, 1):
        outer, inner = axis + sign * 176, axis + sign * 164
        mask[120:330, min(outer, inner) : max(outer, inner) + 1] = 255
    return mask


def test_a_camisoles_straps_are_found_on_its_straps() -> None:
    landmarks = find_landmarks(_camisole(), GarmentCategory.UPPER_BODY)
    for side, sign in (("left", -1), ("right", 1)):
        x, y = landmarks[f"{side}_strap"]
        assert 160 <= sign * (x - 384) <= 180, side  # on the strap, 164-176 px out
        assert y == pytest.approx(120, abs=4), side


def test_a_wide_straps_middle_is_between_the_neck_and_the_armhole() -> None:
    """The dress's straps run from its round neck (60 px from the axis) to the armholes (150 px)."""
    landmarks = find_landmarks(_sleeveless_dress((150, 150)), GarmentCategory.DRESS)
    assert landmarks["right_strap"][0] - 384 == pytest.approx(105, abs=6)
    assert 384 - landmarks["left_strap"][0] == pytest.approx(105, abs=6)


@pytest.mark.parametrize("category", [GarmentCategory.UPPER_BODY, GarmentCategory.DRESS])
def test_a_sleeved_garment_has_no_straps(category: GarmentCategory) -> None:
    landmarks = find_landmarks(garment_mask(category), category)
    assert "left_strap" not in landmarks and "right_strap" not in landmarks


def test_a_camisoles_straps_lie_on_the_middle_of_the_shoulders(warper: GarmentWarper) -> None:
    """The shoulder joints are 300 px apart (x = 234 and 534): the straps land 0.38 of that either side
    of their middle (x = 270 and 498), not on the shoulders' edges beyond the joints (x = 198 and 570),
    where a sleeved top's shoulder seams go; their tops on the shoulders' top there, 0.165 of it above the
    joints (y = 250: the line from the shoulders' edge, 0.10 above, to the neck's base, 0.2 above); and
    the bodice is no wider than the body's hips (x = 250 to 518) with its hem on them."""
    garment = np.full((1024, 768, 4), 255, np.uint8)
    garment[..., :3] = (230, 200, 60)
    garment[..., 3] = _camisole()
    warped = warper.run(WarpInput(garment=garment, keypoints=_keypoints(), target_size=TARGET)).warped_garment
    alpha = warped[..., 3] > 127
    rows = np.flatnonzero(alpha.any(axis=1))
    assert abs(int(rows[0]) - 250) <= 6
    top_rows = alpha[rows[0] : rows[0] + 20]
    columns = np.flatnonzero(top_rows.any(axis=0))
    left, right = columns[columns < 384], columns[columns > 384]
    assert abs(float(left.mean()) - 270) <= 15
    assert abs(float(right.mean()) - 498) <= 15
    bodice = np.flatnonzero(alpha.any(axis=0))
    assert bodice[0] >= 250 - 25 and bodice[-1] <= 518 + 25


def test_a_tshirts_shoulder_slope_is_no_armhole() -> None:
    mask = garment_mask(GarmentCategory.UPPER_BODY)
    landmarks = find_landmarks(mask, GarmentCategory.UPPER_BODY)
    for side in ("left", "right"):
        x, y = landmarks[f"{side}_shoulder"]
        assert y == pytest.approx(np.argmax(mask[:, round(x)] > 127), abs=2), side


def test_a_sleeveless_dress_hangs_from_the_shoulders(warper: GarmentWarper) -> None:
    garment = np.full((1024, 768, 4), 255, np.uint8)
    garment[..., :3] = (200, 90, 30)
    garment[..., 3] = _sleeveless_dress()
    warped = warper.run(
        WarpInput(garment=garment, keypoints=_keypoints(), target_size=TARGET, category=GarmentCategory.DRESS)
    ).warped_garment
    ys, _ = np.nonzero(warped[..., 3] > 127)
    assert 240 <= ys.min() <= 300  # the straps on the shoulders (y = 300, their top ~30 px above)


def test_thin_plate_spline_maps_control_points_exactly() -> None:
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 500, size=(8, 2))
    target = source + rng.normal(0, 20, size=(8, 2))
    spline = ThinPlateSpline(source, target)
    np.testing.assert_allclose(spline(source), target, atol=1e-6)
    # With only affine motion the spline is that affine map everywhere.
    affine = ThinPlateSpline(source, source * 1.5 + 7)
    probe = rng.uniform(0, 500, size=(20, 2))
    np.testing.assert_allclose(affine(probe), probe * 1.5 + 7, atol=1e-6)


def test_upper_body_garment_lands_on_the_torso(warper: GarmentWarper) -> None:
    garment = draw_garment(GarmentCategory.UPPER_BODY)
    out = warper.run(WarpInput(garment=garment, keypoints=_keypoints(), target_size=TARGET))
    assert out.warped_garment.shape == (*TARGET, 4)
    covered = out.warped_garment[..., 3] > 127
    ys, xs = np.nonzero(covered)
    assert 200 <= ys.min() <= 300  # the collar rises a little above the shoulder joints (y = 300)
    assert abs(xs.mean() - 384) < 15  # centred on the neck
    # the torso between shoulders and hips is covered
    assert covered[320:600, 260:510].mean() > 0.97
    # the garment keeps its colour
    assert np.abs(out.warped_garment[450, 384, :3].astype(int) - (200, 30, 30)).max() <= 6
    assert {"left_shoulder", "neckline", "left_hem", "right_sleeve"} <= set(out.garment_landmarks)


def test_lower_body_garment_spans_waist_to_ankles(warper: GarmentWarper) -> None:
    garment = draw_garment(GarmentCategory.LOWER_BODY, color=(30, 40, 120))
    covered = (
        warper.run(
            WarpInput(
                garment=garment,
                keypoints=_keypoints(),
                target_size=TARGET,
                category=GarmentCategory.LOWER_BODY,
            )
        ).warped_garment[..., 3]
        > 127
    )
    ys, _ = np.nonzero(covered)
    assert 540 <= ys.min() <= 620  # waistband just above the hips (y = 620)
    assert ys.max() >= 940  # down to the ankles (y = 980)
    assert covered[700, 300] and covered[700, 468]  # both legs


def test_dress_spans_shoulders_to_below_the_hips(warper: GarmentWarper) -> None:
    garment = draw_garment(GarmentCategory.DRESS, color=(20, 120, 60))
    covered = (
        warper.run(
            WarpInput(
                garment=garment, keypoints=_keypoints(), target_size=TARGET, category=GarmentCategory.DRESS
            )
        ).warped_garment[..., 3]
        > 127
    )
    ys, _ = np.nonzero(covered)
    assert 250 <= ys.min() <= 320
    assert ys.max() > 700


def test_same_input_gives_the_same_bytes(warper: GarmentWarper) -> None:
    inputs = WarpInput(garment=draw_garment(), keypoints=_keypoints(), target_size=TARGET)
    assert np.array_equal(warper.run(inputs).warped_garment, warper.run(inputs).warped_garment)


@pytest.mark.parametrize(
    "garment",
    [
        np.full((400, 300, 3), 128, np.uint8),  # nothing but background
        np.random.default_rng(0).integers(0, 256, size=(400, 300, 3), dtype=np.uint8),  # noise
        np.full((400, 300, 4), 0, np.uint8),  # fully transparent cut-out
    ],
    ids=["uniform", "noise", "transparent"],
)
def test_inseparable_garments_are_refused(warper: GarmentWarper, garment: np.ndarray) -> None:
    with pytest.raises(StageInputError, match="garment could not be separated") as error:
        warper.run(WarpInput(garment=garment, keypoints=_keypoints(), target_size=TARGET))
    assert error.value.field == "garment"


def test_missing_shoulders_are_refused(warper: GarmentWarper) -> None:
    keypoints = _keypoints()
    keypoints[KP["left_shoulder"]] = 0
    with pytest.raises(StageInputError, match="left_shoulder") as error:
        warper.run(WarpInput(garment=draw_garment(), keypoints=keypoints, target_size=TARGET))
    assert error.value.field == "keypoints"


def test_missing_hips_are_refused_for_lower_body(warper: GarmentWarper) -> None:
    keypoints = _keypoints()
    keypoints[KP["right_hip"]] = 0
    garment = draw_garment(GarmentCategory.LOWER_BODY)
    with pytest.raises(StageInputError, match="right_hip"):
        warper.run(
            WarpInput(
                garment=garment, keypoints=keypoints, target_size=TARGET, category=GarmentCategory.LOWER_BODY
            )
        )


def test_separated_edge_carries_no_backdrop_colour() -> None:
    # Drawn at 4x and reduced, as a camera sees it: the edge pixels mix navy with the white backdrop.
    navy, white = np.array([25, 30, 90]), np.array([250, 250, 250])
    large = draw_garment(
        GarmentCategory.UPPER_BODY, color=(25, 30, 90), size=(3072, 4096), background=(250, 250, 250)
    )
    photo = cv2.resize(large, (768, 1024), interpolation=cv2.INTER_AREA)
    rgb, alpha = separate_garment(photo)
    # The edge: what the garment shows within 4 px of what it does not (enclosed regions of the backdrop's
    # colour, like a white print, are kept as garment by design and are not the edge).
    outside = cv2.dilate((alpha == 0).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    shown = (alpha > 0) & outside
    to_navy = np.linalg.norm(rgb[shown].astype(float) - navy, axis=1)
    to_white = np.linalg.norm(rgb[shown].astype(float) - white, axis=1)
    # The edge pixels the garment shows (opaque or partly) have the garment's colour, not the backdrop's:
    # else a white halo or staircase shows round a navy garment composited onto a person. (A few pixels
    # at the sharp tips of the armpits' notches, which the low-resolution mask rounds off, may stay.)
    backdrop_coloured = int((to_navy >= to_white).sum())
    assert backdrop_coloured <= 0.01 * shown.sum(), f"{backdrop_coloured} of {shown.sum()} edge pixels"
    edge = shown & (alpha < 255)
    assert edge.sum() > 500  # the edge is antialiased, not cut hard
    assert _iou(alpha > 127, garment_mask(GarmentCategory.UPPER_BODY) > 0) >= 0.97


def test_white_stripes_reach_the_garment_edge() -> None:
    """White stripes of the backdrop's own colour cannot be told from it by colour at the garment's edge:
    placed by colour they ended ~6 px short of the navy ones, and the composited edge was a saw. The edge
    runs on from the navy stripes across them instead."""
    _, alpha = separate_garment(white_striped_garment())
    opaque = alpha[200:850] > 127
    right_edge = opaque.shape[1] - 1 - np.argmax(opaque[:, ::-1], axis=1)
    left_edge = np.argmax(opaque, axis=1)
    assert np.abs(right_edge - 567).max() <= 1
    assert np.abs(left_edge - 200).max() <= 1


def test_resampled_edge_takes_no_colour_from_transparent_pixels() -> None:
    # A navy square on a transparent white photo, enlarged 1.37x and turned by the warp: its resampled
    # edge pixels (partly transparent) must be navy, not a mix with the white under alpha 0.
    rgb = np.full((400, 400, 3), 255, np.uint8)
    rgb[100:300, 100:300] = (25, 30, 90)
    alpha = np.zeros((400, 400), np.uint8)
    alpha[100:300, 100:300] = 255
    corners = [(100.0, 100.0), (300.0, 100.0), (100.0, 300.0), (300.0, 300.0), (200.0, 200.0)]
    turn = np.array([[1.3, -0.43], [0.43, 1.3]])
    pairs = [(point, turn @ (np.array(point) - 200) + 256) for point in corners]
    warped = warp_to_person(rgb, alpha, pairs, (512, 512))
    edge = (warped[..., 3] > 0) & (warped[..., 3] < 255)
    assert edge.sum() > 200
    assert warped[edge][:, :3].max() < 128  # nothing whitish
    # (8-bit premultiplied colour loses precision where alpha is small; those pixels barely show.)
    visible = edge & (warped[..., 3] >= 64)
    assert np.abs(warped[visible][:, :3].astype(int) - (25, 30, 90)).max() <= 4
