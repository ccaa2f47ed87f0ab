"""Reading a submission: the multipart body streamed under size limits, then each photo checked by decoding.

* Size: a declared Content-Length over the body limit is refused before reading (413); otherwise the body is
  parsed as it arrives and a photo is refused the moment it passes the per-photo limit (413), so nothing
  larger is ever held in memory. The rest of a refused body is read and discarded (up to the body limit),
  so the client gets the answer rather than a reset connection.
* Format: the bytes must be PNG, JPEG or WebP by their content (415), never by file name or declared type.
* Decoding (tryon.imaging, the decoder every process shares): pixel-count limit against decompression bombs,
  minimum size, corrupt or truncated files (422). EXIF orientation is applied on decoding, and what is
  stored is a fresh PNG of the pixels: no EXIF, GPS, ICC or XMP metadata survives.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from gateway.problems import FieldError, Problem
from tryon import imaging
from tryon.types import StageInputError

FILE_FIELDS = ("person", "garment")
#: person_from: the id of an earlier job whose (already checked) person photo this job reuses, so trying
#: another garment does not upload the person again.
TEXT_FIELDS = ("category", "seed", "steps", "guidance", "strength", "webhook_url", "person_from")
MAX_TEXT_BYTES = 4096
MAX_PARTS = 16
ACCEPTED_MEDIA_TYPES = ("image/png", "image/jpeg", "image/webp")
#: Stored photos are downscaled to this long side at most: the pipeline works at 1024 px, and a smaller
#: copy of a person's photo is less personal data to keep.
STORE_LONG_SIDE = 2048


@dataclass
class Submission:
    files: dict[str, bytes] = field(default_factory=dict)
    filenames: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A digest of everything submitted: an Idempotency-Key replay must carry the same request."""
        digest = hashlib.sha256()
        for name in sorted(self.fields):
            digest.update(f"{name}={self.fields[name]}\n".encode())
        for name in sorted(self.files):
            digest.update(f"{name}:".encode() + hashlib.sha256(self.files[name]).digest())
        return digest.hexdigest()


def too_large(detail: str, field_name: str | None = None) -> Problem:
    errors = [FieldError(field=field_name, message=detail)] if field_name else []
    return Problem(
        413, f"{field_name}: {detail}" if field_name else detail, kind="upload-too-large", errors=errors
    )


def _bad_form(detail: str, field_name: str = "request") -> Problem:
    return Problem.field(422, field_name, detail, kind="invalid-request")


class _Collector:
    """python-multipart callbacks that keep the parts in memory under the limits."""

    def __init__(self, max_file_bytes: int, max_file_mb: int) -> None:
        self.max_file_bytes = max_file_bytes
        self.max_file_mb = max_file_mb
        self.submission = Submission()
        self.parts = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._filename: str | None = None
        self._data = bytearray()

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise _bad_form(f"more than {MAX_PARTS} form parts")
        self._disposition = b""
        self._data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        raw_name = options.get(b"name")
        if raw_name is None:
            raise _bad_form("a form part has no name in its Content-Disposition")
        self._name = raw_name.decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._filename = None if filename is None else filename.decode("utf-8", "replace")
        known = FILE_FIELDS + TEXT_FIELDS
        if self._name not in known:
            raise _bad_form(f"unknown field (expected {', '.join(known)})", self._name)
        if self._name in self.submission.files or self._name in self.submission.fields:
            raise _bad_form("given more than once", self._name)
        if self._name in FILE_FIELDS and self._filename is None:
            raise _bad_form("must be a file upload (multipart part with a filename)", self._name)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        limit = self.max_file_bytes if self._name in FILE_FIELDS else MAX_TEXT_BYTES
        if len(self._data) + (end - start) > limit:
            if self._name in FILE_FIELDS:
                raise too_large(f"larger than the limit of {self.max_file_mb} MB per photo", self._name)
            raise _bad_form(f"longer than {MAX_TEXT_BYTES} bytes", self._name)
        self._data += data[start:end]

    def on_part_end(self) -> None:
        if self._name in FILE_FIELDS:
            self.submission.files[self._name] = bytes(self._data)
            self.submission.filenames[self._name] = self._filename or self._name
        else:
            try:
                self.submission.fields[self._name] = self._data.decode("utf-8")
            except UnicodeDecodeError as error:
                raise _bad_form("not valid UTF-8 text", self._name) from error


