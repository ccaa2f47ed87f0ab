"""Tracing and job attribution for the gateway: ``app.add_middleware(TracingMiddleware)``.

Each HTTP request runs inside a SERVER span (continuing an incoming ``traceparent``, if any); a request
whose path names a job (``/api/tryon/{id}...``) runs as that job, so its log lines carry the job id. The
handler that creates a job sets it itself with ``job_context(job_id)`` before enqueueing, so the publish
span, and through the Celery headers the worker's spans, join the request's trace.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from tryon.observability import tracing
from tryon.observability.context import job_context

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths about one job: /api/tryon/{id}, /api/tryon/{id}/events, /api/jobs/{id}/result, ...
JOB_PATH = re.compile(r"/(?:tryon|jobs)/(?P<job_id>[A-Za-z0-9_-]{6,64})(?:/|$)")


class TracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", ())
        }
        path: str = scope.get("path", "")
        match = JOB_PATH.search(path)
        job_id = match.group("job_id") if match else None
        method = scope.get("method", "GET")
        attributes = {"http.request.method": method, "url.path": path}
        if job_id:
            attributes["tryon.job_id"] = job_id
        status: dict[str, int] = {}

        async def send_with_status(message: Message) -> None:
            if message.get("type") == "http.response.start":
                status["code"] = int(message.get("status", 0))
            await send(message)

        with (
            job_context(job_id),
            tracing.span(
                f"{method} {path}",
                kind=SpanKind.SERVER,
                parent=tracing.extract(headers),
                attributes=attributes,
            ) as current,
        ):
            await self.app(scope, receive, send_with_status)
            if "code" in status:
                current.set_attribute("http.response.status_code", status["code"])
                if status["code"] >= 500:
                    current.set_status(Status(StatusCode.ERROR))
