"""Full pose: the OpenPose body network through controlnet_aux (lllyasviel/Annotators weights).

controlnet_aux's ``OpenposeDetector`` is loaded the documented way (``from_pretrained`` on the local
directory or cached snapshot) and its body estimator is called directly: it returns OpenPose's raw
``candidate`` (every peak: x, y, score, id) and ``subset`` (one row per person: 18 candidate indices, total
score, part count) arrays, which carry the per-keypoint confidences that ``detect_poses`` drops.
:func:`keypoints_from_openpose` turns them into COCO-18 keypoints in the photo's pixels, and the pose image
is drawn by :func:`tryon.vision.openpose.draw_openpose`, the same renderer the lite backend uses, so the
ControlNet sees identical conditioning from either backend.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from tryon import models as model_registry
from tryon.settings import ModelSettings
from tryon.types import (
    NO_PERSON_FOUND,
    NUM_KEYPOINTS,
    BackendInfo,
    Keypoints,
    ModelInfo,
    PoseInput,
    PoseOutput,
    StageInputError,
)
from tryon.vision.images import downscale
from tryon.vision.openpose import draw_openpose

#: OpenPose's body network sees the photo at 184 px high whatever its size (controlnet_aux: boxsize 368 x
#: scale 0.5); its heatmaps are then resized to the input and smoothed there, so detecting on a 512 px copy
#: loses nothing and keeps that post-processing cheap at 1024 px.
DETECT_LONG_SIDE = 512
WARMUP_SIZE = (512, 384)


def keypoints_from_openpose(
    candidate: npt.NDArray[np.float64],
    subset: npt.NDArray[np.float64],
    *,
    scale_x: float = 1.0,
    scale_y: float = 1.0,
) -> Keypoints:
    """COCO-18 ``(18, 3)`` float32 keypoints of the most complete person in OpenPose's body output.

    ``candidate`` rows are ``(x, y, score, id)`` in the detection image; ``subset`` rows hold 18 indices
    into ``candidate`` (-1: not found), then the total score and the part count. ``scale_x``/``scale_y``
    map detection pixels to photo pixels (pixel centres are aligned). Missing keypoints are all zeros.
    Raises :class:`StageInputError` when OpenPose found nobody.
    """
    subset = np.asarray(subset, dtype=np.float64).reshape(-1, NUM_KEYPOINTS + 2)
    if len(subset) == 0:
        raise StageInputError(NO_PERSON_FOUND, field="person")
    # The photo's subject is the most complete skeleton; among equals, the most confident one.
    best = max(range(len(subset)), key=lambda row: (subset[row, -1], subset[row, -2]))
    indices = subset[best, :NUM_KEYPOINTS].astype(np.int64)
    found = indices >= 0
    keypoints = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
    if found.any():
        rows = np.asarray(candidate, dtype=np.float64)[indices[found]]
        keypoints[found, 0] = (rows[:, 0] + 0.5) * scale_x - 0.5
        keypoints[found, 1] = (rows[:, 1] + 0.5) * scale_y - 0.5
        # Heatmap peaks are above OpenPose's 0.1 threshold and may overshoot 1 slightly.
        keypoints[found, 2] = np.clip(rows[:, 2], 1e-3, 1.0)
    return keypoints


class FullPose:
    """OpenPose body keypoints (controlnet_aux) on CUDA or CPU, in fp32 (the estimator feeds fp32)."""

    def __init__(self, models: ModelSettings) -> None:
        self.models = models
        self._detector: Any = None
        self._device = "cpu"
        self._lock = threading.Lock()

    def setup(self) -> None:
        with warnings.catch_warnings():  # its package import re-registers timm models, noisily
            warnings.simplefilter("ignore")
            from controlnet_aux.open_pose import OpenposeDetector

        directory = model_registry.require_stage("pose", self.models)["openpose"]
        self._device = model_registry.resolve_device(self.models)
        self._detector = OpenposeDetector.from_pretrained(str(directory)).to(self._device)
        self._detect(np.full((*WARMUP_SIZE, 3), 128, np.uint8))

    def run(self, inputs: PoseInput, /) -> PoseOutput:
        person = inputs.person
        if person.ndim != 3 or person.shape[2] != 3 or person.dtype != np.uint8:
            raise StageInputError("person: expected a uint8 RGB image (H, W, 3)", field="person")
        height, width = person.shape[:2]
        small = downscale(person, DETECT_LONG_SIDE)
        candidate, subset = self._detect(small)
        keypoints = keypoints_from_openpose(
            candidate, subset, scale_x=width / small.shape[1], scale_y=height / small.shape[0]
        )
        return PoseOutput(keypoints=keypoints, pose_image=draw_openpose(keypoints, height, width))

    def _detect(self, rgb: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        if self._detector is None:
            raise RuntimeError("FullPose.setup() must run before run()")
        import torch

        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # OpenPose was trained on BGR (as detect_poses feeds)
        with self._lock, torch.inference_mode():
            candidate, subset = self._detector.body_estimation(bgr)
        return np.asarray(candidate, dtype=np.float64), np.asarray(subset, dtype=np.float64)

    def info(self) -> BackendInfo:
        device = self._device
        if self._detector is not None:
            device = str(next(self._detector.body_estimation.model.parameters()).device)
        return BackendInfo(
            stage="pose",
            backend="full",
            device=device,
            models=(ModelInfo(name="openpose", source=self.models.openpose_model),),
        )
