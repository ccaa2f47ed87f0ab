"""FullPose on a CUDA device (tiny random OpenPose body model through the production path). Skipped without
CUDA (tests/conftest.py); `make test-gpu` runs them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data

from services.pose.full import FullPose
from tests.tiny_models import tiny_model_settings
from tryon.types import PoseInput, StageInputError

pytestmark = pytest.mark.gpu


def test_the_detector_runs_on_the_gpu_and_answers_as_on_the_cpu(tiny_models_dir: dict[str, Path]) -> None:
    pose = FullPose(tiny_model_settings(tiny_models_dir, device="cuda"))
    pose.setup()  # loads and warms up on the device
    assert pose.info().device.startswith("cuda")
    # Random weights find nobody, on either device: the same clear input error, not a CUDA failure.
    with pytest.raises(StageInputError, match="no person"):
        pose.run(PoseInput(person=skimage.data.astronaut()))
    with pytest.raises(StageInputError) as error:
        pose.run(PoseInput(person=np.zeros((64, 64, 4), np.uint8)))
    assert error.value.field == "person"
