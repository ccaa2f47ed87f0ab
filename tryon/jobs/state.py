"""The job record in Redis: one hash per job, atomic transitions, progress, TTL and a change feed.

Layout: ``tryon:job:<id>`` is a Redis hash whose fields are the :class:`JobRecord` fields, each value
JSON-encoded (per-stage timings are fields ``timing:<stage>``), plus ``version``, a counter every write
increments. Every write is one Lua script, so it is atomic against every other writer:

* :meth:`JobStore.transition` changes the status only if the current one is in the allowed set, and a
  final status (succeeded / failed / cancelled) has no way out: a late or duplicated worker can never move
  a finished or cancelled job back to running.
* :meth:`JobStore.update_progress` writes only while the job is running; progress never goes down.

Each write publishes the new version on ``tryon:job:<id>:events``; :meth:`JobStore.subscribe` (threads)
and :meth:`JobStore.asubscribe` (asyncio, for the gateway's server-sent events) turn those into a stream
of records. The record expires ``ttl_s`` after creation, and again ``ttl_s`` after it reaches a final
state.
"""

from __future__ import annotations

import asyncio
import enum
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio
from pydantic import BaseModel, Field

KEY_PREFIX = "tryon:job:"
#: Unguessable ids: 128 random bits, URL-safe.
ID_BYTES = 16


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


class JobRecord(BaseModel):
    id: str
    status: JobStatus = JobStatus.QUEUED
    stage: str | None = None  # the stage that started last (segmentation and pose run side by side)
    progress: int = Field(default=0, ge=0, le=100)
    timings: dict[str, float] = Field(default_factory=dict)  # seconds per finished stage, and "total"
    category: str = "upper_body"
    options: dict[str, Any] = Field(default_factory=dict)
    input_keys: dict[str, str] = Field(default_factory=dict)  # "person" / "garment" -> storage key
    result_key: str | None = None
    error_code: str | None = None  # machine-readable: "invalid_input", "stage_unavailable", ...
    error_message: str | None = None  # for the user
    webhook_url: str | None = None
    created_at: datetime
    updated_at: datetime
    attempts: int = 0  # how many times a worker started the job (redeliveries and retries included)
    version: int = 0  # increments with every write; SSE event ids

    @property
    def final(self) -> bool:
        return self.status.final


class JobNotFound(KeyError):
    """No record with this id (never created, deleted, or expired)."""


def new_job_id() -> str:
    return secrets.token_urlsafe(ID_BYTES)


def _key(job_id: str) -> str:
    return KEY_PREFIX + job_id


def channel(job_id: str) -> str:
    return f"{KEY_PREFIX}{job_id}:events"


def _encode(value: Any) -> str:
    if isinstance(value, datetime):
        return json.dumps(value.timestamp())
    if isinstance(value, enum.Enum):
        return json.dumps(value.value)
    return json.dumps(value, separators=(",", ":"))


def _decode(job_id: str, raw: Mapping[bytes | str, bytes | str]) -> JobRecord | None:
    if not raw:
        return None
    fields: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for name, value in raw.items():
        name = name.decode() if isinstance(name, bytes) else name
        decoded = json.loads(value)
        if name.startswith("timing:"):
            timings[name.removeprefix("timing:")] = float(decoded)
        else:
            fields[name] = decoded
    if "status" not in fields:  # a progress write raced a delete: not a record
        return None
    fields["timings"] = timings
    fields["id"] = job_id
    return JobRecord.model_validate(fields)


