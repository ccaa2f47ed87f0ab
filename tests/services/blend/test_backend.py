"""Blending on scikit-image's astronaut at working resolution, with masks and generated images made here.

Two kinds of generated image: "lite" (the photo with the garment painted into the clothing mask, as the lite
inpainter returns it) and "drifted" (the same, put through the colour cast, blur and uneven tint a diffusion
model's VAE round trip causes, everywhere, garment included).
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import skimage.data
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from services.blend.backend import REGION_DILATION, Blender
from tryon.types import BlendInput, StageInputError

GARMENT_RGB = (200, 30, 30)
SCALE = 2  # astronaut 512 px -> the 1024 px working resolution


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    return cv2.dilate((mask > 127).astype(np.uint8), _disk(radius)) > 0


def _delta_e(rgb: np.ndarray, reference: tuple[int, int, int]) -> np.ndarray:
    lab = rgb2lab(np.asarray(rgb, np.float64).reshape(-1, 1, 3) / 255.0)
    lab_reference = rgb2lab(np.array(reference, np.float64).reshape(1, 1, 3) / 255.0)
    return deltaE_ciede2000(lab, lab_reference)[:, 0]


def _paint_garment(person: np.ndarray, clothing_mask: np.ndarray) -> np.ndarray:
    """The photo with a single-colour garment (with a little texture) in the clothing mask."""
    texture = np.random.default_rng(0).normal(1.0, 0.04, size=person.shape[:2]).astype(np.float32)
    garment = np.clip(np.array(GARMENT_RGB, np.float32) * texture[..., None] + 0.5, 0, 255).astype(np.uint8)
    generated = person.copy()
    inside = clothing_mask > 127
    generated[inside] = garment[inside]
    return generated


def _drift(image: np.ndarray) -> np.ndarray:
    """A generator's colour drift: per-channel gain and offset, softening, a tint growing to the right."""
    width = image.shape[1]
    tint = np.linspace(0.0, 14.0, width, dtype=np.float32)[None, :]
    drifted = image.astype(np.float32) * np.array([0.88, 1.0, 1.0], np.float32) + np.array(
        [0.0, 15.0, 30.0], np.float32
    )
    drifted[..., 2] += tint
    drifted = cv2.GaussianBlur(drifted, (0, 0), 1.0)
    return np.clip(drifted + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def person() -> np.ndarray:
    return cv2.resize(skimage.data.astronaut(), None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def face_mask(person: np.ndarray) -> np.ndarray:
    mask = np.zeros(person.shape[:2], np.uint8)
    cv2.ellipse(mask, (225 * SCALE, 105 * SCALE), (45 * SCALE, 60 * SCALE), 0, 0, 360, 255, -1)
    return mask


@pytest.fixture(scope="module")
def clothing_mask(person: np.ndarray) -> np.ndarray:
    """The torso down to the bottom edge of the photo, with a collar reaching into the chin (the two masks
    overlap, as a sloppy segmentation may make them)."""
    mask = np.zeros(person.shape[:2], np.uint8)
    cv2.ellipse(mask, (230 * SCALE, 420 * SCALE), (200 * SCALE, 170 * SCALE), 0, 0, 360, 255, -1)
    cv2.rectangle(mask, (215 * SCALE, 150 * SCALE), (235 * SCALE, 300 * SCALE), 255, -1)
    return mask


@pytest.fixture(scope="module")
def lite_generated(person: np.ndarray, clothing_mask: np.ndarray) -> np.ndarray:
    return _paint_garment(person, clothing_mask)


@pytest.fixture(scope="module")
def drifted_generated(lite_generated: np.ndarray) -> np.ndarray:
    return _drift(lite_generated)


@pytest.fixture(scope="module")
def blender() -> Blender:
    backend = Blender()
    backend.setup()
    return backend


def _blend(
    blender: Blender, person: np.ndarray, generated: np.ndarray, clothing: np.ndarray, face: np.ndarray
):
    return blender.run(BlendInput(person=person, generated=generated, clothing_mask=clothing, face_mask=face))


@pytest.fixture(scope="module")
def lite_result(blender, person, lite_generated, clothing_mask, face_mask) -> np.ndarray:
    return _blend(blender, person, lite_generated, clothing_mask, face_mask).image


@pytest.fixture(scope="module")
def drifted_result(blender, person, drifted_generated, clothing_mask, face_mask) -> np.ndarray:
    return _blend(blender, person, drifted_generated, clothing_mask, face_mask).image


def test_the_drift_is_large_enough_to_matter(
    person: np.ndarray, drifted_generated: np.ndarray, clothing_mask: np.ndarray, face_mask: np.ndarray
) -> None:
    inside = (clothing_mask > 127) & (face_mask <= 127)
    outside = ~_dilate(clothing_mask, 15) & (face_mask <= 127)
    assert float(_delta_e(drifted_generated[inside].mean(axis=0), GARMENT_RGB)[0]) > 10.0
    assert peak_signal_noise_ratio(person[outside], drifted_generated[outside], data_range=255) < 30.0


@pytest.mark.parametrize("kind", ["lite", "drifted"])
def test_outside_the_dilated_clothing_mask_the_photo_is_returned(
    request: pytest.FixtureRequest, person: np.ndarray, clothing_mask: np.ndarray, kind: str
) -> None:
    result = request.getfixturevalue(f"{kind}_result")
    assert result.shape == person.shape and result.dtype == np.uint8
    # The pipeline's acceptance: PSNR >= 40 dB outside the mask dilated by 15 px (face aside). It is exact.
    outside = ~_dilate(clothing_mask, round(REGION_DILATION * max(person.shape[:2])))
    assert np.array_equal(result[outside], person[outside])
    outside_15 = ~_dilate(clothing_mask, 15)
    assert np.array_equal(result[outside_15], person[outside_15])


@pytest.mark.parametrize("kind", ["lite", "drifted"])
def test_the_face_is_restored(
    request: pytest.FixtureRequest,
    person: np.ndarray,
    face_mask: np.ndarray,
    clothing_mask: np.ndarray,
    kind: str,
) -> None:
    result = request.getfixturevalue(f"{kind}_result")
    face = face_mask > 127
    assert (face & (clothing_mask > 127)).sum() > 500, "the test needs the garment to reach into the face"
    assert np.array_equal(result[face], person[face])
    ys, xs = np.nonzero(face)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    assert structural_similarity(person[box], result[box], channel_axis=2, data_range=255) >= 0.98


def test_a_lite_generated_image_passes_through_unchanged(
    lite_result: np.ndarray, lite_generated: np.ndarray, face_mask: np.ndarray
) -> None:
    """The lite inpainter already agrees with the photo outside the mask: nothing to correct."""
    not_face = ~_dilate(face_mask, 20)
    assert np.array_equal(lite_result[not_face], lite_generated[not_face])


@pytest.mark.parametrize("kind", ["lite", "drifted"])
def test_a_single_colour_garment_keeps_its_colour(
    request: pytest.FixtureRequest, clothing_mask: np.ndarray, face_mask: np.ndarray, kind: str
) -> None:
    result = request.getfixturevalue(f"{kind}_result")
    garment = (clothing_mask > 127) & (face_mask <= 127)
    assert float(_delta_e(result[garment].mean(axis=0), GARMENT_RGB)[0]) <= 10.0
    assert float(np.percentile(_delta_e(result[garment], GARMENT_RGB), 90)) <= 12.0


def test_the_seam_is_continuous(
    drifted_result: np.ndarray,
    drifted_generated: np.ndarray,
    person: np.ndarray,
    clothing_mask: np.ndarray,
    face_mask: np.ndarray,
) -> None:
    """In the band between the clothing mask and its dilation, where the result ramps from the generated
    image to the photo, the generator's colour drift is corrected rather than cut off at the band's edge."""
    radius = round(REGION_DILATION * max(person.shape[:2]))
    band = _dilate(clothing_mask, radius) & ~(clothing_mask > 127) & ~_dilate(face_mask, 20)
    drift = np.abs(drifted_generated[band].astype(int) - person[band]).mean()
    left = np.abs(drifted_result[band].astype(int) - person[band]).mean()
    assert left < 0.3 * drift


@pytest.mark.parametrize(
    "box",
    [
        (slice(0, 300), slice(0, 400)),  # top-left corner
        (slice(700, None), slice(None)),  # the whole bottom edge, both corners
        (slice(None), slice(824, None)),  # the whole right edge
    ],
)
def test_masks_touching_the_image_border(
    blender: Blender, person: np.ndarray, box: tuple[slice, slice]
) -> None:
    clothing = np.zeros(person.shape[:2], np.uint8)
    clothing[box] = 255
    generated = _drift(_paint_garment(person, clothing))
    result = _blend(blender, person, generated, clothing, np.zeros_like(clothing)).image
    outside = ~_dilate(clothing, round(REGION_DILATION * max(person.shape[:2])))
    assert np.array_equal(result[outside], person[outside])
    assert float(_delta_e(result[clothing > 0].mean(axis=0), GARMENT_RGB)[0]) <= 10.0


def test_a_clothing_mask_covering_the_whole_photo(blender: Blender, person: np.ndarray) -> None:
    """No photo left to match colours to or to clone into: the generated image is returned."""
    clothing = np.full(person.shape[:2], 255, np.uint8)
    generated = _paint_garment(person, clothing)
    result = _blend(blender, person, generated, clothing, np.zeros_like(clothing)).image
    assert np.array_equal(result, generated)


def test_an_empty_face_mask_restores_nothing(
    blender: Blender, person: np.ndarray, lite_generated: np.ndarray, clothing_mask: np.ndarray
) -> None:
    """A photo without a visible face (cropped at the chin, a back view) is valid input."""
    result = _blend(blender, person, lite_generated, clothing_mask, np.zeros_like(clothing_mask)).image
    assert np.array_equal(result, lite_generated)


def test_same_inputs_give_the_same_bytes(
    blender, person, drifted_generated, clothing_mask, face_mask, drifted_result
) -> None:
    again = _blend(blender, person, drifted_generated, clothing_mask, face_mask).image
    assert again.tobytes() == drifted_result.tobytes()


@pytest.mark.parametrize("field", ["generated", "clothing_mask", "face_mask"])
def test_a_size_mismatch_names_the_field(
    blender, person, lite_generated, clothing_mask, face_mask, field: str
) -> None:
    inputs = BlendInput(
        person=person, generated=lite_generated, clothing_mask=clothing_mask, face_mask=face_mask
    )
    with pytest.raises(StageInputError) as error:
        blender.run(replace(inputs, **{field: getattr(inputs, field)[:, :-8]}))
    assert error.value.field == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("person", np.zeros((64, 64, 4), np.uint8)),
        ("generated", np.zeros((1024, 1024, 3), np.float32)),
        ("clothing_mask", np.zeros((1024, 1024, 3), np.uint8)),
        ("face_mask", [[0]]),
    ],
)
def test_bad_arrays_name_the_field(
    blender, person, lite_generated, clothing_mask, face_mask, field: str, value: object
) -> None:
    inputs = BlendInput(
        person=person, generated=lite_generated, clothing_mask=clothing_mask, face_mask=face_mask
    )
    with pytest.raises(StageInputError) as error:
        blender.run(replace(inputs, **{field: value}))
    assert error.value.field == field


def test_an_empty_clothing_mask_is_an_input_error(blender, person, lite_generated, face_mask) -> None:
    with pytest.raises(StageInputError, match="empty") as error:
        _blend(blender, person, lite_generated, np.zeros_like(face_mask), face_mask)
    assert error.value.field == "clothing_mask"


def test_info_describes_a_cpu_backend(blender: Blender) -> None:
    info = blender.info()
    assert (info.stage, info.backend, info.device, info.models) == ("blend", "single", "cpu", ())
