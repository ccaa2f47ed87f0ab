"""The one interceptor every stage server runs: admission, readiness, deadlines, errors, logs, metrics.

Servicers stay thin (decode, call the backend, encode) because everything that is the same for every
stage happens here, around the servicer's handler:

* health checks and reflection bypass all of it, so probes answer even when the stage is saturated;
* UNAVAILABLE until the backend is warmed up (clients retry it through their service config), and for
  good, GetInfo included, once its setup has failed (the message says why; the process is exiting);
* RESOURCE_EXHAUSTED when ``max_concurrency`` calls run and ``max_queue`` more wait, with a
  ``retry-after-ms`` hint in the trailing metadata (the typed clients retry within their deadline);
* calls whose deadline passes while queued are abandoned before any work is done, and work in progress
  can stop part-way: backends call :func:`tryon.cancellation.raise_if_cancelled` between steps
  (DEADLINE_EXCEEDED);
* StageInputError -> INVALID_ARGUMENT, StageOverloadedError -> RESOURCE_EXHAUSTED,
  ModelUnavailableError -> FAILED_PRECONDITION, anything else -> INTERNAL (logged with its traceback);
* one log line and the metrics for every call.

Unary and server-streaming methods get the same treatment; a stream is one call from its first message
to its last.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from tryon.cancellation import CallCancelled, cancellable
from tryon.observability.grpc import server_call
from tryon.protocol import RETRY_AFTER_KEY
from tryon.runtime.metrics import StageMetrics
from tryon.types import ModelUnavailableError, StageInputError, StageOverloadedError

log = logging.getLogger("tryon.grpc")

#: Services answered without admission control (they must stay responsive under load).
INFRA_SERVICE_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
#: Metadata-only RPCs that are served while the backend is still loading.
ALWAYS_AVAILABLE_METHODS = ("/GetInfo",)
#: Bounds of the retry-after hint.
RETRY_AFTER_MIN_S, RETRY_AFTER_MAX_S = 0.02, 5.0


class _Abort(Exception):
    """A status to end the call with; turned into ``context.abort`` once, after metrics are recorded."""

    def __init__(self, code: grpc.StatusCode, details: str, retry_after_s: float | None = None) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.retry_after_s = retry_after_s


class AdmissionControl:
    """At most ``max_concurrency`` calls execute; at most ``max_queue`` more wait for a slot."""

    def __init__(self, max_concurrency: int, max_queue: int) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._lock = threading.Lock()
        self._admitted = 0
        self._mean_call_s = 0.1  # running mean of the work calls' durations (a first guess until measured)

    @property
    def admitted(self) -> int:
        return self._admitted

    def try_admit(self) -> bool:
        with self._lock:
            if self._admitted >= self.max_concurrency + self.max_queue:
                return False
            self._admitted += 1
            return True

    def release_admission(self) -> None:
        with self._lock:
            self._admitted -= 1

    def record_duration(self, seconds: float) -> None:
        with self._lock:
            self._mean_call_s += 0.2 * (seconds - self._mean_call_s)

    def retry_after_s(self) -> float:
        """When a refused caller may find room: about the time for the calls ahead of it to drain."""
        with self._lock:
            waves = max(1, self._admitted) / self.max_concurrency
            estimate = self._mean_call_s * waves
        return min(RETRY_AFTER_MAX_S, max(RETRY_AFTER_MIN_S, estimate))

    def acquire_slot(self, timeout: float | None) -> bool:
        return self._slots.acquire(timeout=timeout)

    def release_slot(self) -> None:
        self._slots.release()


class StageInterceptor(grpc.ServerInterceptor):
    def __init__(
        self,
        stage: str,
        metrics: StageMetrics,
        admission: AdmissionControl,
        ready: threading.Event,
        setup_failure: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.stage = stage
        self.metrics = metrics
        self.admission = admission
        self.ready = ready
        #: Why the backend's setup failed, or None (while it loads, or once it is ready).
        self.setup_failure = setup_failure

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:  # fmt: skip
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(INFRA_SERVICE_PREFIXES):
            return handler
        needs_backend = not method.endswith(ALWAYS_AVAILABLE_METHODS)
        # Every call runs as the caller's job, in a span of the caller's trace (x-tryon-job-id / traceparent
        # metadata).
        if handler.unary_unary is not None:
            unary = handler.unary_unary

            def guarded(request: Any, context: grpc.ServicerContext) -> Any:
                with server_call(method, context), self._observed(method, context):
                    if not needs_backend:
                        return unary(request, context)
                    with self._admitted(method, context), self._mapped(context):
                        return unary(request, context)

            return grpc.unary_unary_rpc_method_handler(
                guarded,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            def guarded_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                # The whole stream is one call: admitted, cancellable, mapped and measured from its first
                # message to its last (or until the caller goes away).
                with server_call(method, context), self._observed(method, context):
                    if not needs_backend:
                        yield from stream(request, context)
                        return
                    with self._admitted(method, context), self._mapped(context):
                        yield from stream(request, context)

            return grpc.unary_stream_rpc_method_handler(
                guarded_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    @contextmanager
    def _observed(self, method: str, context: grpc.ServicerContext) -> Iterator[None]:
        """Latency, request count by code and one log line; ends an _Abort as its status. Once the backend's
        setup has failed, every call ends here with the reason."""
        started = time.perf_counter()
        short_method = method.rsplit("/", 1)[-1]
        code = grpc.StatusCode.OK
        labels = {"stage": self.stage, "method": short_method}
        try:
            failure = self.setup_failure()
            if failure is not None:
                self._abort(grpc.StatusCode.UNAVAILABLE, failure)
            yield
        except _Abort as abort:
            code = abort.code
            if abort.retry_after_s is not None:
                context.set_trailing_metadata(((RETRY_AFTER_KEY, str(round(abort.retry_after_s * 1000))),))
            context.abort(abort.code, abort.details)  # raises; grpc sends the status
        except GeneratorExit:
            # A stream abandoned by gRPC: the caller cancelled it or went away.
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception:
            # A servicer's own context.abort(): grpc has recorded the status already.
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.latency.labels(**labels).observe(elapsed)
            self.metrics.requests.labels(**labels, code=code.name).inc()
            log.info(
                "rpc %s code=%s duration_ms=%.1f peer=%s", method, code.name, elapsed * 1000, context.peer()
            )

    @contextmanager
    def _admitted(self, method: str, context: grpc.ServicerContext) -> Iterator[None]:
        """Readiness, then a place in the queue, then a concurrency slot for the duration of the block.

        The in-flight gauge counts the admitted calls (running or queued), nothing else."""
        if not self.ready.is_set():
            self._abort(grpc.StatusCode.UNAVAILABLE, f"{self.stage} backend is loading; retry shortly")
        if not self.admission.try_admit():
            raise _Abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self.stage} is at capacity ({self.admission.max_concurrency} running, "
                f"{self.admission.max_queue} queued); retry later",
                retry_after_s=self.admission.retry_after_s(),
            )
        in_flight = self.metrics.in_flight.labels(stage=self.stage, method=method.rsplit("/", 1)[-1])
        in_flight.inc()
        try:
            self.metrics.queued.labels(stage=self.stage).inc()
            try:
                got_slot = self.admission.acquire_slot(timeout=context.time_remaining())
            finally:
                self.metrics.queued.labels(stage=self.stage).dec()
            if not got_slot:
                self._abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline expired while queued")
            try:
                remaining = context.time_remaining()
                if (remaining is not None and remaining <= 0) or not context.is_active():
                    # The caller has given up: doing the work would only delay the calls behind it.
                    self._abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline expired before work began")
                work_started = time.perf_counter()
                try:
                    yield
                finally:
                    self.admission.record_duration(time.perf_counter() - work_started)
            finally:
                self.admission.release_slot()
        finally:
            in_flight.dec()
            self.admission.release_admission()

    @contextmanager
    def _mapped(self, context: grpc.ServicerContext) -> Iterator[None]:
        """Runs the block cancellable by the caller's going away, with the stage errors mapped to _Abort."""

        def caller_gone() -> bool:
            remaining = context.time_remaining()
            return not context.is_active() or (remaining is not None and remaining <= 0)

        try:
            with cancellable(caller_gone):
                yield
        except CallCancelled as error:
            self._abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(error))
        except StageInputError as error:
            self._abort(grpc.StatusCode.INVALID_ARGUMENT, describe_input_error(error))
        except StageOverloadedError as error:
            raise _Abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, str(error), retry_after_s=self.admission.retry_after_s()
            ) from error
        except ModelUnavailableError as error:
            self._abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        except _Abort:
            raise
        except Exception as error:
            if _is_servicer_abort(error):
                raise
            log.exception("unhandled error in %s", self.stage)
            self._abort(grpc.StatusCode.INTERNAL, f"internal error in {self.stage}: {type(error).__name__}")

    @staticmethod
    def _abort(code: grpc.StatusCode, message: str) -> None:
        raise _Abort(code, message)


def describe_input_error(error: StageInputError) -> str:
    """The error's message, led by the offending field so callers know what to fix."""
    message = str(error)
    if error.field and not message.startswith(f"{error.field}:"):
        return f"{error.field}: {message}"
    return message


def _is_servicer_abort(error: BaseException) -> bool:
    # context.abort() raises a bare Exception after recording the status; a servicer may use it.
    return type(error) is Exception and not error.args