def _pairs(fields: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for name, value in fields.items():
        out += [name, _encode(value)]
    return out


# KEYS[1] record, KEYS[2] channel. ARGV[1] allowed current statuses (space separated), ARGV[2] TTL to set
# (0: keep), ARGV[3] "1" to count an attempt, ARGV[4..] field/value pairs (JSON values).
# Returns {version, HGETALL...} on success, {0} when missing, {-1, current status} when refused.
_TRANSITION = """
local raw = redis.call('HGET', KEYS[1], 'status')
if not raw then return {0} end
local current = string.sub(raw, 2, -2)
local allowed = false
for status in string.gmatch(ARGV[1], '%S+') do
  if status == current then allowed = true end
end
if not allowed then return {-1, current} end
if #ARGV > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4)) end
if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[1], 'attempts', 1) end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
redis.call('PUBLISH', KEYS[2], version)
local result = redis.call('HGETALL', KEYS[1])
table.insert(result, 1, version)
return result
"""

# KEYS[1] record, KEYS[2] channel. ARGV[1] updated_at (JSON), ARGV[2] progress (-1: unchanged),
# ARGV[3] stage (JSON, "" unchanged), ARGV[4..] timing field/value pairs. Only while running.
_PROGRESS = """
local raw = redis.call('HGET', KEYS[1], 'status')
if raw ~= '"running"' then return {-1, raw or ''} end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[1])
local progress = tonumber(ARGV[2])
if progress >= 0 then
  local old = tonumber(redis.call('HGET', KEYS[1], 'progress') or '0')
  if progress > old then redis.call('HSET', KEYS[1], 'progress', progress) end
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'stage', ARGV[3]) end
if #ARGV > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4)) end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('PUBLISH', KEYS[2], version)
local result = redis.call('HGETALL', KEYS[1])
table.insert(result, 1, version)
return result
"""

# KEYS[1] record, KEYS[2] channel. ARGV[1] TTL, ARGV[2..] field/value pairs. 0 if the id exists.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('PUBLISH', KEYS[2], 1)
return 1
"""

#: Allowed current statuses for each target status. Final statuses are never a source.
ALLOWED_FROM: dict[JobStatus, frozenset[JobStatus]] = {
    # queued again: a retry after a transient failure waits in the broker with a countdown.
    JobStatus.QUEUED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    # running -> running: a redelivered job (its worker died) starts again.
    JobStatus.RUNNING: ACTIVE_STATUSES,
    JobStatus.SUCCEEDED: frozenset({JobStatus.RUNNING}),
    JobStatus.FAILED: ACTIVE_STATUSES,
    JobStatus.CANCELLED: ACTIVE_STATUSES,
}


class JobStore:
    """Job records in one Redis database. Thread-safe (redis-py clients pool their connections)."""

    def __init__(self, redis_client: redis.Redis, ttl_s: int = 86_400) -> None:
        self.redis = redis_client
        self.ttl_s = int(ttl_s)
        self._create = redis_client.register_script(_CREATE)
        self._transition = redis_client.register_script(_TRANSITION)
        self._progress = redis_client.register_script(_PROGRESS)
        self._async_redis: redis.asyncio.Redis | None = None

    @classmethod
    def from_url(cls, url: str, ttl_s: int = 86_400) -> JobStore:
        return cls(redis.Redis.from_url(url, health_check_interval=30), ttl_s)

    def close(self) -> None:
        self.redis.close()

    # --- writes ---------------------------------------------------------------------------------------

    def create(
        self,
        *,
        job_id: str | None = None,
        category: str = "upper_body",
        options: Mapping[str, Any] | None = None,
        input_keys: Mapping[str, str] | None = None,
        webhook_url: str | None = None,
    ) -> JobRecord:
        """A new queued record (a fresh unguessable id unless one is given). Refuses an existing id."""
        now = datetime.now(UTC)
        record = JobRecord(
            id=job_id or new_job_id(),
            category=category,
            options=dict(options or {}),
            input_keys=dict(input_keys or {}),
            webhook_url=webhook_url,
            created_at=now,
            updated_at=now,
            version=1,
        )
        fields = record.model_dump(exclude={"id", "timings"})
        if not self._create(keys=[_key(record.id), channel(record.id)], args=[self.ttl_s, *_pairs(fields)]):
            raise ValueError(f"job {record.id} already exists")
        return record

    def transition(
        self,
        job_id: str,
        status: JobStatus,
        *,
        count_attempt: bool = False,
        **fields: Any,
    ) -> JobRecord | None:
        """Move the job to ``status`` (with ``fields`` set) if its current status allows it.

        Returns the new record, or None when the move is refused (the job is already final, or e.g.
        succeeded was asked of a queued job). Raises :class:`JobNotFound` when there is no record.
        ``count_attempt`` increments ``attempts`` (a worker starting the job).
        """
        unknown = set(fields) - set(JobRecord.model_fields)
        if unknown or {"id", "version", "attempts", "timings"} & set(fields):
            raise ValueError(f"cannot set {sorted(unknown or fields)} through transition()")
        fields = {**fields, "status": status, "updated_at": datetime.now(UTC)}
        allowed = " ".join(sorted(ALLOWED_FROM[status]))
        ttl = self.ttl_s if status.final else 0
        reply = self._transition(
            keys=[_key(job_id), channel(job_id)],
            args=[allowed, ttl, "1" if count_attempt else "0", *_pairs(fields)],
        )
        return self._reply(job_id, reply)

    def update_progress(
        self,
        job_id: str,
        *,
        stage: str | None = None,
        progress: int | None = None,
        timings: Mapping[str, float] | None = None,
    ) -> JobRecord | None:
        """Record progress of a running job; None (nothing written) when it is not running."""
        pairs: list[str] = []
        for name, seconds in (timings or {}).items():
            pairs += [f"timing:{name}", _encode(round(float(seconds), 4))]
        reply = self._progress(
            keys=[_key(job_id), channel(job_id)],
            args=[
                _encode(datetime.now(UTC)),
                -1 if progress is None else max(0, min(100, int(progress))),
                "" if stage is None else _encode(stage),
                *pairs,
            ],
        )
        if int(reply[0]) == -1:
            return None
        return self._reply(job_id, reply)

    def cancel(self, job_id: str) -> JobRecord | None:
        """Cancel a queued or running job. None when it is already final (nothing changes)."""
        return self.transition(
            job_id, JobStatus.CANCELLED, error_code="cancelled", error_message="the job was cancelled"
        )

    def delete(self, job_id: str) -> bool:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(_key(job_id))
            pipe.publish(channel(job_id), 0)
            deleted, _ = pipe.execute()
        return bool(deleted)

    def _reply(self, job_id: str, reply: list[Any]) -> JobRecord | None:
        code = int(reply[0])
        if code == 0:
            raise JobNotFound(job_id)
        if code == -1:
            return None
        values = reply[1:]
        return _decode(job_id, dict(zip(values[0::2], values[1::2], strict=True)))

    # --- reads ----------------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        return _decode(job_id, self.redis.hgetall(_key(job_id)))

    def status(self, job_id: str) -> JobStatus | None:
        """Only the status (one cheap read: workers poll it for cancellation between steps)."""
        raw = self.redis.hget(_key(job_id), "status")
        return None if raw is None else JobStatus(json.loads(raw))

    def ttl(self, job_id: str) -> int:
        """Seconds until the record expires (-2: no record)."""
        return int(self.redis.ttl(_key(job_id)))

    def subscribe(self, job_id: str, *, timeout_s: float | None = None) -> Iterator[JobRecord]:
        """The current record, then each change, until the job is final or its record disappears.

        Subscribes before reading, so no change between the two is missed; consecutive writes may be
        coalesced into one record (each yielded record is the newest at that moment). Stops after
        ``timeout_s`` without a change (None: never).
        """
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(channel(job_id))
        try:
            last = -1
            record = self.get(job_id)
            while record is not None:
                if record.version > last:
                    last = record.version
                    yield record
                if record.final:
                    return
                deadline = None if timeout_s is None else time.monotonic() + timeout_s
                message = None
                while message is None:
                    wait = 1.0 if deadline is None else deadline - time.monotonic()
                    if wait <= 0:
                        return
                    message = pubsub.get_message(timeout=min(wait, 1.0))
                record = self.get(job_id)
        finally:
            pubsub.close()

    async def asubscribe(self, job_id: str, *, timeout_s: float | None = None) -> AsyncIterator[JobRecord]:
        """:meth:`subscribe` for asyncio (the gateway's SSE route): never blocks the event loop."""
        client = self._async_client()
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(channel(job_id))
        try:
            last = -1
            record = _decode(job_id, await client.hgetall(_key(job_id)))
            while record is not None:
                if record.version > last:
                    last = record.version
                    yield record
                if record.final:
                    return
                deadline = None if timeout_s is None else time.monotonic() + timeout_s
                message = None
                while message is None:
                    wait = 1.0 if deadline is None else deadline - time.monotonic()
                    if wait <= 0:
                        return
                    message = await pubsub.get_message(timeout=min(wait, 1.0))
                    if message is None:
                        await asyncio.sleep(0)
                record = _decode(job_id, await client.hgetall(_key(job_id)))
        finally:
            await pubsub.aclose()

    def _async_client(self) -> redis.asyncio.Redis:
        if self._async_redis is None:
            kwargs = dict(self.redis.connection_pool.connection_kwargs)
            connection_class = self.redis.connection_pool.connection_class
            kwargs.pop("health_check_interval", None)
            if issubclass(connection_class, redis.SSLConnection):
                kwargs["connection_class"] = redis.asyncio.SSLConnection
            elif issubclass(connection_class, redis.UnixDomainSocketConnection):
                kwargs["connection_class"] = redis.asyncio.UnixDomainSocketConnection
            self._async_redis = redis.asyncio.Redis(connection_pool=redis.asyncio.ConnectionPool(**kwargs))
        return self._async_redis

    async def aclose(self) -> None:
        if self._async_redis is not None:
            await self._async_redis.aclose()
            self._async_redis = None
