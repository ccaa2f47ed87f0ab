"""The stage runtime under a throwaway servicer, over real gRPC on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.tryon.runtime.echo_stage import EchoBackend, FailingSetupBackend, build_server
from tryon import imaging
from tryon.runtime import StageServer
from tryon.settings import StageSettings
from tryon.stages import EXIT_SETUP_FAILED
from tryon.v1 import blend_pb2, blend_pb2_grpc, common_pb2

REPO = Path(__file__).resolve().parents[3]


def _settings(**overrides: object) -> StageSettings:
    return StageSettings(host="127.0.0.1", shutdown_grace_s=5, **overrides)


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def backend() -> EchoBackend:
    return EchoBackend()


@pytest.fixture
def server(backend: EchoBackend) -> Iterator[StageServer]:
    running = build_server(backend, _settings(max_queue=1, max_message_mb=8), max_concurrency=1)
    running.start()
    yield running
    backend.release.set()
    backend.allow_setup.set()
    running.stop(grace=0)


def _channel(server: StageServer) -> grpc.Channel:
    limit = 64 * 1024 * 1024
    return grpc.insecure_channel(
        f"127.0.0.1:{server.port}",
        options=[("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)],
    )


def _request(data: bytes = b"\x89PNG tiny") -> blend_pb2.BlendRequest:
    return blend_pb2.BlendRequest(person=common_pb2.Image(data=data))


def _health(channel: grpc.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_health_goes_from_not_serving_to_serving_after_setup() -> None:
    backend = EchoBackend()
    backend.allow_setup.clear()
    server = build_server(backend, _settings())
    server.start()
    try:
        with _channel(server) as channel:
            assert _health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert _health(channel, "tryon.v1.Blend") == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.RpcError) as loading:
                blend_pb2_grpc.BlendStub(channel).Blend(_request(), timeout=5)
            assert loading.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "loading" in loading.value.details()
            backend.allow_setup.set()
            _wait_for(lambda: _health(channel) == health_pb2.HealthCheckResponse.SERVING)
            assert _health(channel, "tryon.v1.Blend") == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(grace=0)


def test_reflection_lists_the_stage_service(server: StageServer) -> None:
    with _channel(server) as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert "tryon.v1.Blend" in services
    assert "grpc.health.v1.Health" in services


def test_six_megabyte_image_round_trips(server: StageServer) -> None:
    noise = np.random.default_rng(0).integers(0, 256, size=(1600, 1400, 3), dtype=np.uint8)
    data = imaging.encode_png(noise)
    assert len(data) > 6 * 1024 * 1024
    with _channel(server) as channel:
        _wait_for(lambda: _health(channel) == health_pb2.HealthCheckResponse.SERVING)
        reply = blend_pb2_grpc.BlendStub(channel).Blend(_request(data), timeout=30)
    assert reply.image.data == data
    assert np.array_equal(imaging.decode_image(reply.image.data), noise)


def test_message_over_the_limit_is_resource_exhausted(server: StageServer) -> None:
    with _channel(server) as channel:
        _wait_for(lambda: _health(channel) == health_pb2.HealthCheckResponse.SERVING)
        with pytest.raises(grpc.RpcError) as error:
            blend_pb2_grpc.BlendStub(channel).Blend(_request(b"x" * (9 * 1024 * 1024)), timeout=30)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_full_queue_is_resource_exhausted_and_health_still_answers(
    server: StageServer, backend: EchoBackend
) -> None:
    backend.release.clear()
    with _channel(server) as channel, futures.ThreadPoolExecutor(4) as pool:
        _wait_for(lambda: _health(channel) == health_pb2.HealthCheckResponse.SERVING)
        stub = blend_pb2_grpc.BlendStub(channel)
        running = pool.submit(stub.Blend, _request(), timeout=30)
        assert backend.running.acquire(timeout=10)  # first call is executing
        queued = pool.submit(stub.Blend, _request(), timeout=30)
        _wait_for(lambda: server.admission.admitted == 2)  # second call waits in the queue
        with pytest.raises(grpc.RpcError) as refused:
            stub.Blend(_request(), timeout=30)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "capacity" in refused.value.details()
        # a hint for the caller's backoff, in milliseconds
        hint = dict(refused.value.trailing_metadata() or ())["retry-after-ms"]
        assert 20 <= int(hint) <= 5000
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING  # probes bypass admission
        stub.GetInfo(common_pb2.GetInfoRequest(), timeout=5)
        # in flight: the running and the queued call; neither the refused call nor GetInfo
        assert _in_flight(server) == 2
        backend.release.set()
        assert running.result().image.data == _request().person.data
        assert queued.result().image.data == _request().person.data


def _in_flight(server: StageServer) -> float:
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    )
    lines = [line for line in body.splitlines() if line.startswith("tryon_grpc_in_flight{")]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def test_deadline_expiring_in_the_queue_abandons_the_call(server: StageServer, backend: EchoBackend) -> None:
    backend.release.clear()
    with _channel(server) as channel, futures.ThreadPoolExecutor(2) as pool:
        _wait_for(lambda: _health(channel) == health_pb2.HealthCheckResponse.SERVING)
        stub = blend_pb2_grpc.BlendStub(channel)
        running = pool.submit(stub.Blend, _request(), timeout=30)
        assert backend.running.acquire(timeout=10)
        with pytest.raises(grpc.RpcError) as expired:
            stub.Blend(_request(), timeout=0.3)
        assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        backend.release.set()
        running.result()
    # The expired call never reached the backend: only the first call did.
    assert not backend.running.acquire(timeout=0.2)


def test_work_of_a_call_whose_deadline_passes_is_abandoned(server: StageServer, backend: EchoBackend) -> None:
    backend.release.clear()  # the backend "works" until released, checking for cancellation as it goes
    with _channel(server) as channel:
        _wait_for(lambda: _health(channel) == health_pb2.HealthCheckResponse.SERVING)
        with pytest.raises(grpc.RpcError) as expired:
            blend_pb2_grpc.BlendStub(channel).Blend(_request(), timeout=0.3)
        assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert backend.cancelled.wait(timeout=5)  # the backend stopped instead of finishing
        _wait_for(lambda: server.admission.admitted == 0)  # and its slot is free again
        backend.release.set()
        assert (
            blend_pb2_grpc.BlendStub(channel).Blend(_request(), timeout=10).image.data
            == _request().person.data
        )
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    )
    assert 'tryon_grpc_requests_total{code="DEADLINE_EXCEEDED",method="Blend",stage="echo"} 1.0' in body


def test_stage_input_error_becomes_invalid_argument(server: StageServer) -> None:
    with _channel(server) as channel:
        _wait_for(lambda: _health(channel) == health_pb2.HealthCheckResponse.SERVING)
        with pytest.raises(grpc.RpcError) as error:
            blend_pb2_grpc.BlendStub(channel).Blend(_request(b""), timeout=5)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "person" in error.value.details()


def test_metrics_show_the_call(server: StageServer) -> None:
    with _channel(server) as channel:
        _wait_for(lambda: _health(channel) == health_pb2.HealthCheckResponse.SERVING)
        blend_pb2_grpc.BlendStub(channel).Blend(_request(), timeout=5)
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    )
    assert 'tryon_grpc_requests_total{code="OK",method="Blend",stage="echo"} 1.0' in body
    assert 'tryon_grpc_request_duration_seconds_count{method="Blend",stage="echo"} 1.0' in body
    assert 'tryon_grpc_in_flight{method="Blend",stage="echo"} 0.0' in body
    assert 'tryon_stage_ready{stage="echo"} 1.0' in body


def test_sigterm_drains_an_in_flight_call() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.tryon.runtime.echo_stage", "1.5", "10"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().split()[1])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            _wait_for(lambda: _health(channel) == health_pb2.HealthCheckResponse.SERVING)
            result: dict[str, object] = {}

            def call() -> None:
                try:
                    result["reply"] = blend_pb2_grpc.BlendStub(channel).Blend(_request(), timeout=30)
                except grpc.RpcError as error:
                    result["error"] = error

            caller = threading.Thread(target=call)
            caller.start()
            time.sleep(0.5)  # the call is inside its 1.5 s of work
            process.send_signal(signal.SIGTERM)
            caller.join(timeout=20)
        assert "error" not in result, result.get("error")
        assert result["reply"].image.data == _request().person.data
        assert process.wait(timeout=20) == 0
        assert process.stdout.read().strip().endswith("STOPPED")
    finally:
        process.kill()
        process.wait()


def _start_echo_process(*args: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.tryon.runtime.echo_stage", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stdout is not None
    return process, int(process.stdout.readline().split()[1])


def test_shutdown_ends_at_the_grace_deadline_with_work_still_running() -> None:
    # The call sleeps 30 s without cancellation points (like a lite backend); the grace period is 2 s.
    process, port = _start_echo_process("30", "2")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            _wait_for(lambda: _health(channel) == health_pb2.HealthCheckResponse.SERVING)
            call = blend_pb2_grpc.BlendStub(channel).Blend.future(_request(), timeout=60)
            time.sleep(0.3)
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            status = process.wait(timeout=20)
            took = time.monotonic() - signalled
            with pytest.raises(grpc.RpcError):  # the abandoned call fails, it does not hang
                call.result(timeout=10)
        assert status == 0
        assert took < 2 + 1.5, f"exited {took:.1f} s after SIGTERM with a 2 s grace period"
    finally:
        process.kill()
        process.wait()


def test_failed_setup_is_reported_and_ends_the_process() -> None:
    backend = FailingSetupBackend()
    server = build_server(backend, _settings())
    server.start()
    try:
        with _channel(server) as channel:
            _wait_for(lambda: server.setup_error is not None)
            assert _health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            stub = blend_pb2_grpc.BlendStub(channel)
            for call, request in ((stub.Blend, _request()), (stub.GetInfo, common_pb2.GetInfoRequest())):
                with pytest.raises(grpc.RpcError) as error:
                    call(request, timeout=5)
                assert error.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "failed to set up (RuntimeError: weights are corrupt)" in error.value.details()
    finally:
        server.stop(grace=0)

    # As a process (what Kubernetes runs): logged, and a non-zero exit so it is restarted.
    process, _port = _start_echo_process("0", "5", "--fail-setup")
    try:
        assert process.wait(timeout=20) == EXIT_SETUP_FAILED
        assert process.stderr is not None
        assert "weights are corrupt" in process.stderr.read()
    finally:
        process.kill()
        process.wait()
