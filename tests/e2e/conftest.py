"""One stack for the whole e2e session, started exactly as `make up` starts it (tryon.localstack), on free
ports in a temporary run directory, with an OTLP sink collecting every process's spans."""

from __future__ import annotations

import importlib.util
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.tryon.observability.otlp_sink import OtlpSink
from tryon.local_services import free_port
from tryon.localstack import LocalStack, _group_alive, plan
from tryon.stages import STAGES

#: The load suite submits far more than a public deployment's per-client limits allow, from one address.
GATEWAY_ENV = {
    "TRYON_RATE_LIMIT_SUBMISSIONS": "0",
    "TRYON_RATE_LIMIT_REQUESTS": "0",
    "TRYON_MAX_QUEUE_DEPTH": "0",
}

#: Lite jobs take seconds: short job limits let the broker hand a crashed worker's unacknowledged jobs to
#: the restarted worker after a minute instead of the default 2 h (docs/OPERATIONS.md). A message a worker
#: killed with -9 had taken off the queue but not yet recorded as unacknowledged (kombu's Redis transport
#: pops, then records) is in neither place: only the orphan sweep brings its job back, here after a minute
#: instead of the default 5 (seen once: a job left queued for the whole 240 s of the worker-kill test).
FAST_RECOVERY_ENV = {
    "TRYON_JOB_SOFT_TIME_LIMIT_S": "30",
    "TRYON_JOB_TIME_LIMIT_S": "35",
    "TRYON_JOB_RETRY_BACKOFF_MAX_S": "10",
    "TRYON_BROKER_VISIBILITY_TIMEOUT_S": "50",
    "TRYON_ORPHAN_SWEEP_INTERVAL_S": "10",
    "TRYON_ORPHAN_QUEUED_AFTER_S": "60",
}


@pytest.fixture(scope="session")
def otlp_sink() -> Iterator[OtlpSink]:
    sink = OtlpSink()
    yield sink
    sink.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, otlp_sink: OtlpSink) -> Iterator[LocalStack]:
    for tool in ("redis-server",):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make setup installs it)")
    for module in ("gateway.__main__", "orchestrator.__main__"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not in this checkout yet: the whole system cannot run")
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_sink.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "300"}
    env = {name: dict(otel) for name in (*STAGES, "worker", "gateway")}
    env["gateway"].update(GATEWAY_ENV)
    for name in ("gateway", "worker"):
        env[name].update(FAST_RECOVERY_ENV)
    run_dir = tmp_path_factory.mktemp("stack")
    stack = LocalStack(plan(run_dir, free_port(), env=env, supervise=False))  # faults restart on schedule
    started = time.monotonic()
    try:
        stack.up(timeout_s=90)
        stack.ready_after_s = time.monotonic() - started  # type: ignore[attr-defined]
        yield stack
    finally:
        groups = [pid for name in stack.config.processes if (pid := stack.pid(name))]
        stack.down()
        left = [pid for pid in groups if _group_alive(pid)]
        assert not left, f"processes left after down: {left}"
        _print_log_tails(Path(stack.config.run_dir) / "logs")


def _print_log_tails(logs: Path) -> None:
    for log in sorted(logs.glob("*.log")):
        print(
            f"\n--- last lines of {log.name}\n"
            + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        )


@pytest.fixture(scope="session")
def client(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.config.url, timeout=30) as http:
        yield http
