"""Fidelity measures of a try-on result, shared by bench/eval_lite.py and the tests (issue #12's targets).

- :func:`garment_silhouette`: the garment in its product photo by GrabCut seeded with the photo's border
  (and the backdrop joined to it that has the border's very colour), independent of the warp's own
  separation (so a separation that loses part of the garment shows).
- :func:`print_match`: SIFT matches garment photo -> result, a RANSAC similarity through them: inliers
  and scale (compare with the silhouette's scale ``sqrt(warped area / photo silhouette area)``).
- :func:`smear_share`: share of filled pixels whose colour is far from every flat surface around the mask.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

BoolMask = npt.NDArray[np.bool_]

#: A filled pixel farther than this (CIE Lab distance) from every nearby surface colour is smear.
SMEAR_DISTANCE = 18.0
#: Ring pixels whose luminance gradient (Sobel of a lightly blurred gray image) is above this are edges
#: (antialiased mixtures of two surfaces), not surfaces.
FLAT_GRADIENT = 24.0
BIN = 6.0
_REACH = int(np.ceil(SMEAR_DISTANCE / BIN))
_OFFSETS = [
    (a, b, c)
    for a in range(-_REACH, _REACH + 1)
    for b in range(-_REACH, _REACH + 1)
    for c in range(-_REACH, _REACH + 1)
    if a * a + b * b + c * c <= _REACH * _REACH
]
GRID_SHAPE = (int(100 / BIN) + 2, int(256 / BIN) + 2, int(256 / BIN) + 2)
#: The silhouette's GrabCut runs at this long side.
SILHOUETTE_LONG_SIDE = 320
#: Pixels within this RGB distance of the border's median colour (at SILHOUETTE_LONG_SIDE, where area
#: averaging has removed most noise) and joined to the border through such pixels are surely backdrop.
BACKDROP_SEED_DISTANCE = 4.0


def garment_silhouette(rgb: npt.NDArray[np.uint8]) -> BoolMask:
    """The garment in its photo by GrabCut (independent of the warp), seeded with the border as background
    and with the backdrop joined to the border that has the border's very colour.

    Seeded with the border only, GrabCut's garment model took in what it saw of the backdrop's colour
    inside the garment (white frays of ripped jeans, white stripes): the gap between trouser legs, the
    shadow band round the garment and the light gap under a sleeve came out garment (ripped jeans: their
    whole bounding box, 1.55 x the garment). The tolerance is a few levels only, so a light garment on a
    light backdrop (~10-25 levels apart) is never seeded as backdrop: the reference keeps it where a
    separation that loses it would not.
    """
    height, width = rgb.shape[:2]
    scale = min(1.0, SILHOUETTE_LONG_SIDE / max(height, width))
    small = cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    seeds = np.full(small.shape[:2], cv2.GC_PR_FGD, np.uint8)
    margin = max(2, round(0.02 * max(small.shape[:2])))
    seeds[:margin], seeds[-margin:], seeds[:, :margin], seeds[:, -margin:] = (cv2.GC_BGD,) * 4
    border = seeds == cv2.GC_BGD
    border_colour = np.median(small[border].astype(np.float32), axis=0)
    backdrop_coloured = (
        np.linalg.norm(small.astype(np.float32) - border_colour, axis=2) <= BACKDROP_SEED_DISTANCE
    )
    _, parts = cv2.connectedComponents(backdrop_coloured.astype(np.uint8), connectivity=4)
    joined = np.unique(parts[border & backdrop_coloured])
    seeds[np.isin(parts, joined[joined > 0])] = cv2.GC_BGD
    cv2.setRNGSeed(7)
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(small, seeds, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
    mask = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return np.zeros((height, width), bool)
    largest = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    contours, _ = cv2.findContours(largest, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(largest)
    cv2.drawContours(filled, contours, -1, 1, cv2.FILLED)
    return cv2.resize(filled, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


_SIFT = None
#: At most this many SIFT keypoints (the strongest) inside the mask are described.
SIFT_FEATURES = 2000


def sift(
    gray: npt.NDArray[np.uint8], mask: BoolMask
) -> tuple[list[cv2.KeyPoint], npt.NDArray[np.float32] | None]:
    """SIFT keypoints inside ``mask`` (the strongest :data:`SIFT_FEATURES`) and their descriptors.

    Capped here, after the mask: OpenCV's own cap (``nfeatures``) keeps the strongest keypoints of the whole
    image and only then drops those outside the mask, so a busy pattern outside it (a zebra skirt below a
    new top) took all but 24 of the 2000 and the print's 3163 keypoints inside went unmatched."""
    global _SIFT
    if _SIFT is None:
        _SIFT = cv2.SIFT_create(nfeatures=0, contrastThreshold=0.03)  # type: ignore[attr-defined]
    image_mask = mask.astype(np.uint8) * 255
    keypoints = sorted(_SIFT.detect(gray, image_mask), key=lambda point: -point.response)[:SIFT_FEATURES]
    if not keypoints:
        return [], None
    keypoints, descriptors = _SIFT.compute(gray, keypoints)
    return list(keypoints), descriptors


