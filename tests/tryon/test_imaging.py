from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tryon import imaging
from tryon.types import StageInputError


def _jpeg_with_orientation(array: np.ndarray, orientation: int) -> bytes:
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=95)
    return buffer.getvalue()


def test_png_round_trip_is_lossless_for_rgb_rgba_and_masks() -> None:
    rng = np.random.default_rng(1)
    for shape, mode in (((40, 30, 3), "RGB"), ((40, 30, 4), "RGBA"), ((40, 30), "L")):
        array = rng.integers(0, 256, size=shape, dtype=np.uint8)
        decoded = imaging.decode_image(imaging.encode_png(array), mode=mode)
        assert np.array_equal(decoded, array)


def test_encoding_is_deterministic() -> None:
    array = np.random.default_rng(2).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    assert imaging.encode_png(array) == imaging.encode_png(array.copy())


def test_exif_orientation_is_applied() -> None:
    # A 20 wide x 40 high picture stored with orientation 6 ("rotate 90 CW to display") shows 40 x 20.
    stored = np.zeros((40, 20, 3), dtype=np.uint8)
    stored[:5] = 255  # a white band at the stored top
    decoded = imaging.decode_image(_jpeg_with_orientation(stored, 6))
    assert decoded.shape == (20, 40, 3)
    assert decoded[:, -5:].mean() > 200  # the stored top is now on the right
    assert decoded[:, :5].mean() < 50


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"not an image at all", "not a readable image"),
        (b"\x89PNG\r\n\x1a\ntruncated", "readable"),
    ],
)
def test_bad_bytes_are_stage_input_errors_naming_the_field(data: bytes, message: str) -> None:
    with pytest.raises(StageInputError, match=message) as error:
        imaging.decode_image(data, field="garment")
    assert error.value.field == "garment"
    assert str(error.value).startswith("garment:")


def test_unsupported_formats_and_tiny_images_are_refused() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buffer, format="BMP")
    with pytest.raises(StageInputError, match="unsupported image format"):
        imaging.decode_image(buffer.getvalue())
    with pytest.raises(StageInputError, match="too small"):
        imaging.decode_image(imaging.encode_png(np.zeros((10, 50, 3), np.uint8)), min_side=64)


def test_decompression_bombs_are_refused_before_decoding() -> None:
    # A PNG header claiming 10000 x 10000 pixels: refused from the header alone.
    buffer = io.BytesIO()
    Image.new("L", (10000, 10000)).save(buffer, format="PNG")
    with pytest.raises(StageInputError, match="exceeds"):
        imaging.decode_image(buffer.getvalue())


@pytest.mark.parametrize(
    ("size", "expected"),
    [((768, 1024), (1024, 768)), ((600, 600), (1024, 1024)), ((3000, 1000), (341, 1024))],
)
def test_working_resolution_keeps_the_aspect_ratio(size: tuple[int, int], expected: tuple[int, int]) -> None:
    width, height = size
    resized = imaging.to_working_resolution(np.zeros((height, width, 3), np.uint8))
    assert resized.shape[:2] == expected


def test_media_type_sniffing() -> None:
    assert imaging.sniff_media_type(imaging.encode_png(np.zeros((4, 4), np.uint8))) == "image/png"
    assert imaging.sniff_media_type(_jpeg_with_orientation(np.zeros((8, 8, 3), np.uint8), 1)) == "image/jpeg"
