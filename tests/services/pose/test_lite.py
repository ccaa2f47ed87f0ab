"""LitePose: MediaPipe Pose -> OpenPose COCO-18 keypoints, on hand-written landmarks and real photos."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from services.pose.lite import LitePose
from tests.imagegen import person_photo
from tryon.types import COCO18_NAMES, KP, NO_PERSON_FOUND, PoseInput, StageInputError
from tryon.vision.mediapipe_landmarks import (
    MEDIAPIPE_INDEX,
    MIN_VISIBILITY,
    NUM_MEDIAPIPE_LANDMARKS,
    mediapipe_to_coco18,
)
from tryon.vision.openpose import draw_openpose

HEIGHT, WIDTH = 400, 300


def _front_facing_landmarks() -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's 33 landmarks (pixels) of a person facing the camera: their right is on the image left."""
    points = np.zeros((NUM_MEDIAPIPE_LANDMARKS, 2), dtype=np.float32)
    visibility = np.full(NUM_MEDIAPIPE_LANDMARKS, 0.95, dtype=np.float32)
    by_name = {
        "nose": (150, 60), "left_eye": (160, 50), "right_eye": (140, 50), "left_ear": (172, 56),
        "right_ear": (128, 56), "left_shoulder": (190, 110), "right_shoulder": (110, 106),
        "left_elbow": (205, 170), "right_elbow": (95, 170), "left_wrist": (210, 225),
        "right_wrist": (90, 225), "left_hip": (175, 220), "right_hip": (125, 220),
        "left_knee": (176, 300), "right_knee": (124, 300), "left_ankle": (178, 380),
        "right_ankle": (122, 380),
    }  # fmt: skip
    for name, point in by_name.items():
        points[MEDIAPIPE_INDEX[name]] = point
    return points, visibility


def test_conversion_maps_every_named_landmark_in_coco18_order() -> None:
    points, visibility = _front_facing_landmarks()
    keypoints = mediapipe_to_coco18(points, visibility, HEIGHT, WIDTH)
    assert keypoints.shape == (18, 3) and keypoints.dtype == np.float32
    for name in COCO18_NAMES:
        if name == "neck":
            continue
        np.testing.assert_allclose(keypoints[KP[name], :2], points[MEDIAPIPE_INDEX[name]])
        assert keypoints[KP[name], 2] == pytest.approx(0.95)
    # Left / right are the person's in both conventions: the right shoulder is on the image left here.
    assert keypoints[KP["right_shoulder"], 0] < keypoints[KP["left_shoulder"], 0]
    assert keypoints[KP["right_eye"], 0] < keypoints[KP["left_eye"], 0]
    assert keypoints[KP["right_ankle"], 0] < keypoints[KP["left_ankle"], 0]


def test_neck_is_the_midpoint_of_the_shoulders_with_the_lower_confidence() -> None:
    points, visibility = _front_facing_landmarks()
    visibility[MEDIAPIPE_INDEX["left_shoulder"]] = 0.6
    keypoints = mediapipe_to_coco18(points, visibility, HEIGHT, WIDTH)
    np.testing.assert_allclose(keypoints[KP["neck"]], (150, 108, 0.6), rtol=1e-6)


def test_invisible_or_outside_landmarks_are_missing() -> None:
    points, visibility = _front_facing_landmarks()
    visibility[MEDIAPIPE_INDEX["left_ear"]] = MIN_VISIBILITY / 2  # occluded
    points[MEDIAPIPE_INDEX["right_ankle"]] = (122, HEIGHT + 30)  # extrapolated below the photo
    points[MEDIAPIPE_INDEX["left_wrist"]] = (-4, 200)  # left of the photo
    keypoints = mediapipe_to_coco18(points, visibility, HEIGHT, WIDTH)
    for name in ("left_ear", "right_ankle", "left_wrist"):
        np.testing.assert_array_equal(keypoints[KP[name]], 0)
    assert keypoints[KP["left_ankle"], 2] > 0


def test_neck_is_missing_without_both_shoulders() -> None:
    points, visibility = _front_facing_landmarks()
    visibility[MEDIAPIPE_INDEX["right_shoulder"]] = 0.05
    keypoints = mediapipe_to_coco18(points, visibility, HEIGHT, WIDTH)
    np.testing.assert_array_equal(keypoints[KP["neck"]], 0)
    np.testing.assert_array_equal(keypoints[KP["right_shoulder"]], 0)
    assert keypoints[KP["left_shoulder"], 2] > 0


