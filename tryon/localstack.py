"""The whole system on one machine, no Docker: ``make up`` / ``make down`` (``python -m tryon.localstack``).

``up`` starts, each in a process group of its own and detached from the terminal:

* ``redis``: redis-server with append-only persistence (job records and the Celery broker);
* the five stage services (``python -m services.<stage>``, backend ``auto``: full where the weights and a
  device are present, lite otherwise; ``TRYON_BACKEND`` overrides);
* ``worker``: the Celery worker (orchestrator);
* ``gateway``: the REST API (and the frontend, when nginx is not installed);
* ``nginx``: the frontend and ``/api/`` proxied to the gateway, when nginx is installed;

* ``supervisor``: restarts any of the above that exits without being stopped (a crash, kill -9, an
  out-of-memory kill): at once the first time, then after 1, 2, 4 ... 30 s while it keeps exiting within a
  minute of its last start, as Kubernetes and compose do for the deployed system (``--no-supervise`` leaves
  it out);

then waits until every stage is SERVING and ``GET /api/ready`` answers 200 through the front door, and
prints the URL. Everything lives under the run directory (``.run/`` by default): ``logs/<name>.log`` (every
process's output, one place), ``pids/<name>.pid``, ``redis/`` (the append-only file), ``storage/`` (local
storage), ``nginx/``, and ``stack.json`` (ports and commands, so ``down``, ``status``, ``restart`` and the
fault tests can act on a stack started by another process).

``down`` stops the processes in reverse order (the supervisor first): SIGTERM to each process group, SIGKILL
after a grace period; nothing is left running. A process stopped on purpose has no pid file, which is what
tells the supervisor to leave it stopped; a crashed one still has its pid file.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tryon.local_services import REPO, free_port
from tryon.stages import STAGE_TABLE, STAGES

DEFAULT_HTTP_PORT = 8080
SUPERVISOR = "supervisor"
#: Order of start; ``down`` stops in reverse (the supervisor and the front door first, Redis last).
ORDER = ("redis", *STAGES, "worker", "gateway", "nginx", SUPERVISOR)
#: A process that exits within this long of its start counts as crash-looping: its restarts back off.
CRASH_LOOP_WINDOW_S = 60.0
RESTART_BACKOFF_MAX_S = 30.0


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class StackConfig:
    run_dir: str
    http_port: int
    gateway_port: int
    redis_port: int
    stage_ports: dict[str, int]
    metrics_ports: dict[str, int]
    worker_metrics_port: int
    nginx: bool
    processes: dict[str, ProcessSpec]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def save(self) -> None:
        path = Path(self.run_dir) / "stack.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, run_dir: Path) -> StackConfig:
        data = json.loads((run_dir / "stack.json").read_text())
        data["processes"] = {name: ProcessSpec(**spec) for name, spec in data["processes"].items()}
        return cls(**data)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _preferred_port(port: int, taken: set[int]) -> int:
    """``port`` when it is free (stable addresses for Prometheus and grpcurl), else any free one."""
    chosen = port if port not in taken and _port_free(port) else free_port()
    while chosen in taken:
        chosen = free_port()
    taken.add(chosen)
    return chosen


def _has_module(name: str) -> bool:
    """Whether a part of the system is present in this checkout (the stack starts what exists)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def plan(
    run_dir: Path,
    http_port: int = DEFAULT_HTTP_PORT,
    *,
    use_nginx: bool | None = None,
    env: dict[str, dict[str, str]] | None = None,
    supervise: bool = True,
) -> StackConfig:
    """Ports and commands of every process of a stack in ``run_dir`` (nothing started); ``env`` adds
    variables per process name (the load suite raises the gateway's rate limits this way); ``supervise``
    adds the supervisor that restarts crashed processes (the fault suites leave it out: they restart what
    they kill themselves, at the moment their schedule says)."""
    run_dir = run_dir.resolve()
    taken = {http_port}
    has_nginx = shutil.which("nginx") is not None and _has_module("tryon.local_nginx")
    nginx = has_nginx if use_nginx is None else use_nginx
    redis_port = _preferred_port(6379, taken)
    stage_ports = {name: _preferred_port(STAGE_TABLE[name].port, taken) for name in STAGES}
    metrics_ports = {name: _preferred_port(STAGE_TABLE[name].metrics_port, taken) for name in STAGES}
    worker_metrics_port = _preferred_port(9100, taken)
    gateway_port = _preferred_port(8000, taken) if nginx else http_port
    python = sys.executable
    common = {
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO),
        "TRYON_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "TRYON_STORAGE_BACKEND": "local",
        "TRYON_STORAGE_DIR": str(run_dir / "storage"),
        **{STAGE_TABLE[name].address_setting: f"127.0.0.1:{stage_ports[name]}" for name in STAGES},
    }
    processes: dict[str, ProcessSpec] = {
        "redis": ProcessSpec(
            "redis",
            [shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
             "--dir", str(run_dir / "redis"), "--appendonly", "yes", "--appendfsync", "everysec",
             "--save", "", "--protected-mode", "no"],
        ),
    }  # fmt: skip
    for name in STAGES:
        processes[name] = ProcessSpec(
            name,
            [python, "-m", f"services.{name}", "--host", "127.0.0.1", "--port", str(stage_ports[name]),
             "--metrics-port", str(metrics_ports[name])],
            common,
        )  # fmt: skip
    if _has_module("orchestrator.__main__"):
        processes["worker"] = ProcessSpec(
            "worker",
            [python, "-m", "orchestrator"],
            {
                **common,
                "TRYON_WORKER_METRICS_PORT": str(worker_metrics_port),
                "TRYON_WORKER_METRICS_DIR": str(run_dir / "worker-metrics"),
            },
        )
    if _has_module("gateway.__main__"):
        processes["gateway"] = ProcessSpec(
            "gateway",
            [python, "-m", "gateway"],
            {
                **common,
                "TRYON_HOST": "127.0.0.1",
                "TRYON_PORT": str(gateway_port),
                "TRYON_SERVE_FRONTEND": "0" if nginx else "1",
                "TRYON_ACCESS_LOG": "1",  # one line per request, with the job id when it is about one
            },
        )
    if nginx and "gateway" in processes:
        processes["nginx"] = ProcessSpec(
            "nginx",
            [shutil.which("nginx") or "nginx", "-p", str(run_dir / "nginx"),
             "-c", str(run_dir / "nginx/nginx.conf"), "-e", str(run_dir / "nginx/error.log")],
        )  # fmt: skip
    if supervise:
        processes[SUPERVISOR] = ProcessSpec(
            SUPERVISOR, [python, "-m", "tryon.localstack", "supervise", "--run-dir", str(run_dir)], common
        )
    for name, extra in (env or {}).items():
        if name in processes:
            processes[name].env = {**processes[name].env, **extra}
    return StackConfig(
        run_dir=str(run_dir),
        http_port=http_port,
        gateway_port=gateway_port,
        redis_port=redis_port,
        stage_ports=stage_ports,
        metrics_ports=metrics_ports,
        worker_metrics_port=worker_metrics_port,
        nginx=nginx,
        processes=processes,
    )


