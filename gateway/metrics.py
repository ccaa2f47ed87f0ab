"""Prometheus metrics of the gateway, on a registry of its own (one per app, so tests can build many apps)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tryon_gateway_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tryon_gateway_request_seconds", "Time to answer (headers sent; event streams excluded)",
            ["method", "route"], buckets=_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.submitted = Counter(
            "tryon_gateway_jobs_submitted", "Jobs created and queued", registry=self.registry
        )
        self.refused = Counter(
            "tryon_gateway_submissions_refused",
            "Submissions refused, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.deleted = Counter(
            "tryon_gateway_jobs_deleted", "Jobs deleted through the API", registry=self.registry
        )
        self.event_streams = Gauge(
            "tryon_gateway_event_streams", "Server-sent event streams open now", registry=self.registry
        )
        self.queue_depth = Gauge(
            "tryon_gateway_queue_depth",
            "Jobs waiting in the broker (read at scrape time)",
            registry=self.registry,
        )

    def track_queue_depth(self, read: Callable[[], int]) -> None:
        def safe() -> float:
            try:
                return float(read())
            except Exception:
                return float("nan")

        self.queue_depth.set_function(safe)


class MetricsMiddleware:
    """Counts every answer by route template (not raw path: ids would explode the label set)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        recorded = False

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            route = scope.get("route")
            template = getattr(route, "path", None) or ("static" if status < 400 else "unmatched")
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                await send(message)
                record()
                return
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            record()
