"""A small client of the public REST API, as a user's script would call it (httpx, through the front door)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import httpx
import numpy as np
from PIL import Image

from tests.imagegen import draw_garment, person_photo

FINAL = frozenset({"succeeded", "failed", "cancelled"})
#: Answers a client retries (with the same Idempotency-Key for submissions).
RETRYABLE = frozenset({429, 500, 502, 503, 504})


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@cache
def example_inputs(long_side: int = 512) -> tuple[bytes, bytes]:
    """A person photo and a garment photo (drawn by the tests), PNG-encoded once."""
    return png(person_photo(long_side)), png(draw_garment(size=(384, 512)))


@dataclass
class Submitted:
    job_id: str
    submitted_at: float
    retries: int = 0  # 429 / 5xx answers and connection errors retried before the 202
    answers: list[int] = field(default_factory=list)  # the status of every answer, 202 last
    document: dict[str, Any] = field(default_factory=dict)


def submit(
    client: httpx.Client,
    *,
    category: str = "upper_body",
    idempotency_key: str | None = None,
    retry_for_s: float = 120,
) -> Submitted:
    """POST /api/tryon; 429 and 5xx answers (503 with Retry-After while a dependency is down) and connection
    errors are retried for up to ``retry_for_s``: the Idempotency-Key makes retries safe (never two jobs)."""
    person, garment = example_inputs()
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    deadline = time.monotonic() + retry_for_s
    retries = 0
    answers: list[int] = []
    started = time.monotonic()  # latency counts from the first attempt, as the user waits
    while True:
        try:
            reply = client.post(
                "/api/tryon",
                files={
                    "person": ("person.png", person, "image/png"),
                    "garment": ("garment.png", garment, "image/png"),
                },
                data={"category": category},
                headers=headers,
            )
        except httpx.TransportError:
            reply = None
        answers.append(reply.status_code if reply is not None else 0)
        if reply is not None and reply.status_code == 202:
            document = reply.json()
            return Submitted(document["id"], started, retries, answers, document)
        # 409 idempotency-in-progress: an earlier attempt with this key is still being processed (or its
        # clean-up waits for Redis); the answer says to retry shortly.
        in_progress = (
            reply is not None and reply.status_code == 409 and "idempotency-in-progress" in reply.text
        )
        if reply is not None and reply.status_code not in RETRYABLE and not in_progress:
            raise AssertionError(f"submission refused: {reply.status_code} {reply.text[:500]}")
        retries += 1
        if time.monotonic() > deadline:
            detail = f"{reply.status_code} {reply.text[:300]}" if reply is not None else "connection failed"
            raise AssertionError(f"submission still refused after {retry_for_s} s: {detail}")
        wait = float(reply.headers.get("Retry-After", "1")) if reply is not None else 0.5
        time.sleep(min(wait, 2.0))


def status(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    """GET /api/tryon/{id}; None while the gateway or Redis cannot answer (the caller retries)."""
    try:
        reply = client.get(f"/api/tryon/{job_id}")
    except httpx.TransportError:
        return None
    if reply.status_code == 200:
        return reply.json()
    if reply.status_code in RETRYABLE:
        return None
    raise AssertionError(f"GET {job_id}: {reply.status_code} {reply.text[:300]}")


def wait_final(client: httpx.Client, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    while time.monotonic() < deadline:
        document = status(client, job_id)
        if document is not None and document["status"] in FINAL:
            return document
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
    raise AssertionError(f"job {job_id} not final after {timeout_s} s: {status(client, job_id)}")


def follow_events(client: httpx.Client, job_id: str, timeout_s: float = 60) -> Iterator[dict[str, Any]]:
    """The job documents of GET /api/tryon/{id}/events (server-sent events), until the stream ends."""
    with client.stream("GET", f"/api/tryon/{job_id}/events", timeout=timeout_s) as reply:
        assert reply.status_code == 200, reply.read()[:300]
        assert reply.headers["content-type"].startswith("text/event-stream")
        event, data = "", []
        for line in reply.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                if event in ("", "status"):
                    yield json.loads("\n".join(data))
                event, data = "", []


def download(client: httpx.Client, job_id: str) -> Image.Image:
    reply = client.get(f"/api/tryon/{job_id}/result")
    assert reply.status_code == 200, f"{job_id}: {reply.status_code} {reply.text[:300]}"
    assert reply.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(reply.content))
    image.load()
    return image
