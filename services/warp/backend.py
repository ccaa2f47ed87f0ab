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
#: A pixel is background-coloured when its colour is within this distance (0-255 RGB) of the backdrop
#: interpolated from the border there: this many times the interpolation's own median error just inside
#: the border, plus 4, within the range below.
BACKGROUND_NOISE_FACTOR = 3.0
BACKGROUND_THRESHOLD_RANGE = (7.0, 24.0)
#: Minimum width (colour-distance units) of the alpha ramp across the garment's edge.
EDGE_RAMP_MIN = 8.0
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
    """The garment's alpha: everything the background, grown in from the photo's border, does not reach.

    The background is flooded from every border pixel with a per-step colour tolerance taken from the
    border's own noise (``cv2.floodFill`` in floating-range mode), so gradients, vignetting and a white
    garment on a white studio backdrop are told apart by the garment's edge, not by a fixed distance from
    one background colour. Pixels far from the border colours never flood. Enclosed regions (a white print,
    the inside of a neckline) stay garment.
    """
    height, width = rgb.shape[:2]
    small = cv2.GaussianBlur(downscale(rgb, SEPARATION_LONG_SIDE), (3, 3), 0)
    small_f = small.astype(np.float32)
    ring = np.concatenate([small_f[:2].reshape(-1, 3), small_f[-2:].reshape(-1, 3),
                           small_f[:, :2].reshape(-1, 3), small_f[:, -2:].reshape(-1, 3)])  # fmt: skip
    background = np.median(ring, axis=0)
    spread = float(np.abs(ring - background).mean())
    if spread > MAX_BORDER_SPREAD:
        raise StageInputError(
            "garment could not be separated from its background: the background is not plain "
            f"(border colour spread {spread:.0f} > {MAX_BORDER_SPREAD:.0f}); use a product photo on a plain "
            "background or an RGBA cut-out",
            field="garment",
        )
    local = _border_surface(small_f, background, spread)
    distance = np.linalg.norm(small_f - local, axis=2)
    # The model's own error just inside the border is the noise the threshold must stay above.
    inner = np.concatenate([distance[2:4].ravel(), distance[-4:-2].ravel(),
                            distance[:, 2:4].ravel(), distance[:, -4:-2].ravel()])  # fmt: skip
    threshold = float(np.clip(BACKGROUND_NOISE_FACTOR * np.median(inner) + 4.0, *BACKGROUND_THRESHOLD_RANGE))
    maybe_background = (distance <= threshold).astype(np.uint8)
    # Background is what is background-coloured AND connected to the photo's border.
    count, labels = cv2.connectedComponents(maybe_background, connectivity=4)
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    touching = np.zeros(count, bool)
    touching[edge_labels] = True
    touching[0] = False
    foreground = ~touching[labels]
    # Small kernels: close pin-holes and drop specks without filling the notch between trouser legs.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
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
    # garment and background. The edge is placed again from the full-resolution distance to the backdrop:
    # alpha ramps across the threshold, inside the region the low-resolution mask allows.
    region = cv2.resize(small_mask, (width, height), interpolation=cv2.INTER_LINEAR)
    alpha = np.where(region >= 255, 255, 0).astype(np.uint8)
    band = np.nonzero((region > 0) & (region < 255))
    backdrop = cv2.resize(local, (width, height), interpolation=cv2.INTER_LINEAR)[band]
    distance_in_band = np.linalg.norm(rgb[band].astype(np.float32) - backdrop, axis=1)
    ramp = max(EDGE_RAMP_MIN, threshold)
    alpha[band] = np.round(255 * np.clip((distance_in_band - threshold) / ramp + 0.5, 0.0, 1.0))
    return alpha


def _border_surface(
    small: npt.NDArray[np.float32], background: npt.NDArray[np.float32], spread: float
) -> npt.NDArray[np.float32]:
    """The backdrop's colour everywhere, interpolated from the border (a Coons patch of its four edges).

    Follows gradients and vignetting. Border pixels far from the border's median colour (a garment that
    touches the edge) are replaced by that median first, so they do not bleed into the estimate.
    """
    rows, cols = small.shape[:2]
    limit = 3.0 * spread + 12.0

    def clean(line: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        line = line.mean(axis=0) if line.ndim == 3 else line
        bad = np.linalg.norm(line - background, axis=1) > limit
        return np.where(bad[:, None], background, line)

    top, bottom = clean(small[:2]), clean(small[-2:])  # (cols, 3)
    left, right = clean(small[:, :2].transpose(1, 0, 2)), clean(small[:, -2:].transpose(1, 0, 2))
    u = np.linspace(0.0, 1.0, cols, dtype=np.float32)[None, :, None]
    v = np.linspace(0.0, 1.0, rows, dtype=np.float32)[:, None, None]
    corners = (
        (1 - u) * (1 - v) * top[0] + u * (1 - v) * top[-1] + (1 - u) * v * bottom[0] + u * v * bottom[-1]
    )
    return (
        (1 - v) * top[None] + v * bottom[None] + (1 - u) * left[:, None] + u * right[:, None] - corners
    ).astype(np.float32)


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
    warped = cv2.remap(
        rgba, full[..., 0], full[..., 1], interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0),
    )  # fmt: skip
    # No garment is transparent black: the photo's background colour would otherwise fill the frame, and
    # the wire sends only the garment's bounding box.
    return cv2.bitwise_and(warped, warped, mask=cv2.extractChannel(warped, 3))
