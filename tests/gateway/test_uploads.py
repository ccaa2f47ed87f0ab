"""The streamed multipart reader and the photo check, without a server."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from gateway.problems import Problem
from gateway.uploads import clean_image, read_submission
from tests.gateway.conftest import encode
from tests.imagegen import person_photo

BOUNDARY = "test-boundary"
MB = 1024 * 1024


def multipart(parts: list[tuple[str, bytes, str | None]]) -> bytes:
    body = b""
    for name, data, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


class Stream:
    """A request body arriving in chunks; counts what the reader pulled."""

    def __init__(self, body: bytes, chunk: int = 64 * 1024) -> None:
        self.body, self.chunk, self.consumed = body, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), self.chunk):
            piece = self.body[start : start + self.chunk]
            self.consumed += len(piece)
            yield piece


def read(stream: Stream, *, declared: int | None = None, max_mb: int = 1, max_body: int = 10 * MB):  # type: ignore[no-untyped-def]
    return asyncio.run(
        read_submission(
            f"multipart/form-data; boundary={BOUNDARY}",
            None if declared is None else str(declared),
            stream,  # type: ignore[arg-type]
            max_file_bytes=max_mb * MB,
            max_file_mb=max_mb,
            max_body_bytes=max_body,
        )
    )


def test_reads_files_and_fields() -> None:
    body = multipart([("person", b"P" * 10, "p.png"), ("garment", b"G" * 20, "g.png"), ("seed", b"5", None)])
    submission = read(Stream(body, chunk=7))
    assert submission.files == {"person": b"P" * 10, "garment": b"G" * 20}
    assert submission.fields == {"seed": "5"}
    assert submission.fingerprint() == read(Stream(body, chunk=1000)).fingerprint()


def test_a_photo_over_the_limit_stops_the_read_at_the_limit() -> None:
    """Checked while streaming: a 6 MB photo with a 1 MB limit is refused after ~1 MB, not buffered."""
    body = multipart([("person", b"\xff" * (6 * MB), "p.jpg"), ("garment", b"G", "g.png")])
    stream = Stream(body)
    with pytest.raises(Problem) as caught:
        read(stream)  # chunked: no Content-Length, nothing to drain
    assert caught.value.status == 413
    assert caught.value.errors[0].field == "person"
    assert stream.consumed <= 1 * MB + 2 * 64 * 1024


def test_a_body_over_the_total_limit_stops_the_read() -> None:
    body = multipart([("person", b"P" * MB, "p.png"), ("garment", b"G" * MB, "g.png")] * 3)
    stream = Stream(body)
    with pytest.raises(Problem) as caught:
        read(stream, max_mb=2, max_body=int(1.5 * MB))
    assert caught.value.status in (413, 422)
    assert stream.consumed <= int(1.5 * MB) + 64 * 1024


def test_declared_length_over_the_limit_reads_nothing() -> None:
    stream = Stream(b"x" * 100)
    with pytest.raises(Problem) as caught:
        read(stream, declared=50 * MB)
    assert caught.value.status == 413
    assert stream.consumed == 0


def test_malformed_multipart_is_422() -> None:
    with pytest.raises(Problem) as caught:
        read(Stream(b"--other\r\nnonsense\r\n\r\n"))
    assert caught.value.status == 422


def test_phone_multi_picture_jpeg_is_accepted() -> None:
    """Many phones write MPO (multi-picture JPEG); Pillow names the format MPO, not JPEG."""
    first = Image.fromarray(person_photo(256))
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[first.rotate(90)])
    data = buffer.getvalue()
    assert Image.open(io.BytesIO(data)).format == "MPO"
    cleaned = clean_image(data, "person", min_side=128)
    assert cleaned.media_type == "image/jpeg"
    assert Image.open(io.BytesIO(cleaned.png)).size == (256, 256)


def test_large_photos_are_stored_downscaled() -> None:
    big = Image.new("RGB", (4000, 3000), (10, 20, 30))
    cleaned = clean_image(encode(big, "JPEG"), "person", min_side=128)
    assert (cleaned.width, cleaned.height) == (2048, 1536)


def test_garment_alpha_is_kept_only_when_it_says_something() -> None:
    from tests.imagegen import draw_garment

    cutout = clean_image(encode(draw_garment(size=(256, 320), rgba=True)), "garment", min_side=64, rgba=True)
    assert Image.open(io.BytesIO(cutout.png)).mode == "RGBA"
    opaque = clean_image(encode(draw_garment(size=(256, 320))), "garment", min_side=64, rgba=True)
    assert Image.open(io.BytesIO(opaque.png)).mode == "RGB"
