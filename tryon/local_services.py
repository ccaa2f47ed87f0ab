"""Start stage services as local subprocesses on free loopback ports, and stop them.

Used by the tests and benchmarks that need real services, and handy for running the whole chain on one
machine. Each service is exactly what a deployment runs: ``python -m services.<stage>``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RunningService:
    stage: str
    port: int
    metrics_port: int
    process: subprocess.Popen[str]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start_service(stage: str, backend: str = "lite", port: int | None = None, **env: str) -> RunningService:
    port, metrics_port = port or free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", f"services.{stage}", "--port", str(port), "--host", "127.0.0.1",
         "--metrics-port", str(metrics_port), "--backend", backend],
        cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return RunningService(stage, port, metrics_port, process)


@contextmanager
def running_services(
    stages: tuple[str, ...], backend: str = "lite", **env: str
) -> Iterator[dict[str, RunningService]]:
    services = {stage: start_service(stage, backend, None, **env) for stage in stages}
    try:
        yield services
    finally:
        for service in services.values():
            service.stop()
