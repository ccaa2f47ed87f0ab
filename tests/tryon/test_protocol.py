from __future__ import annotations

import numpy as np
import pytest

from tryon import protocol
from tryon.types import GarmentCategory, GenerationOptions, StageInputError
from tryon.v1 import common_pb2


def test_keypoints_round_trip() -> None:
    keypoints = np.random.default_rng(0).random((18, 3)).astype(np.float32)
    assert np.array_equal(protocol.keypoints_from_proto(protocol.keypoints_to_proto(keypoints)), keypoints)


@pytest.mark.parametrize("count", [0, 17, 25])
def test_wrong_keypoint_count_names_the_field(count: int) -> None:
    pose = common_pb2.BodyPose(keypoints=[common_pb2.Keypoint()] * count)
    with pytest.raises(StageInputError, match="expected 18") as error:
        protocol.keypoints_from_proto(pose)
    assert error.value.field == "pose"


def test_out_of_range_confidence_and_nan_are_rejected() -> None:
    bad_confidence = common_pb2.BodyPose(keypoints=[common_pb2.Keypoint(confidence=2.0)] * 18)
    with pytest.raises(StageInputError, match="confidence"):
        protocol.keypoints_from_proto(bad_confidence)
    nan = common_pb2.BodyPose(keypoints=[common_pb2.Keypoint(x=float("nan"))] * 18)
    with pytest.raises(StageInputError, match="finite"):
        protocol.keypoints_from_proto(nan)


def test_categories_map_both_ways_and_unspecified_means_upper_body() -> None:
    for category in GarmentCategory:
        assert protocol.category_from_proto(protocol.category_to_proto(category)) == category
    assert protocol.category_from_proto(0) == GarmentCategory.UPPER_BODY
    with pytest.raises(StageInputError, match="category"):
        protocol.category_from_proto(99)


def test_options_defaults_round_trip_and_validation() -> None:
    assert protocol.options_from_proto(common_pb2.GenerationOptions()) == GenerationOptions()
    options = GenerationOptions(seed=7, steps=20, guidance_scale=3.5, strength=0.75, prompt="a red shirt")
    assert protocol.options_from_proto(protocol.options_to_proto(options)) == options
    for field, value in (("steps", 0), ("strength", 2.0), ("guidance_scale", 31.0), ("seed", -1)):
        with pytest.raises(StageInputError) as error:
            protocol.options_from_proto(common_pb2.GenerationOptions(**{field: value}))
        assert error.value.field == f"options.{field}"


def test_masks_are_thresholded_and_size_checked() -> None:
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:10] = 200
    mask[12:15, 5:10] = 90  # below 128: outside
    decoded = protocol.mask_from_proto(protocol.image_to_proto(mask), field="clothing_mask", shape=(20, 30))
    assert set(np.unique(decoded)) == {0, 200}  # values above 127 (the lite surface kinds) are kept
    with pytest.raises(StageInputError, match="clothing_mask: mask is 30x20 but the person image is 40x20"):
        protocol.mask_from_proto(protocol.image_to_proto(mask), field="clothing_mask", shape=(20, 40))
