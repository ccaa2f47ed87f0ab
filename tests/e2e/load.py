"""The load and fault driver shared by the e2e suite (tests/e2e/test_load_faults.py) and
bench/bench_e2e.py: N jobs submitted with bounded concurrency, each followed to its final state, optionally
while a fault schedule kills and restarts parts of the stack."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e import api
from tryon.localstack import LocalStack


@dataclass
class JobOutcome:
    key: str  # the Idempotency-Key of the logical submission
    job_id: str
    submitted_at: float
    finished_at: float
    document: dict[str, Any]
    submit_retries: int
    submit_answers: list[int]

    @property
    def latency_s(self) -> float:
        return self.finished_at - self.submitted_at

    @property
    def status(self) -> str:
        return str(self.document["status"])


@dataclass
class LoadReport:
    jobs: int
    concurrency: int
    wall_s: float
    outcomes: list[JobOutcome]
    faults: list[tuple[float, str]] = field(default_factory=list)

    def refusals(self) -> dict[str, int]:
        """Answers to submissions other than the final 202, by status (0: no connection)."""
        return dict(Counter(str(code) for o in self.outcomes for code in o.submit_answers[:-1]))

    def not_final(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if o.status not in api.FINAL]

    def by_status(self) -> dict[str, int]:
        return dict(Counter(o.status for o in self.outcomes))

    def errors(self) -> dict[str, int]:
        return dict(
            Counter(
                str((o.document.get("error") or {}).get("code"))
                for o in self.outcomes
                if o.status != "succeeded"
            )
        )

    def latencies(self, only_succeeded: bool = True) -> list[float]:
        return sorted(o.latency_s for o in self.outcomes if o.status == "succeeded" or not only_succeeded)

    def percentile(self, q: float) -> float:
        values = self.latencies()
        if not values:
            return float("nan")
        return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]

    @property
    def jobs_per_min(self) -> float:
        return len(self.outcomes) / self.wall_s * 60

    def summary(self) -> str:
        lines = [
            f"jobs: {self.jobs} submitted, concurrency {self.concurrency}, wall {self.wall_s:.1f} s, "
            f"{self.jobs_per_min:.1f} jobs/min",
            f"final states: {self.by_status()}",
            f"latency of succeeded jobs (submit -> final): p50 {self.percentile(0.5):.2f} s, "
            f"p95 {self.percentile(0.95):.2f} s, max {max(self.latencies(), default=float('nan')):.2f} s",
            f"submission answers before the 202: {self.refusals() or 'none'}",
        ]
        if self.errors():
            lines.append(f"failed/cancelled by error code: {self.errors()}")
        lines += [f"fault at {at:6.1f} s: {what}" for at, what in self.faults]
        return "\n".join(lines)


def run_one(client: httpx.Client, key: str, timeout_s: float) -> JobOutcome:
    submitted = api.submit(client, idempotency_key=key, retry_for_s=timeout_s)
    document = api.wait_final(client, submitted.job_id, timeout_s)
    return JobOutcome(
        key, submitted.job_id, submitted.submitted_at, time.monotonic(), document, submitted.retries,
        submitted.answers,
    )  # fmt: skip


def run_load(
    base_url: str,
    jobs: int,
    concurrency: int,
    *,
    timeout_s: float = 300,
    faults: Callable[[Callable[[str], None]], None] | None = None,
) -> LoadReport:
    """Submit ``jobs`` jobs, at most ``concurrency`` in flight; ``faults`` runs in a thread meanwhile and
    notes what it did through the callback it is given."""
    keys = [f"load-{uuid.uuid4()}" for _ in range(jobs)]
    fault_log: list[tuple[float, str]] = []
    started = time.monotonic()

    def note(what: str) -> None:
        fault_log.append((time.monotonic() - started, what))

    fault_thread = None
    if faults is not None:
        fault_thread = threading.Thread(target=faults, args=(note,), name="faults", daemon=True)
        fault_thread.start()
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    with (
        httpx.Client(base_url=base_url, timeout=30, limits=limits) as client,
        ThreadPoolExecutor(concurrency, thread_name_prefix="load") as pool,
    ):
        outcomes = list(pool.map(lambda key: run_one(client, key, timeout_s), keys))
    wall = time.monotonic() - started
    if fault_thread is not None:
        fault_thread.join()
    return LoadReport(jobs, concurrency, wall, outcomes, fault_log)


# --- faults -----------------------------------------------------------------------------------------------


def kill_and_restart(stack: LocalStack, name: str, down_s: float = 1.0) -> None:
    """kill -9 the process group (a crash), then start it again after ``down_s``."""
    stack.kill(name)
    time.sleep(down_s)
    stack.start(name)


def restart_redis(stack: LocalStack) -> None:
    """Stop Redis (SIGTERM: it writes the append-only file and exits), start it again on the same data."""
    stack.stop("redis")
    stack.start("redis")
    stack.wait_redis(deadline=time.monotonic() + 30)


@contextlib.contextmanager
def storage_unavailable(stack: LocalStack) -> Iterator[None]:
    """The local storage directory goes away (as an unmounted volume): a plain file stands in its place, so
    every read and write fails (permission bits would not stop root). Restored afterwards, unchanged."""
    directory = Path(stack.config.run_dir) / "storage"
    aside = directory.with_name("storage.unavailable")
    os.rename(directory, aside)
    directory.write_text("storage is unavailable (fault injected by the e2e suite)\n")
    try:
        yield
    finally:
        directory.unlink()
        os.rename(aside, directory)


def after(delay_s: float, what: str, action: Callable[[], None]) -> Callable[[Callable[[str], None]], None]:
    """A fault schedule of one fault: ``action`` ``delay_s`` into the load, noted before and after."""

    def run(note: Callable[[str], None]) -> None:
        time.sleep(delay_s)
        note(what)
        action()
        note(f"{what}: done")

    return run


def fault_schedule(
    stack: LocalStack, stage: str = "warp", storage_outage_s: float = 10
) -> Callable[[Callable[[str], None]], None]:
    """The four faults one after another, a few seconds apart, during one load (bench_e2e --faults)."""

    def outage() -> None:
        with storage_unavailable(stack):
            time.sleep(storage_outage_s)

    steps = [
        after(4, f"kill -9 the {stage} service, restart it", lambda: kill_and_restart(stack, stage)),
        after(
            6, "kill -9 the worker (and its pool), restart it", lambda: kill_and_restart(stack, "worker", 2)
        ),
        after(8, "restart redis", lambda: restart_redis(stack)),
        after(6, f"storage unavailable for {storage_outage_s:.0f} s", outage),
    ]

    def run(note: Callable[[str], None]) -> None:
        for step in steps:
            step(note)

    return run
