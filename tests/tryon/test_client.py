"""The typed gRPC client against scripted in-process servers: retries, deadlines, errors, readiness.

The servers answer each call from a script (a status to abort with, a delay, or a reply), so every
behaviour of the client is pinned down exactly, including how many attempts reached the server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import numpy as np
import pydantic
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.tryon.runtime.echo_stage import EchoBackend, build_server, echo_binding
from tryon import client as client_module
from tryon import imaging, protocol
from tryon.client import (
    BlendClient,
    ClientSettings,
    InpaintClient,
    RemoteStageError,
    StageClient,
    remote_backends,
)
from tryon.local_services import free_port
from tryon.runtime import server as server_module
from tryon.settings import StageSettings
from tryon.types import (
    STAGES,
    BackendInfo,
    BlendInput,
    InpaintInput,
    ModelInfo,
    ModelUnavailableError,
    StageBackend,
    StageInputError,
    StageOverloadedError,
)
from tryon.v1 import blend_pb2, common_pb2, inpaint_pb2

OK = "ok"


@dataclass
class Abort:
    code: grpc.StatusCode
    details: str = "scripted"
    retry_after_ms: int | None = None  # the stage servers' hint on "at capacity" refusals


@dataclass
class Sleep:
    seconds: float


@dataclass
class ScriptedStage:
    """Serves tryon.v1.Blend and tryon.v1.Inpaint; call ``n`` does ``script[n]`` (the last entry repeats)."""

    script: list[object] = field(default_factory=lambda: [OK])
    requests: list[object] = field(default_factory=list)
    deadlines: list[float | None] = field(default_factory=list)
    reply_image: np.ndarray = field(
        default_factory=lambda: np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    )

    def _answer(self, request: object, context: grpc.ServicerContext) -> None:
        self.requests.append(request)
        self.deadlines.append(context.time_remaining())
        step = self.script[min(len(self.requests), len(self.script)) - 1]
        if isinstance(step, Abort):
            if step.retry_after_ms is not None:
                context.set_trailing_metadata((("retry-after-ms", str(step.retry_after_ms)),))
            context.abort(step.code, step.details)
        if isinstance(step, Sleep):
            time.sleep(step.seconds)

    def blend(self, request: blend_pb2.BlendRequest, context: grpc.ServicerContext) -> object:
        self._answer(request, context)
        return blend_pb2.BlendResponse(image=protocol.image_to_proto(self.reply_image))

    def inpaint(self, request: inpaint_pb2.InpaintRequest, context: grpc.ServicerContext) -> object:
        self._answer(request, context)
        return inpaint_pb2.InpaintResponse(image=protocol.image_to_proto(self.reply_image))

    def get_info(self, request: common_pb2.GetInfoRequest, context: grpc.ServicerContext) -> object:
        info = BackendInfo("blend", "lite", "cpu", (ModelInfo("poisson", "bundled:opencv"),))
        return protocol.info_to_proto(info, "9.9.9")


@dataclass
class FakeServer:
    stage: ScriptedStage
    health: health.HealthServicer
    address: str


def _handler(function, request_type, response_type) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        function,
        request_deserializer=request_type.FromString,
        response_serializer=response_type.SerializeToString,
    )


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    stage = ScriptedStage()
    server = grpc.server(
        futures.ThreadPoolExecutor(8), options=[("grpc.max_receive_message_length", 64 << 20)]
    )
    blend = {
        "Blend": _handler(stage.blend, blend_pb2.BlendRequest, blend_pb2.BlendResponse),
        "GetInfo": _handler(stage.get_info, common_pb2.GetInfoRequest, common_pb2.ServiceInfo),
    }
    inpaint = {"Inpaint": _handler(stage.inpaint, inpaint_pb2.InpaintRequest, inpaint_pb2.InpaintResponse)}
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler("tryon.v1.Blend", blend),
            grpc.method_handlers_generic_handler("tryon.v1.Inpaint", inpaint),
        ]
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield FakeServer(stage, health_servicer, f"127.0.0.1:{port}")
    finally:
        server.stop(grace=None)


def _blend_input(side: int = 64) -> BlendInput:
    rng = np.random.default_rng(side)
    person = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    mask = np.zeros((side, side), np.uint8)
    mask[side // 4 : side // 2] = 255
    return BlendInput(person=person, generated=person[::-1].copy(), clothing_mask=mask, face_mask=mask[::-1])


def _client(fake: FakeServer, **settings: object) -> BlendClient:
    return BlendClient(fake.address, ClientSettings(**settings))


# ------------------------------------------------------------------------------------- settings


def test_settings_come_from_the_tryon_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRYON_SEGMENTATION_ADDR", "segmentation.internal:7001")
    monkeypatch.setenv("TRYON_BLEND_ADDR", "blend.internal:7005")
    monkeypatch.setenv("TRYON_INPAINT_TIMEOUT_S", "42")
    settings = ClientSettings()
    assert settings.segmentation_addr == "segmentation.internal:7001"
    assert settings.pose_addr == "localhost:50052"  # the stage's default port
    assert settings.inpaint_timeout_s == 42
    clients = remote_backends(settings)
    try:
        assert set(clients) == set(STAGES)
        assert clients["segmentation"].address == "segmentation.internal:7001"
        assert clients["blend"].address == "blend.internal:7005"
        assert clients["inpaint"].timeout_s == 42
        assert clients["warp"].timeout_s == settings.warp_timeout_s == 30
        # GPU model stages get their own, longer deadlines (not the CPU stages')
        assert clients["segmentation"].timeout_s == clients["pose"].timeout_s == 60
    finally:
        for stage_client in clients.values():
            stage_client.close()


def test_bad_settings_fail_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRYON_RETRY_ATTEMPTS", "9")  # gRPC caps maxAttempts at 5
    with pytest.raises(pydantic.ValidationError, match="retry_attempts"):
        ClientSettings()


def test_a_client_is_a_stage_backend(fake: FakeServer) -> None:
    with _client(fake) as stage_client:
        backend: StageBackend[BlendInput, object] = stage_client  # the Protocol the pipeline takes
        assert isinstance(backend, StageClient)
        assert all(callable(getattr(backend, name)) for name in ("setup", "run", "info"))


# ------------------------------------------------------------------------------------- calls


@pytest.mark.parametrize("wire_format", ["raw", "png"])
def test_run_sends_typed_inputs_and_returns_typed_outputs(fake: FakeServer, wire_format: str) -> None:
    inputs = _blend_input()
    with _client(fake, wire_format=wire_format) as stage_client:
        output = stage_client.run(inputs)
    np.testing.assert_array_equal(output.image, fake.stage.reply_image)
    (request,) = fake.stage.requests
    expected_media_type = imaging.RAW_MEDIA_TYPE if wire_format == "raw" else "image/png"
    assert request.person.media_type == expected_media_type
    # Whatever the wire format, the server decodes exactly the caller's pixels.
    decoded = protocol.image_from_proto(request.person, field="person")
    np.testing.assert_array_equal(decoded, inputs.person)
    mask = protocol.mask_from_proto(request.clothing_mask, field="clothing_mask", shape=(64, 64))
    np.testing.assert_array_equal(mask, inputs.clothing_mask)


def test_info_is_the_services_backend_info(fake: FakeServer) -> None:
    with _client(fake) as stage_client:
        info = stage_client.info()
    assert info == BackendInfo("blend", "lite", "cpu", (ModelInfo("poisson", "bundled:opencv"),))


# ------------------------------------------------------------------------------------- retries and errors


def test_unavailable_is_retried_with_requests_of_several_megabytes(fake: FakeServer) -> None:
    """A loading or restarting service answers UNAVAILABLE; gRPC replays the call (service config)."""
    fake.stage.script = [Abort(grpc.StatusCode.UNAVAILABLE), Abort(grpc.StatusCode.UNAVAILABLE), OK]
    inputs = _blend_input(side=1024)  # ~7 MB of raw pixels: far beyond gRPC's default retry buffer
    with _client(fake) as stage_client:
        output = stage_client.run(inputs)
    assert output.image.shape == fake.stage.reply_image.shape
    assert len(fake.stage.requests) == 3


def test_unavailable_gives_up_after_the_configured_attempts(fake: FakeServer) -> None:
    fake.stage.script = [Abort(grpc.StatusCode.UNAVAILABLE, "still loading")]
    with _client(fake, retry_attempts=3) as stage_client, pytest.raises(RemoteStageError) as error:
        stage_client.run(_blend_input())
    assert error.value.code is grpc.StatusCode.UNAVAILABLE
    assert error.value.stage == "blend" and "still loading" in str(error.value)
    assert len(fake.stage.requests) == 3


@pytest.mark.parametrize(
    ("code", "exception"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, StageInputError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, StageOverloadedError),
        (grpc.StatusCode.FAILED_PRECONDITION, ModelUnavailableError),
        (grpc.StatusCode.INTERNAL, RemoteStageError),
        (grpc.StatusCode.UNKNOWN, RemoteStageError),
    ],
)
def test_other_statuses_are_typed_errors_and_never_retried(
    fake: FakeServer, code: grpc.StatusCode, exception: type[Exception]
) -> None:
    fake.stage.script = [Abort(code, "the reason")]
    with _client(fake) as stage_client, pytest.raises(exception, match="the reason") as error:
        stage_client.run(_blend_input())
    assert len(fake.stage.requests) == 1
    if exception is RemoteStageError:
        assert error.value.code is code


def test_at_capacity_refusals_are_retried_with_backoff(fake: FakeServer) -> None:
    refused = Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "blend is at capacity", retry_after_ms=30)
    fake.stage.script = [refused, refused, refused, OK]
    started = time.monotonic()
    with _client(fake) as stage_client:
        assert stage_client.run(_blend_input()).image.shape == fake.stage.reply_image.shape
    assert len(fake.stage.requests) == 4
    # waits of at least half the backoff (50, 100, 200 ms, never under the 30 ms hint): 175 ms or more
    assert time.monotonic() - started >= 0.17
    remaining = [round(d, 1) for d in fake.stage.deadlines]
    assert remaining == sorted(remaining, reverse=True)  # one deadline for all attempts, running down


def test_refusals_end_at_the_calls_deadline(fake: FakeServer) -> None:
    fake.stage.script = [Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "blend is at capacity", retry_after_ms=50)]
    started = time.monotonic()
    with _client(fake) as stage_client, pytest.raises(StageOverloadedError, match="at capacity"):
        stage_client.run(_blend_input(), timeout_s=1.0)
    assert time.monotonic() - started < 1.2
    assert len(fake.stage.requests) >= 3


class _Refusal(grpc.RpcError):
    """A stage's "at capacity" refusal as the client sees it: RESOURCE_EXHAUSTED with the retry hint."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.RESOURCE_EXHAUSTED

    def details(self) -> str:
        return "blend is at capacity"

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("retry-after-ms", "50"),)


