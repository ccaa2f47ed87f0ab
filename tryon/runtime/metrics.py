"""Prometheus metrics of a stage server, in a registry of its own (several servers can share a process)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

#: Buckets from 5 ms (a warp) to 2 min (SDXL on a small GPU).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


@dataclass
class StageMetrics:
    stage: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        labels = ["stage", "method"]
        self.requests = Counter(
            "tryon_grpc_requests",
            "gRPC calls handled, by final status code.",
            [*labels, "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tryon_grpc_request_duration_seconds",
            "Wall time of gRPC calls, queueing included.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "tryon_grpc_in_flight", "Calls admitted and not finished (running or queued).", labels,
            registry=self.registry,
        )  # fmt: skip
        self.queued = Gauge(
            "tryon_grpc_queued", "Admitted calls waiting for a free execution slot.", ["stage"],
            registry=self.registry,
        )  # fmt: skip
        self.ready = Gauge(
            "tryon_stage_ready",
            "1 once the backend is loaded and warmed up.",
            ["stage"],
            registry=self.registry,
        )

    def serve_http(self, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
        """Start the ``/metrics`` listener; port 0 picks a free one (``server.server_port``)."""
        return start_http_server(port, addr=host, registry=self.registry)
