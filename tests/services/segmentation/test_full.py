"""FullSegmentation on a tiny random Segformer, loaded through the production path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data

from services.segmentation.full import FullSegmentation, masks_from_label_map
from tests.tiny_models import tiny_model_settings
from tryon.types import ClothesLabel, GarmentCategory, SegmentationInput, StageInputError

L = ClothesLabel


@pytest.fixture(scope="module")
def segmentation(tiny_models_dir: dict[str, Path]) -> FullSegmentation:
    backend = FullSegmentation(tiny_model_settings(tiny_models_dir))
    backend.setup()
    return backend


@pytest.mark.parametrize("size", [(512, 512), (150, 97)])
def test_outputs_follow_the_stage_contract(segmentation: FullSegmentation, size: tuple[int, int]) -> None:
    person = np.ascontiguousarray(skimage.data.astronaut()[: size[0], : size[1]])
    output = segmentation.run(SegmentationInput(person=person, category=GarmentCategory.UPPER_BODY))
    for array in (output.label_map, output.clothing_mask, output.face_mask, output.person_mask):
        assert array.shape == size and array.dtype == np.uint8
    assert output.label_map.max() < len(ClothesLabel)
    for mask in (output.clothing_mask, output.face_mask, output.person_mask):
        assert set(np.unique(mask)) <= {0, 255}
    # The masks are the label map's, whatever the (random) model predicted.
    np.testing.assert_array_equal(output.person_mask, np.where(output.label_map != L.BACKGROUND, 255, 0))
    expected_face = np.isin(output.label_map, (L.FACE, L.SUNGLASSES))
    np.testing.assert_array_equal(output.face_mask, np.where(expected_face, 255, 0))


def test_labels_are_the_argmax_of_logits_upsampled_to_the_photo(
    segmentation: FullSegmentation, tiny_models_dir: dict[str, Path]
) -> None:
    import torch
    from transformers import SegformerForSemanticSegmentation, SegformerImageProcessor

    person = skimage.data.astronaut()[::4, ::3].copy()  # 128 x 171: not the model's square input
    processor = SegformerImageProcessor.from_pretrained(tiny_models_dir["segformer"])
    model = SegformerForSemanticSegmentation.from_pretrained(tiny_models_dir["segformer"]).eval()
    with torch.no_grad():
        logits = model(**processor(images=person, return_tensors="pt")).logits
    upsampled = torch.nn.functional.interpolate(logits, size=person.shape[:2], mode="bilinear")
    expected = upsampled.argmax(dim=1)[0].numpy().astype(np.uint8)
    np.testing.assert_array_equal(segmentation.predict_labels(person), expected)


def test_info_names_the_model_and_device(segmentation: FullSegmentation) -> None:
    info = segmentation.info()
    assert (info.stage, info.backend, info.device) == ("segmentation", "full", "cpu")
    assert info.models[0].name == "segformer"
    assert Path(info.models[0].source).name == "segformer"


def test_bad_input_is_a_stage_input_error(segmentation: FullSegmentation) -> None:
    with pytest.raises(StageInputError) as error:
        segmentation.run(SegmentationInput(person=np.zeros((64, 64), np.uint8)))
    assert error.value.field == "person"


def test_run_before_setup_says_so() -> None:
    from tryon.settings import ModelSettings

    with pytest.raises(RuntimeError, match="setup"):
        FullSegmentation(ModelSettings()).run(SegmentationInput(person=np.zeros((64, 64, 3), np.uint8)))


def _label_map() -> np.ndarray:
    labels = np.zeros((200, 100), np.uint8)
    labels[10:40, 35:65] = L.FACE
    labels[5:10, 30:70] = L.HAIR
    labels[45:110, 20:80] = L.UPPER_CLOTHES
    labels[110:190, 25:75] = L.PANTS
    return labels


def test_upper_body_mask_covers_the_top_grown_a_little_but_never_the_face() -> None:
    labels = _label_map()
    clothing, face, person = masks_from_label_map(labels, GarmentCategory.UPPER_BODY)
    top = labels == L.UPPER_CLOTHES
    assert (clothing[top] == 255).all()
    grown = (clothing == 255) & ~top
    assert 0 < grown.sum() < 0.2 * top.sum()  # dilated by ~1% of the long side, not more
    assert not clothing[labels == L.FACE].any() and not clothing[labels == L.HAIR].any()
    assert not clothing[150:, :].any()  # the trousers stay
    np.testing.assert_array_equal(face == 255, labels == L.FACE)
    np.testing.assert_array_equal(person == 255, labels != L.BACKGROUND)


def test_lower_body_and_dress_masks_pick_their_garments() -> None:
    labels = _label_map()
    lower, _, _ = masks_from_label_map(labels, GarmentCategory.LOWER_BODY)
    dress, _, _ = masks_from_label_map(labels, GarmentCategory.DRESS)
    assert (lower[labels == L.PANTS] == 255).all() and not lower[60:100, 40:60].any()
    assert (dress[np.isin(labels, (L.PANTS, L.UPPER_CLOTHES))] == 255).all()
    assert not dress[labels == L.FACE].any()
