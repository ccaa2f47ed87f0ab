"""JobRunner without processes: how failures of the record store itself are classified."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from orchestrator.runner import JobRunner, TransientJobError
from orchestrator.settings import WorkerSettings


class _StoreDown:
    """A JobStore whose Redis connection is gone (every call raises what redis-py raises then)."""

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        return call


def test_a_record_store_outage_is_retried_not_raised_as_a_task_failure() -> None:
    runner = JobRunner(WorkerSettings(), _StoreDown(), storage=None, metrics=None)  # type: ignore[arg-type]
    with pytest.raises(TransientJobError) as raised:
        runner.run("0123456789abcdef")
    assert raised.value.code == "state_unavailable"
    assert "Connection refused" in str(raised.value)
