"""FullPose: controlnet_aux OpenPose loaded from a local directory; OpenPose output -> COCO-18 keypoints.

The tiny OpenPose weights are random, so the real network finds nobody: the end-to-end test checks that
this is reported as bad input, and the keypoint conversion is tested on OpenPose-format arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data

from services.pose.full import FullPose, keypoints_from_openpose
from tests.tiny_models import tiny_model_settings
from tryon.types import KP, NO_PERSON_FOUND, PoseInput, StageInputError
from tryon.vision.openpose import draw_openpose

#: A standing person in a 256 x 192 image, COCO-18 order (x, y); None = not detected.
SKELETON = [
    (96, 40), (96, 70), (70, 72), (60, 110), (55, 145), (122, 72), (132, 110), (137, 145),
    (82, 150), (80, 200), (80, 245), (110, 150), (112, 200), (112, 245), (90, 34), (102, 34), None, (110, 38),
]  # fmt: skip


def _openpose_arrays(skeletons: list[list[tuple[int, int] | None]], scores: list[float]):
    """OpenPose's body output for these skeletons: candidate (x, y, score, id) and subset rows."""
    candidate, subset = [], []
    for skeleton, score in zip(skeletons, scores, strict=True):
        row = -np.ones(20)
        for part, point in enumerate(skeleton):
            if point is not None:
                row[part] = len(candidate)
                candidate.append([point[0], point[1], score, len(candidate)])
        row[18] = score * sum(point is not None for point in skeleton)
        row[19] = sum(point is not None for point in skeleton)
        subset.append(row)
    return np.array(candidate, dtype=np.float64), np.array(subset, dtype=np.float64)


def test_conversion_keeps_coco18_order_pixels_and_confidences() -> None:
    candidate, subset = _openpose_arrays([SKELETON], [0.8])
    keypoints = keypoints_from_openpose(candidate, subset)
    assert keypoints.shape == (18, 3) and keypoints.dtype == np.float32
    np.testing.assert_allclose(keypoints[KP["neck"], :2], (96, 70))
    np.testing.assert_allclose(keypoints[KP["left_wrist"], :2], (137, 145))
    np.testing.assert_allclose(keypoints[KP["nose"], 2], 0.8, rtol=1e-6)
    np.testing.assert_array_equal(keypoints[KP["right_ear"]], 0)  # missing: confidence 0, x = y = 0


def test_conversion_scales_detection_pixels_to_the_photo() -> None:
    candidate, subset = _openpose_arrays([SKELETON], [0.5])
    keypoints = keypoints_from_openpose(candidate, subset, scale_x=2.0, scale_y=2.0)
    # Pixel centres line up: detection pixel x covers photo pixels 2x and 2x + 1.
    np.testing.assert_allclose(keypoints[KP["neck"], :2], (96 * 2 + 0.5, 70 * 2 + 0.5))


def test_conversion_picks_the_most_complete_person() -> None:
    # A more confident but partial second person (5 parts) beside the subject.
    partial = [*((x + 40, y) for x, y in SKELETON[:5]), *[None] * 13]
    candidate, subset = _openpose_arrays([partial, SKELETON], [0.9, 0.6])
    keypoints = keypoints_from_openpose(candidate, subset)
    np.testing.assert_allclose(keypoints[KP["left_ankle"], :2], SKELETON[KP["left_ankle"]])


def test_no_person_is_a_stage_input_error() -> None:
    with pytest.raises(StageInputError) as error:
        keypoints_from_openpose(np.zeros((0, 4)), np.zeros((0, 20)))
    assert str(error.value) == NO_PERSON_FOUND  # one wording in every backend
    assert error.value.field == "person"


def test_pose_image_matches_controlnet_aux_rendering() -> None:
    """The conditioning drawn from our keypoints is what controlnet_aux draws from the same detection."""
    from controlnet_aux.open_pose import PoseResult, draw_poses
    from controlnet_aux.open_pose.body import Body, BodyResult, Keypoint

    height, width = 256, 192
    candidate, subset = _openpose_arrays([SKELETON], [0.7])
    body = Body.format_body_result(candidate, subset)[0]
    normalised = BodyResult(
        keypoints=[Keypoint(k.x / width, k.y / height) if k is not None else None for k in body.keypoints],
        total_score=body.total_score,
        total_parts=body.total_parts,
    )
    expected = draw_poses(
        [PoseResult(normalised, None, None, None)], height, width, draw_hand=False, draw_face=False
    )
    ours = draw_openpose(keypoints_from_openpose(candidate, subset), height, width)
    assert ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, expected)


@pytest.fixture(scope="module")
def pose(tiny_models_dir: dict[str, Path]) -> FullPose:
    backend = FullPose(tiny_model_settings(tiny_models_dir))
    backend.setup()  # from_pretrained on the directory + a warm-up detection
    return backend


def test_random_weights_find_no_person_and_say_so(pose: FullPose) -> None:
    with pytest.raises(StageInputError, match="no person"):
        pose.run(PoseInput(person=skimage.data.astronaut()))


def test_info_and_input_checks(pose: FullPose) -> None:
    info = pose.info()
    assert (info.stage, info.backend, info.device) == ("pose", "full", "cpu")
    assert info.models[0].name == "openpose"
    with pytest.raises(StageInputError) as error:
        pose.run(PoseInput(person=np.zeros((64, 64, 4), np.uint8)))
    assert error.value.field == "person"