async def read_submission(
    content_type: str,
    content_length: str | None,
    stream: AsyncIterator[bytes],
    *,
    max_file_bytes: int,
    max_file_mb: int,
    max_body_bytes: int,
) -> Submission:
    """Parse a multipart/form-data body as it streams in; raises :class:`Problem` (413 / 415 / 422)."""
    media_type, params = parse_options_header(content_type or "")
    if media_type != b"multipart/form-data":
        raise Problem(
            415, "the body must be multipart/form-data (fields person, garment, category, ...)",
            kind="unsupported-media-type", title="Unsupported media type",
        )  # fmt: skip
    boundary = params.get(b"boundary")
    if not boundary:
        raise _bad_form("multipart/form-data without a boundary", "Content-Type")
    declared: int | None = None
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError as error:
            raise Problem(400, "Content-Length is not a number") from error
        if declared > max_body_bytes:
            raise too_large(
                f"the request body of {declared} bytes exceeds the limit of {max_body_bytes} bytes "
                f"({max_file_mb} MB per photo)"
            )
    collector = _Collector(max_file_bytes, max_file_mb)
    parser = MultipartParser(boundary, callbacks=_callbacks(collector))  # type: ignore[arg-type]
    received = 0
    iterator = stream.__aiter__()
    try:
        async for chunk in iterator:
            received += len(chunk)
            if received > max_body_bytes:
                raise too_large(f"the request body exceeds the limit of {max_body_bytes} bytes")
            parser.write(chunk)
        parser.finalize()
    except Problem as problem:
        if problem.status == 413 and declared is not None and declared <= max_body_bytes:
            async for chunk in iterator:  # drain (bounded by the declared length) so the client hears us
                received += len(chunk)
                if received > max_body_bytes:
                    break
        raise
    except FormParserError as error:
        raise _bad_form(f"malformed multipart body ({error})") from error
    submission = collector.submission
    if "garment" not in submission.files:
        raise _bad_form("missing (a PNG, JPEG or WebP photo)", "garment")
    has_person, reuses = "person" in submission.files, "person_from" in submission.fields
    if not has_person and not reuses:
        raise _bad_form("missing (a PNG, JPEG or WebP photo, or person_from: an earlier job's id)", "person")
    if has_person and reuses:
        raise _bad_form("give either a person photo or person_from, not both", "person_from")
    return submission


def _callbacks(collector: _Collector) -> dict[str, object]:
    return {
        name: getattr(collector, name)
        for name in (
            "on_part_begin", "on_part_data", "on_part_end", "on_header_field", "on_header_value",
            "on_header_end", "on_headers_finished",
        )
    }  # fmt: skip


@dataclass(frozen=True)
class CleanImage:
    png: bytes
    width: int
    height: int
    media_type: str  # what was uploaded


def clean_image(data: bytes, field_name: str, *, min_side: int, rgba: bool = False) -> CleanImage:
    """Check an uploaded photo by decoding it and re-encode it as a metadata-free, upright PNG.

    Runs in a worker thread (CPU-bound). Raises :class:`Problem` 415 (not PNG/JPEG/WebP) or 422.
    """
    media_type = imaging.sniff_media_type(data)
    if media_type not in ACCEPTED_MEDIA_TYPES:
        raise Problem.field(
            415, field_name, "not a PNG, JPEG or WebP image (judged by its content, not its name)",
            kind="unsupported-image", title="Unsupported image format",
        )  # fmt: skip
    try:
        pixels: npt.NDArray[np.uint8] = imaging.decode_image(
            data, field=field_name, mode="RGBA" if rgba else "RGB", min_side=min_side
        )
    except StageInputError as error:
        message = str(error).removeprefix(f"{field_name}: ")
        raise Problem.field(422, field_name, message, kind="invalid-image", title="Invalid image") from error
    if rgba and bool((pixels[..., 3] == 255).all()):
        pixels = np.ascontiguousarray(pixels[..., :3])  # opaque: no alpha to keep, a quarter less to encode
    height, width = pixels.shape[:2]
    if max(height, width) > STORE_LONG_SIDE:
        pixels = imaging.resize_to(pixels, *imaging.working_size(height, width, STORE_LONG_SIDE))
        height, width = pixels.shape[:2]
    return CleanImage(imaging.encode_png(pixels), width, height, media_type)
