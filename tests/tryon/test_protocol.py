from __future__ import annotations

import zlib

import numpy as np
import pytest

from tryon import protocol
from tryon.types import GarmentCategory, GenerationOptions, StageInputError
from tryon.v1 import common_pb2
from tryon.vision import mask_kinds


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
    mask[16:18, 5:10] = mask_kinds.BACKDROP  # the source kinds below 128: kept
    mask[18:20, 5:10] = mask_kinds.SKIN_SOURCE
    decoded = protocol.mask_from_proto(protocol.image_to_proto(mask), field="clothing_mask", shape=(20, 30))
    # Values above 127 (the lite surface kinds) and the source kinds are kept; the rest is outside.
    assert set(np.unique(decoded)) == {0, mask_kinds.BACKDROP, mask_kinds.SKIN_SOURCE, 200}
    assert (decoded[12:15, 5:10] == 0).all()
    with pytest.raises(StageInputError, match="clothing_mask: mask is 30x20 but the person image is 40x20"):
        protocol.mask_from_proto(protocol.image_to_proto(mask), field="clothing_mask", shape=(20, 40))


# ------------------------------------------------------------------------------------- compact forms

RNG = np.random.default_rng(3)


@pytest.mark.parametrize(("height", "width"), [(37, 41), (64, 48), (1, 1)])
def test_bitmask_round_trips_any_size_at_one_bit_per_pixel(height: int, width: int) -> None:
    mask = np.where(RNG.random((height, width)) > 0.5, 255, 0).astype(np.uint8)
    message = protocol.mask_to_proto(mask, "raw", version=2)
    assert message.media_type == protocol.BITMASK_MEDIA_TYPE
    assert len(message.data) == (height * width + 7) // 8
    np.testing.assert_array_equal(protocol.mask_from_proto(message, field="m", shape=(height, width)), mask)


def test_masks_with_other_values_deflate_exactly_and_compact_forms_need_raw_version_2() -> None:
    mask = np.array([[0, 160, 240, 248, 255, 0, 0, 0]], np.uint8)  # the lite clothing mask's kinds
    message = protocol.mask_to_proto(mask, "raw", 2)
    assert message.media_type == protocol.RAW_DEFLATE_MEDIA_TYPE
    np.testing.assert_array_equal(protocol.mask_from_proto(message, field="m", shape=(1, 8)), mask)
    assert protocol.mask_to_proto(mask, "raw", 1).media_type == "image/x-raw"
    assert protocol.mask_to_proto(mask, "png", 2).media_type == "image/png"


def test_bad_bitmasks_are_input_errors_naming_the_field() -> None:
    good = protocol.mask_to_proto(np.zeros((10, 10), np.uint8), "raw", 2)
    short = common_pb2.Image(data=good.data[:-1], media_type=good.media_type, width=10, height=10)
    with pytest.raises(StageInputError, match=r"^clothing_mask: 12 bytes"):
        protocol.mask_from_proto(short, field="clothing_mask", shape=(10, 10))
    unsized = common_pb2.Image(data=good.data, media_type=good.media_type)
    with pytest.raises(StageInputError, match="width and height"):
        protocol.mask_from_proto(unsized, field="clothing_mask", shape=(10, 10))
    with pytest.raises(StageInputError, match="for masks only"):
        protocol.image_from_proto(good, field="person", mode="RGB")


def test_label_map_deflates_losslessly() -> None:
    labels = np.zeros((120, 90), np.uint8)
    labels[20:100, 10:80] = 4
    labels[30:50, 30:60] = 11
    message = protocol.label_map_to_proto(labels, "raw", version=2)
    assert message.media_type == protocol.RAW_DEFLATE_MEDIA_TYPE
    assert len(message.data) < labels.size / 20
    np.testing.assert_array_equal(protocol.image_from_proto(message, field="label_map", mode="L"), labels)


def test_deflate_bombs_and_garbage_are_refused() -> None:
    bomb = common_pb2.Image(
        data=zlib.compress(bytes(10 * 10 * 4 + 1)),
        media_type=protocol.RAW_DEFLATE_MEDIA_TYPE,
        width=10,
        height=10,
    )
    with pytest.raises(StageInputError, match=r"^label_map: the zlib stream does not hold"):
        protocol.image_from_proto(bomb, field="label_map", mode="L")
    garbage = common_pb2.Image(
        data=b"not zlib", media_type=protocol.RAW_DEFLATE_MEDIA_TYPE, width=10, height=10
    )
    with pytest.raises(StageInputError, match=r"^label_map: not a zlib stream"):
        protocol.image_from_proto(garbage, field="label_map", mode="L")


@pytest.mark.parametrize("channels", [3, 4])
def test_changed_box_finds_single_byte_differences_in_any_channel(channels: int) -> None:
    base = RNG.integers(0, 256, (50, 40, channels), dtype=np.uint8)
    image = base.copy()
    image[7, 3, channels - 1] ^= 1
    image[31, 22, 0] ^= 128
    assert protocol.changed_box(image, base) == (slice(7, 32), slice(3, 23))
    assert protocol.changed_box(base, base) == (slice(0, 0), slice(0, 0))


