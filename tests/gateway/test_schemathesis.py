"""schemathesis against the OpenAPI document: generated requests (valid and not) never give a 5xx, and every
answer matches the documented status codes, content types and schemas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from tests.gateway.conftest import RunningGateway, running_gateway


@pytest.fixture(scope="module")
def fuzzed_gateway(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[RunningGateway]:
    # Webhook targets must be public (the default): generated URLs are never fetched, only checked.
    with running_gateway(tmp_path_factory.mktemp("fuzz"), redis_url, webhook_allow_private=False) as running:
        yield running


# Every operation but the event stream (an endless response; tests/gateway/test_events.py covers it).
SKIPPED = {("GET", "/api/tryon/{job_id}/events")}


def fuzz(operation: Any, mode: GenerationMode, base_url: str) -> None:
    # A schema cannot say "a photo at least 64 px on its short side": for the upload, a schema-valid request
    # may rightly be refused (422). Every other check applies.
    excluded = [checks.positive_data_acceptance] if operation.path == "/api/tryon" else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        case.call_and_validate(base_url=base_url, timeout=30, excluded_checks=excluded)

    check()


@pytest.mark.parametrize(
    "mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda mode: mode.value
)
def test_api_conforms_to_its_openapi_document(fuzzed_gateway: RunningGateway, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_gateway.url}/api/openapi.json")
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        name = f"{operation.method.upper()} {operation.path}"
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        try:
            fuzz(operation, mode, fuzzed_gateway.url)
        except Unsatisfiable:  # nothing invalid to send (no parameters, no body): nothing to test
            assert mode == GenerationMode.NEGATIVE, name
            continue
        tested.append(name)
    assert "POST /api/tryon" in tested and len(tested) >= (10 if mode == GenerationMode.POSITIVE else 4), (
        tested
    )
