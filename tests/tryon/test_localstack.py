"""The local stack supervisor (`make up` / `make down`): its plan, and process control without leftovers."""

from __future__ import annotations

import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tryon.local_services import free_port
from tryon.localstack import SUPERVISOR, LocalStack, ProcessSpec, _group_alive, plan
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


def test_the_stack_is_supervised_unless_told_not_to_be(tmp_path: Path) -> None:
    supervisor = plan(tmp_path, free_port()).processes[SUPERVISOR]
    assert supervisor.argv[-3:] == ["supervise", "--run-dir", str(tmp_path.resolve())]
    assert SUPERVISOR not in plan(tmp_path, free_port(), supervise=False).processes


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[LocalStack]:
    """A stack whose supervisor loop runs in a thread (the `supervise` command runs the same loop)."""
    stack = LocalStack(plan(tmp_path, free_port(), supervise=False))
    stack.config.save()
    stop = threading.Event()
    loop = threading.Thread(target=stack.supervise, args=(stop,), kwargs={"poll_s": 0.05}, daemon=True)
    loop.start()
    try:
        yield stack
    finally:
        stop.set()
        loop.join(5)
        stack.down()


def _wait(condition: object, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_supervisor_restarts_a_crashed_process_and_leaves_a_stopped_one(supervised: LocalStack) -> None:
    stack = supervised
    first = stack.start("redis")
    stack.wait_redis(deadline=time.monotonic() + 10)
    stack.kill("redis")  # kill -9: a crash
    assert _wait(lambda: stack.pid("redis") not in (None, first)), "the crashed redis was not restarted"
    stack.wait_redis(deadline=time.monotonic() + 10)  # and it answers again
    second = stack.pid("redis")
    assert second is not None
    stack.stop("redis")  # on purpose: stays stopped
    time.sleep(1)
    assert not stack.running("redis") and not _group_alive(second)
    assert not (stack.pids / "redis.pid").exists()


def test_supervisor_backs_off_a_process_that_keeps_exiting(supervised: LocalStack) -> None:
    stack = supervised
    stack.config.processes["worker"] = ProcessSpec("worker", [sys.executable, "-c", "raise SystemExit(3)"])
    stack.start("worker")
    time.sleep(4)
    starts = (stack.logs / "worker.log").read_text().count("starting worker")
    # Restarted at once, then after 1 and 2 s: 3-4 starts in 4 s, not one per poll (80).
    assert 3 <= starts <= 4, starts
    stack.stop("worker")  # and a stop ends the restarts
    time.sleep(4.5)
    assert (stack.logs / "worker.log").read_text().count("starting worker") == starts
