"""Lite inpainting on scikit-image's astronaut at working resolution, with masks and garments drawn here."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from skimage.color import deltaE_ciede2000, rgb2lab

from services.inpaint.lite import LiteInpaint
from tryon.types import GenerationOptions, InpaintInput, StageInputError

GARMENT_RGB = (200, 30, 30)  # a red close to the old (orange) suit: the hardest case for "no trace"
SCALE = 2  # astronaut 512 px -> the 1024 px working resolution


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _is_suit_orange(image: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    return (hsv[..., 0] >= 5) & (hsv[..., 0] <= 22) & (hsv[..., 1] > 120) & (hsv[..., 2] > 90)


def _delta_e(rgb: np.ndarray, reference: tuple[int, int, int]) -> np.ndarray:
    lab = rgb2lab(np.asarray(rgb, np.float64).reshape(-1, 1, 3) / 255.0)
    lab_reference = rgb2lab(np.array(reference, np.float64).reshape(1, 1, 3) / 255.0)
    return deltaE_ciede2000(lab, lab_reference)[:, 0]


@pytest.fixture(scope="module")
def person() -> np.ndarray:
    return cv2.resize(skimage.data.astronaut(), None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def clothing_mask(person: np.ndarray) -> np.ndarray:
    """What a segmenter would give: the orange suit, holes (badges) filled, dilated. Touches the bottom."""
    orange = _is_suit_orange(person).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(orange)
    suit = (labels == 1 + np.argmax(stats[1:, cv2.CC_STAT_AREA])).astype(np.uint8) * 255
    suit = cv2.morphologyEx(suit, cv2.MORPH_CLOSE, _disk(25))
    outside = suit.copy()
    cv2.floodFill(outside, np.zeros((suit.shape[0] + 2, suit.shape[1] + 2), np.uint8), (0, 0), 255)
    suit |= ~outside
    return cv2.dilate(suit, _disk(10))


@pytest.fixture(scope="module")
def warped_garment(clothing_mask: np.ndarray) -> np.ndarray:
    """A single-colour garment covering the clothing mask but a 20 px ring along its edge."""
    garment = np.zeros((*clothing_mask.shape, 4), np.uint8)
    garment[cv2.erode(clothing_mask, _disk(20)) > 0] = (*GARMENT_RGB, 255)
    return garment


@pytest.fixture(scope="module")
def inputs(person: np.ndarray, clothing_mask: np.ndarray, warped_garment: np.ndarray) -> InpaintInput:
    return InpaintInput(
        person=person,
        clothing_mask=clothing_mask,
        warped_garment=warped_garment,
        pose_image=np.zeros_like(person),
        options=GenerationOptions(seed=3),
    )


@pytest.fixture(scope="module")
def backend() -> LiteInpaint:
    lite = LiteInpaint()
    lite.setup()
    return lite


@pytest.fixture(scope="module")
def output(backend: LiteInpaint, inputs: InpaintInput) -> np.ndarray:
    return backend.run(inputs).image


def test_output_is_an_rgb_image_of_the_persons_size(output: np.ndarray, person: np.ndarray) -> None:
    assert output.shape == person.shape and output.dtype == np.uint8


def test_pixels_outside_the_clothing_mask_are_unchanged(
    output: np.ndarray, person: np.ndarray, clothing_mask: np.ndarray
) -> None:
    outside = clothing_mask <= 127
    assert np.array_equal(output[outside], person[outside])
    assert not np.array_equal(output[~outside], person[~outside])


def test_single_colour_garment_keeps_its_colour(
    output: np.ndarray, clothing_mask: np.ndarray, warped_garment: np.ndarray
) -> None:
    covered = (clothing_mask > 127) & (warped_garment[..., 3] > 127)
    assert float(_delta_e(output[covered].mean(axis=0), GARMENT_RGB)[0]) <= 10.0
    # Shading varies single pixels, within bounds: most stay close to the garment's colour.
    assert float(np.percentile(_delta_e(output[covered], GARMENT_RGB), 90)) <= 10.0


def _band_pass_luminance(image: np.ndarray) -> np.ndarray:
    """Detail between ~4 and ~20 px: the scale of folds at 1024 px."""
    luminance = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return cv2.GaussianBlur(luminance, (0, 0), 4) - cv2.GaussianBlur(luminance, (0, 0), 20)


def test_the_photos_folds_shade_the_garment(
    output: np.ndarray, person: np.ndarray, clothing_mask: np.ndarray, warped_garment: np.ndarray
) -> None:
    covered = (clothing_mask > 127) & (warped_garment[..., 3] > 127)
    shaded = cv2.cvtColor(output, cv2.COLOR_RGB2GRAY).astype(np.float64)[covered]
    assert shaded.std() > 3.0, "a flat colour: no shading was transferred"
    # Away from the garment's edge, its light and dark follow the photo's folds.
    interior = cv2.erode(covered.astype(np.uint8), _disk(40)) > 0
    correlation = np.corrcoef(_band_pass_luminance(person)[interior], _band_pass_luminance(output)[interior])
    assert float(correlation[0, 1]) > 0.5


@pytest.mark.parametrize("pattern", ["check", "lettering"])
def test_the_old_garments_pattern_does_not_shade_the_new_one(backend: LiteInpaint, pattern: str) -> None:
    """An old garment with a bold pattern (a check, big letters) under a plain new one: the pattern is the
    old garment's, not light and shadow, and must not show through the new garment as blotches."""
    size = 1024
    rows, columns = np.mgrid[0:size, 0:size]
    fold = 1.0 + 0.12 * np.sin(columns / 90.0)  # and a slow ramp of light across the garment
    if pattern == "check":
        paint = np.where(((rows // 28) + (columns // 28)) % 2 == 0, 230.0, 60.0)
    else:
        paint = np.full((size, size), 225.0)
        for top in range(300, 700, 110):  # rows of thick black letters
            for left in range(250, 750, 70):
                paint[top : top + 70, left : left + 14] = 25.0
                paint[top : top + 14, left : left + 45] = 25.0
    person = np.clip(np.stack([paint * fold] * 3, axis=-1), 0, 255).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[200:800, 200:800] = 255
    garment = np.zeros((size, size, 4), np.uint8)
    garment[200:800, 200:800] = (*GARMENT_RGB, 255)
    output = backend.run(
        InpaintInput(person=person, clothing_mask=mask, warped_garment=garment, pose_image=person)
    ).image
    inner = (slice(260, 740), slice(260, 740))
    luminance = cv2.cvtColor(output, cv2.COLOR_RGB2GRAY).astype(np.float64)[inner]
    # Blotches: detail finer than the fold. The plain garment shows (almost) none.
    blotches = luminance - cv2.GaussianBlur(luminance, (0, 0), 25)
    assert blotches.std() < 1.0, blotches.std()  # ~1.7 (check) and ~2.4 (letters) when it leaked


def test_mask_pixels_the_garment_does_not_cover_no_longer_show_the_old_garment(
    output: np.ndarray, person: np.ndarray, clothing_mask: np.ndarray, warped_garment: np.ndarray
) -> None:
    uncovered = (clothing_mask > 127) & (warped_garment[..., 3] == 0)
    assert uncovered.sum() > 10_000, "the test needs an uncovered region"
    old_suit = _is_suit_orange(person) & uncovered
    assert old_suit.sum() > 0.3 * uncovered.sum(), "the uncovered ring must have shown the old suit"
    still_orange = _is_suit_orange(output) & old_suit
    assert still_orange.sum() < 0.05 * old_suit.sum()


def test_same_inputs_give_the_same_bytes_and_the_seed_does_not_matter(
    backend: LiteInpaint, inputs: InpaintInput, output: np.ndarray
) -> None:
    assert backend.run(inputs).image.tobytes() == output.tobytes()
    other_seed = replace(inputs, options=GenerationOptions(seed=12345))
    assert backend.run(other_seed).image.tobytes() == output.tobytes()


@pytest.mark.parametrize("corner", ["top_left", "bottom_right"])
def test_masks_touching_the_image_border(backend: LiteInpaint, person: np.ndarray, corner: str) -> None:
    height, width = person.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    garment = np.zeros((height, width, 4), np.uint8)
    box = (slice(0, 400), slice(0, 300)) if corner == "top_left" else (slice(600, None), slice(700, None))
    mask[box] = 255
    garment[box] = (*GARMENT_RGB, 255)
    garment[box[0], box[1].start or 0 : (box[1].start or 0) + 40] = 0  # an uncovered strip
    image = backend.run(
        InpaintInput(person=person, clothing_mask=mask, warped_garment=garment, pose_image=person)
    ).image
    assert np.array_equal(image[mask == 0], person[mask == 0])
    covered = garment[..., 3] > 0
    assert float(_delta_e(image[covered].mean(axis=0), GARMENT_RGB)[0]) <= 10.0


def test_a_mask_covering_the_whole_photo(backend: LiteInpaint, person: np.ndarray) -> None:
    mask = np.full(person.shape[:2], 255, np.uint8)
    garment = np.zeros((*person.shape[:2], 4), np.uint8)
    garment[200:800, 200:800] = (*GARMENT_RGB, 255)
    image = backend.run(
        InpaintInput(person=person, clothing_mask=mask, warped_garment=garment, pose_image=person)
    ).image
    covered = garment[..., 3] > 0
    assert float(_delta_e(image[covered].mean(axis=0), GARMENT_RGB)[0]) <= 10.0
    # Nothing around the mask to grow a fill from: the uncovered pixels lose the photo entirely.
    assert float(np.abs(image[~covered].astype(int) - person[~covered]).mean()) > 20


@pytest.mark.parametrize("field", ["clothing_mask", "warped_garment", "pose_image"])
def test_a_size_mismatch_names_the_field(backend: LiteInpaint, inputs: InpaintInput, field: str) -> None:
    wrong = getattr(inputs, field)[:-8]
    with pytest.raises(StageInputError) as error:
        backend.run(replace(inputs, **{field: wrong}))
    assert error.value.field == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("person", np.zeros((64, 64), np.uint8)),
        ("person", np.zeros((64, 64, 3), np.float32)),
        ("warped_garment", np.zeros((1024, 1024, 3), np.uint8)),  # RGB: the alpha is required
        ("clothing_mask", np.zeros((1024, 1024), bool)),
    ],
)
def test_bad_arrays_name_the_field(
    backend: LiteInpaint, inputs: InpaintInput, field: str, value: np.ndarray
) -> None:
    with pytest.raises(StageInputError) as error:
        backend.run(replace(inputs, **{field: value}))
    assert error.value.field == field


def test_an_empty_clothing_mask_is_an_input_error(backend: LiteInpaint, inputs: InpaintInput) -> None:
    with pytest.raises(StageInputError, match="empty") as error:
        backend.run(replace(inputs, clothing_mask=np.zeros_like(inputs.clothing_mask)))
    assert error.value.field == "clothing_mask"


def test_bad_options_are_an_input_error(backend: LiteInpaint, inputs: InpaintInput) -> None:
    with pytest.raises(StageInputError) as error:
        backend.run(replace(inputs, options=GenerationOptions(seed=-1)))
    assert error.value.field == "options.seed"


def test_info_describes_a_weight_free_cpu_backend(backend: LiteInpaint) -> None:
    info = backend.info()
    assert (info.stage, info.backend, info.device, info.models) == ("inpaint", "lite", "cpu", ())


def test_the_lite_path_never_imports_torch() -> None:
    code = "import sys, services.inpaint.lite, services.blend.backend; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[3]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
