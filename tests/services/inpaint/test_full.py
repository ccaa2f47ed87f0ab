"""FullInpaint on a tiny random SDXL inpainting pipeline + ControlNet, loaded through the production path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data

from services.inpaint.full import (
    FullInpaint,
    colour_name,
    composite_garment,
    default_prompt,
    effective_steps,
    from_canvas,
    generation_geometry,
    to_canvas,
)
from tests.tiny_models import tiny_model_settings
from tryon import progress
from tryon.types import (
    GarmentCategory,
    GenerationOptions,
    InpaintInput,
    StageInputError,
    StageOverloadedError,
)


def _inputs(height: int = 120, width: int = 90, seed: int = 0, **option_overrides) -> InpaintInput:
    import cv2

    person = cv2.resize(skimage.data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 3 : 5 * height // 6, width // 5 : 4 * width // 5] = 255
    garment = np.zeros((height, width, 4), np.uint8)
    garment[height // 3 : 3 * height // 4, width // 4 : 3 * width // 4] = (20, 40, 200, 255)
    pose = np.zeros((height, width, 3), np.uint8)
    cv2.line(pose, (width // 2, height // 5), (width // 2, height // 2), (255, 0, 0), 3)
    options = GenerationOptions(seed=seed, **{"steps": 2, **option_overrides})
    return InpaintInput(
        person=person,
        clothing_mask=mask,
        warped_garment=garment,
        pose_image=pose,
        category=GarmentCategory.UPPER_BODY,
        options=options,
    )


@pytest.fixture(scope="module")
def inpaint(tiny_models_dir: dict[str, Path]) -> FullInpaint:
    backend = FullInpaint(tiny_model_settings(tiny_models_dir))
    backend.setup()
    return backend


@pytest.mark.parametrize(("height", "width"), [(120, 90), (100, 131)])
def test_output_is_an_rgb_image_of_the_person_size(inpaint: FullInpaint, height: int, width: int) -> None:
    inputs = _inputs(height, width)
    image = inpaint.run(inputs).image
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    assert image.std() > 0  # decoded pixels, not a constant fill
    assert not np.array_equal(image, inputs.person)


def test_same_seed_same_bytes_other_seed_other_image(inpaint: FullInpaint) -> None:
    first = inpaint.run(_inputs(seed=7)).image
    again = inpaint.run(_inputs(seed=7)).image
    other = inpaint.run(_inputs(seed=8)).image
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


def test_prompt_and_strength_change_the_result(inpaint: FullInpaint) -> None:
    # diffusers runs int(steps x strength) of the steps: 3 at 0.99, 2 at 0.5.
    base = inpaint.run(_inputs(seed=3, steps=4)).image
    assert not np.array_equal(base, inpaint.run(_inputs(seed=3, steps=4, prompt="a green jumper")).image)
    assert not np.array_equal(base, inpaint.run(_inputs(seed=3, steps=4, strength=0.5)).image)


def test_large_photos_are_generated_at_the_working_size_and_returned_at_theirs(
    tiny_models_dir: dict[str, Path],
) -> None:
    backend = FullInpaint(tiny_model_settings(tiny_models_dir), max_long_side=64)
    backend.setup()
    image = backend.run(_inputs(150, 110)).image
    assert image.shape == (150, 110, 3)


def test_cuda_out_of_memory_frees_memory_and_the_next_request_works(
    inpaint: FullInpaint, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    expected = inpaint.run(_inputs(seed=11)).image
    real_pipeline = inpaint._pipeline
    calls = {"pipeline": 0, "empty_cache": 0}

    def pipeline_out_of_memory_once(*args, **kwargs):
        calls["pipeline"] += 1
        if calls["pipeline"] == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_pipeline(*args, **kwargs)

    monkeypatch.setattr(inpaint, "_pipeline", pipeline_out_of_memory_once)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.__setitem__("empty_cache", 1))
    with pytest.raises(StageOverloadedError, match="out of memory"):
        inpaint.run(_inputs(seed=11))
    assert calls["empty_cache"] == 1
    assert inpaint._lock.acquire(blocking=False)  # the lock was released
    inpaint._lock.release()
    assert inpaint.run(_inputs(seed=11)).image.tobytes() == expected.tobytes()


def test_a_cancelled_call_stops_between_steps_and_the_next_works(inpaint: FullInpaint) -> None:
    from tryon.cancellation import CallCancelled, cancellable

    steps_seen: list[int] = []

    def caller_gone() -> bool:
        steps_seen.append(1)
        return len(steps_seen) >= 2  # the caller goes away after the first step

    with cancellable(caller_gone), pytest.raises(CallCancelled):
        inpaint.run(_inputs(steps=6, strength=1.0))
    assert len(steps_seen) == 2  # stopped at the second step, not after all six
    assert inpaint.run(_inputs()).image.shape == (120, 90, 3)


def test_fp16_fix_vae_setting_loads_that_vae(tiny_models_dir: dict[str, Path]) -> None:
    # The tiny SDXL's own vae/ folder is a standalone VAE checkpoint (config + fp16 weights).
    settings = tiny_model_settings(tiny_models_dir, vae_model=str(tiny_models_dir["sdxl"] / "vae"))
    backend = FullInpaint(settings)
    backend.setup()
    assert [model.name for model in backend.info().models] == ["sdxl", "controlnet", "vae"]
    assert backend.run(_inputs()).image.shape == (120, 90, 3)


def test_info(inpaint: FullInpaint) -> None:
    info = inpaint.info()
    assert (info.stage, info.backend, info.device) == ("inpaint", "full", "cpu")
    assert [model.name for model in info.models] == ["sdxl", "controlnet"]


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("clothing_mask", {"clothing_mask": np.zeros((60, 90), np.uint8)}),
        ("clothing_mask", {"clothing_mask": np.zeros((120, 90), np.uint8)}),
        ("warped_garment", {"warped_garment": np.zeros((120, 90, 3), np.uint8)}),
        ("pose_image", {"pose_image": np.zeros((120, 90, 3), np.float32)}),
        ("person", {"person": np.zeros((120, 90), np.uint8)}),
        ("options.steps", {"options": GenerationOptions(steps=0)}),
    ],
)
def test_bad_inputs_name_their_field(inpaint: FullInpaint, field: str, change: dict) -> None:
    import dataclasses

    with pytest.raises(StageInputError) as error:
        inpaint.run(dataclasses.replace(_inputs(), **change))
    assert error.value.field == field


# ------------------------------------------------------------------------------------- pure helpers


def test_geometry_pads_to_multiples_of_64_and_round_trips() -> None:
    geometry = generation_geometry(1024, 683)
    assert geometry.scaled == (1024, 683) and geometry.canvas == (1024, 704)
    image = np.random.default_rng(0).integers(0, 256, (1024, 683, 3), dtype=np.uint8)
    import cv2

    canvas = to_canvas(image, geometry, border=cv2.BORDER_REPLICATE)
    assert canvas.shape == (1024, 704, 3)
    np.testing.assert_array_equal(from_canvas(canvas, geometry), image)
    smaller = generation_geometry(2048, 1536)
    assert smaller.scaled == (1024, 768) and smaller.canvas == (1024, 768)


def test_composite_puts_the_garment_only_inside_the_mask() -> None:
    person = np.full((10, 10, 3), 100, np.uint8)
    garment = np.zeros((10, 10, 4), np.uint8)
    garment[:, :5] = (0, 0, 255, 255)
    mask = np.zeros((10, 10), np.uint8)
    mask[:5] = 255
    init = composite_garment(person, garment, mask)
    np.testing.assert_array_equal(init[:5, :5], np.broadcast_to((0, 0, 255), (5, 5, 3)))
    np.testing.assert_array_equal(init[5:], person[5:])
    np.testing.assert_array_equal(init[:5, 5:], person[:5, 5:])


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((10, 10, 10), "black"),
        ((250, 250, 250), "white"),
        ((128, 128, 128), "grey"),
        ((220, 30, 30), "red"),
        ((30, 60, 220), "blue"),
        ((20, 20, 90), "navy blue"),
        ((40, 170, 60), "green"),
        ((240, 220, 40), "yellow"),
        ((120, 40, 180), "purple"),
        ((240, 120, 180), "pink"),
    ],
)
def test_colour_names(rgb: tuple[int, int, int], name: str) -> None:
    assert colour_name(np.array(rgb, np.uint8)) == name


def test_default_prompt_names_the_garment_colour_and_kind() -> None:
    garment = np.zeros((20, 20, 4), np.uint8)
    garment[5:15, 5:15] = (30, 60, 220, 255)
    assert "blue dress" in default_prompt(garment, GarmentCategory.DRESS)
    assert "wearing a top" in default_prompt(np.zeros((20, 20, 4), np.uint8), GarmentCategory.UPPER_BODY)


def test_effective_steps_always_denoise_at_least_once() -> None:
    assert effective_steps(GenerationOptions(steps=30, strength=0.99)) == 30
    steps = effective_steps(GenerationOptions(steps=1, strength=0.3))
    assert int(steps * 0.3) >= 1


def test_reports_one_progress_event_per_denoising_step(inpaint: FullInpaint) -> None:
    events: list[tuple[int, int]] = []
    with progress.reporting(lambda done, total: events.append((done, total))):
        inpaint.run(_inputs(seed=1, steps=4))  # diffusers runs int(4 x 0.99) = 3 steps
    assert events == [(1, 3), (2, 3), (3, 3)]
