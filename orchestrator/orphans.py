"""Re-queue jobs whose record waits with no task behind it.

A job is a record (tryon.jobs.state) plus a task message in the broker. Every path that could separate
them is closed where it happens (the gateway deletes a record it could not queue, the worker retries a task
whose final state it could not write, late acknowledgement re-delivers a dead worker's task), but each of
those fixes itself relies on Redis coming back in time or on a process staying alive. This sweep is the
backstop: a record not final, unchanged for longer than a job could wait or run honestly, and with no
message for it anywhere in the broker (waiting in the queue or held unacknowledged by a worker), gets its
task published again. The task is idempotent (a final record is left alone), so a rare double publish
costs a redundant attempt, never a wrong result.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

import redis

from tryon.jobs.queue import JobQueue, queue_list_names
from tryon.jobs.state import KEY_PREFIX, JobRecord, JobStatus, JobStore

log = logging.getLogger("orchestrator")

#: kombu's Redis transport keeps the messages workers hold (unacknowledged) in this hash.
UNACKED_KEY = "unacked"
#: One replica re-queues a job; the others see this key (it expires with the staleness window).
REQUEUE_LOCK_PREFIX = "tryon:requeue:"


def broker_messages(broker: redis.Redis, queue_name: str) -> bytes:
    """Every message the broker holds for ``queue_name`` (waiting or unacknowledged), in one snapshot."""
    with broker.pipeline(transaction=True) as pipe:
        for name in queue_list_names(queue_name):
            pipe.lrange(name, 0, -1)
        pipe.hvals(UNACKED_KEY)
        replies = pipe.execute()
    return b"\n".join(message for reply in replies for message in reply)


def _unfinished(store: JobStore) -> Iterable[JobRecord]:
    for key in store.redis.scan_iter(f"{KEY_PREFIX}*", count=500):
        job_id = key.decode()[len(KEY_PREFIX) :]
        record = store.get(job_id)
        if record is not None and not record.final:
            yield record


def requeue_orphans(
    store: JobStore,
    broker: redis.Redis,
    queue: JobQueue,
    *,
    queued_after_s: float,
    running_after_s: float,
) -> list[str]:
    """Publish the task of every stale unfinished job the broker holds no message for; their ids."""
    now = datetime.now(UTC)

    def stale(record: JobRecord) -> bool:
        limit = queued_after_s if record.status == JobStatus.QUEUED else running_after_s
        return (now - record.updated_at).total_seconds() >= limit

    candidates = [record for record in _unfinished(store) if stale(record)]
    if not candidates:
        return []
    held = broker_messages(broker, queue.settings.queue_name)
    requeued = []
    for record in candidates:
        if record.id.encode() in held:
            continue  # waiting behind others, or a worker runs it / holds it for a delayed retry
        current = store.get(record.id)
        if current is None or current.final or current.updated_at != record.updated_at:
            continue  # it moved since the scan: not an orphan
        lock_s = max(1, int(min(queued_after_s, running_after_s)))
        if not broker.set(REQUEUE_LOCK_PREFIX + record.id, b"1", nx=True, ex=lock_s):
            continue  # another worker replica re-queued it just now
        queue.enqueue(record.id)
        requeued.append(record.id)
        log.warning(
            "job %s: %s since %s with no task in the broker; re-queued",
            record.id, record.status.value, record.updated_at.isoformat(),
        )  # fmt: skip
    return requeued


def start_orphan_sweeper(
    store: JobStore,
    broker: redis.Redis,
    queue: JobQueue,
    *,
    interval_s: float,
    queued_after_s: float,
    running_after_s: float,
) -> threading.Event:
    """Run :func:`requeue_orphans` every ``interval_s`` in a daemon thread; set the event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                requeue_orphans(
                    store, broker, queue, queued_after_s=queued_after_s, running_after_s=running_after_s
                )
            except redis.RedisError as error:
                log.warning("orphan sweep skipped: %s", error)
            except Exception:
                log.exception("orphan sweep failed")

    threading.Thread(target=loop, name="tryon-orphan-sweeper", daemon=True).start()
    return stop
