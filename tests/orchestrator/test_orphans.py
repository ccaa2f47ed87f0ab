"""The orphan sweep against a real Redis: which unfinished records get their task published again."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis

from orchestrator.orphans import REQUEUE_LOCK_PREFIX, UNACKED_KEY, requeue_orphans
from orchestrator.settings import WorkerSettings
from tryon.jobs.queue import JobQueue, queue_depth
from tryon.jobs.state import JobStatus, JobStore

Parts = tuple[JobStore, redis.Redis, JobQueue]


@pytest.fixture
def parts(redis_url: str) -> Iterator[Parts]:
    # A database of its own: the sweep scans every record, and other tests' records live in db 0.
    redis_url = redis_url.rsplit("/", 1)[0] + "/7"
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    settings = WorkerSettings(redis_url=redis_url, queue_name=f"orphans-{uuid.uuid4().hex[:8]}")
    store, queue = JobStore.from_url(redis_url), JobQueue(settings)
    yield store, client, queue
    queue.close()
    store.close()
    client.flushdb()
    client.close()


def _sweep(store: JobStore, broker: redis.Redis, queue: JobQueue, after_s: float = 0.0) -> list[str]:
    return requeue_orphans(store, broker, queue, queued_after_s=after_s, running_after_s=after_s)


def test_only_stale_unfinished_records_without_a_message_are_requeued(
    parts: Parts,
) -> None:
    store, broker, queue = parts
    orphan = store.create().id  # the record exists, its publish never happened
    waiting = store.create().id
    queue.enqueue(waiting)  # its message waits in the queue
    held = store.create().id  # a worker holds its message (running it, or waiting out a retry's countdown)
    broker.hset(UNACKED_KEY, "tag-1", json.dumps([{"headers": {"id": held}}, "", queue.settings.queue_name]))
    running_orphan = store.create().id
    store.transition(running_orphan, JobStatus.RUNNING, count_attempt=True)
    done = store.create().id
    store.transition(done, JobStatus.RUNNING, count_attempt=True)
    store.transition(done, JobStatus.SUCCEEDED)
    depth = queue_depth(broker, queue.settings.queue_name)

    assert sorted(_sweep(store, broker, queue)) == sorted([orphan, running_orphan])
    assert queue_depth(broker, queue.settings.queue_name) == depth + 2
    # The next sweep (this replica or another) finds their messages: nothing is published twice.
    assert _sweep(store, broker, queue) == []
    assert queue_depth(broker, queue.settings.queue_name) == depth + 2


def test_a_record_younger_than_the_window_is_left_alone(parts: Parts) -> None:
    store, broker, queue = parts
    store.create()
    assert _sweep(store, broker, queue, after_s=300.0) == []


def test_another_replica_that_just_requeued_the_job_wins(parts: Parts) -> None:
    store, broker, queue = parts
    job_id = store.create().id
    broker.set(REQUEUE_LOCK_PREFIX + job_id, b"1", ex=60)
    assert _sweep(store, broker, queue) == []