def print_match(
    garment_rgb: npt.NDArray[np.uint8], silhouette: BoolMask, result: npt.NDArray[np.uint8], region: BoolMask
) -> tuple[int, int, float]:
    """(garment keypoints inside the eroded silhouette, RANSAC similarity inliers, its scale)."""
    inner = cv2.erode(silhouette.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    kp_g, des_g = sift(cv2.cvtColor(garment_rgb, cv2.COLOR_RGB2GRAY), inner)
    kp_r, des_r = sift(cv2.cvtColor(result, cv2.COLOR_RGB2GRAY), region)
    if des_g is None or des_r is None or len(kp_g) < 2 or len(kp_r) < 2:
        return len(kp_g), 0, 0.0
    matches = cv2.BFMatcher(cv2.NORM_L2).knnMatch(des_g, des_r, k=2)
    ratio_passed = [m[0] for m in matches if len(m) == 2 and m[0].distance < 0.75 * m[1].distance]
    # One match per result keypoint (the closest): a repeated motif of the garment (a print's repeats, a
    # plain fabric's weave) matches the same few result keypoints many times over, and RANSAC then counts
    # all of those as inliers of a similarity that maps the whole garment onto one point (scale ~0).
    closest: dict[int, cv2.DMatch] = {}
    for match in ratio_passed:
        if match.trainIdx not in closest or match.distance < closest[match.trainIdx].distance:
            closest[match.trainIdx] = match
    good = list(closest.values())
    if len(good) < 3:
        return len(kp_g), len(good) if len(good) < 3 else 0, 0.0
    source = np.array([kp_g[m.queryIdx].pt for m in good], np.float32)
    target = np.array([kp_r[m.trainIdx].pt for m in good], np.float32)
    matrix, inliers = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=6.0, maxIters=4000, confidence=0.995
    )
    if matrix is None or inliers is None:
        return len(kp_g), 0, 0.0
    return len(kp_g), int(inliers.sum()), float(np.hypot(matrix[0, 0], matrix[1, 0]))


def _bin(lab: npt.NDArray[np.float32]) -> npt.NDArray[np.intp]:
    """Lab colours (L 0-100, a/b -128..127) -> indices into the occupancy grid."""
    shifted = lab + np.array([0.0, 128.0, 128.0], np.float32)
    return np.clip(np.floor(shifted / BIN).astype(np.intp), 0, np.array(GRID_SHAPE) - 1)


def smear_share(result: npt.NDArray[np.uint8], mask: BoolMask, uncovered: BoolMask) -> float:
    """Share of ``uncovered`` pixels whose Lab colour is far from every surface colour around ``mask``.

    The surfaces are the flat pixels of a ring just outside the mask (skin, backdrop, other garments; their
    antialiased edges are left out). A fill that copies one surface per pixel scores ~0; one that blends
    surfaces of different kinds (skin with backdrop, trousers into a chest) scores the blended share.
    """
    if uncovered.sum() < 50:
        return 0.0
    height, width = mask.shape
    long_side = max(height, width)
    ring_width = max(3, round(0.03 * long_side))
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2).astype(bool)
    outer = cv2.dilate(grown.astype(np.uint8), np.ones((2 * ring_width + 1,) * 2, np.uint8)).astype(bool)
    # Surfaces, not edges: ring pixels whose neighbourhood is flat (no antialiased mixtures of two kinds).
    gray = cv2.GaussianBlur(cv2.cvtColor(result, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.0)
    gradient = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    ring = outer & ~grown & (gradient < FLAT_GRADIENT)
    lab = cv2.cvtColor(result, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    palette = lab[ring]
    if len(palette) < 20:
        return 0.0  # nothing around to compare with
    grid = np.zeros(GRID_SHAPE, bool)
    grid[tuple(_bin(palette).T)] = True
    grid = _dilate(grid)
    far = int((~grid[tuple(_bin(lab[uncovered]).T)]).sum())
    return far / float(uncovered.sum())


def _dilate(grid: BoolMask) -> BoolMask:
    """``grid`` grown by a ball of radius ``_REACH`` bins (3-D binary dilation without scipy)."""
    padded = np.pad(grid, _REACH)
    out = np.zeros_like(padded)
    size = grid.shape
    for a, b, c in _OFFSETS:
        out[
            _REACH + a : _REACH + a + size[0],
            _REACH + b : _REACH + b + size[1],
            _REACH + c : _REACH + c + size[2],
        ] |= grid
    return out[_REACH:-_REACH, _REACH:-_REACH, _REACH:-_REACH]
