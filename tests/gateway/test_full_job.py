"""A whole job through the real stack: gateway -> Redis -> Celery worker -> five lite gRPC services ->
storage, followed over server-sent events, with the signed webhook received by a local HTTP server."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.gateway.test_events import read_events
from tryon.jobs.webhooks import SIGNATURE_HEADER, verify_signature

stack = pytest.importorskip("tests.gateway.stack", reason="the orchestrator (worker) is not in this tree")

pytestmark = pytest.mark.slow  # five services and a worker start (~30 s on 2 cores)


class Receiver:
    """A webhook receiver on a loopback port; keeps every request's body and headers."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, dict[str, str]]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.calls.append((body, {key.lower(): value for key, value in self.headers.items()}))
                self.send_response(204)
                self.end_headers()
                receiver.arrived.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tryon"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_job_end_to_end_with_events_result_and_signed_webhook(
    full_stack: Any, expected_result: np.ndarray
) -> None:
    gateway, worker = full_stack.gateway, full_stack.worker
    receiver = Receiver()
    try:
        with gateway.client(timeout=120) as client:
            files = {
                "person": ("person.png", stack.PERSON_PNG, "image/png"),
                "garment": ("garment.png", stack.GARMENT_PNG, "image/png"),
            }
            reply = client.post(
                "/api/tryon", files=files, data={"category": "upper_body", "webhook_url": receiver.url}
            )
            assert reply.status_code == 202, reply.text
            job = reply.json()
            with client.stream("GET", job["events_url"]) as stream:
                events = [json.loads(data) for name, data in read_events(stream) if name == "status"]
            final = events[-1]
            assert final["status"] == "succeeded", (final, worker.output())
            stages = {event["stage"] for event in events if event["status"] == "running"} - {None}
            # The stream opens after the 202, when the worker may be past segmentation (and consecutive
            # writes may arrive as one event): it shows the stages from then on, at least two of them.
            assert stages <= {"segmentation", "pose", "warp", "inpaint", "blend"} and len(stages) >= 2, stages
            assert set(final["timings"]) >= {"segmentation", "pose", "warp", "inpaint", "blend"}

            status = client.get(job["status_url"]).json()
            result = client.get(status["result_url"])
            assert result.status_code == 200
            pixels = np.asarray(Image.open(io.BytesIO(result.content)).convert("RGB"))
            # The worker ran the same lite pipeline on the photos the gateway stored (lossless PNG copies).
            assert pixels.shape == expected_result.shape
            assert np.abs(pixels.astype(int) - expected_result.astype(int)).mean() < 1.0

            assert receiver.arrived.wait(60), worker.output()
            body, headers = receiver.calls[0]
            assert verify_signature(body, headers[SIGNATURE_HEADER.lower()], stack.WEBHOOK_SECRET)
            hook = json.loads(body)
            assert hook["id"] == job["id"] and hook["status"] == "succeeded"
            # The webhook carries the same document as GET (its result URL signed afresh).
            assert set(hook) == set(status)
            assert {k: v for k, v in hook.items() if not k.startswith("result_")} == {
                k: v for k, v in status.items() if not k.startswith("result_")
            }
            assert client.get(hook["result_url"]).content == result.content
            assert not verify_signature(body + b" ", headers[SIGNATURE_HEADER.lower()], stack.WEBHOOK_SECRET)

            assert client.delete(job["status_url"]).status_code == 204
            assert client.get(job["status_url"]).status_code == 404
            assert not (Path(gateway.settings.storage_dir) / job["id"]).exists()
    finally:
        receiver.close()