def _write_nginx_config(config: StackConfig) -> None:
    from tryon.local_nginx import main_config, max_body_for, render_template

    scratch = Path(config.run_dir) / "nginx"
    scratch.mkdir(parents=True, exist_ok=True)
    server = scratch / "tryon.conf"
    server.write_text(
        render_template({
            "TRYON_NGINX_PORT": f"127.0.0.1:{config.http_port}",
            "TRYON_GATEWAY_UPSTREAM": f"127.0.0.1:{config.gateway_port}",
            "TRYON_FRONTEND_ROOT": str(REPO / "frontend"),
            "TRYON_NGINX_MAX_BODY": max_body_for(15),
        })
    )  # fmt: skip
    (scratch / "nginx.conf").write_text(main_config(server, scratch))


# --- processes --------------------------------------------------------------------------------------


def _proc_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (guards against signalling a recycled pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still running (zombies, not yet reaped, do not count)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _signal_group(pgid: int, signum: int) -> bool:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pgid, os.WNOHANG)  # reap it when it is our child
        if not _group_alive(pgid):
            return True
        time.sleep(0.05)
    return False


def _say(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} supervisor: {line}", flush=True)


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.run_dir = Path(config.run_dir)
        self.logs = self.run_dir / "logs"
        self.pids = self.run_dir / "pids"

    @classmethod
    def open(cls, run_dir: Path) -> LocalStack:
        return cls(StackConfig.load(run_dir.resolve()))

    # pid files hold "pid start-time"; the process is its own group leader (pgid == pid).
    def pid(self, name: str) -> int | None:
        path = self.pids / f"{name}.pid"
        try:
            pid_text, started = path.read_text().split()
        except (OSError, ValueError):
            return None
        pid = int(pid_text)
        return pid if _proc_start_time(pid) == started else None

    def running(self, name: str) -> bool:
        pid = self.pid(name)
        if pid is None:
            return False
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            return state != "Z"
        return False

    @contextlib.contextmanager
    def _pid_lock(self) -> Iterator[None]:
        """Held while a process is started, across processes (the supervisor, `make up`, the CLI), so two
        never start the same one."""
        self.pids.mkdir(parents=True, exist_ok=True)
        with open(self.pids / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def start(self, name: str) -> int:
        """Start one process (detached, in its own process group), output appended to logs/<name>.log."""
        with self._pid_lock():
            if self.running(name):
                raise RuntimeError(f"{name} is already running (pid {self.pid(name)})")
            return self._spawn(name)

    def crashed(self, name: str) -> bool:
        """Whether ``name`` has exited without being stopped: its pid file is there, its process is not."""
        return (self.pids / f"{name}.pid").exists() and not self.running(name)

    def _restart_crashed(self, name: str) -> int | None:
        with self._pid_lock():
            return self._spawn(name) if self.crashed(name) else None

    def _spawn(self, name: str) -> int:
        spec = self.config.processes[name]
        for directory in (self.logs, self.pids, self.run_dir / "redis", self.run_dir / "storage"):
            directory.mkdir(parents=True, exist_ok=True)
        if name == "nginx":
            _write_nginx_config(self.config)
        with open(self.logs / f"{name}.log", "ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"--- {stamp} starting {name}: {' '.join(spec.argv)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                spec.argv, cwd=REPO, env={**os.environ, **spec.env}, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        (self.pids / f"{name}.pid").write_text(f"{process.pid} {_proc_start_time(process.pid)}\n")
        return process.pid

    def signal(self, name: str, signum: int) -> bool:
        """Send ``signum`` to the process group of ``name``; False when it is not running."""
        pid = self.pid(name)
        return pid is not None and _signal_group(pid, signum)

    def kill(self, name: str) -> None:
        """kill -9 the whole process group (a crash: no clean-up, no acknowledgement)."""
        self.signal(name, signal.SIGKILL)
        self._wait_gone(name, 10)

    def stop(self, name: str, grace_s: float = 20) -> None:
        # The pid file goes first: a process without one was stopped on purpose, so the supervisor leaves
        # it stopped instead of restarting it as a crash.
        with self._pid_lock():
            pid = self.pid(name)
            (self.pids / f"{name}.pid").unlink(missing_ok=True)
        if pid is None or not _signal_group(pid, signal.SIGQUIT if name == "nginx" else signal.SIGTERM):
            return
        if not _wait_group_gone(pid, grace_s):
            _signal_group(pid, signal.SIGKILL)
            _wait_group_gone(pid, 10)

    def restart(self, name: str) -> int:
        self.stop(name)
        return self.start(name)

    def _wait_gone(self, name: str, timeout: float) -> bool:
        pid = self.pid(name)
        return pid is None or _wait_group_gone(pid, timeout)

    def supervise(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Restart every process that crashed until ``stop`` is set: at once, then with a doubling delay
        (1 s up to :data:`RESTART_BACKOFF_MAX_S`) while it keeps exiting within
        :data:`CRASH_LOOP_WINDOW_S` of its start, so a process that cannot start does not spin."""
        started_at: dict[str, float] = {}
        quick_exits: dict[str, int] = {}
        due: dict[str, float] = {}
        while not stop.is_set():
            now = time.monotonic()
            for name in ORDER:
                if name == SUPERVISOR or name not in self.config.processes:
                    continue
                if name not in due:
                    if not self.crashed(name):
                        continue
                    quick = now - started_at.get(name, -CRASH_LOOP_WINDOW_S) < CRASH_LOOP_WINDOW_S
                    quick_exits[name] = quick_exits.get(name, 0) + 1 if quick else 0
                    delay = (
                        min(RESTART_BACKOFF_MAX_S, 2.0 ** (quick_exits[name] - 1))
                        if quick_exits[name]
                        else 0.0
                    )
                    due[name] = now + delay
                    _say(f"{name} exited without being stopped; restarting it in {delay:.0f} s")
                if now >= due[name]:
                    del due[name]
                    pid = self._restart_crashed(name)
                    if pid is not None:
                        started_at[name] = time.monotonic()
                        _say(f"{name} restarted (pid {pid})")
            stop.wait(poll_s)

    # --- the whole stack ----------------------------------------------------------------------------

    def up(self, timeout_s: float = 60) -> float:
        """Start everything not running and wait until ready; returns the seconds it took."""
        started = time.monotonic()
        self.config.save()
        for name in ORDER:
            if name in self.config.processes and not self.running(name):
                self.start(name)
                if name == "redis":
                    self.wait_redis(deadline=started + timeout_s)
        self.wait_ready(deadline=started + timeout_s)
        return time.monotonic() - started

    def down(self) -> None:
        for name in reversed(ORDER):
            if name in self.config.processes:
                self.stop(name)

    def status(self) -> dict[str, bool]:
        return {name: self.running(name) for name in ORDER if name in self.config.processes}

    # --- readiness ------------------------------------------------------------------------------------

    def _check_alive(self, names: Iterable[str]) -> None:
        for name in names:
            if not self.running(name):
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited during start-up; the end of its log:\n{tail}")

    def wait_redis(self, deadline: float) -> None:
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.config.redis_port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            self._check_alive(["redis"])
            if time.monotonic() > deadline:
                raise TimeoutError("redis did not answer PING")
            time.sleep(0.05)

    def stages_serving(self) -> dict[str, bool]:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        result = {}
        for name in STAGES:
            with grpc.insecure_channel(f"127.0.0.1:{self.config.stage_ports[name]}") as channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=STAGE_TABLE[name].service), timeout=1
                    )
                    result[name] = reply.status == health_pb2.HealthCheckResponse.SERVING
                except grpc.RpcError:
                    result[name] = False
        return result

    def api_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.config.url}/api/ready", timeout=2) as reply:
                return reply.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, deadline: float) -> None:
        waiting: list[str] = []
        while time.monotonic() < deadline:
            self._check_alive(self.config.processes)
            serving = self.stages_serving()
            waiting = [name for name, ok in serving.items() if not ok]
            if "gateway" in self.config.processes and not self.api_ready():
                waiting.append("gateway (/api/ready)")
            if not waiting:
                return
            time.sleep(0.2)
        raise TimeoutError(f"not ready in time: {', '.join(waiting)} (logs: {self.logs})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tryon.localstack", description=__doc__.split("\n")[0])
    parser.add_argument(
        "command", choices=["up", "down", "status", "restart", "kill", "start", "stop", "supervise"]
    )
    parser.add_argument("names", nargs="*", help="processes for restart/kill/start/stop")
    parser.add_argument("--run-dir", type=Path, default=REPO / ".run")
    parser.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT)
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for readiness")
    parser.add_argument("--no-nginx", action="store_true", help="the gateway serves the frontend itself")
    parser.add_argument("--no-supervise", action="store_true", help="do not restart processes that crash")
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir.resolve()

    if args.command == "up":
        if (run_dir / "stack.json").exists() and any(LocalStack.open(run_dir).status().values()):
            stack = LocalStack.open(run_dir)
            print(f"already running (run `make down` first to change ports): {stack.config.url}")
            return 0
        stack = LocalStack(
            plan(
                run_dir,
                args.http_port,
                use_nginx=False if args.no_nginx else None,
                supervise=not args.no_supervise,
            )
        )
        try:
            took = stack.up(args.timeout)
        except (RuntimeError, TimeoutError) as error:
            print(f"error: {error}", file=sys.stderr)
            stack.down()
            return 1
        front = "nginx" if stack.config.nginx else "the gateway (nginx not installed)"
        print(f"ready in {took:.1f} s: {stack.config.url}  (served by {front}; logs in {stack.logs})")
        return 0
    if not (run_dir / "stack.json").exists():
        print(f"no stack in {run_dir}", file=sys.stderr)
        return 0 if args.command in ("down", "status") else 1
    stack = LocalStack.open(run_dir)
    if args.command == "supervise":
        stopped = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopped.set())
        stack.supervise(stopped)
        return 0
    if args.command == "down":
        stack.down()
        print("stopped")
    elif args.command == "status":
        for name, alive in stack.status().items():
            print(f"{name:13} {'running' if alive else 'stopped'}")
    else:
        action = {"restart": stack.restart, "kill": stack.kill, "start": stack.start, "stop": stack.stop}
        for name in args.names:
            action[args.command](name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
