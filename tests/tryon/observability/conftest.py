from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tryon.observability import tracing


@pytest.fixture(scope="session")
def exporter() -> InMemorySpanExporter:
    """This test process's spans, in memory (OpenTelemetry allows one tracer provider per process)."""
    memory = InMemorySpanExporter()
    if not tracing.setup_tracing("tryon-test", exporter=memory):  # pragma: no cover
        pytest.skip("tracing could not be installed")
    return memory
