"""InpaintStream through the real servicer, interceptor and client, in process, with a slow fake backend
that reports progress and checks for cancellation between its steps (as FullInpaint does)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from services.inpaint.servicer import binding
from tryon import progress
from tryon.cancellation import CallCancelled, raise_if_cancelled
from tryon.client import InpaintClient, RemoteStageError
from tryon.runtime import StageServer
from tryon.settings import StageSettings
from tryon.types import BackendInfo, InpaintInput, InpaintOutput, StageInputError
from tryon.vision.openpose import draw_openpose

STEPS = 5


class SteppingInpaint:
    """Returns the person unchanged after STEPS steps; ``release`` gates every step."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.release.set()
        self.cancelled = threading.Event()
        self.finished = threading.Event()

    def setup(self) -> None:
        pass

    def run(self, inputs: InpaintInput, /) -> InpaintOutput:
        self.last_inputs = inputs
        for step in range(STEPS):
            while not self.release.wait(0.01):
                try:
                    raise_if_cancelled()
                except CallCancelled:
                    self.cancelled.set()
                    raise
            progress.report_progress(step + 1, STEPS)
        self.finished.set()
        return InpaintOutput(image=inputs.person[:, ::-1].copy())

    def info(self) -> BackendInfo:
        return BackendInfo(stage="inpaint", backend="lite", device="cpu")


@pytest.fixture
def backend() -> SteppingInpaint:
    return SteppingInpaint()


@pytest.fixture
def server(backend: SteppingInpaint) -> Iterator[StageServer]:
    settings = StageSettings(host="127.0.0.1", shutdown_grace_s=5, max_queue=1)
    running = StageServer(
        "inpaint", backend, [binding(backend)], settings, port=0, max_concurrency=1, metrics_port=0
    )
    running.start()
    yield running
    backend.release.set()
    running.stop(grace=0)


@pytest.fixture
def client(server: StageServer) -> Iterator[InpaintClient]:
    with InpaintClient(f"127.0.0.1:{server.port}") as remote:
        remote.setup()
        yield remote


def _inputs(height: int = 48, width: int = 40) -> InpaintInput:
    rng = np.random.default_rng(0)
    mask = np.zeros((height, width), np.uint8)
    mask[10:30, 8:30] = 255
    return InpaintInput(
        person=rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
        clothing_mask=mask,
        warped_garment=rng.integers(0, 256, (height, width, 4), dtype=np.uint8),
        pose_image=np.zeros((height, width, 3), np.uint8),
    )


def test_progress_streams_into_the_callers_reporter_then_the_result(client: InpaintClient) -> None:
    inputs = _inputs()
    events: list[tuple[int, int]] = []
    with progress.reporting(lambda done, total: events.append((done, total))):
        streamed = client.run(inputs)
    assert events == [(step, STEPS) for step in range(1, STEPS + 1)]
    np.testing.assert_array_equal(streamed.image, inputs.person[:, ::-1])
    np.testing.assert_array_equal(client.run(inputs).image, streamed.image)  # unary: no reporter


def test_progress_arrives_while_the_backend_works(client: InpaintClient, backend: SteppingInpaint) -> None:
    """Each step is streamed as it happens, not buffered until the end."""
    backend.release.clear()
    seen = threading.Event()
    events: list[tuple[int, int]] = []

    def on_progress(done: int, total: int) -> None:
        events.append((done, total))
        seen.set()

    def call() -> None:
        with progress.reporting(on_progress):
            client.run(_inputs())

    caller = threading.Thread(target=call)
    caller.start()
    try:
        time.sleep(0.2)
        assert not events  # the backend is held before its first step
        backend.release.set()
        assert seen.wait(5)
    finally:
        backend.release.set()
        caller.join(10)
    assert events[-1] == (STEPS, STEPS)


def test_work_is_abandoned_when_the_caller_cancels_the_stream(
    server: StageServer, client: InpaintClient, backend: SteppingInpaint
) -> None:
    backend.release.clear()
    from tryon import protocol
    from tryon.v1 import inpaint_pb2

    inputs = _inputs()
    request = inpaint_pb2.InpaintRequest(
        person=protocol.image_to_proto(inputs.person),
        clothing_mask=protocol.image_to_proto(inputs.clothing_mask),
        warped_garment=protocol.image_to_proto(inputs.warped_garment),
        pose_image=protocol.image_to_proto(inputs.pose_image),
    )
    call = client.stub.InpaintStream(request, timeout=30)
    time.sleep(0.3)  # the backend is now waiting in its first step
    call.cancel()
    assert backend.cancelled.wait(5)  # it noticed the caller had gone, between steps
    assert not backend.finished.is_set()
    backend.release.set()
    # The concurrency slot (max_concurrency=1) is free again: the next call runs.
    with progress.reporting(lambda done, total: None):
        assert client.run(inputs, timeout_s=10).image.shape == inputs.person.shape


def test_expired_deadline_mid_stream_is_deadline_exceeded(
    client: InpaintClient, backend: SteppingInpaint
) -> None:
    backend.release.clear()
    with progress.reporting(lambda done, total: None), pytest.raises(RemoteStageError) as error:
        client.run(_inputs(), timeout_s=0.5)
    assert error.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert backend.cancelled.wait(5)


def test_bad_input_on_the_stream_is_invalid_argument_naming_the_field(client: InpaintClient) -> None:
    inputs = _inputs()
    empty = InpaintInput(
        person=inputs.person,
        clothing_mask=np.zeros_like(inputs.clothing_mask),
        warped_garment=inputs.warped_garment,
        pose_image=inputs.pose_image,
    )
    with progress.reporting(lambda done, total: None), pytest.raises(StageInputError) as error:
        client.run(empty)
    assert error.value.field == "clothing_mask"


def test_stream_calls_are_counted_in_the_metrics(server: StageServer, client: InpaintClient) -> None:
    with progress.reporting(lambda done, total: None):
        client.run(_inputs())
    from prometheus_client import generate_latest

    body = generate_latest(server.metrics.registry).decode()
    assert 'tryon_grpc_requests_total{code="OK",method="InpaintStream",stage="inpaint"}' in body


def test_lean_request_gives_the_backend_the_exact_images(
    client: InpaintClient, backend: SteppingInpaint
) -> None:
    """Keypoints in, the pose stage's image out (drawn by the servicer); the garment patch rebuilt exactly."""
    inputs = _inputs(height=90, width=70)
    keypoints = np.zeros((18, 3), np.float32)
    keypoints[:, 0] = np.linspace(5.3, 64.7, 18)  # x spans the width, y the height: a swap would show
    keypoints[:, 1] = np.linspace(3.1, 86.9, 18)
    keypoints[:, 2] = 0.9
    keypoints[4] = 0  # a keypoint that was not found
    garment = np.zeros((90, 70, 4), np.uint8)
    garment[30:80, 12:50] = inputs.warped_garment[30:80, 12:50]
    lean = InpaintInput(
        person=inputs.person,
        clothing_mask=inputs.clothing_mask,
        warped_garment=garment,
        pose_image=draw_openpose(keypoints, 90, 70),
        keypoints=keypoints,
    )
    client.run(lean)
    received = backend.last_inputs
    np.testing.assert_array_equal(received.pose_image, lean.pose_image)
    np.testing.assert_array_equal(received.warped_garment, garment)
    np.testing.assert_array_equal(received.clothing_mask, inputs.clothing_mask)
    np.testing.assert_array_equal(received.keypoints, keypoints)
