"""Lite segmentation on skimage's astronaut (a person) and chelsea (a cat)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from services.pose.lite import LitePose
from services.pose.mediapipe_landmarks import MediaPipePoseLandmarker
from services.segmentation.lite import LiteSegmentation, body_frame, body_regions, clothing_region
from tryon.types import (
    KP,
    ClothesLabel,
    GarmentCategory,
    PoseInput,
    SegmentationInput,
    SegmentationOutput,
    StageInputError,
)

SIZE = 1024


@pytest.fixture(scope="module")
def segmentation() -> LiteSegmentation:
    backend = LiteSegmentation()
    backend.setup()
    return backend


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.resize(data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def outputs(
    segmentation: LiteSegmentation, astronaut: np.ndarray
) -> dict[GarmentCategory, SegmentationOutput]:
    return {
        category: segmentation.run(SegmentationInput(person=astronaut, category=category))
        for category in GarmentCategory
    }


@pytest.fixture(scope="module")
def nose(astronaut: np.ndarray) -> tuple[int, int]:
    pose = LitePose()
    pose.setup()
    x, y, score = pose.run(PoseInput(person=astronaut)).keypoints[KP["nose"]]
    assert score > 0.5
    return round(float(x)), round(float(y))


def _is_binary_mask(mask: np.ndarray) -> bool:
    return mask.shape == (SIZE, SIZE) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}


def test_shapes_and_values(outputs: dict[GarmentCategory, SegmentationOutput]) -> None:
    for output in outputs.values():
        for mask in (output.clothing_mask, output.face_mask, output.person_mask):
            assert _is_binary_mask(mask)
        assert output.label_map.shape == (SIZE, SIZE) and output.label_map.dtype == np.uint8
        assert output.label_map.max() < len(ClothesLabel)


def test_person_mask_covers_the_astronaut(outputs: dict[GarmentCategory, SegmentationOutput]) -> None:
    person = outputs[GarmentCategory.UPPER_BODY].person_mask > 0
    assert 0.25 < person.mean() < 0.85
    assert person[700, 300]  # the suit's chest
    assert not person[100, 950]  # the backdrop top right, beside the rocket's nose


def test_clothing_mask_inside_person_and_off_the_face(
    outputs: dict[GarmentCategory, SegmentationOutput],
) -> None:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * 31 + 1, 2 * 31 + 1))
    for category, output in outputs.items():
        clothing = output.clothing_mask > 0
        assert clothing.mean() > 0.01, category
        grown_person = cv2.dilate(output.person_mask, kernel) > 0
        assert not np.any(clothing & ~grown_person), category
        assert not np.any(clothing & (output.face_mask > 0)), category


def test_upper_body_covers_the_suit(outputs: dict[GarmentCategory, SegmentationOutput]) -> None:
    clothing = outputs[GarmentCategory.UPPER_BODY].clothing_mask > 0
    assert clothing[650:800, 300:600].mean() > 0.9  # the chest below the helmet ring
    assert not clothing[:300].any()  # nothing at head height


def test_face_mask_covers_the_face(
    outputs: dict[GarmentCategory, SegmentationOutput], nose: tuple[int, int]
) -> None:
    face = outputs[GarmentCategory.UPPER_BODY].face_mask > 0
    x, y = nose
    assert face[y - 40 : y + 40, x - 40 : x + 40].all()
    assert 0.02 < face.mean() < 0.15
    ys, xs = np.nonzero(face)
    assert ys.min() < y < ys.max() and xs.min() < x < xs.max()


def test_label_map(outputs: dict[GarmentCategory, SegmentationOutput], nose: tuple[int, int]) -> None:
    expected_clothing_label = {
        GarmentCategory.UPPER_BODY: ClothesLabel.UPPER_CLOTHES,
        GarmentCategory.LOWER_BODY: ClothesLabel.PANTS,
        GarmentCategory.DRESS: ClothesLabel.DRESS,
    }
    for category, output in outputs.items():
        labels = output.label_map
        np.testing.assert_array_equal(labels == ClothesLabel.BACKGROUND, output.person_mask == 0)
        np.testing.assert_array_equal(labels == ClothesLabel.FACE, output.face_mask > 0)
        assert labels[nose[1], nose[0]] == ClothesLabel.FACE
        assert labels[120, 450] == ClothesLabel.HAIR  # the top of her head
        present = set(np.unique(labels).tolist())
        assert {ClothesLabel.RIGHT_ARM, ClothesLabel.HAIR} <= present, category
        clothing = (output.clothing_mask > 0) & (output.person_mask > 0)
        assert np.mean(labels[clothing] == expected_clothing_label[category]) > 0.9, category


def test_categories_on_the_astronaut(outputs: dict[GarmentCategory, SegmentationOutput]) -> None:
    upper, lower, dress = (outputs[category].clothing_mask > 0 for category in GarmentCategory)
    assert upper.tobytes() != lower.tobytes()
    # A half-body photo: the knees are out of frame, so a dress covers at least the upper body's region.
    assert np.mean(upper <= dress) > 0.999
    # Trousers start at the waist, far below the shoulders.
    assert not lower[:700].any()


def _standing_person() -> np.ndarray:
    """MediaPipe's 33 landmarks of a person standing facing the camera in a 384x288 frame (hand-written)."""
    points = np.zeros((33, 2))
    for index, xy in {
        0: (144, 40), 2: (150, 34), 5: (138, 34), 7: (158, 38), 8: (130, 38),
        11: (174, 80), 12: (114, 80), 13: (184, 130), 14: (104, 130), 15: (188, 175), 16: (100, 175),
        17: (190, 185), 18: (98, 185), 19: (189, 187), 20: (99, 187),
        23: (162, 190), 24: (126, 190), 25: (164, 270), 26: (124, 270), 27: (165, 350), 28: (123, 350),
    }.items():  # fmt: skip
        points[index] = xy
    return points