def test_a_refusal_is_not_retried_into_the_deadline() -> None:
    """A retry with only a few milliseconds of its deadline left ended in DEADLINE_EXCEEDED on a busy
    machine, so the caller learnt of a timeout, not that the stage was at capacity (seen in CI)."""
    now = time.monotonic()
    backoff = client_module.OVERLOAD_BACKOFF_S[0]
    assert client_module._retry_wait(_Refusal(), backoff, now + 5.0) is not None
    # The wait is at most 50 ms; after it less than RETRY_MIN_BUDGET_S (0.1 s) would be left.
    assert client_module._retry_wait(_Refusal(), backoff, now + 0.12) is None


def test_every_caller_of_a_saturated_stage_gets_through() -> None:
    """One slot, no queue, 50 ms per call: without retries 7 of 8 concurrent callers were refused."""
    backend = EchoBackend(delay_s=0.05)
    stage_server = build_server(
        backend, StageSettings(host="127.0.0.1", shutdown_grace_s=0, max_queue=0), max_concurrency=1
    )
    stage_server.start()
    settings = ClientSettings(blend_timeout_s=30, wire_format="png")
    stage_client = BlendClient(f"127.0.0.1:{stage_server.port}", settings)
    try:
        stage_client.setup()
        with futures.ThreadPoolExecutor(8) as pool:
            outputs = list(pool.map(lambda _: stage_client.run(_blend_input()), range(8)))
        assert len(outputs) == 8
        refused = stage_server.metrics.requests.labels(
            stage="echo", method="Blend", code="RESOURCE_EXHAUSTED"
        )._value.get()
        assert refused > 0  # the stage really was saturated; the client absorbed it
    finally:
        stage_client.close()
        stage_server.stop(grace=0)


