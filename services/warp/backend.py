"""Garment warp: cut the garment out of its photo, find its landmarks, align it to the body.

One CPU implementation serves both the lite and the full pipeline.

1. **Separation.** An RGBA cut-out keeps its alpha. Otherwise the background colour is estimated from the
   photo's border; pixels far from it are garment; the largest component is kept and its holes filled (so
   white prints on a white background stay part of the garment).
   Supported: flat-lay photos and product shots on a plain, roughly uniform background (studio white,
   grey, any single colour). Not supported: garments photographed on a person or mannequin, hangers with
   visible hooks, busy or textured backgrounds: these are refused with a clear error rather than guessed.
2. **Landmarks** from the silhouette: shoulder corners, neckline, hem corners, sleeve ends (upper body);
   waist corners and leg ends (lower body); shoulders and hem corners (dress).
3. **Alignment.** A similarity transform fitted on the garment's anchor pair (shoulders or waist) onto the
   body's keypoints keeps the garment's own proportions; a thin-plate spline through all landmark pairs then
   bends it onto the body (hem to the hips' width, legs to the ankles).
4. **Output.** One ``cv2.remap`` of the full-resolution garment through a spline map evaluated on a coarse
   grid: RGBA in the person's frame, alpha antialiased.

Sides: a garment photographed from the front shows the wearer's right on the image left, like the person
photo, so image-left garment landmarks go to image-left body keypoints (COCO "right_*").
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from services.warp.tps import ThinPlateSpline
from tryon.imaging import MIN_GARMENT_SIDE
from tryon.stages import SINGLE_IMPLEMENTATION
from tryon.types import (
    KP,
    BackendInfo,
    GarmentCategory,
    Keypoints,
    StageInputError,
    WarpInput,
    WarpOutput,
)
from tryon.vision.images import downscale

#: Separation runs at this long side; the mask is then upsampled to the garment photo.
SEPARATION_LONG_SIDE = 256
#: A border whose colours spread more than this (mean absolute deviation, 0-255) is not a plain background.
MAX_BORDER_SPREAD = 18.0
#: Minimum colour distance from the background to count as garment.
MIN_FOREGROUND_DISTANCE = 28.0
#: Width (colour-distance units) of the alpha ramp across the garment's edge.
EDGE_RAMP = 12.0
#: The spline map is evaluated every this many pixels of the person frame, then interpolated.
MAP_GRID_STEP = 8
#: Keypoints below this confidence are treated as missing.
MIN_CONFIDENCE = 0.05
#: Garment shoulders sit slightly outside the shoulder joints (the joint is inside the body's outline).
SHOULDER_OUTSET = 0.12
#: The body at the hips is wider than the distance between the hip joints.
HIP_OUTSET = 0.30
#: Garment waistbands sit above the hip joints, by this fraction of the shoulder-to-hip distance.
WAIST_RAISE = 0.12

Point = tuple[float, float]


class GarmentWarper:
    """StageBackend[WarpInput, WarpOutput]: separation, landmarks, similarity + TPS, remap."""

    def setup(self) -> None:
        # Nothing to load; one small run pays OpenCV's first-call costs before serving.
        garment = np.full((256, 192, 3), 240, np.uint8)
        cv2.rectangle(garment, (48, 32), (144, 224), (200, 30, 30), -1)
        keypoints = np.zeros((18, 3), np.float32)
        keypoints[KP["right_shoulder"]] = (60, 60, 1)
        keypoints[KP["left_shoulder"]] = (130, 60, 1)
        keypoints[KP["right_hip"]] = (70, 180, 1)
        keypoints[KP["left_hip"]] = (120, 180, 1)
        self.run(WarpInput(garment=garment, keypoints=keypoints, target_size=(256, 192)))

    def info(self) -> BackendInfo:
        return BackendInfo(stage="warp", backend=SINGLE_IMPLEMENTATION, device="cpu")

    def run(self, inputs: WarpInput, /) -> WarpOutput:
        height, width = inputs.target_size
        if height < 16 or width < 16:
            raise StageInputError("target size must be at least 16x16", field="target_size")
        _check_keypoints(inputs.keypoints)
        garment_rgb, alpha = separate_garment(inputs.garment)
        landmarks = find_landmarks(alpha, inputs.category)
        pairs = body_targets(landmarks, inputs.keypoints, inputs.category)
        warped = warp_to_person(garment_rgb, alpha, pairs, (height, width))
        return WarpOutput(
            warped_garment=warped,
            garment_landmarks={name: (float(x), float(y)) for name, (x, y) in landmarks.items()},
        )


# ----------------------------------------------------------------------------------------- separation


def separate_garment(garment: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Return (RGB, alpha) of the garment photo; alpha 0 = background, 255 = garment."""
    if garment.ndim != 3 or garment.shape[2] not in (3, 4) or garment.dtype != np.uint8:
        raise StageInputError("garment must be an RGB or RGBA uint8 image", field="garment")
    if min(garment.shape[:2]) < MIN_GARMENT_SIDE:
        raise StageInputError(
            f"garment image is too small (at least {MIN_GARMENT_SIDE} px per side)", field="garment"
        )
    rgb = np.ascontiguousarray(garment[..., :3])
    if garment.shape[2] == 4 and garment[..., 3].min() < 250:
        alpha = garment[..., 3]
        coverage = (alpha > 127).mean()
        if coverage < 0.02:
            raise StageInputError(
                "garment could not be separated: its alpha channel is empty", field="garment"
            )
        return rgb, _largest_component(alpha > 127, fill_holes=False, soft=alpha)
    return rgb, _separate_from_background(rgb)


