"""One logging set-up for every process (stage services, worker, gateway, CLI tools).

Every record gets ``job_id`` (the current job, ``-`` when none), ``trace_id`` and ``span_id`` (of the active
span, ``-`` when none) and ``service``. Text lines read::

    2026-12-01 22:10:03,412 INFO tryon.grpc [job=4f1c... trace=8a2e...] rpc /tryon.v1.Pose/Estimate code=OK

JSON lines (``TRYON_LOG_JSON=1``) are one object per line with the same fields, exceptions included, escaped
properly whatever the message contains.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

from tryon.observability.context import current_job_id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [job=%(job_id)s trace=%(trace_id)s]: %(message)s"


class ContextFilter(logging.Filter):
    """Adds job_id / trace_id / span_id / service to every record passing through a handler."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id") or record.job_id is None:
            record.job_id = current_job_id() or "-"
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        else:
            record.trace_id = record.span_id = "-"
        record.service = self.service or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "service": getattr(record, "service", "-"),
            "job_id": _or_none(getattr(record, "job_id", None)),
            "trace_id": _or_none(getattr(record, "trace_id", None)),
            "span_id": _or_none(getattr(record, "span_id", None)),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _or_none(value: object) -> object:
    return None if value in (None, "-") else value


def configure_logging(
    level: str = "INFO", *, json_format: bool = False, service: str = "", stream: TextIO | None = None
) -> logging.Handler:
    """Replace the root logger's handlers with one job-aware handler (stderr by default); returns it."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter(service))
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
