"""The print-preservation measure of the lite fidelity benchmark (tryon.vision.fidelity)."""

from __future__ import annotations

import cv2
import numpy as np

from tryon.vision.fidelity import print_match, sift


def test_a_repeated_motif_is_not_matched_many_to_one() -> None:
    # A garment printed with 36 copies of one motif, and a result that shows a single copy at the same
    # scale: many garment keypoints find the same result keypoint. Counted many-to-one, RANSAC "fits" a
    # similarity that maps the whole garment onto one point (scale ~0.02) with over a hundred inliers.
    rng = np.random.default_rng(0)
    motif = cv2.resize(
        (rng.random((24, 24, 3)) * 255).astype(np.uint8), (48, 48), interpolation=cv2.INTER_NEAREST
    )
    garment = np.full((600, 500, 3), 235, np.uint8)
    for y in range(60, 540, 80):
        for x in range(60, 440, 80):
            garment[y : y + 48, x : x + 48] = motif
    silhouette = np.zeros((600, 500), bool)
    silhouette[40:560, 40:460] = True
    result = np.full((600, 500, 3), 200, np.uint8)
    result[300:348, 200:248] = motif
    region = np.zeros((600, 500), bool)
    region[250:400, 150:300] = True

    _, inliers, scale = print_match(garment, silhouette, result, region)

    result_keypoints, _ = sift(cv2.cvtColor(result, cv2.COLOR_RGB2GRAY), region)
    assert inliers <= len(result_keypoints)
    assert 0.8 <= scale <= 1.25, scale
