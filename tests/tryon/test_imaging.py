from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.imagegen import png_header_only
from tryon import imaging
from tryon.types import StageInputError
from tryon.vision.images import shrunk_size


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
    assert "BytesIO" not in str(error.value) and " at 0x" not in str(error.value)


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


@pytest.mark.parametrize("size", [(20000, 20000), (9000, 8000)])
def test_huge_headers_are_input_errors_naming_the_field(size: tuple[int, int]) -> None:
    # 20000 x 20000 (a 389 KB bomb) is past Pillow's own hard limit, which used to escape as a traceback.
    with pytest.raises(StageInputError, match="exceeds") as error:
        imaging.decode_image(png_header_only(*size), field="person")
    assert error.value.field == "person"
    assert str(error.value).startswith("person: ")


def test_sixteen_bit_grayscale_keeps_its_tones() -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode.startswith("I")
    for mode in ("RGB", "L", "RGBA"):
        decoded = imaging.decode_image(buffer.getvalue(), mode=mode)
        gray = decoded if decoded.ndim == 2 else decoded[..., 0]
        assert np.abs(gray.astype(int) - (ramp >> 8)).max() <= 1, mode


def test_max_side_scales_encoded_and_raw_images_down_while_decoding() -> None:
    rng = np.random.default_rng(3)
    photo = np.kron(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), np.ones((100, 100, 1), np.uint8))
    jpeg = io.BytesIO()
    Image.fromarray(photo).save(jpeg, format="JPEG", quality=90)  # 4000 x 3000
    png = imaging.encode_png(photo)
    for data in (jpeg.getvalue(), png):
        decoded = imaging.decode_image(data, max_side=1024)
        assert decoded.shape == (768, 1024, 3)
        # scaled, not cropped: the blocks are where they were
        assert np.abs(decoded[::128, ::128].astype(int) - photo[50::500, 50::500].astype(int)).mean() < 12
    raw = imaging.decode_raw(imaging.encode_raw(photo), 4000, 3000, max_side=1024)
    assert raw.shape == (768, 1024, 3)
    mask = imaging.decode_raw(imaging.encode_raw(photo[..., 0]), 4000, 3000, mode="L", max_side=1024)
    assert mask.shape == (768, 1024)
    small = imaging.encode_png(photo[:300, :400])
    assert imaging.decode_image(small, max_side=1024).shape == (300, 400, 3)  # never scaled up
    assert shrunk_size(3000, 4000, 1024) == (768, 1024)
    assert shrunk_size(300, 400, 1024) == (300, 400)
