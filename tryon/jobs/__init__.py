"""The job layer shared by the orchestrator (worker) and the gateway, so neither imports the other.

* :mod:`tryon.jobs.state` — the job record in Redis: atomic transitions, progress, TTL, change feed.
* :mod:`tryon.jobs.storage` — inputs and results: S3 (boto3) or a local directory, signed URLs.
* :mod:`tryon.jobs.queue` — enqueue / revoke the Celery task by name, queue depth.
* :mod:`tryon.jobs.webhooks` — sign and deliver a job's final document.
* :mod:`tryon.jobs.settings` — :class:`JobSettings`, the ``TRYON_*`` fields both processes share.
"""
