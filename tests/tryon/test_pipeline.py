"""End-to-end lite pipeline on a photo shipped with scikit-image and a garment drawn by the test."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import skimage.data
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity

from tests.imagegen import draw_garment
from tryon import imaging, progress
from tryon.pipeline import TryOnPipeline, TryOnResult
from tryon.settings import StageSettings
from tryon.types import STAGES, BackendKind, GarmentCategory, GenerationOptions, StageInputError
from tryon.vision.mask_kinds import edit_region

GARMENT_RGB = (200, 30, 30)


@pytest.fixture(scope="module")
def pipeline() -> Iterator[TryOnPipeline]:
    lite = TryOnPipeline.from_settings(StageSettings(backend=BackendKind.LITE))
    lite.setup()
    yield lite
    lite.close()


@pytest.fixture(scope="module")
def person() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def garment() -> np.ndarray:
    return draw_garment(GarmentCategory.UPPER_BODY, color=GARMENT_RGB)


@pytest.fixture(scope="module")
def result(pipeline: TryOnPipeline, person: np.ndarray, garment: np.ndarray) -> TryOnResult:
    return pipeline.run(person, garment, options=GenerationOptions(seed=3))


def _dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask, kernel) > 0


def test_result_is_working_resolution_with_every_intermediate(result: TryOnResult) -> None:
    assert result.image.shape == (1024, 1024, 3) and result.image.dtype == np.uint8
    assert result.person.shape == result.image.shape
    assert result.segmentation.clothing_mask.shape == (1024, 1024)
    assert result.pose.keypoints.shape == (18, 3)
    assert result.pose.pose_image.shape == (1024, 1024, 3)
    assert result.warp.warped_garment.shape == (1024, 1024, 4)
    assert set(result.timings) == {*STAGES, "total"}


def test_background_outside_the_garment_and_face_is_unchanged(result: TryOnResult) -> None:
    edited = edit_region(result.segmentation.clothing_mask).astype(np.uint8)
    changed_region = _dilate(edited, 15) | (result.segmentation.face_mask > 0)
    outside = ~changed_region
    assert outside.mean() > 0.3, "the test needs a meaningful background"
    # bit-exact: blending copies the original pixels outside the garment and face regions
    assert np.array_equal(result.image[outside], result.person[outside])


def test_face_is_preserved(result: TryOnResult) -> None:
    ys, xs = np.nonzero(result.segmentation.face_mask)
    assert len(ys) > 500, "a face must be found on the astronaut"
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    ssim = structural_similarity(result.person[box], result.image[box], channel_axis=2, data_range=255)
    assert ssim >= 0.98


def test_single_colour_garment_keeps_its_colour_and_covers_the_clothing_mask(result: TryOnResult) -> None:
    clothing = edit_region(result.segmentation.clothing_mask)  # the mask's contract: > 127 is edited
    covered = result.warp.warped_garment[..., 3] > 127
    assert (covered & clothing).sum() / clothing.sum() >= 0.60
    mean_rgb = result.image[clothing].reshape(-1, 3).mean(axis=0)
    lab_result = rgb2lab(mean_rgb.reshape(1, 1, 3) / 255.0)
    lab_garment = rgb2lab(np.array(GARMENT_RGB, dtype=np.float64).reshape(1, 1, 3) / 255.0)
    assert float(deltaE_ciede2000(lab_result, lab_garment)[0, 0]) <= 10.0


def test_same_inputs_and_seed_give_the_same_bytes(
    pipeline: TryOnPipeline, person: np.ndarray, garment: np.ndarray, result: TryOnResult
) -> None:
    again = pipeline.run(person, garment, options=GenerationOptions(seed=3))
    assert imaging.encode_png(again.image) == imaging.encode_png(result.image)


def test_aspect_ratio_is_kept(pipeline: TryOnPipeline, person: np.ndarray, garment: np.ndarray) -> None:
    portrait = person[:, 56:456]  # 400 wide x 512 high
    out = pipeline.run(portrait, garment)
    assert out.image.shape == (1024, 800, 3)


def test_no_person_is_a_clear_error(pipeline: TryOnPipeline, garment: np.ndarray) -> None:
    with pytest.raises(StageInputError, match="no person"):
        pipeline.run(skimage.data.chelsea(), garment)


def test_inseparable_garment_is_a_clear_error(pipeline: TryOnPipeline, person: np.ndarray) -> None:
    noise = np.random.default_rng(0).integers(0, 256, size=(512, 384, 3), dtype=np.uint8)
    with pytest.raises(StageInputError, match="garment") as error:
        pipeline.run(person, noise)
    assert error.value.field == "garment"


def test_tiny_person_photo_is_a_clear_error(
    pipeline: TryOnPipeline, person: np.ndarray, garment: np.ndarray
) -> None:
    with pytest.raises(StageInputError, match="too small"):
        pipeline.run(person[:100, :100], garment)


def test_progress_reporter_around_the_pipeline_gets_the_inpaint_steps(
    pipeline: TryOnPipeline, person: np.ndarray, garment: np.ndarray
) -> None:
    events: list[tuple[int, int]] = []
    with progress.reporting(lambda done, total: events.append((done, total))):
        pipeline.run(person, garment)
    assert events == [(1, 3), (2, 3), (3, 3)]  # the lite inpainter's fill, shading, composite
