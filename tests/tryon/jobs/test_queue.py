"""Enqueueing by task name into a real Redis broker, and the queue depth."""

from __future__ import annotations

import base64
import json

import redis

from tryon.jobs.queue import JobQueue, broker_config, queue_depth
from tryon.jobs.settings import TASK_NAME, JobSettings


def test_enqueue_by_name_and_depth(redis_url: str) -> None:
    settings = JobSettings(redis_url=redis_url, queue_name="test-enqueue", broker_visibility_timeout_s=9000)
    queue = JobQueue(settings)
    client = redis.Redis.from_url(redis_url)
    try:
        assert queue.depth() == 0
        queue.enqueue("job-a")
        queue.enqueue("job-b")
        assert queue.depth() == 2 == queue_depth(client, "test-enqueue")
        message = json.loads(client.lindex("test-enqueue", -1))  # kombu LPUSHes, workers BRPOP
        assert message["headers"]["task"] == TASK_NAME and message["headers"]["id"] == "job-a"
        assert json.loads(base64.b64decode(message["body"]))[0] == ["job-a"]
        queue.revoke("job-b")  # a broadcast; no worker listens here, it must not fail
        assert broker_config(settings)["broker_transport_options"]["visibility_timeout"] == 9000
    finally:
        client.delete("test-enqueue")
        client.close()
        queue.close()
