"""Lite pose: MediaPipe Pose (bundled, weight-free) mapped to OpenPose COCO-18 keypoints.

The landmarks come from the process-wide :func:`~tryon.vision.mediapipe_landmarks.shared_pose_landmarker`
(the lite segmentation stage uses the same one), are converted by
:func:`~tryon.vision.mediapipe_landmarks.mediapipe_to_coco18` and drawn by the controlnet_aux-identical
:func:`~tryon.vision.openpose.draw_openpose`, so the pose image matches the full backend's rendering style.
"""

from __future__ import annotations

import numpy as np

from tryon.types import NO_PERSON_FOUND, BackendInfo, ModelInfo, PoseInput, PoseOutput, StageInputError
from tryon.vision.mediapipe_landmarks import (
    MediaPipePoseLandmarker,
    mediapipe_to_coco18,
    shared_pose_landmarker,
    validate_person_image,
)
from tryon.vision.openpose import draw_openpose

MODEL_SOURCE = "bundled:mediapipe==0.10.21"


class LitePose:
    """COCO-18 keypoints and their OpenPose rendering from MediaPipe Pose, on the CPU."""

    def __init__(self, landmarker: MediaPipePoseLandmarker | None = None) -> None:
        self._landmarker = landmarker or shared_pose_landmarker()

    def setup(self) -> None:
        self._landmarker.setup()  # builds the graph and runs a warm-up inference

    def run(self, inputs: PoseInput, /) -> PoseOutput:
        person = inputs.person
        validate_person_image(person)
        height, width = person.shape[:2]
        landmarks = self._landmarker.detect(person)
        if landmarks is None:
            raise StageInputError(NO_PERSON_FOUND, field="person")
        keypoints = mediapipe_to_coco18(landmarks.points, landmarks.visibility, height, width)
        if not np.any(keypoints[:, 2] > 0):
            raise StageInputError(NO_PERSON_FOUND, field="person")
        return PoseOutput(keypoints=keypoints, pose_image=draw_openpose(keypoints, height, width))

    def info(self) -> BackendInfo:
        return BackendInfo(
            stage="pose",
            backend="lite",
            device="cpu",
            models=(ModelInfo("mediapipe_pose", MODEL_SOURCE),),
        )
