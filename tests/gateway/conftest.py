"""Gateway test fixtures: the app on a real Uvicorn server (a thread), a real Redis, local storage."""

from __future__ import annotations

import contextlib
import io
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from PIL import Image

from gateway.config import GatewaySettings
from gateway.context import Gateway
from gateway.main import create_app
from tests.imagegen import draw_garment, person_photo
from tryon.local_services import free_port


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` on Uvicorn (uvloop, httptools: what production runs) in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test gateway did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@dataclass
class RunningGateway:
    url: str
    settings: GatewaySettings
    context: Gateway

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(**{"base_url": self.url, "timeout": 30, **kwargs})  # type: ignore[arg-type]


def gateway_settings(tmp: Path, redis_url: str, **overrides: object) -> GatewaySettings:
    """Settings for one test app: its own queue name (so queue depths don't mix), no limits unless asked."""
    values: dict[str, object] = {
        "redis_url": redis_url,
        "storage_dir": tmp / "storage",
        "signing_key": "test-signing-key",
        "queue_name": f"tryon-test-{uuid.uuid4().hex[:8]}",
        "rate_limit_requests": 0,
        "rate_limit_submissions": 0,
        "max_queue_depth": 0,
        "webhook_allow_private": True,
        "webhook_secret": "test-webhook-secret",
    }
    values.update(overrides)
    return GatewaySettings(**values)  # type: ignore[arg-type]


@contextmanager
def running_gateway(tmp: Path, redis_url: str, **overrides: object) -> Iterator[RunningGateway]:
    settings = gateway_settings(tmp, redis_url, **overrides)
    context = Gateway(settings)
    with serve(create_app(settings, gateway=context)) as url:
        yield RunningGateway(url, settings, context)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[RunningGateway]:
    """The gateway with the default test settings, shared by a module's tests."""
    with running_gateway(tmp_path_factory.mktemp("gateway"), redis_url) as running:
        yield running


def encode(image: object, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)  # type: ignore[arg-type]
    pil.save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def person_png() -> bytes:
    return encode(person_photo(512))


@pytest.fixture(scope="session")
def garment_png() -> bytes:
    return encode(draw_garment(size=(384, 512)))


def photos(person: bytes, garment: bytes) -> dict[str, tuple[str, bytes, str]]:
    return {"person": ("person.png", person, "image/png"), "garment": ("garment.png", garment, "image/png")}


# The end-to-end fixtures (full_stack: lite services + a worker + a gateway), defined once for the directory
# so every module shares one stack; absent where the orchestrator is not (its tests' helpers build it), and
# then the e2e modules skip themselves.
with contextlib.suppress(ImportError):
    from tests.gateway.stack import expected_result, full_stack, lite_services  # noqa: F401
