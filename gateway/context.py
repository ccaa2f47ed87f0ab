"""What the routes share: settings, the job store, storage, the queue, an asyncio Redis client, metrics.

One :class:`Gateway` per app, built in the lifespan (:func:`gateway.main.create_app`) and reached by the
routes through :func:`gateway.deps.get_gateway`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import redis.asyncio
from starlette.concurrency import run_in_threadpool

from gateway.config import GatewaySettings
from gateway.metrics import GatewayMetrics
from gateway.schemas import CheckResult
from tryon.jobs.document import API_PREFIX
from tryon.jobs.queue import JobQueue
from tryon.jobs.state import JobStore
from tryon.jobs.storage import LocalStorage, S3Storage, Storage, build_storage

__all__ = ["API_PREFIX", "Gateway"]

CHECK_TIMEOUT_S = 3.0


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        *,
        store: JobStore | None = None,
        storage: Storage | None = None,
        queue: JobQueue | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or JobStore.from_url(settings.redis_url, settings.job_ttl_s)
        self.storage: Storage = storage or build_storage(settings)
        self.queue = queue or JobQueue(settings)
        self.redis = redis.asyncio.Redis.from_url(settings.redis_url)
        self.metrics = GatewayMetrics()
        self.metrics.track_queue_depth(self.queue.depth)
        self.background: set[asyncio.Task[None]] = set()

    @property
    def files_route(self) -> str:
        """The path of the local storage's file route (files_base_url may be absolute)."""
        return urlsplit(self.settings.files_base_url).path.rstrip("/") or "/api/files"

    def spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def aclose(self) -> None:
        for task in list(self.background):
            task.cancel()
        await self.redis.aclose()
        await self.store.aclose()
        await run_in_threadpool(self.store.close)
        await run_in_threadpool(self.queue.close)

    # --- readiness --------------------------------------------------------------------------------------

    async def check_redis(self) -> str:
        await self.redis.ping()
        return "PING answered"

    async def check_broker(self) -> str:
        if self.settings.effective_broker_url == self.settings.redis_url:
            await self.redis.ping()
            return "same Redis as the job records"

        def connect() -> str:
            with self.queue.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_S)
            return "connected"

        return await run_in_threadpool(connect)

    async def check_storage(self) -> str:
        storage = self.storage
        if isinstance(storage, LocalStorage):
            if not storage.root.is_dir() or not os.access(storage.root, os.W_OK | os.X_OK):
                raise OSError(f"{storage.root} is not a writable directory")
            return f"writable directory {storage.root}"
        if isinstance(storage, S3Storage):
            await run_in_threadpool(lambda: storage.client.head_bucket(Bucket=storage.bucket))
            return f"bucket {storage.bucket} reachable"
        await run_in_threadpool(storage.exists, "readiness-probe/none")
        return "answers"

    async def readiness(self) -> dict[str, CheckResult]:
        checks: dict[str, Callable[[], Awaitable[str]]] = {
            "redis": self.check_redis,
            "broker": self.check_broker,
            "storage": self.check_storage,
        }

        async def run(check: Callable[[], Awaitable[str]]) -> CheckResult:
            start = time.perf_counter()
            try:
                detail = await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
                ok = True
            except Exception as error:  # any failure means "not ready", with its reason
                detail, ok = f"{type(error).__name__}: {error}".removesuffix(": "), False
            return CheckResult(ok=ok, detail=detail, seconds=round(time.perf_counter() - start, 4))

        results = await asyncio.gather(*(run(check) for check in checks.values()))
        return dict(zip(checks, results, strict=True))