@pytest.mark.parametrize(
    ("details", "field_name"),
    [
        ("options.steps: steps must be in [1, 150]", "options.steps"),
        ("clothing_mask: mask is 80x100 but the person image is 96x128", "clothing_mask"),
        ("no person found in the photo", None),
    ],
)
def test_invalid_argument_keeps_the_field_it_names(
    fake: FakeServer, details: str, field_name: str | None
) -> None:
    fake.stage.script = [Abort(grpc.StatusCode.INVALID_ARGUMENT, details)]
    with _client(fake) as stage_client, pytest.raises(StageInputError) as error:
        stage_client.run(_blend_input())
    assert str(error.value) == details  # the orchestrator fails the job with exactly this message
    assert error.value.field == field_name


# ------------------------------------------------------------------------------------- deadlines


def test_every_call_carries_the_stage_deadline(fake: FakeServer) -> None:
    settings = ClientSettings(blend_timeout_s=7, inpaint_timeout_s=90)
    blend = BlendClient(fake.address, settings)
    inpaint = InpaintClient(fake.address, settings)
    inputs = _blend_input()
    try:
        blend.run(inputs)
        inpaint_input = InpaintInput(
            person=inputs.person, clothing_mask=inputs.clothing_mask,
            warped_garment=np.dstack([inputs.person, inputs.clothing_mask]), pose_image=inputs.person,
        )  # fmt: skip
        inpaint.run(inpaint_input)
        blend.run(inputs, timeout_s=3)
    finally:
        blend.close()
        inpaint.close()
    assert [round(remaining) for remaining in fake.stage.deadlines] == [7, 90, 3]


