"""draw_openpose must render exactly what controlnet_aux 0.0.10's OpenPose detector draws.

The SDXL OpenPose ControlNet was trained on controlnet_aux's renderings, so both pose backends share this
renderer; any pixel difference would be a difference in conditioning. The reference here is controlnet_aux's
own ``draw_poses`` (which calls ``util.draw_bodypose``) fed the same keypoints, normalised the way its
detector normalises them. Both sides rasterise with the same OpenCV calls on the same integer coordinates
(no antialiasing), so equality is exact.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from tryon.types import KP, NUM_KEYPOINTS
from tryon.vision.openpose import draw_openpose

#: A standing person in a 320 x 240 (h x w) photo, COCO-18 order (x, y); None = missing.
SKELETON: list[tuple[float, float] | None] = [
    (120.4, 52.7), (121.0, 88.2), (92.6, 90.1), (80.3, 132.8), (71.9, 171.5), (149.5, 86.3),
    (161.2, 131.0), (170.8, 169.9), (103.7, 180.4), (100.2, 240.6), (98.9, 299.5), (138.1, 181.0),
    (141.6, 241.2), (143.3, 301.7), (113.2, 45.9), (127.9, 46.4), None, (136.5, 50.3),
]  # fmt: skip


def _keypoint_array(skeleton: list[tuple[float, float] | None]) -> np.ndarray:
    keypoints = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
    for index, point in enumerate(skeleton):
        if point is not None:
            keypoints[index] = (point[0], point[1], 0.9)
    return keypoints


def _controlnet_aux_rendering(keypoints: np.ndarray, height: int, width: int) -> np.ndarray:
    with warnings.catch_warnings():  # the package import re-registers timm models, noisily
        warnings.simplefilter("ignore")
        from controlnet_aux.open_pose import PoseResult, draw_poses
        from controlnet_aux.open_pose.body import BodyResult, Keypoint

    # What OpenposeDetector.detect_poses hands draw_poses: coordinates divided by the image size.
    body = BodyResult(
        keypoints=[
            Keypoint(x=float(x) / float(width), y=float(y) / float(height)) if score > 0 else None
            for x, y, score in keypoints.astype(np.float64)
        ],
        total_score=1.0,
        total_parts=int((keypoints[:, 2] > 0).sum()),
    )
    return draw_poses([PoseResult(body, None, None, None)], height, width, draw_hand=False, draw_face=False)


@pytest.mark.parametrize(
    ("height", "width", "scale"),
    [(320, 240, 1.0), (1024, 768, 3.2), (768, 1024, 2.4), (333, 251, 1.04)],
)
def test_rendering_is_pixel_identical_to_controlnet_aux(height: int, width: int, scale: float) -> None:
    keypoints = _keypoint_array(SKELETON)
    keypoints[:, :2] *= scale
    ours = draw_openpose(keypoints, height, width)
    reference = _controlnet_aux_rendering(keypoints, height, width)
    assert ours.dtype == np.uint8 and ours.shape == (height, width, 3)
    assert np.count_nonzero(ours) > 0
    np.testing.assert_array_equal(ours, reference)


def test_random_skeletons_with_missing_points_match_controlnet_aux() -> None:
    rng = np.random.default_rng(7)
    height, width = 480, 360
    for _ in range(20):
        keypoints = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
        keypoints[:, 0] = rng.uniform(0, width - 1, NUM_KEYPOINTS)
        keypoints[:, 1] = rng.uniform(0, height - 1, NUM_KEYPOINTS)
        keypoints[:, 2] = rng.uniform(0.1, 1.0, NUM_KEYPOINTS)
        keypoints[rng.random(NUM_KEYPOINTS) < 0.3] = 0  # missing: confidence 0, x = y = 0
        np.testing.assert_array_equal(
            draw_openpose(keypoints, height, width), _controlnet_aux_rendering(keypoints, height, width)
        )


def test_colours_are_rgb_in_openpose_order() -> None:
    keypoints = _keypoint_array(SKELETON)
    image = draw_openpose(keypoints, 320, 240)
    nose_x, nose_y = keypoints[KP["nose"], :2].astype(int)
    # The nose joint is drawn last in pure red (255, 0, 0) in RGB, like OpenPose's reference renderings.
    np.testing.assert_array_equal(image[nose_y, nose_x], (255, 0, 0))
    neck_x, neck_y = keypoints[KP["neck"], :2].astype(int)
    np.testing.assert_array_equal(image[neck_y, neck_x], (255, 85, 0))


def test_missing_keypoints_and_their_limbs_are_not_drawn() -> None:
    keypoints = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
    assert not draw_openpose(keypoints, 64, 48).any()
    keypoints[KP["neck"]] = (24, 20, 0.9)  # a lone joint: a disc, no limb
    image = draw_openpose(keypoints, 64, 48)
    assert 30 <= np.count_nonzero(image.any(axis=2)) <= 60  # a radius-4 disc: ~49 pixels


def test_drawing_module_does_not_import_torch() -> None:
    import subprocess

    code = (
        "import sys, numpy as np; from tryon.vision.openpose import draw_openpose; "
        "draw_openpose(np.ones((18, 3), np.float32), 32, 32); assert 'torch' not in sys.modules"
    )
    repo_root = Path(__file__).resolve().parents[3]
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=repo_root)