def test_each_category_gives_its_own_region() -> None:
    shape = (384, 288)
    frame = body_frame(_standing_person(), *shape)
    regions = body_regions(frame, shape)
    everyone = np.ones(shape, dtype=np.uint8)
    nothing = np.zeros(shape, dtype=np.uint8)
    masks = {
        category: clothing_region(regions, category, everyone, nothing, everyone).astype(bool)
        for category in GarmentCategory
    }
    rows = {category: np.nonzero(mask.any(axis=1))[0] for category, mask in masks.items()}
    assert len({mask.tobytes() for mask in masks.values()}) == 3
    # Upper body: from about the shoulders (y 80) to about the hips (y 190).
    assert 60 <= rows[GarmentCategory.UPPER_BODY].min() <= 85
    assert 185 <= rows[GarmentCategory.UPPER_BODY].max() <= 215
    # Lower body: from the waist (above the hip joints) to the ankles (y 350).
    assert 150 <= rows[GarmentCategory.LOWER_BODY].min() <= 190
    assert rows[GarmentCategory.LOWER_BODY].max() >= 345
    # Dress: shoulders to a little below the knees (y 270).
    assert rows[GarmentCategory.DRESS].min() == rows[GarmentCategory.UPPER_BODY].min()
    assert 270 <= rows[GarmentCategory.DRESS].max() <= 320
    # The arms (x ~ 100 and ~ 188 at the elbows' height) stay out of the upper body's region.
    assert not masks[GarmentCategory.UPPER_BODY][130, 95:110].any()
    assert masks[GarmentCategory.UPPER_BODY][130, 144]
    # The neck above the shoulder line is never clothing.
    assert not any(mask[60, 144] for mask in masks.values())


def test_deterministic(astronaut: np.ndarray, outputs: dict[GarmentCategory, SegmentationOutput]) -> None:
    # Fresh graphs (no shared landmark cache) must give the same bytes.
    other = LiteSegmentation(MediaPipePoseLandmarker())
    other.setup()
    again = other.run(SegmentationInput(person=astronaut.copy(), category=GarmentCategory.UPPER_BODY))
    first = outputs[GarmentCategory.UPPER_BODY]
    for name in ("label_map", "clothing_mask", "face_mask", "person_mask"):
        assert getattr(first, name).tobytes() == getattr(again, name).tobytes(), name


def test_cat_is_not_a_person(segmentation: LiteSegmentation) -> None:
    with pytest.raises(StageInputError) as error:
        segmentation.run(SegmentationInput(person=data.chelsea()))
    assert error.value.field == "person"


def test_info(segmentation: LiteSegmentation) -> None:
    info = segmentation.info()
    assert (info.stage, info.backend, info.device) == ("segmentation", "lite", "cpu")
    assert all(model.source == "bundled:mediapipe==0.10.21" for model in info.models)
