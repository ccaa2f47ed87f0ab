"""FullInpaint on tiny random checkpoints (SDXL inpainting, OpenPose ControlNet, IP-Adapter Plus with its
CLIP image encoder), loaded through the production path; and its pure image helpers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from services.inpaint.full import (
    FullInpaint,
    _StepHook,
    composite_garment,
    default_prompt,
    effective_steps,
    feathered,
    from_canvas,
    garment_edges,
    garment_reference,
    generation_geometry,
    mask_crop,
    paste_back,
    start_steps,
    strength_map,
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

#: The tests generate at long side 128 (the tiny models are random; size only costs time).
TEST_LONG_SIDE = 128


def _garment(height: int, width: int) -> np.ndarray:
    """A printed garment layer: blue body, a red stripe and a yellow patch (distinct in every channel)."""
    garment = np.zeros((height, width, 4), np.uint8)
    top, bottom, left, right = height // 3, 3 * height // 4, width // 4, 3 * width // 4
    garment[top:bottom, left:right] = (20, 40, 200, 255)
    garment[top + (bottom - top) // 3 : top + (bottom - top) // 2, left:right] = (220, 30, 30, 255)
    garment[bottom - 8 : bottom - 3, left + 4 : left + 12] = (240, 220, 40, 255)
    return garment


def _inputs(height: int = 120, width: int = 90, seed: int = 0, **option_overrides) -> InpaintInput:
    person = cv2.resize(skimage.data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 3 : 5 * height // 6, width // 5 : 4 * width // 5] = 255
    pose = np.zeros((height, width, 3), np.uint8)
    cv2.line(pose, (width // 2, height // 5), (width // 2, height // 2), (255, 0, 0), 3)
    options = GenerationOptions(seed=seed, **{"steps": 2, **option_overrides})
    return InpaintInput(
        person=person,
        clothing_mask=mask,
        warped_garment=_garment(height, width),
        pose_image=pose,
        category=GarmentCategory.UPPER_BODY,
        options=options,
    )


@pytest.fixture(scope="module")
def inpaint(tiny_models_dir: dict[str, Path]) -> FullInpaint:
    backend = FullInpaint(tiny_model_settings(tiny_models_dir), max_long_side=TEST_LONG_SIDE)
    backend.setup()
    return backend


@pytest.mark.parametrize(("height", "width"), [(120, 90), (100, 131)])
def test_output_is_an_rgb_image_of_the_person_size(inpaint: FullInpaint, height: int, width: int) -> None:
    inputs = _inputs(height, width)
    image = inpaint.run(inputs).image
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    assert not np.array_equal(image, inputs.person)
    # Outside the clothing mask, grown by its feather, the photo comes back bit-exact.
    grown = feathered(inputs.clothing_mask > 127, 0.01 * max(height, width)) > 0
    np.testing.assert_array_equal(image[~grown], inputs.person[~grown])


#: Pinned output of the tiny models (seed 5, 3 steps, default settings): rows 60..63, columns 40..43 of
#: the 120 x 90 result, inside the garment (diffusers' expected_slice style). A swapped mask, channel
#: order, IP-Adapter image or strength map changes these values.
EXPECTED_SLICE = np.array(
    [
        [(131, 139, 110), (129, 147, 106), (127, 147, 103), (128, 149, 103)],
        [(126, 135, 106), (125, 143, 106), (125, 144, 106), (126, 148, 107)],
        [(126, 134, 106), (122, 144, 103), (120, 145, 104), (118, 146, 106)],
        [(129, 134, 104), (123, 143, 102), (121, 144, 103), (119, 144, 105)],
    ]
)


def test_pinned_output_values(inpaint: FullInpaint) -> None:
    image = inpaint.run(_inputs(seed=5, steps=3)).image
    window = image[60:64, 40:44].astype(np.int16)
    np.testing.assert_allclose(window, EXPECTED_SLICE, atol=2)


def test_same_seed_same_bytes_other_seed_other_image(inpaint: FullInpaint) -> None:
    first = inpaint.run(_inputs(seed=7)).image
    again = inpaint.run(_inputs(seed=7)).image
    other = inpaint.run(_inputs(seed=8)).image
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


def test_prompt_and_strength_change_the_result(inpaint: FullInpaint) -> None:
    base = inpaint.run(_inputs(seed=3, steps=4)).image
    assert not np.array_equal(base, inpaint.run(_inputs(seed=3, steps=4, prompt="a green jumper")).image)
    assert not np.array_equal(base, inpaint.run(_inputs(seed=3, steps=4, strength=0.5)).image)


def test_the_strength_map_holds_the_garment_at_the_init_latents(
    inpaint: FullInpaint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside the garment core the latents are the init image's, noised to each step's level, until the
    garment's start step; at a garment strength that starts no step they are the init latents at the end."""
    import torch

    recorded: list[tuple[_StepHook, torch.Tensor]] = []
    make_hook = FullInpaint._step_hook

    def recording_hook(self: FullInpaint, *args, **kwargs) -> _StepHook:
        hook = make_hook(self, *args, **kwargs)

        def call(pipeline, step, timestep, tensors):
            tensors = hook(pipeline, step, timestep, tensors)
            recorded.append((hook, tensors["latents"].clone()))
            return tensors

        return call  # type: ignore[return-value]

    monkeypatch.setattr(FullInpaint, "_step_hook", recording_hook)
    monkeypatch.setattr(inpaint.models, "garment_strength", 0.01)
    inpaint.run(_inputs(seed=1, steps=4))
    hook, final = recorded[-1]
    assert hook.starts is not None and len(recorded) == 3  # int(4 x 0.99) steps
    held = (hook.starts >= 3).expand_as(final)  # never denoised: start step == the run's length
    assert held.any() and not held.all()
    torch.testing.assert_close(final[held], hook.image_latents[held])
    assert not torch.allclose(final[~held], hook.image_latents[~held], atol=0.05)


