"""FullSegmentation on a CUDA device: the tiny random Segformer, loaded through the production path, in the
precisions the GPU deployment runs. Skipped without CUDA (tests/conftest.py); `make test-gpu` runs them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data

from services.segmentation.full import FullSegmentation
from tests.tiny_models import tiny_model_settings
from tryon.types import GarmentCategory, SegmentationInput

pytestmark = pytest.mark.gpu

PERSON = np.ascontiguousarray(skimage.data.astronaut()[::2, ::2])  # 256 x 256


def _labels(tiny_models_dir: dict[str, Path], device: str, dtype: str) -> tuple[np.ndarray, str]:
    backend = FullSegmentation(tiny_model_settings(tiny_models_dir, device=device, dtype=dtype))
    backend.setup()
    output = backend.run(SegmentationInput(person=PERSON, category=GarmentCategory.UPPER_BODY))
    return output.label_map, backend.info().device


@pytest.fixture(scope="module")
def cpu_labels(tiny_models_dir: dict[str, Path]) -> np.ndarray:
    return _labels(tiny_models_dir, "cpu", "fp32")[0]


def test_fp32_on_the_gpu_matches_the_cpu(tiny_models_dir: dict[str, Path], cpu_labels: np.ndarray) -> None:
    labels, device = _labels(tiny_models_dir, "cuda", "fp32")
    assert device.startswith("cuda")
    # Kernels differ (TF32, reduction order): a few near-tied pixels may flip, nothing more.
    assert (labels == cpu_labels).mean() >= 0.995


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_half_precision_on_the_gpu_keeps_the_labels(
    tiny_models_dir: dict[str, Path], cpu_labels: np.ndarray, dtype: str
) -> None:
    labels, device = _labels(tiny_models_dir, "cuda", dtype)
    assert device.startswith("cuda")
    assert labels.shape == cpu_labels.shape and labels.dtype == np.uint8
    # Random weights give flat logits, the worst case for rounding; real checkpoints agree far better.
    assert (labels == cpu_labels).mean() >= 0.9