def _separate_from_background(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    height, width = rgb.shape[:2]
    small = cv2.GaussianBlur(downscale(rgb, SEPARATION_LONG_SIDE), (3, 3), 0).astype(np.float32)
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]])
    background = np.median(border, axis=0)
    spread = float(np.abs(border - background).mean())
    if spread > MAX_BORDER_SPREAD:
        raise StageInputError(
            "garment could not be separated from its background: the background is not plain "
            f"(border colour spread {spread:.0f} > {MAX_BORDER_SPREAD:.0f}); use a product photo on a plain "
            "background or an RGBA cut-out",
            field="garment",
        )
    distance = np.linalg.norm(small - background, axis=2)
    threshold = max(MIN_FOREGROUND_DISTANCE, 4.0 * spread)
    foreground = distance > threshold
    # Small kernels: close pin-holes and drop specks without filling the notch between trouser legs.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    foreground = cv2.morphologyEx(foreground.astype(np.uint8), cv2.MORPH_CLOSE, kernel) > 0
    foreground = cv2.morphologyEx(foreground.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0
    coverage = foreground.mean()
    if coverage < 0.02:
        raise StageInputError(
            "garment could not be separated from its background: nothing stands out from it", field="garment"
        )
    if coverage > 0.92:
        raise StageInputError(
            "garment could not be separated from its background: the garment fills the whole photo",
            field="garment",
        )
    small_mask = _largest_component(foreground, fill_holes=True)
    # The low-resolution mask is about one (upsampled) pixel too large at the edge, where downscaling mixed
    # garment and background. The edge is placed again from the full-resolution colour distance: alpha
    # ramps across the threshold, inside the region the low-resolution mask allows.
    region = cv2.resize(small_mask, (width, height), interpolation=cv2.INTER_LINEAR)
    # Deep inside the silhouette (filled holes: white prints on white) the garment is opaque regardless;
    # only the edge band's pixels need their distance (a small fraction of the photo).
    alpha = np.where(region >= 255, 255, 0).astype(np.uint8)
    band = np.nonzero((region > 0) & (region < 255))
    distance_in_band = np.linalg.norm(rgb[band].astype(np.float32) - background, axis=1)
    alpha[band] = np.round(255 * np.clip((distance_in_band - threshold) / EDGE_RAMP + 0.5, 0.0, 1.0))
    return alpha


def _largest_component(
    foreground: npt.NDArray[np.bool_], *, fill_holes: bool, soft: npt.NDArray[np.uint8] | None = None
) -> npt.NDArray[np.uint8]:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(foreground.astype(np.uint8), connectivity=8)
    if count <= 1:
        raise StageInputError("garment could not be separated from its background", field="garment")
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = (labels == largest).astype(np.uint8) * 255
    if fill_holes:
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        mask = np.zeros_like(mask)
        cv2.drawContours(mask, contours, -1, 255, thickness=cv2.FILLED)
    if soft is not None:  # keep the cut-out's own antialiased edge, but only on the kept component
        grown = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        return np.where(grown > 0, soft, 0).astype(np.uint8)
    return mask


# ----------------------------------------------------------------------------------------- landmarks


def find_landmarks(alpha: npt.NDArray[np.uint8], category: GarmentCategory) -> dict[str, Point]:
    """Named points of the garment silhouette, in garment-photo pixels."""
    mask = alpha > 127
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) < 8:
        raise StageInputError("garment could not be separated: the silhouette is too small", field="garment")
    top, bottom = int(rows[0]), int(rows[-1])
    garment_height = bottom - top + 1

    # The garment's centre line, from its top band (collar or waistband), which sleeves never reach.
    band = mask[top : top + max(1, garment_height // 5)]
    centre_x = float(np.nonzero(band)[1].mean())

    def row_extent(y: float) -> tuple[float, float]:
        """The run of garment pixels on row y around the centre line: the torso, not a sleeve beside it."""
        row = mask[int(np.clip(round(y), top, bottom))]
        columns = np.flatnonzero(row)
        if len(columns) == 0:
            return centre_x, centre_x
        runs = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1)
        run = min(
            runs,
            key=lambda r: (
                0 if r[0] <= centre_x <= r[-1] else min(abs(r[0] - centre_x), abs(r[-1] - centre_x))
            ),
        )
        return float(run[0]), float(run[-1])

    if category is GarmentCategory.LOWER_BODY:
        waist_y = top + 0.03 * garment_height
        waist_left, waist_right = row_extent(waist_y)
        hem_y = bottom - 0.02 * garment_height
        hem_left, hem_right = row_extent(hem_y)
        return {
            "left_waist": (waist_left, waist_y),
            "right_waist": (waist_right, waist_y),
            "left_hem": (hem_left, hem_y),
            "right_hem": (hem_right, hem_y),
        }

    # Upper body and dress: the torso's half-width is measured low on the garment, below the sleeves.
    body_left, body_right = row_extent(
        top + (0.70 if category is GarmentCategory.UPPER_BODY else 0.45) * garment_height
    )
    centre = (body_left + body_right) / 2
    half_width = (body_right - body_left) / 2
    columns_top = np.where(mask.any(axis=0), np.argmax(mask, axis=0), bottom)

    def top_at(x: float) -> float:
        column = int(np.clip(round(x), 0, mask.shape[1] - 1))
        return float(columns_top[column])

    shoulder_dx = 0.85 * half_width
    left_shoulder = (centre - shoulder_dx, top_at(centre - shoulder_dx))
    right_shoulder = (centre + shoulder_dx, top_at(centre + shoulder_dx))
    # The hem is the torso's lowest row: long sleeves laid flat may hang lower than it.
    centre_rows = np.flatnonzero(mask[:, round(centre)])
    torso_bottom = int(centre_rows[-1]) if len(centre_rows) else bottom
    hem_y = torso_bottom - 0.02 * (torso_bottom - top + 1)
    hem_left, hem_right = row_extent(hem_y)
    landmarks = {
        "left_shoulder": left_shoulder,
        "right_shoulder": right_shoulder,
        "neckline": (centre, top_at(centre)),
        "left_hem": (hem_left, hem_y),
        "right_hem": (hem_right, hem_y),
    }
    if category is GarmentCategory.UPPER_BODY:
        upper = mask[top : top + garment_height // 2]
        columns = np.flatnonzero(upper.any(axis=0))
        left_x, right_x = int(columns[0]), int(columns[-1])
        landmarks["left_sleeve"] = (float(left_x), float(top + np.flatnonzero(upper[:, left_x]).mean()))
        landmarks["right_sleeve"] = (float(right_x), float(top + np.flatnonzero(upper[:, right_x]).mean()))
    return landmarks


# ----------------------------------------------------------------------------------------- alignment


def _check_keypoints(keypoints: Keypoints) -> None:
    if keypoints.shape != (18, 3) or not np.all(np.isfinite(keypoints)):
        raise StageInputError(
            "keypoints must be 18 finite COCO-18 (x, y, confidence) rows", field="keypoints"
        )


def _point(keypoints: Keypoints, name: str) -> npt.NDArray[np.float64] | None:
    x, y, confidence = keypoints[KP[name]]
    return None if confidence < MIN_CONFIDENCE else np.array([x, y], np.float64)


def _require(keypoints: Keypoints, *names: str) -> list[npt.NDArray[np.float64]]:
    points = [_point(keypoints, name) for name in names]
    missing = [name for name, point in zip(names, points, strict=True) if point is None]
    if missing:
        raise StageInputError(
            f"keypoints: the body's {', '.join(missing)} were not found, so the garment cannot be placed",
            field="keypoints",
        )
    return points  # type: ignore[return-value]


def _spread(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], amount: float) -> tuple:
    """Move a and b apart along their line by ``amount`` of their distance (each side)."""
    offset = (b - a) * amount
    return a - offset, b + offset


def _similarity(
    source: tuple[Point, Point],
    target: tuple,
) -> npt.NDArray[np.float64]:
    """2x3 similarity (rotation, uniform scale, translation) mapping the source pair onto the target pair."""
    (sx0, sy0), (sx1, sy1) = source
    (tx0, ty0), (tx1, ty1) = target
    source_vector = complex(sx1 - sx0, sy1 - sy0)
    target_vector = complex(tx1 - tx0, ty1 - ty0)
    if abs(source_vector) < 1e-6:
        raise StageInputError("garment landmarks are degenerate (zero width)", field="garment")
    rotation_scale = target_vector / source_vector
    translation = complex(tx0, ty0) - rotation_scale * complex(sx0, sy0)
    a, b = rotation_scale.real, rotation_scale.imag
    return np.array([[a, -b, translation.real], [b, a, translation.imag]])


def _apply(matrix: npt.NDArray[np.float64], point: Point) -> npt.NDArray[np.float64]:
    return matrix @ np.array([point[0], point[1], 1.0])


def body_targets(
    landmarks: dict[str, Point], keypoints: Keypoints, category: GarmentCategory
) -> list[tuple[Point, npt.NDArray[np.float64]]]:
    """(garment point, person point) correspondences for the spline, anchors first."""
    if category is GarmentCategory.LOWER_BODY:
        right_hip, left_hip = _require(keypoints, "right_hip", "left_hip")
        waist_left, waist_right = _spread(right_hip, left_hip, HIP_OUTSET)
        shoulders = [_point(keypoints, "right_shoulder"), _point(keypoints, "left_shoulder")]
        if shoulders[0] is not None and shoulders[1] is not None:
            raise_by = WAIST_RAISE * float(
                np.linalg.norm((right_hip + left_hip) / 2 - (shoulders[0] + shoulders[1]) / 2)
            )
        else:
            raise_by = 0.25 * float(np.linalg.norm(left_hip - right_hip))
        waist_left, waist_right = waist_left - (0, raise_by), waist_right - (0, raise_by)
        anchors = (("left_waist", waist_left), ("right_waist", waist_right))
        ends = [_point(keypoints, "right_ankle"), _point(keypoints, "left_ankle")]
        if ends[0] is None or ends[1] is None:
            ends = [_point(keypoints, "right_knee"), _point(keypoints, "left_knee")]
        bends = []
        if ends[0] is not None and ends[1] is not None:
            hem_left, hem_right = _spread(ends[0], ends[1], 0.35)
            bends = [("left_hem", hem_left), ("right_hem", hem_right)]
    else:
        right_shoulder, left_shoulder = _require(keypoints, "right_shoulder", "left_shoulder")
        shoulder_left, shoulder_right = _spread(right_shoulder, left_shoulder, SHOULDER_OUTSET)
        lift = 0.06 * float(np.linalg.norm(left_shoulder - right_shoulder))
        anchors = (
            ("left_shoulder", shoulder_left - (0, lift)),
            ("right_shoulder", shoulder_right - (0, lift)),
        )
        bends = []
        hips = [_point(keypoints, "right_hip"), _point(keypoints, "left_hip")]
        similarity = _similarity(
            (landmarks[anchors[0][0]], landmarks[anchors[1][0]]), (anchors[0][1], anchors[1][1])
        )
        if hips[0] is not None and hips[1] is not None:
            hip_left, hip_right = _spread(hips[0], hips[1], HIP_OUTSET)
            # The hem keeps the garment's own length (from the similarity), but takes the body's width there.
            for name, hip in (("left_hem", hip_left), ("right_hem", hip_right)):
                predicted = _apply(similarity, landmarks[name])
                bends.append((name, np.array([hip[0], predicted[1]])))
    source = (landmarks[anchors[0][0]], landmarks[anchors[1][0]])
    similarity = _similarity(source, (anchors[0][1], anchors[1][1]))
    pairs: list[tuple[Point, npt.NDArray[np.float64]]] = [
        (landmarks[name], target) for name, target in anchors
    ]
    pairs += [(landmarks[name], target) for name, target in bends]
    used = {name for name, _ in (*anchors, *bends)}
    # Every other landmark follows the similarity: it keeps the spline from folding the garment elsewhere.
    pairs += [(point, _apply(similarity, point)) for name, point in landmarks.items() if name not in used]
    return pairs


def warp_to_person(
    rgb: npt.NDArray[np.uint8],
    alpha: npt.NDArray[np.uint8],
    pairs: list[tuple[Point, npt.NDArray[np.float64]]],
    target_size: tuple[int, int],
) -> npt.NDArray[np.uint8]:
    """Remap the garment into the person frame through the inverse spline (person -> garment)."""
    height, width = target_size
    garment_points = np.array([p for p, _ in pairs], np.float64)
    person_points = np.array([t for _, t in pairs], np.float64)
    inverse = ThinPlateSpline(person_points, garment_points, regularization=1e-3)
    grid_x = np.linspace(0, width - 1, (width - 1) // MAP_GRID_STEP + 2)
    grid_y = np.linspace(0, height - 1, (height - 1) // MAP_GRID_STEP + 2)
    mesh = np.stack(np.meshgrid(grid_x, grid_y), axis=-1).reshape(-1, 2)
    coarse = inverse(mesh).reshape(len(grid_y), len(grid_x), 2).astype(np.float32)
    full = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    rgba = np.dstack([rgb, alpha])
    return cv2.remap(
        rgba, full[..., 0], full[..., 1], interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0),
    )  # fmt: skip