@pytest.fixture(scope="module")
def lite_pose() -> LitePose:
    backend = LitePose()
    backend.setup()
    return backend


@pytest.mark.parametrize("long_side", [512, 1024])
def test_astronaut_keypoints_are_in_plausible_places(lite_pose: LitePose, long_side: int) -> None:
    photo = person_photo(long_side)
    result = lite_pose.run(PoseInput(person=photo))
    keypoints, scale = result.keypoints, long_side / 512
    found = {name for name in COCO18_NAMES if keypoints[KP[name], 2] > 0}
    # The upper body with a face: head and shoulders are visible, the legs are out of the photo.
    assert {"nose", "neck", "right_shoulder", "left_shoulder", "right_eye", "left_eye"} <= found
    assert not {"right_knee", "left_knee", "right_ankle", "left_ankle"} & found
    x, y = keypoints[:, 0] / scale, keypoints[:, 1] / scale  # in the 512 px original's pixels
    # Her face is around (225, 110) in the 512 px photo, her shoulders at y ~ 190.
    assert 180 < x[KP["nose"]] < 270 and 70 < y[KP["nose"]] < 150
    assert y[KP["right_eye"]] < y[KP["nose"]] < y[KP["neck"]]
    assert 160 < y[KP["neck"]] < 280
    assert x[KP["right_shoulder"]] < x[KP["neck"]] < x[KP["left_shoulder"]]
    assert x[KP["right_eye"]] < x[KP["left_eye"]]
    for name in found:
        assert 0 < keypoints[KP[name], 2] <= 1
    assert result.pose_image.shape == photo.shape and result.pose_image.dtype == np.uint8
    np.testing.assert_array_equal(result.pose_image, draw_openpose(keypoints, *photo.shape[:2]))


def test_output_is_deterministic(lite_pose: LitePose) -> None:
    photo = person_photo(512)
    first = lite_pose.run(PoseInput(person=photo))
    second = LitePose()  # a new backend on the same process-wide graph sees the same result
    second.setup()
    again = second.run(PoseInput(person=photo.copy()))
    assert first.keypoints.tobytes() == again.keypoints.tobytes()
    assert first.pose_image.tobytes() == again.pose_image.tobytes()


def test_concurrent_calls_give_the_sequential_results(lite_pose: LitePose) -> None:
    photos = [person_photo(384), person_photo(512), np.ascontiguousarray(person_photo(448)[:, ::-1])]
    expected = [lite_pose.run(PoseInput(person=photo)).keypoints for photo in photos]
    results: dict[int, np.ndarray] = {}

    def worker(index: int) -> None:
        for _ in range(3):
            results[index] = lite_pose.run(PoseInput(person=photos[index % 3])).keypoints

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, keypoints in results.items():
        np.testing.assert_array_equal(keypoints, expected[index % 3])


@pytest.mark.parametrize(
    "photo",
    [skimage.data.chelsea(), np.full((480, 360, 3), 200, np.uint8)],
    ids=["cat", "blank"],
)
def test_no_person_is_a_stage_input_error(lite_pose: LitePose, photo: np.ndarray) -> None:
    with pytest.raises(StageInputError) as error:
        lite_pose.run(PoseInput(person=photo))
    assert str(error.value) == NO_PERSON_FOUND  # one wording in every backend
    assert error.value.field == "person"


@pytest.mark.parametrize(
    "photo",
    [np.zeros((64, 64), np.uint8), np.zeros((64, 64, 3), np.float32), np.zeros((8, 64, 3), np.uint8)],
    ids=["grey", "float", "tiny"],
)
def test_malformed_photos_are_stage_input_errors(lite_pose: LitePose, photo: np.ndarray) -> None:
    with pytest.raises(StageInputError) as error:
        lite_pose.run(PoseInput(person=photo))
    assert error.value.field == "person"


def test_info_names_the_bundled_model(lite_pose: LitePose) -> None:
    info = lite_pose.info()
    assert (info.stage, info.backend, info.device) == ("pose", "lite", "cpu")
    assert info.models[0].source.startswith("bundled:mediapipe")


def test_lite_pose_does_not_import_torch() -> None:
    code = (
        "import sys; from services.pose.lite import LitePose; from tests.imagegen import person_photo; "
        "from tryon.types import PoseInput; backend = LitePose(); backend.setup(); "
        "backend.run(PoseInput(person=person_photo(256))); "
        "assert 'torch' not in sys.modules, 'the lite pose path imported torch'"
    )
    repo_root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", code], timeout=120, cwd=repo_root, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
