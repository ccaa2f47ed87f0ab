"""FullInpaint on a CUDA device: the tiny random SDXL inpainting + ControlNet + IP-Adapter checkpoints
through the production path, in the precisions the GPU deployment runs, with a real CUDA out-of-memory.
Skipped without CUDA (tests/conftest.py); `make test-gpu` runs them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from services.inpaint.full import FullInpaint
from tests.services.inpaint.test_full import TEST_LONG_SIDE, _inputs
from tests.tiny_models import tiny_model_settings
from tryon.types import StageOverloadedError

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", params=["fp16", "bf16"])
def gpu_inpaint(request: pytest.FixtureRequest, tiny_models_dir: dict[str, Path]) -> Iterator[FullInpaint]:
    import torch

    settings = tiny_model_settings(tiny_models_dir, device="cuda", dtype=request.param)
    backend = FullInpaint(settings, max_long_side=TEST_LONG_SIDE)
    backend.setup()
    yield backend
    del backend
    torch.cuda.empty_cache()


def test_runs_on_the_gpu_in_half_precision(gpu_inpaint: FullInpaint) -> None:
    import torch

    assert gpu_inpaint.info().device.startswith("cuda")
    expected_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[gpu_inpaint.models.dtype]
    assert gpu_inpaint._pipeline.unet.dtype == expected_dtype
    image = gpu_inpaint.run(_inputs(seed=3)).image
    assert image.shape == (120, 90, 3) and image.dtype == np.uint8
    # Half-precision overflow shows as a black or constant frame (NaN latents decode to 0).
    assert image.std() > 1.0


def test_same_seed_same_bytes_other_seed_other_image_on_the_gpu(gpu_inpaint: FullInpaint) -> None:
    first = gpu_inpaint.run(_inputs(seed=5)).image
    assert gpu_inpaint.run(_inputs(seed=5)).image.tobytes() == first.tobytes()
    assert gpu_inpaint.run(_inputs(seed=6)).image.tobytes() != first.tobytes()


def test_repeated_calls_do_not_grow_gpu_memory(gpu_inpaint: FullInpaint) -> None:
    import torch

    gpu_inpaint.run(_inputs(seed=1))
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    for seed in range(5):
        gpu_inpaint.run(_inputs(seed=seed))
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= baseline + 1024 * 1024


def test_a_real_out_of_memory_is_an_overload_and_the_next_call_works(gpu_inpaint: FullInpaint) -> None:
    import torch

    expected = gpu_inpaint.run(_inputs(seed=9)).image
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    # Cap this process at what it holds now (the weights): the generation's first new block fails.
    torch.cuda.set_per_process_memory_fraction(torch.cuda.memory_reserved() / total)
    try:
        with pytest.raises(StageOverloadedError, match="out of memory"):
            gpu_inpaint.run(_inputs(seed=9))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert gpu_inpaint._lock.acquire(blocking=False)  # the lock was released
    gpu_inpaint._lock.release()
    assert gpu_inpaint.run(_inputs(seed=9)).image.tobytes() == expected.tobytes()
