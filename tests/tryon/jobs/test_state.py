"""Job records against a real redis-server: transitions, races, progress, TTL, change feed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from tryon.jobs.state import FINAL_STATUSES, JobNotFound, JobStatus, JobStore


@pytest.fixture
def store(redis_url: str) -> Iterator[JobStore]:
    store = JobStore.from_url(redis_url, ttl_s=3600)
    yield store
    store.close()


def test_create_get_and_ids(store: JobStore) -> None:
    record = store.create(category="dress", options={"seed": 2**63 - 1}, input_keys={"person": "a/p.png"})
    assert len(record.id) >= 22 and record.status is JobStatus.QUEUED
    again = store.get(record.id)
    assert again is not None
    assert again.options == {"seed": 2**63 - 1}  # no float round trip of big ints
    assert again.category == "dress" and again.input_keys == {"person": "a/p.png"}
    assert again.created_at == record.created_at
    assert 3590 < store.ttl(record.id) <= 3600
    assert store.get("nope") is None
    with pytest.raises(ValueError, match="already exists"):
        store.create(job_id=record.id)
    assert len({store.create().id for _ in range(50)}) == 50


def test_lifecycle_and_final_is_final(store: JobStore) -> None:
    job = store.create().id
    assert store.transition(job, JobStatus.SUCCEEDED) is None  # queued cannot succeed
    running = store.transition(job, JobStatus.RUNNING, count_attempt=True, stage="segmentation")
    assert running is not None and running.attempts == 1 and running.stage == "segmentation"
    progressed = store.update_progress(job, stage="inpaint", progress=40, timings={"segmentation": 0.25})
    assert (
        progressed is not None and progressed.progress == 40 and progressed.timings == {"segmentation": 0.25}
    )
    assert store.update_progress(job, progress=10).progress == 40  # never backwards
    done = store.transition(job, JobStatus.SUCCEEDED, progress=100, result_key=f"{job}/result.png")
    assert done is not None and done.final and done.version > progressed.version
    for status in JobStatus:
        assert store.transition(job, status) is None, status
    assert store.update_progress(job, progress=50) is None
    assert store.cancel(job) is None
    assert store.get(job).status is JobStatus.SUCCEEDED
    with pytest.raises(JobNotFound):
        store.transition("missing", JobStatus.RUNNING)
    with pytest.raises(ValueError):
        store.transition(job, JobStatus.RUNNING, version=5)


def test_cancel_queued_and_running(store: JobStore) -> None:
    queued = store.create().id
    assert store.cancel(queued).status is JobStatus.CANCELLED
    assert store.transition(queued, JobStatus.RUNNING) is None  # a worker picking it up later refuses
    running = store.create().id
    store.transition(running, JobStatus.RUNNING)
    cancelled = store.cancel(running)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.error_code == "cancelled"
    assert store.transition(running, JobStatus.SUCCEEDED) is None


def test_concurrent_writers_stay_consistent(store: JobStore, redis_url: str) -> None:
    """Many threads race to finish, cancel, restart and report progress: exactly one final transition wins,
    and nothing moves the job out of it."""
    for _ in range(10):
        job = store.create().id
        store.transition(job, JobStatus.RUNNING)
        barrier = threading.Barrier(12)
        wins: list[JobStatus] = []

        def writer(
            index: int, job: str = job, barrier: threading.Barrier = barrier, wins: list[JobStatus] = wins
        ) -> None:
            own = JobStore.from_url(redis_url)
            barrier.wait()
            for step in range(20):
                target = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.RUNNING][
                    (index + step) % 4
                ]
                if own.transition(job, target) is not None and target in FINAL_STATUSES:
                    wins.append(target)  # list.append is atomic
                own.update_progress(job, progress=step * 5)
            own.close()

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        final = store.get(job)
        assert len(wins) == 1, wins
        assert final.status is wins[0]


def test_records_expire(redis_url: str) -> None:
    store = JobStore.from_url(redis_url, ttl_s=60)
    store.ttl_s = 1  # below the settings' floor, to see the expiry within the test
    job = store.create().id
    store.transition(job, JobStatus.RUNNING)
    assert 0 < store.ttl(job) <= 1
    time.sleep(1.3)
    assert store.get(job) is None and store.ttl(job) == -2
    with pytest.raises(JobNotFound):
        store.transition(job, JobStatus.SUCCEEDED)
    assert store.update_progress(job, progress=5) is None
    assert store.get(job) is None  # a late progress write does not resurrect a partial record
    store.close()


def test_final_transition_restarts_ttl(store: JobStore) -> None:
    job = store.create().id
    store.redis.expire(f"tryon:job:{job}", 100)
    store.transition(job, JobStatus.RUNNING)
    assert store.ttl(job) <= 100
    store.transition(job, JobStatus.FAILED, error_code="x", error_message="y")
    assert store.ttl(job) > 3000


def test_subscribe_sees_changes_until_final(store: JobStore) -> None:
    job = store.create().id
    seen: list[tuple[str, int]] = []
    ready = threading.Event()

    def consume() -> None:
        for record in store.subscribe(job, timeout_s=10):
            seen.append((record.status.value, record.progress))
            ready.set()

    thread = threading.Thread(target=consume)
    thread.start()
    assert ready.wait(5)
    store.transition(job, JobStatus.RUNNING)
    for progress in (10, 20, 30):
        store.update_progress(job, progress=progress)
        time.sleep(0.05)
    store.transition(job, JobStatus.SUCCEEDED, progress=100)
    thread.join(10)
    assert not thread.is_alive()
    assert seen[0] == ("queued", 0) and seen[-1] == ("succeeded", 100)
    assert [p for s, p in seen if s == "running"] == sorted(p for s, p in seen if s == "running")
    assert len(seen) >= 4


def test_subscribe_ends_when_record_deleted_or_missing(store: JobStore) -> None:
    assert list(store.subscribe("missing")) == []
    job = store.create().id
    records = store.subscribe(job, timeout_s=5)
    assert next(records).status is JobStatus.QUEUED
    store.delete(job)
    assert list(records) == []


def test_async_subscribe(store: JobStore) -> None:
    job = store.create().id

    async def scenario() -> list[str]:
        statuses: list[str] = []

        async def consume() -> None:
            async for record in store.asubscribe(job, timeout_s=10):
                statuses.append(record.status.value)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        await asyncio.to_thread(store.transition, job, JobStatus.RUNNING)
        await asyncio.sleep(0.1)
        await asyncio.to_thread(store.cancel, job)
        await asyncio.wait_for(task, 10)
        await store.aclose()
        return statuses

    assert asyncio.run(scenario()) == ["queued", "running", "cancelled"]


def test_subscribe_timeout(store: JobStore) -> None:
    job = store.create().id
    started = time.monotonic()
    assert [r.status for r in store.subscribe(job, timeout_s=0.3)] == [JobStatus.QUEUED]
    assert time.monotonic() - started < 2


def test_redis_down_raises_connection_error() -> None:
    from tryon.local_services import free_port

    store = JobStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(redis.ConnectionError):
        store.create()
