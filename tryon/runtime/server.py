"""The gRPC server runtime every stage service runs on (written once, used five times).

``StageServer`` wires a stage's servicer to:

* the standard health service: NOT_SERVING until ``backend.setup()`` (load + warm-up) has finished in the
  background, then SERVING; NOT_SERVING again as soon as shutdown begins, so load balancers drain us;
* server reflection, so ``grpcurl list`` and friends work;
* message size limits from settings (a 1024 px PNG is a few MB; the default is 64 MB);
* :class:`~tryon.runtime.interceptor.StageInterceptor` (admission control, errors, logging, metrics);
* a Prometheus ``/metrics`` listener;
* graceful shutdown: on SIGTERM/SIGINT stop accepting calls, let in-flight ones finish within the grace
  period, then exit, at the grace deadline at the latest (work still running is abandoned with the process);
* a failed setup: logged with its traceback, health stays NOT_SERVING, every call (GetInfo included) is
  answered UNAVAILABLE with the reason, and :func:`serve` ends the process with a non-zero status so the
  orchestrator (Kubernetes, Compose) restarts it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from types import FrameType
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tryon import observability
from tryon.runtime.interceptor import AdmissionControl, StageInterceptor
from tryon.runtime.metrics import StageMetrics
from tryon.runtime.servicer import StageServicer
from tryon.settings import StageSettings
from tryon.stages import EXIT_NO_MODEL, EXIT_OK, EXIT_SETUP_FAILED
from tryon.types import ModelUnavailableError, StageBackend

log = logging.getLogger("tryon.runtime")

#: Threads beyond the admitted calls, so health checks, reflection and GetInfo never wait behind work.
_INFRA_THREADS = 4
#: The most frequent keepalive pings accepted from a client (tryon.client pings every 30 s). gRPC's default
#: allows one per 5 minutes without data and answers more with GOAWAY "too_many_pings", dropping the
#: connection, and with it any call in flight.
MIN_CLIENT_PING_INTERVAL_MS = 10_000


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service implemented by a stage: its full name and how to add the servicer to a server."""

    full_name: str  # e.g. "tryon.v1.Segmentation"
    servicer: object
    add_to_server: Callable[[Any, grpc.Server], None]


