"""MediaPipe Pose (bundled with mediapipe 0.10.21) as a shared, thread-safe body-landmark detector.

Both lite stages need the body landmarks of the same photo: the pose stage turns them into COCO-18
keypoints, the segmentation stage builds its garment regions from them. :func:`shared_pose_landmarker`
hands out one process-wide detector, so the graph is built once, and it remembers the last photo's result,
so the in-process pipeline runs the network once per photo rather than once per stage.

Only ``model_complexity=1`` is usable offline: mediapipe's wheel bundles that landmark model and downloads
the others on first use.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tryon.types import KP, NUM_KEYPOINTS, Keypoints, RGBImage, StageInputError
from tryon.vision.images import downscale

#: MediaPipe Pose's landmark network sees a 256x256 crop of the person, so detecting on a 512 px copy
#: loses nothing and keeps the image conversion cheap at 1024 px.
DETECT_LONG_SIDE = 512
#: Below this visibility a landmark is reported missing (MediaPipe always extrapolates all 33).
MIN_VISIBILITY = 0.3
NUM_MEDIAPIPE_LANDMARKS = 33

# MediaPipe Pose landmark indices ("left"/"right" are the person's).
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR, MOUTH_LEFT, MOUTH_RIGHT = 0, 2, 5, 7, 8, 9, 10
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 11, 12, 13, 14, 15, 16
LEFT_PINKY, RIGHT_PINKY, LEFT_INDEX, RIGHT_INDEX, LEFT_THUMB, RIGHT_THUMB = 17, 18, 19, 20, 21, 22
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = 23, 24, 25, 26, 27, 28
LEFT_HEEL, RIGHT_HEEL, LEFT_FOOT, RIGHT_FOOT = 29, 30, 31, 32
HEAD_LANDMARKS = (NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR, MOUTH_LEFT, MOUTH_RIGHT)
MIN_IMAGE_SIDE = 16

#: COCO-18 name -> MediaPipe Pose landmark index ("left"/"right" are the person's, in both conventions).
MEDIAPIPE_INDEX: dict[str, int] = {
    "nose": 0,
    "left_eye": 2,
    "right_eye": 5,
    "left_ear": 7,
    "right_ear": 8,
    "left_shoulder": 11,
    "right_shoulder": 12,
    "left_elbow": 13,
    "right_elbow": 14,
    "left_wrist": 15,
    "right_wrist": 16,
    "left_hip": 23,
    "right_hip": 24,
    "left_knee": 25,
    "right_knee": 26,
    "left_ankle": 27,
    "right_ankle": 28,
}


@dataclass(frozen=True)
class PoseLandmarks:
    """MediaPipe's 33 body landmarks of one person, in the pixels of the photo they were found in."""

    points: npt.NDArray[np.float32]  # (33, 2) x, y in pixels; may lie outside the photo (extrapolated)
    visibility: npt.NDArray[np.float32]  # (33,) in [0, 1]
    height: int
    width: int


def mediapipe_to_coco18(
    landmarks: npt.ArrayLike, visibility: npt.ArrayLike, height: int, width: int
) -> Keypoints:
    """COCO-18 ``(18, 3)`` float32 keypoints from MediaPipe's 33 landmarks (pixels) and visibilities.

    Confidence is the visibility; a landmark less visible than :data:`MIN_VISIBILITY` or outside the
    ``height`` x ``width`` photo is missing (all zeros). The neck, which MediaPipe lacks, is the midpoint
    of the shoulders with the lower of their confidences, and missing unless both shoulders are present.
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(NUM_MEDIAPIPE_LANDMARKS, 2)
    scores = np.asarray(visibility, dtype=np.float64).reshape(NUM_MEDIAPIPE_LANDMARKS)
    keypoints = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
    for name, index in MEDIAPIPE_INDEX.items():
        x, y = points[index]
        score = scores[index]
        inside = 0.0 <= x < width and 0.0 <= y < height
        if score >= MIN_VISIBILITY and inside and np.isfinite(x) and np.isfinite(y):
            keypoints[KP[name]] = (x, y, score)
    right, left = keypoints[KP["right_shoulder"]], keypoints[KP["left_shoulder"]]
    if right[2] > 0 and left[2] > 0:
        keypoints[KP["neck"]] = ((right[0] + left[0]) / 2, (right[1] + left[1]) / 2, min(right[2], left[2]))
    return keypoints


def validate_person_image(person: object) -> None:
    """Raise :class:`StageInputError` unless ``person`` is a non-empty uint8 ``(H, W, 3)`` RGB array."""
    if not isinstance(person, np.ndarray) or person.dtype != np.uint8:
        raise StageInputError("person must be a uint8 RGB image", field="person")
    if person.ndim != 3 or person.shape[2] != 3 or min(person.shape[:2]) < MIN_IMAGE_SIDE:
        raise StageInputError(
            f"person must be an (H, W, 3) RGB image of at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels, "
            f"got {person.shape}",
            field="person",
        )


class MediaPipePoseLandmarker:
    """One MediaPipe Pose graph (static-image mode) behind a lock: the graph is not re-entrant."""

    def __init__(self, detect_long_side: int = DETECT_LONG_SIDE) -> None:
        self.detect_long_side = detect_long_side
        self._pose: Any = None
        self._lock = threading.Lock()
        # One-entry cache: (digest of the detection image, original size) -> result.
        self._last_key: tuple[bytes, int, int] | None = None
        self._last_result: PoseLandmarks | None = None

    def setup(self) -> None:
        with self._lock:
            if self._pose is None:
                import mediapipe as mp  # imported here so importing this module stays cheap

                self._pose = mp.solutions.pose.Pose(
                    static_image_mode=True, model_complexity=1, enable_segmentation=False
                )
                # Warm-up: the first call initialises the TFLite interpreters.
                self._pose.process(np.zeros((128, 96, 3), dtype=np.uint8))

    def detect(self, rgb: RGBImage) -> PoseLandmarks | None:
        """The most prominent person's landmarks in ``rgb`` (uint8 RGB), or None when there is nobody."""
        if self._pose is None:
            self.setup()
        height, width = rgb.shape[:2]
        small = downscale(rgb, self.detect_long_side)
        key = (hashlib.blake2b(small.tobytes(), digest_size=16).digest(), height, width)
        with self._lock:
            if key == self._last_key:
                return self._last_result
            result = self._pose.process(small)
            landmarks = None
            if result.pose_landmarks is not None:
                marks = result.pose_landmarks.landmark
                normalised = np.array([(mark.x, mark.y) for mark in marks], dtype=np.float64)
                visibility = np.array([mark.visibility for mark in marks], dtype=np.float32)
                points = (normalised * (width, height)).astype(np.float32)
                landmarks = PoseLandmarks(points, visibility, height, width)
            self._last_key, self._last_result = key, landmarks
            return landmarks


_shared: MediaPipePoseLandmarker | None = None
_shared_lock = threading.Lock()


def shared_pose_landmarker() -> MediaPipePoseLandmarker:
    """The process-wide detector both lite stages use (created on first call, set up by its caller)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = MediaPipePoseLandmarker()
        return _shared
