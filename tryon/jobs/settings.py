"""Settings the worker and the gateway share (``TRYON_*`` environment variables).

:class:`JobSettings` holds what both processes must agree on: where Redis is, how long a job lives, where
inputs and results are stored and how their URLs are signed. The worker's
:class:`orchestrator.settings.WorkerSettings` and the gateway's settings extend it, so each process still
reads its environment once, into one object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The Celery task that runs one job; the gateway enqueues it by this name, never importing the worker.
TASK_NAME = "tryon.run_job"
#: The task that delivers a finished job's webhook (on its own queue, so slow receivers never hold jobs).
WEBHOOK_TASK_NAME = "tryon.deliver_webhook"


class JobSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRYON_", env_nested_delimiter="__", extra="ignore")

    # --- Redis: job records, and the Celery broker -------------------------------------------------
    redis_url: str = "redis://localhost:6379/0"
    #: Celery broker; empty: the same Redis as the job records.
    broker_url: str = ""
    #: Queue the try-on tasks go to (one Redis list) and the webhook tasks' queue.
    queue_name: str = "tryon"
    webhook_queue_name: str = "tryon.webhooks"
    #: The Redis transport re-delivers a task that has not been acknowledged after this many seconds. Tasks
    #: are acknowledged when they END (acks_late), so this must exceed the longest job including its retries,
    #: or a long job is started a second time while the first is still running. 2 h by default.
    broker_visibility_timeout_s: float = Field(default=7200.0, gt=0)
    #: How often a worker looks for tasks whose visibility timeout passed (their worker died) and puts
    #: them back in the queue. kombu's default is ~100 s; one cheap Redis query per interval.
    broker_restore_interval_s: float = Field(default=60.0, ge=1)

    # --- Job records --------------------------------------------------------------------------------
    #: A record (and its stored files) lives this long after its last change to a final state.
    job_ttl_s: int = Field(default=86_400, ge=60)

    # --- Storage ------------------------------------------------------------------------------------
    storage_backend: Literal["local", "s3"] = "local"
    #: Local backend: the directory (shared by the gateway and the worker on one machine).
    storage_dir: Path = Path("data/jobs")
    #: HMAC key of the local backend's URLs. Empty: a random key kept in ``<storage_dir>/.signing-key``,
    #: which every process sharing the directory reads.
    signing_key: SecretStr = SecretStr("")
    #: Local backend: URL prefix of the gateway's file route (``GET <prefix>/<key>?expires=&signature=``).
    files_base_url: str = "/api/files"
    #: Lifetime of a result URL handed out (presigned S3 GET or signed local URL).
    url_expiry_s: int = Field(default=900, ge=1, le=7 * 86_400)
    #: Local backend: how often the worker deletes expired jobs' files (0: never).
    sweep_interval_s: float = Field(default=600.0, ge=0)

    s3_bucket: str = "tryon"
    #: Prefix of every object key in the bucket (a bucket can be shared with other data).
    s3_prefix: str = "jobs/"
    #: Empty: AWS. MinIO / R2 / others: their endpoint as the worker and gateway reach it.
    s3_endpoint_url: str = ""
    #: Endpoint the BROWSER reaches (e.g. https://files.example.com). SigV4 signs the Host header, so
    #: presigned URLs are signed for this endpoint directly; empty: the same as s3_endpoint_url.
    s3_public_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    #: Path-style addressing (http://host/bucket/key): MinIO and most self-hosted stores need it.
    s3_path_style: bool = False
    #: Empty: boto3's default credential chain (env, profile, instance role / IRSA).
    s3_access_key_id: str = ""
    s3_secret_access_key: SecretStr = SecretStr("")

    # --- Webhooks -----------------------------------------------------------------------------------
    #: HMAC-SHA256 key of the X-Tryon-Signature header; empty: webhooks are sent unsigned.
    webhook_secret: SecretStr = SecretStr("")
    #: Allow webhook URLs that resolve to loopback / private / link-local addresses (tests, one machine).
    webhook_allow_private: bool = False
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_attempts: int = Field(default=5, ge=1, le=20)

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url