class StageServer:
    def __init__(
        self,
        stage: str,
        backend: StageBackend[Any, Any],
        bindings: list[ServiceBinding],
        settings: StageSettings,
        *,
        port: int,
        max_concurrency: int,
        metrics_port: int | None = None,
    ) -> None:
        self.stage = stage
        self.backend = backend
        self.bindings = bindings
        self.settings = settings
        self.metrics = StageMetrics(stage)
        self.ready = threading.Event()
        self.setup_error: BaseException | None = None
        self.admission = AdmissionControl(max_concurrency, settings.max_queue)
        self._stopped = threading.Event()  # shutdown has begun
        self.terminated = threading.Event()  # shutdown has finished
        self._stop_began = 0.0
        self._metrics_http: Any = None

        max_bytes = settings.max_message_mb * 1024 * 1024
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.max_send_message_length", max_bytes),
            ("grpc.so_reuseport", 0),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", MIN_CLIENT_PING_INTERVAL_MS),
        ]
        if settings.max_connection_age_s is not None:
            # Clients balance round-robin over every address of a stage's name (headless Service) but
            # re-resolve only when a connection closes: aged connections make new replicas join.
            options += [
                ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
                ("grpc.max_connection_age_grace_ms", int(settings.max_connection_age_grace_s * 1000)),
            ]
        self.server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=max_concurrency + settings.max_queue + _INFRA_THREADS,
                thread_name_prefix=f"{stage}-rpc",
            ),
            interceptors=[
                StageInterceptor(stage, self.metrics, self.admission, self.ready, self.setup_failure)
            ],
            options=options,
        )
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for binding in bindings:
            if isinstance(binding.servicer, StageServicer):
                binding.servicer.max_message_bytes = max_bytes
            binding.add_to_server(binding.servicer, self.server)
        reflection.enable_server_reflection(
            [*(b.full_name for b in bindings), health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self.port = self.server.add_insecure_port(f"{settings.host}:{port}")
        if self.port == 0:
            raise OSError(f"could not bind {settings.host}:{port}")
        self.metrics_port = metrics_port

    def setup_failure(self) -> str | None:
        """Why the backend could not be set up, as callers are told; None unless setup failed."""
        if self.setup_error is None:
            return None
        error = self.setup_error
        return (
            f"{self.stage} backend failed to set up ({type(error).__name__}: {error}); "
            "the service is exiting to be restarted"
        )

    def _set_health(self, status: int) -> None:
        for name in ("", *(b.full_name for b in self.bindings)):
            self.health.set(name, status)

    def start(self) -> None:
        """Start serving; the backend is set up in the background (health turns SERVING when done)."""
        self.server.start()
        if self.metrics_port is not None:
            self._metrics_http, _ = self.metrics.serve_http(self.settings.host, self.metrics_port)
            self.metrics_port = self._metrics_http.server_port
        log.info(
            "%s listening on %s:%d (metrics: %s)",
            self.stage,
            self.settings.host,
            self.port,
            self.metrics_port,
        )
        threading.Thread(target=self._setup_backend, name=f"{self.stage}-setup", daemon=True).start()

    def _setup_backend(self) -> None:
        try:
            self.backend.setup()
        except BaseException as error:  # reported to callers and logs; serve() ends the process
            self.setup_error = error
            self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
            log.exception("%s backend failed to set up", self.stage)
            return
        if self._stopped.is_set():
            return
        self.ready.set()
        self.metrics.ready.labels(stage=self.stage).set(1)
        self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("%s backend ready: %s", self.stage, self.backend.info())

    def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let in-flight ones finish (up to ``grace`` seconds), then stop."""
        if self._stopped.is_set():
            return
        self._stop_began = time.monotonic()
        self._stopped.set()
        grace = self.settings.shutdown_grace_s if grace is None else grace
        log.info("%s shutting down (grace %.0f s)", self.stage, grace)
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        log.info("%s stopped", self.stage)
        self.terminated.set()

    def wait(self) -> None:
        self.server.wait_for_termination()

    def shutdown_overdue(self, margin_s: float = 0.5) -> bool:
        """Whether shutdown began more than the grace period (plus ``margin_s``) ago."""
        return (
            self._stopped.is_set()
            and time.monotonic() - self._stop_began > self.settings.shutdown_grace_s + margin_s
        )


def install_signal_handlers(server: StageServer) -> None:
    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        # Stop from another thread: the handler runs on the main thread, which is blocked in wait().
        threading.Thread(target=server.stop, name="shutdown").start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def configure_logging(settings: StageSettings) -> None:
    """The shared job-aware log format (tryon/observability/logs.py): every line carries the job id."""
    observability.configure_logging(settings.log_level, json_format=settings.log_json)


def serve(server: StageServer) -> int:
    """Run a stage server until SIGTERM/SIGINT (drained within the grace period) or until its backend's
    setup fails; returns the exit status the process should end with (:func:`exit_process`)."""
    install_signal_handlers(server)
    server.start()
    while not server.terminated.wait(0.1):
        if server.setup_error is not None:
            server.stop(grace=0)
        elif server.shutdown_overdue():
            # Calls still running past the grace period (a backend without cancellation points): the
            # process ends anyway, as promised to the orchestrator; their callers see the connection drop.
            log.warning("%s: grace period over with calls still running; exiting", server.stage)
            break
    if server.setup_error is None:
        return EXIT_OK
    return EXIT_NO_MODEL if isinstance(server.setup_error, ModelUnavailableError) else EXIT_SETUP_FAILED


def exit_process(status: int) -> NoReturn:
    """End the process now with ``status``: logs flushed, without waiting for abandoned worker threads
    (the interpreter's normal exit would join them, however long their work takes)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
