"""Job id and trace context over gRPC: a client interceptor and the server-side counterpart.

Client side (``tryon.client`` wraps every channel with :func:`intercept_channel`): each call gets a CLIENT
span and the metadata ``traceparent`` (W3C) and ``x-tryon-job-id`` (the current job, if any).

Server side (the stage runtime's interceptor runs every call inside :func:`server_call`): the job id from
the metadata is set as the current job (so the service's log lines carry it) and a SERVER span is started
as a child of the caller's span: one trace per job across processes.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from tryon.observability import tracing
from tryon.observability.context import JOB_ID_HEADER, current_job_id, job_context


class _CallDetails(
    collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass


def outgoing_metadata(existing: Any = None) -> list[tuple[str, str]]:
    """``existing`` metadata plus the current trace context and job id (keys already present are kept)."""
    metadata = list(existing or ())
    present = {key for key, _ in metadata}
    carrier: dict[str, str] = {}
    tracing.inject(carrier)
    job_id = current_job_id()
    if job_id:
        carrier[JOB_ID_HEADER] = job_id
    metadata.extend((key, value) for key, value in carrier.items() if key not in present)
    return metadata


def _split_method(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


class TracingClientInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Starts a CLIENT span per call and sends the trace context and job id as metadata."""

    def _intercept(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        service, name = _split_method(details.method)
        job_id = current_job_id()
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
        if job_id:
            attributes["tryon.job_id"] = job_id
        call_span = tracing.get_tracer().start_span(
            details.method.lstrip("/"), kind=SpanKind.CLIENT, attributes=attributes
        )
        with trace.use_span(call_span, end_on_exit=False):
            new_details = _CallDetails(
                details.method,
                details.timeout,
                outgoing_metadata(details.metadata),
                details.credentials,
                getattr(details, "wait_for_ready", None),
                getattr(details, "compression", None),
            )
        try:
            call = continuation(new_details, request)
        except BaseException as error:
            call_span.record_exception(error)
            call_span.set_status(Status(StatusCode.ERROR, str(error)))
            call_span.end()
            raise
        call.add_done_callback(lambda done: _finish(call_span, done))
        return call

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return self._intercept(continuation, details, request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return self._intercept(continuation, details, request)


def _finish(call_span: Span, call: Any) -> None:
    try:
        code = call.code()
    except Exception:  # pragma: no cover - a call without a status
        code = None
    if code is not None:
        call_span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code is not grpc.StatusCode.OK:
            call_span.set_status(Status(StatusCode.ERROR, f"{code.name}: {call.details() or ''}"))
    call_span.end()


def intercept_channel(channel: grpc.Channel) -> grpc.Channel:
    """``channel`` with tracing and job-id propagation on every call."""
    return grpc.intercept_channel(channel, TracingClientInterceptor())


@contextmanager
def server_call(method: str, context: grpc.ServicerContext) -> Iterator[Span]:
    """Run a server handler as the caller's job, inside a SERVER span continuing the caller's trace."""
    metadata = {key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)}
    job_id = metadata.get(JOB_ID_HEADER) or None
    service, name = _split_method(method)
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
    if job_id:
        attributes["tryon.job_id"] = job_id
    with (
        job_context(job_id),
        tracing.span(
            method.lstrip("/"), kind=SpanKind.SERVER, parent=tracing.extract(metadata), attributes=attributes
        ) as current,
    ):
        yield current