def test_a_slow_call_ends_at_its_deadline(fake: FakeServer) -> None:
    fake.stage.script = [Sleep(3)]
    started = time.monotonic()
    with _client(fake) as stage_client, pytest.raises(RemoteStageError) as error:
        stage_client.run(_blend_input(), timeout_s=0.2)
    assert error.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2


# ------------------------------------------------------------------------------------- readiness


def test_setup_waits_until_the_service_is_serving(fake: FakeServer) -> None:
    fake.health.set("tryon.v1.Blend", health_pb2.HealthCheckResponse.NOT_SERVING)
    timer = threading.Timer(0.5, fake.health.set, ("tryon.v1.Blend", health_pb2.HealthCheckResponse.SERVING))
    timer.start()
    started = time.monotonic()
    try:
        with _client(fake) as stage_client:
            stage_client.setup()
    finally:
        timer.cancel()
    assert time.monotonic() - started >= 0.45


def test_setup_gives_up_when_the_service_never_serves(fake: FakeServer) -> None:
    fake.health.set("tryon.v1.Blend", health_pb2.HealthCheckResponse.NOT_SERVING)
    with _client(fake, ready_timeout_s=0.5) as stage_client, pytest.raises(RemoteStageError) as error:
        stage_client.setup()
    assert error.value.code is grpc.StatusCode.UNAVAILABLE and "not SERVING" in str(error.value)


# ------------------------------------------------------------------------------------- restarts


def test_reconnect_backoff_is_short() -> None:
    options = dict(client_module.channel_options("tryon.v1.Blend", ClientSettings()))
    assert options["grpc.max_reconnect_backoff_ms"] <= 1000
    assert options["grpc.initial_reconnect_backoff_ms"] <= options["grpc.max_reconnect_backoff_ms"]


@pytest.mark.slow
def test_a_restarted_service_is_used_again_within_two_seconds() -> None:
    """The same client, calling through a 10.5 s outage: with gRPC's default reconnect backoff (1 s
    growing 1.6x) its next connection attempt came 3.4 to 4.6 s after the service was back (measured);
    with ours, within 1.2 s."""
    port = free_port()
    settings = StageSettings(host="127.0.0.1", shutdown_grace_s=0)

    def start() -> server_module.StageServer:
        stage_server = server_module.StageServer(
            "echo", EchoBackend(), [echo_binding()], settings, port=port, max_concurrency=2
        )
        stage_server.start()
        return stage_server

    stage_server = start()
    stage_client = BlendClient(f"127.0.0.1:{port}", ClientSettings(wire_format="png", retry_attempts=1))
    try:
        stage_client.setup()
        stage_client.run(_blend_input())
        stage_server.stop(grace=0)
        outage_ends = time.monotonic() + 10.5
        while time.monotonic() < outage_ends:  # callers keep trying during the outage
            with pytest.raises(RemoteStageError):
                stage_client.run(_blend_input(), timeout_s=1)
            time.sleep(0.2)
        stage_server = start()
        back = time.monotonic()
        while True:
            try:
                stage_client.run(_blend_input(), timeout_s=1)
                break
            except RemoteStageError:
                assert time.monotonic() - back < 10
                time.sleep(0.05)
        assert time.monotonic() - back < 1.5
    finally:
        stage_client.close()
        stage_server.stop(grace=0)


# ------------------------------------------------------------------------------------- keepalive


def test_client_pings_no_more_often_than_stage_servers_accept() -> None:
    assert client_module.KEEPALIVE_TIME_MS >= server_module.MIN_CLIENT_PING_INTERVAL_MS


def test_stage_server_keeps_a_pinging_idle_client_connected(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scaled down 60x: a server on gRPC's defaults drops such a client in 3 to 5 s (too_many_pings)."""
    monkeypatch.setattr(server_module, "MIN_CLIENT_PING_INTERVAL_MS", 200)
    monkeypatch.setattr(client_module, "KEEPALIVE_TIME_MS", 500)
    backend = EchoBackend()
    stage_server = build_server(backend, StageSettings(host="127.0.0.1", shutdown_grace_s=0))
    stage_server.start()
    states: list[grpc.ChannelConnectivity] = []
    stage_client = BlendClient(f"127.0.0.1:{stage_server.port}")
    try:
        stage_client.channel.subscribe(states.append, try_to_connect=True)
        stage_client.info()
        time.sleep(6)  # a dozen pings on an idle connection
        stage_client.info()
    finally:
        stage_client.close()
        stage_server.stop(grace=0)
    ready = states.index(grpc.ChannelConnectivity.READY)
    assert grpc.ChannelConnectivity.IDLE not in states[ready:], states