def test_ip_adapter_conditions_the_result(tiny_models_dir: dict[str, Path], inpaint: FullInpaint) -> None:
    without = FullInpaint(
        tiny_model_settings(tiny_models_dir, ip_adapter_model=""), max_long_side=TEST_LONG_SIDE
    )
    without.load()
    assert [model.name for model in without.info().models] == ["sdxl", "controlnet"]
    assert not np.array_equal(without.run(_inputs(seed=2)).image, inpaint.run(_inputs(seed=2)).image)


def test_edges_controlnet_setting_adds_a_second_controlnet(tiny_models_dir: dict[str, Path]) -> None:
    # The tiny OpenPose ControlNet stands in for the canny one (same architecture).
    settings = tiny_model_settings(
        tiny_models_dir, controlnet_edges_model=str(tiny_models_dir["controlnet"]), ip_adapter_model=""
    )
    backend = FullInpaint(settings, max_long_side=TEST_LONG_SIDE)
    backend.load()
    from diffusers.models.controlnets import MultiControlNetModel

    assert isinstance(backend._pipeline.controlnet, MultiControlNetModel)
    assert [model.name for model in backend.info().models][-1] == "controlnet_edges"
    assert backend.run(_inputs()).image.shape == (120, 90, 3)


def test_deep_cache_runs_the_deep_blocks_only_every_interval(tiny_models_dir: dict[str, Path]) -> None:
    calls = {}
    images = {}
    for interval in (1, 2):
        settings = tiny_model_settings(tiny_models_dir, ip_adapter_model="", deep_cache_interval=interval)
        backend = FullInpaint(settings, max_long_side=TEST_LONG_SIDE)
        backend.load()
        pipeline = backend._pipeline
        counts = {"deep": 0, "outer": 0, "controlnet": 0}
        # Hooks on submodules fire only when their block really runs (not when its output is reused).
        for name, module in (
            ("deep", pipeline.unet.mid_block.resnets[0]),
            ("outer", pipeline.unet.up_blocks[-1].resnets[0]),
            ("controlnet", pipeline.controlnet.conv_in),
        ):
            module.register_forward_hook(
                lambda *_, name=name, counts=counts: counts.__setitem__(name, counts[name] + 1)
            )
        images[interval] = backend.run(_inputs(seed=4, steps=4, strength=1.0)).image
        calls[interval] = counts
    assert calls[1] == {"deep": 4, "outer": 4, "controlnet": 4}
    assert calls[2] == {"deep": 2, "outer": 4, "controlnet": 2}
    assert not np.array_equal(images[1], images[2])


def test_large_photos_are_generated_at_the_working_size_and_returned_at_theirs(
    tiny_models_dir: dict[str, Path],
) -> None:
    backend = FullInpaint(tiny_model_settings(tiny_models_dir, crop_to_mask=False), max_long_side=64)
    backend.load()
    image = backend.run(_inputs(150, 110)).image
    assert image.shape == (150, 110, 3)


