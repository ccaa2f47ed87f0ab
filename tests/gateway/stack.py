"""The whole stack for the gateway's end-to-end tests: five lite gRPC services, a Celery worker and the
gateway sharing one Redis and one storage directory. Built once per session on the orchestrator's test
helpers (tests/orchestrator/conftest.py); importing this module fails where the orchestrator is absent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.gateway.conftest import RunningGateway, running_gateway
from tests.orchestrator import conftest as worker_tests
from tryon.local_services import RunningService

WEBHOOK_SECRET = "test-webhook-secret"
PERSON_PNG, GARMENT_PNG = worker_tests.PERSON_PNG, worker_tests.GARMENT_PNG
# Fixtures of the orchestrator's tests, re-exported so the modules importing this one can use them.
lite_services = worker_tests.lite_services
expected_result = worker_tests.expected_result


@dataclass
class FullStack:
    gateway: RunningGateway
    worker: Any  # tests.orchestrator.conftest.Worker


@pytest.fixture(scope="session")
def full_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, lite_services: dict[str, RunningService]
) -> Iterator[FullStack]:
    tmp = tmp_path_factory.mktemp("full-stack")
    env = {
        **worker_tests.base_env(redis_url, "gateway-e2e"),
        **worker_tests.service_env(lite_services),
        "TRYON_STORAGE_DIR": str(tmp / "storage"),
        "TRYON_SIGNING_KEY": "e2e-signing-key",
        "TRYON_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TRYON_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    worker = worker_tests.start_worker(env, tmp / "worker.log")
    shared = ("queue_name", "webhook_queue_name", "storage_dir", "signing_key", "webhook_secret")
    settings: dict[str, object] = {name: env[f"TRYON_{name.upper()}"] for name in shared}
    try:
        with running_gateway(tmp, redis_url, webhook_allow_private=True, **settings) as gateway:
            yield FullStack(gateway, worker)
    finally:
        worker.stop()
