"""deploy/nginx's template in a real nginx in front of a real gateway: page, proxy, SSE, limits, headers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import RunningGateway, photos
from tests.gateway.test_events import read_events, work
from tryon.local_nginx import (
    TEMPLATE,
    TEMPLATE_VARIABLES,
    main_config,
    nginx_binary,
    render_template,
    running_nginx,
)
from tryon.local_services import free_port

pytestmark = pytest.mark.skipif(
    nginx_binary() is None, reason="nginx is not installed (make setup installs nginx-light)"
)


@pytest.fixture(scope="module")
def proxy(gateway: RunningGateway) -> Iterator[str]:
    with running_nginx(
        gateway.url.removeprefix("http://"), max_upload_mb=gateway.settings.max_upload_mb
    ) as nginx:
        yield nginx.url


def test_template_uses_exactly_the_documented_variables() -> None:
    text = TEMPLATE.read_text()
    for name in TEMPLATE_VARIABLES:
        assert "${" + name + "}" in text
        assert name in text.split("upstream")[0]  # documented in the header comment
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(TEMPLATE_VARIABLES)
    with pytest.raises(KeyError, match="TRYON_NGINX_PORT"):
        render_template({})


@pytest.mark.skipif(shutil.which("envsubst") is None, reason="envsubst (gettext-base) is not installed")
def test_the_official_images_envsubst_renders_a_valid_config(tmp_path: Path) -> None:
    """What the nginx image's entrypoint does: envsubst with the defined variables only, then nginx -t."""
    values = {
        "TRYON_NGINX_PORT": "127.0.0.1:8080",
        "TRYON_GATEWAY_UPSTREAM": "127.0.0.1:8000",
        "TRYON_FRONTEND_ROOT": "/usr/share/nginx/html",
        "TRYON_NGINX_MAX_BODY": "31m",
    }
    defined = " ".join(f"${{{name}}}" for name in values)
    rendered = subprocess.run(
        ["envsubst", defined], input=TEMPLATE.read_text(), capture_output=True, text=True, check=True,
        env={**os.environ, **values},
    ).stdout  # fmt: skip
    assert rendered == render_template(values)  # the tests' renderer does exactly what envsubst does
    assert "$host" in rendered and "$proxy_add_x_forwarded_for" in rendered  # nginx's own variables kept
    server = tmp_path / "default.conf"
    server.write_text(rendered)
    config = tmp_path / "nginx.conf"
    config.write_text(main_config(server, tmp_path))
    command = [str(nginx_binary()), "-t", "-p", str(tmp_path), "-c", str(config)]
    check = subprocess.run([*command, "-e", str(tmp_path / "error.log")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_page_is_served_with_security_headers_and_gzip(proxy: str) -> None:
    with httpx.Client(base_url=proxy) as client:
        page = client.get("/")
        assert page.status_code == 200 and 'src="app.js"' in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-frame-options"] == "DENY"
        script = client.get("/app.js", headers={"Accept-Encoding": "gzip"})
        assert script.headers["content-encoding"] == "gzip"
        assert "EventSource" in script.text
        assert client.get("/nope.html").status_code == 404


def test_api_is_proxied_with_one_copy_of_each_header(proxy: str) -> None:
    with httpx.Client(base_url=proxy) as client:
        health = client.get("/api/health")
        assert health.json() == {"status": "ok"}
        assert len(health.headers.get_list("content-security-policy")) == 1
        missing = client.get("/api/tryon/unknownJob1")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        # /metrics stays internal: nginx only forwards /api/.
        assert client.get("/metrics").status_code == 404


def test_events_pass_through_unbuffered(
    proxy: str, gateway: RunningGateway, person_png: bytes, garment_png: bytes
) -> None:
    result = person_png
    with httpx.Client(base_url=proxy, timeout=30) as client:
        job = client.post("/api/tryon", files=photos(person_png, garment_png)).json()
        worker = threading.Thread(target=work, args=(gateway, job["id"], result, 0.3))
        arrivals: list[tuple[float, str]] = []
        with client.stream("GET", job["events_url"]) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert "content-encoding" not in stream.headers
            worker.start()
            for _, data in read_events(stream):
                arrivals.append((time.monotonic(), json.loads(data)["status"]))
        worker.join()
    assert arrivals[0][1] == "queued" and arrivals[-1][1] == "succeeded"
    # Buffered, everything would arrive at the end; unbuffered, the stream spans the worker's ~2 s.
    assert arrivals[-1][0] - arrivals[1][0] > 1.0
    assert len(arrivals) >= 4


def test_body_limit_and_gateway_down_are_problem_documents(gateway: RunningGateway) -> None:
    with running_nginx(gateway.url.removeprefix("http://"), max_upload_mb=1) as nginx:
        reply = httpx.post(f"{nginx.url}/api/tryon", content=b"x" * (4 * 1024 * 1024), timeout=30)
        assert reply.status_code == 413
        assert reply.headers["content-type"] == "application/problem+json"
        assert json.loads(reply.text)["status"] == 413
    with running_nginx(f"127.0.0.1:{free_port()}") as nginx:  # nothing listens there
        reply = httpx.get(f"{nginx.url}/api/health", timeout=30)
        assert reply.status_code == 503
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.headers["retry-after"] == "5"