def test_cuda_out_of_memory_frees_memory_and_the_next_request_works(
    inpaint: FullInpaint, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    expected = inpaint.run(_inputs(seed=11)).image
    real_pipeline = inpaint._pipeline
    calls = {"pipeline": 0, "empty_cache": 0}

    class OutOfMemoryOnce:
        def __getattr__(self, name: str):
            return getattr(real_pipeline, name)

        def __call__(self, *args, **kwargs):
            calls["pipeline"] += 1
            if calls["pipeline"] == 1:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return real_pipeline(*args, **kwargs)

    monkeypatch.setattr(inpaint, "_pipeline", OutOfMemoryOnce())
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
    settings = tiny_model_settings(
        tiny_models_dir, vae_model=str(tiny_models_dir["sdxl"] / "vae"), ip_adapter_model=""
    )
    backend = FullInpaint(settings, max_long_side=TEST_LONG_SIDE)
    backend.load()
    assert [model.name for model in backend.info().models] == ["sdxl", "controlnet", "vae"]
    assert backend.run(_inputs()).image.shape == (120, 90, 3)


def test_info(inpaint: FullInpaint) -> None:
    info = inpaint.info()
    assert (info.stage, info.backend, info.device) == ("inpaint", "full", "cpu")
    assert [model.name for model in info.models] == ["sdxl", "controlnet", "ip_adapter"]


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
    with pytest.raises(StageInputError) as error:
        inpaint.run(dataclasses.replace(_inputs(), **change))
    assert error.value.field == field


# ------------------------------------------------------------------------------------- pure helpers


def test_geometry_pads_to_multiples_of_64_and_round_trips() -> None:
    geometry = generation_geometry(1024, 683)
    assert geometry.scaled == (1024, 683) and geometry.canvas == (1024, 704)
    image = np.random.default_rng(0).integers(0, 256, (1024, 683, 3), dtype=np.uint8)
    canvas = to_canvas(image, geometry, border=cv2.BORDER_REPLICATE)
    assert canvas.shape == (1024, 704, 3)
    np.testing.assert_array_equal(from_canvas(canvas, geometry), image)
    smaller = generation_geometry(2048, 1536)
    assert smaller.scaled == (1024, 768) and smaller.canvas == (1024, 768)


def test_geometry_upscales_a_small_crop_up_to_the_limit() -> None:
    assert generation_geometry(300, 200, max_upscale=4.0).scaled == (1024, 683)
    assert generation_geometry(100, 50, max_upscale=4.0).scaled == (400, 200)
    assert generation_geometry(300, 200).scaled == (300, 200)  # no upscale unless asked


def test_mask_crop_grows_the_bounding_box_by_the_margin_and_clips() -> None:
    mask = np.zeros((200, 100), bool)
    mask[50:150, 40:60] = True
    rows, cols = mask_crop(mask, 0.25)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (25, 175, 15, 85)
    rows, cols = mask_crop(mask, 1.0)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 200, 0, 100)
    rows, cols = mask_crop(mask, 0.0, min_pad=10)  # room for the feathered paste even without a margin
    assert (rows.start, rows.stop, cols.start, cols.stop) == (40, 160, 30, 70)


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


def test_default_prompt_names_the_kind_and_no_colour() -> None:
    prompt = default_prompt(GarmentCategory.DRESS)
    assert "wearing a dress" in prompt
    assert not any(colour in prompt for colour in ("red", "blue", "black", "white", "green"))


def test_strength_map_is_low_in_the_garment_core_and_full_in_the_band_and_outside() -> None:
    garment = np.zeros((100, 100), bool)
    garment[20:80, 20:80] = True
    strength = strength_map(garment, full=0.99, garment_strength=0.6, band_px=6)
    assert strength[50, 50] == pytest.approx(0.6, abs=1e-3)
    assert strength[22, 50] == pytest.approx(0.99)  # inside the garment, within the edge band
    assert strength[5, 5] == pytest.approx(0.99)  # not covered by the warp
    assert strength.min() >= 0.6 - 1e-6 and strength.max() <= 0.99 + 1e-6
    # A request weaker than the garment strength is not strengthened.
    assert strength_map(garment, full=0.5, garment_strength=0.6, band_px=6).max() == pytest.approx(0.5)


def test_start_steps_match_what_a_run_at_that_strength_would_skip() -> None:
    strength = np.array([[0.99, 0.6, 0.3, 0.01]], np.float32)
    # 30 steps at 0.99 run 29; at 0.6 a run would do 18 (start 11 steps in), at 0.3 9 (start 20 in).
    np.testing.assert_array_equal(start_steps(strength, steps=30, full=0.99), [[0, 11, 20, 29]])


