"""Run the deployment's nginx config (deploy/nginx/templates) as a local subprocess on a loopback port.

The same template the official nginx image renders with envsubst is rendered here with the same variables,
then wrapped in a minimal main config whose pid, logs and temp paths live in a scratch directory. Used by the
browser test and the local stack; needs Debian's ``nginx`` / ``nginx-light`` (``make setup`` installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tryon.local_services import REPO, free_port

TEMPLATE = REPO / "deploy" / "nginx" / "templates" / "default.conf.template"
TEMPLATE_VARIABLES = (
    "TRYON_NGINX_PORT",
    "TRYON_GATEWAY_UPSTREAM",
    "TRYON_FRONTEND_ROOT",
    "TRYON_NGINX_MAX_BODY",
)
_VARIABLE = re.compile(r"\$\{(TRYON_[A-Z0-9_]+)\}")
_MIME_TYPES = Path("/etc/nginx/mime.types")


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (str(path) for path in (Path("/usr/sbin/nginx"),) if path.exists()), None
    )


def render_template(values: Mapping[str, str], template: Path = TEMPLATE) -> str:
    """Substitute ``${TRYON_*}`` as envsubst does; every variable the template uses must be given."""
    text = template.read_text()
    missing = sorted({name for name in _VARIABLE.findall(text) if name not in values})
    if missing:
        raise KeyError(f"nginx template variables without a value: {', '.join(missing)}")
    return _VARIABLE.sub(lambda match: values[match.group(1)], text)


def max_body_for(max_upload_mb: int) -> str:
    """The nginx body limit that matches the gateway's per-photo limit: two photos plus the form fields."""
    return f"{2 * max_upload_mb + 1}m"


def main_config(server_config: Path, scratch: Path) -> str:
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers must read the scratch directory
    mime = f"include {_MIME_TYPES};" if _MIME_TYPES.exists() else "types { text/html html; }"
    return (
        f"{user}worker_processes 1;\ndaemon off;\npid {scratch}/nginx.pid;\n"
        f"error_log {scratch}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"  {mime}\n  default_type application/octet-stream;\n"
        f"  access_log {scratch}/access.log;\n"
        f"  client_body_temp_path {scratch}/body; proxy_temp_path {scratch}/proxy;\n"
        f"  fastcgi_temp_path {scratch}/fastcgi; uwsgi_temp_path {scratch}/uwsgi;\n"
        f"  scgi_temp_path {scratch}/scgi;\n"
        "  sendfile on; keepalive_timeout 65;\n"
        f"  include {server_config};\n"
        "}\n"
    )


@dataclass
class RunningNginx:
    port: int
    scratch: Path
    process: subprocess.Popen[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def error_log(self) -> str:
        path = self.scratch / "error.log"
        return path.read_text() if path.exists() else ""

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish open requests
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_listening(port: int, process: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"nginx exited with {process.returncode}: {process.stderr and process.stderr.read()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nginx did not listen on port {port} within {timeout} s")


@contextmanager
def running_nginx(
    gateway: str, *, frontend_root: Path = REPO / "frontend", max_upload_mb: int = 15, port: int | None = None
) -> Iterator[RunningNginx]:
    """nginx on 127.0.0.1:``port`` (a free one by default): ``frontend_root`` and a proxy to ``gateway``."""
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError("nginx is not installed (apt-get install nginx-light)")
    port = port or free_port()
    scratch = Path(tempfile.mkdtemp(prefix="tryon-nginx-"))
    try:
        server = scratch / "tryon.conf"
        server.write_text(
            render_template({
                "TRYON_NGINX_PORT": f"127.0.0.1:{port}",
                "TRYON_GATEWAY_UPSTREAM": gateway,
                "TRYON_FRONTEND_ROOT": str(frontend_root),
                "TRYON_NGINX_MAX_BODY": max_body_for(max_upload_mb),
            })
        )  # fmt: skip
        config = scratch / "nginx.conf"
        config.write_text(main_config(server, scratch))
        process = subprocess.Popen(
            [binary, "-p", str(scratch), "-c", str(config), "-e", str(scratch / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        running = RunningNginx(port, scratch, process)
        try:
            _wait_listening(port, process, timeout=10)
            yield running
        finally:
            running.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
