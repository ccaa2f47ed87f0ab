"""Job id and trace context through Celery messages: call :func:`install` once in each process that
publishes or runs tasks (the gateway and the worker).

* ``before_task_publish``: a PRODUCER span, and the headers ``traceparent`` (W3C) and ``x-tryon-job-id``
  (the current job, else the task's ``job_id`` keyword, else the first argument of a task named in
  ``job_tasks``) are added to the message;
* ``task_prerun``: the job id becomes the current job for the task (every log line carries it) and a
  CONSUMER span, child of the publisher's, is current while the task runs: stage calls made by the task are
  its children, so gateway -> worker -> stages form one trace per job; a redelivered task continues it;
* ``task_postrun``: the span ends with the task's state; the context is restored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from celery import signals
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from tryon.observability import tracing
from tryon.observability.context import _JOB_ID, JOB_ID_HEADER, current_job_id

log = logging.getLogger("tryon.observability")

#: Task names whose first positional argument is a job id.
DEFAULT_JOB_TASKS = ("tryon.run_job",)

_job_tasks: frozenset[str] = frozenset(DEFAULT_JOB_TASKS)
_lock = threading.Lock()
#: task id -> (span, otel context token, job id token) while the task runs.
_running: dict[str, tuple[Span, object, object]] = {}


def install(job_tasks: Iterable[str] = DEFAULT_JOB_TASKS) -> None:
    """Connect the signal handlers (idempotent)."""
    global _job_tasks
    _job_tasks = frozenset(job_tasks)
    signals.before_task_publish.connect(on_before_publish, weak=False, dispatch_uid="tryon-obs-publish")
    signals.task_prerun.connect(on_task_prerun, weak=False, dispatch_uid="tryon-obs-prerun")
    signals.task_postrun.connect(on_task_postrun, weak=False, dispatch_uid="tryon-obs-postrun")


def uninstall() -> None:
    signals.before_task_publish.disconnect(dispatch_uid="tryon-obs-publish")
    signals.task_prerun.disconnect(dispatch_uid="tryon-obs-prerun")
    signals.task_postrun.disconnect(dispatch_uid="tryon-obs-postrun")


def _job_id_of(task_name: str | None, args: Any, kwargs: Mapping[str, Any] | None) -> str | None:
    if kwargs and isinstance(kwargs.get("job_id"), str):
        return kwargs["job_id"]
    if task_name in _job_tasks and args and isinstance(args[0], str):
        return args[0]
    return None


def on_before_publish(
    sender: str | None = None, body: Any = None, headers: dict[str, Any] | None = None, **_: Any
) -> None:
    if headers is None:
        return
    args, kwargs = (body[0], body[1]) if isinstance(body, tuple | list) and len(body) >= 2 else ((), {})
    job_id = headers.get(JOB_ID_HEADER) or current_job_id() or _job_id_of(sender, args, kwargs)
    attributes = {"messaging.system": "celery", "messaging.operation": "publish", "celery.task": sender or ""}
    if job_id:
        attributes["tryon.job_id"] = job_id
        headers[JOB_ID_HEADER] = job_id
    with tracing.span(f"publish {sender}", kind=SpanKind.PRODUCER, attributes=attributes):
        carrier: dict[str, str] = {}
        tracing.inject(carrier)
    headers.update(carrier)


def _header(task: Any, name: str) -> str | None:
    request = getattr(task, "request", None)
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value if isinstance(value, str) else None


def on_task_prerun(
    task_id: str | None = None, task: Any = None, args: Any = None, kwargs: Any = None, **_: Any
) -> None:
    if task_id is None or task is None:
        return
    name = getattr(task, "name", None)
    job_id = _header(task, JOB_ID_HEADER) or _job_id_of(name, args, kwargs)
    carrier = {key: value for key in ("traceparent", "tracestate") if (value := _header(task, key))}
    attributes = {"messaging.system": "celery", "messaging.operation": "process", "celery.task": name or ""}
    attributes["celery.task_id"] = task_id
    if job_id:
        attributes["tryon.job_id"] = job_id
    task_span = tracing.get_tracer().start_span(
        f"run {name}", context=tracing.extract(carrier), kind=SpanKind.CONSUMER, attributes=attributes
    )
    otel_token = otel_context.attach(trace.set_span_in_context(task_span))
    job_token = _JOB_ID.set(job_id)
    with _lock:
        _running[task_id] = (task_span, otel_token, job_token)


def on_task_postrun(task_id: str | None = None, state: str | None = None, **_: Any) -> None:
    with _lock:
        entry = _running.pop(task_id or "", None)
    if entry is None:
        return
    task_span, otel_token, job_token = entry
    if state:
        task_span.set_attribute("celery.state", state)
        if state == "FAILURE":
            task_span.set_status(Status(StatusCode.ERROR, "task failed"))
    task_span.end()
    try:
        _JOB_ID.reset(job_token)  # type: ignore[arg-type]
        otel_context.detach(otel_token)  # type: ignore[arg-type]
    except ValueError:  # pragma: no cover - reset from another context (a pool that switched threads)
        log.debug("task %s finished in another context", task_id)