def test_paste_back_returns_the_garment_with_the_generated_shading() -> None:
    size = 200
    garment_layer = np.zeros((size, size, 4), np.uint8)
    garment_layer[40:160, 40:160] = (30, 60, 200, 255)
    garment_layer[90:110, 40:160, :3] = (240, 240, 240)  # a white print stripe
    garment = garment_layer[..., 3] > 0
    init = np.full((size, size, 3), 120, np.uint8)
    init[garment] = garment_layer[garment][:, :3]
    # The generation kept the layout but blurred the print and shaded the left half darker.
    generated = cv2.GaussianBlur(init, (0, 0), 4).astype(np.float32)
    generated[:, :100] *= 0.8
    generated = np.clip(generated, 0, 255).astype(np.uint8)
    result = paste_back(generated, init, garment_layer, garment, erode_px=6, max_delta_e=30)
    # Inside the core: the garment's own (sharp) print, with the darker shading on the left.
    np.testing.assert_allclose(result[100, 130], (240, 240, 240), atol=12)
    np.testing.assert_allclose(result[60, 130], (30, 60, 200), atol=6)
    # Darker on the left (the ratio is taken over luminance + a small offset, so a little less than 0.8).
    assert 0.78 < result[60, 70, 2] / result[60, 130, 2] < 0.88
    assert result[60, 70, 2] > 2 * result[60, 70, 1] > 4 * result[60, 70, 0] * 0.9  # still the same blue
    # Outside the eroded garment the generation stays.
    np.testing.assert_array_equal(result[:38], generated[:38])


def test_paste_back_keeps_the_generation_where_it_departs_from_the_warp() -> None:
    size = 120
    garment_layer = np.zeros((size, size, 4), np.uint8)
    garment_layer[20:100, 20:100] = (30, 60, 200, 255)
    garment = garment_layer[..., 3] > 0
    init = np.where(garment[..., None], garment_layer[..., :3], 120).astype(np.uint8)
    generated = init.copy()
    generated[40:80, 50:70] = (210, 160, 130)  # an arm drawn across the torso
    result = paste_back(generated, init, garment_layer, garment, erode_px=4, max_delta_e=30)
    np.testing.assert_allclose(result[60, 60], (210, 160, 130), atol=3)
    np.testing.assert_allclose(result[30, 30], (30, 60, 200), atol=3)


def test_garment_reference_is_the_garment_on_white_square() -> None:
    layer = _garment(120, 90)
    reference = garment_reference(layer)
    assert reference.shape[0] == reference.shape[1] == 50  # the garment's box is 50 x 45
    assert tuple(reference[0, 0]) == (255, 255, 255)
    assert tuple(reference[20, 25]) == (220, 30, 30)  # red stripe, channel order kept
    assert tuple(reference[30, 25]) == (20, 40, 200)


def test_garment_edges_outline_the_garment_and_its_print() -> None:
    edges = garment_edges(_garment(120, 90))
    assert edges.shape == (120, 90, 3) and set(np.unique(edges)) == {0, 255}
    assert edges[40:43, 22:24].any()  # the garment's top edge region
    assert not edges[:30].any()  # nothing above the garment


def test_effective_steps_always_denoise_at_least_once() -> None:
    assert effective_steps(GenerationOptions(steps=30, strength=0.99)) == 30
    steps = effective_steps(GenerationOptions(steps=1, strength=0.3))
    assert int(steps * 0.3) >= 1


def test_reports_one_progress_event_per_denoising_step(inpaint: FullInpaint) -> None:
    events: list[tuple[int, int]] = []
    with progress.reporting(lambda done, total: events.append((done, total))):
        inpaint.run(_inputs(seed=1, steps=4))  # diffusers runs int(4 x 0.99) = 3 steps
    assert events == [(1, 3), (2, 3), (3, 3)]


def test_models_pull_fetches_only_the_plus_adapter_and_its_vit_h_encoder() -> None:
    from tryon import models

    repo_files = [
        "models/image_encoder/config.json", "models/image_encoder/model.safetensors",
        "models/image_encoder/pytorch_model.bin", "models/ip-adapter_sd15.safetensors",
        "sdxl_models/image_encoder/config.json", "sdxl_models/image_encoder/model.safetensors",
        "sdxl_models/ip-adapter_sdxl.safetensors", "sdxl_models/ip-adapter-plus_sdxl_vit-h.bin",
        "sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors", "README.md",
    ]  # fmt: skip
    assert models.download_patterns(models.SPECS_BY_NAME["ip_adapter"], repo_files) == [
        "sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors",
        "models/image_encoder/config.json",
        "models/image_encoder/model.safetensors",
    ]
