"""The shared entrypoint ``python -m services.<stage>``: flags, environment, stage defaults, exit codes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tryon import service_main
from tryon.service_main import build_server
from tryon.settings import StageSettings
from tryon.stages import EXIT_NO_MODEL, STAGE_TABLE
from tryon.types import STAGES, BackendKind

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """build_server with the server and backend replaced by recorders: nothing binds, nothing loads."""
    for name in list(os.environ):
        if name.startswith("TRYON_"):
            monkeypatch.delenv(name)
    calls: dict[str, Any] = {}

    def fake_server(
        stage: str, backend: object, bindings: list, settings: StageSettings, **kwargs: Any
    ) -> str:
        calls.update(stage=stage, backend=backend, bindings=bindings, settings=settings, **kwargs)
        return "server"

    def fake_backend(stage: str, settings: StageSettings) -> str:
        calls["backend_requested"] = settings.backend
        return f"{stage}-backend"

    monkeypatch.setattr(service_main, "StageServer", fake_server)
    monkeypatch.setattr(service_main, "create_backend", fake_backend)
    monkeypatch.setattr(service_main, "configure_logging", lambda settings: None)
    return calls


@pytest.mark.parametrize("stage", STAGES)
def test_stage_defaults(stage: str, captured: dict[str, Any]) -> None:
    assert build_server(stage, []) == "server"
    defaults = STAGE_TABLE[stage]
    assert captured["port"] == defaults.port
    assert captured["metrics_port"] == defaults.metrics_port
    # GPU stages run one model call at a time; CPU stages one per core this process may use.
    expected = 1 if defaults.gpu else len(os.sched_getaffinity(0))
    assert captured["max_concurrency"] == expected
    assert captured["backend_requested"] is BackendKind.AUTO
    (binding,) = captured["bindings"]
    assert binding.full_name == f"tryon.v1.{stage.capitalize()}"
    assert binding.servicer.backend == f"{stage}-backend"


def test_ports_follow_the_stage_order() -> None:
    assert [STAGE_TABLE[stage].port for stage in STAGES] == [50051, 50052, 50053, 50054, 50055]
    assert [STAGE_TABLE[stage].metrics_port for stage in STAGES] == [9101, 9102, 9103, 9104, 9105]
    assert [stage for stage in STAGES if STAGE_TABLE[stage].gpu] == ["segmentation", "pose", "inpaint"]


def test_environment_overrides_defaults_and_flags_override_the_environment(
    captured: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRYON_PORT", "6000")
    monkeypatch.setenv("TRYON_METRICS_PORT", "6001")
    monkeypatch.setenv("TRYON_MAX_CONCURRENCY", "3")
    monkeypatch.setenv("TRYON_BACKEND", "full")
    build_server("inpaint", [])
    assert (captured["port"], captured["metrics_port"], captured["max_concurrency"]) == (6000, 6001, 3)
    assert captured["backend_requested"] is BackendKind.FULL

    build_server("inpaint", ["--port", "7000", "--metrics-port", "0", "--backend", "lite", "--host", "::1"])
    assert (captured["port"], captured["metrics_port"]) == (7000, 0)
    assert captured["backend_requested"] is BackendKind.LITE
    assert captured["settings"].host == "::1"


def test_bad_flags_exit_with_usage(captured: dict[str, Any]) -> None:
    with pytest.raises(SystemExit) as error:
        build_server("warp", ["--backend", "huge"])
    assert error.value.code == 2


def test_unknown_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        build_server("upscale", [])


# ------------------------------------------------------------------------------------- real processes


def _service(stage: str, *flags: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", f"services.{stage}", *flags],
        cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_port_zero_names_the_bound_port_then_serves_until_sigterm() -> None:
    process = _service("blend", "--port", "0", "--metrics-port", "0", "--host", "127.0.0.1")
    try:
        port = None
        for line in process.stderr:  # the runtime logs "blend listening on 127.0.0.1:PORT (metrics: N)"
            if match := re.search(r"blend listening on 127\.0\.0\.1:(\d+) \(metrics: (\d+)\)", line):
                port = int(match.group(1))
                assert int(match.group(2)) > 0
                break
        assert port, "no listening line"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service="tryon.v1.Blend")
            reply = health.Check(request, timeout=30, wait_for_ready=True)
            while reply.status != health_pb2.HealthCheckResponse.SERVING:
                reply = health.Check(request, timeout=5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()


def test_full_backend_without_weights_exits_with_one_line_naming_the_fix() -> None:
    process = _service(
        "segmentation", "--port", "0", "--metrics-port", "0", "--backend", "full",
        TRYON_MODELS__SEGFORMER_MODEL="/nonexistent/segformer",
    )  # fmt: skip
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == EXIT_NO_MODEL
    assert "Traceback" not in stderr
    assert "/nonexistent/segformer" in stderr and "tryon models pull --stage segmentation" in stderr
