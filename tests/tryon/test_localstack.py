"""The local stack supervisor (`make up` / `make down`): its plan, and process control without leftovers."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest

from tryon.local_services import free_port
from tryon.localstack import LocalStack, _group_alive, plan
from tryon.stages import STAGE_TABLE, STAGES


def test_plan_gives_every_process_its_own_port_and_one_shared_configuration(tmp_path: Path) -> None:
    http_port = free_port()
    config = plan(tmp_path, http_port)
    ports = [config.redis_port, *config.stage_ports.values(), *config.metrics_ports.values(), http_port]
    if config.nginx:
        ports.append(config.gateway_port)
    assert len(ports) == len(set(ports))
    for name in STAGES:
        assert config.processes[name].argv[-2:] == ["--metrics-port", str(config.metrics_ports[name])]
        assert str(config.stage_ports[name]) in config.processes[name].argv
    for name in ("worker", "gateway"):
        if name in config.processes:
            env = config.processes[name].env
            assert env["TRYON_REDIS_URL"] == config.redis_url
            assert env["TRYON_STORAGE_DIR"] == str(tmp_path.resolve() / "storage")
            for stage in STAGES:
                assert env[STAGE_TABLE[stage].address_setting] == f"127.0.0.1:{config.stage_ports[stage]}"
    assert "--appendonly" in config.processes["redis"].argv


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_start_kill_start_stop_leaves_no_process(tmp_path: Path) -> None:
    stack = LocalStack(plan(tmp_path, free_port()))
    stack.config.save()
    pid = stack.start("redis")
    try:
        stack.wait_redis(deadline=time.monotonic() + 10)
        assert stack.running("redis")
        with pytest.raises(RuntimeError, match="already running"):
            stack.start("redis")
        stack.kill("redis")
        assert not stack.running("redis") and not _group_alive(pid)
        pid = stack.start("redis")
        stack.wait_redis(deadline=time.monotonic() + 10)
        # Another process (make down) finds it from the run directory alone.
        LocalStack.open(tmp_path).stop("redis")
        assert not _group_alive(pid)
        assert not (tmp_path / "pids" / "redis.pid").exists()
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", stack.config.redis_port), 0.5):
            pass
        assert "starting redis" in (tmp_path / "logs" / "redis.log").read_text()
    finally:
        stack.down()