@pytest.mark.parametrize("wire", ["raw", "png"])
def test_patches_rebuild_the_exact_frame(wire: str) -> None:
    person = RNG.integers(0, 256, (60, 50, 3), dtype=np.uint8)
    generated = person.copy()
    generated[10:30, 5:20] = RNG.integers(0, 256, (20, 15, 3), dtype=np.uint8)
    message = protocol.patch_to_proto(generated, person, wire)
    assert (message.x, message.y, message.image.width, message.image.height) <= (5, 10, 15, 20)
    np.testing.assert_array_equal(protocol.patch_from_proto(message, field="p", base=person), generated)

    garment = np.zeros((60, 50, 4), np.uint8)
    garment[40:59, 2:9] = (200, 10, 10, 255)
    transparent = np.zeros_like(garment)
    message = protocol.patch_to_proto(garment, None, wire)
    assert (message.image.width, message.image.height) == (7, 19)
    rebuilt = protocol.patch_from_proto(message, field="p", base=transparent, mode="RGBA")
    np.testing.assert_array_equal(rebuilt, garment)

    unchanged = protocol.patch_to_proto(person, person, wire)
    np.testing.assert_array_equal(protocol.patch_from_proto(unchanged, field="p", base=person), person)


def test_a_patch_outside_the_frame_is_an_input_error() -> None:
    frame = np.zeros((20, 20, 3), np.uint8)
    message = protocol.patch_to_proto(np.full((20, 20, 3), 9, np.uint8), frame, "raw")
    message.x = 5
    with pytest.raises(StageInputError, match=r"^generated_patch: a 20x20 patch at \(5, 0\) does not fit"):
        protocol.patch_from_proto(message, field="generated_patch", base=frame)


def _converted_as_before(pixels: np.ndarray, mode: str) -> np.ndarray:
    """Raw decoding's channel conversion as it was written before it was made copy-free (the reference)."""
    channels = pixels.shape[2]
    grey = pixels[..., 0]
    rgb = np.repeat(pixels, 3, axis=2) if channels == 1 else pixels[..., :3]
    if mode == "L":
        weights = np.array([0.299, 0.587, 0.114])
        return grey if channels == 1 else np.round(rgb @ weights).astype(np.uint8)
    if mode == "RGB":
        return rgb
    alpha = pixels[..., 3] if channels == 4 else np.full(pixels.shape[:2], 255, np.uint8)
    return np.dstack([rgb, alpha])


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_raw_images_convert_channels_exactly_into_writable_arrays(channels: int, mode: str) -> None:
    pixels = RNG.integers(0, 256, (9, 7, channels), dtype=np.uint8)
    message = common_pb2.Image(
        data=pixels.tobytes(), media_type=protocol.imaging.RAW_MEDIA_TYPE, width=7, height=9
    )
    decoded = protocol.image_from_proto(message, field="image", mode=mode)  # type: ignore[arg-type]
    expected = _converted_as_before(pixels, mode)
    if mode == "L" and channels > 1:  # OpenCV's fixed-point grey: within one level of the float formula
        assert decoded.shape == expected.shape
        assert np.abs(decoded.astype(int) - expected).max() <= 1
    else:
        np.testing.assert_array_equal(decoded, expected)
    decoded[0, 0] = 1  # the caller owns it


def test_garments_keep_their_channels_and_patches_of_other_channels_are_converted() -> None:
    rgb = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    raw_rgb = protocol.image_to_proto(rgb, "raw")
    assert protocol.image_as_sent_from_proto(raw_rgb, field="garment").shape == (6, 5, 3)
    rgba = np.dstack([rgb, np.full((6, 5), 7, np.uint8)])
    for wire in ("raw", "png"):
        decoded = protocol.image_as_sent_from_proto(protocol.image_to_proto(rgba, wire), field="garment")
        np.testing.assert_array_equal(decoded, rgba)
    # An RGB patch over an RGBA frame (a caller's choice) is opaque where it lies.
    frame = np.zeros((10, 10, 4), np.uint8)
    patch = common_pb2.ImagePatch(image=raw_rgb, x=2, y=3)
    rebuilt = protocol.patch_from_proto(patch, field="p", base=frame, mode="RGBA")
    np.testing.assert_array_equal(rebuilt[3:9, 2:7], np.dstack([rgb, np.full((6, 5), 255, np.uint8)]))
    assert not rebuilt[:3].any() and not rebuilt[:, :2].any()


def test_build_makes_the_message_the_constructor_makes() -> None:
    from tryon.v1 import blend_pb2

    person = protocol.image_to_proto(RNG.integers(0, 256, (8, 6, 3), dtype=np.uint8), "raw")
    fields = {
        "person": person,
        "wire_version": 2,
        "generated_patch": common_pb2.ImagePatch(image=person, x=1),
    }
    built = protocol.build(blend_pb2.BlendRequest, **fields)
    assert built == blend_pb2.BlendRequest(**fields)
    assert built.SerializeToString() == blend_pb2.BlendRequest(**fields).SerializeToString()
    assert not built.HasField("face_mask")  # fields not given stay unset
