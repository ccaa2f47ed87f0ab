"""The one entrypoint every stage service runs: ``python -m services.<stage> --port N``.

Flags override the ``TRYON_*`` environment (tryon/settings.py); everything else about serving (health,
reflection, limits, metrics, graceful shutdown) is the shared runtime's.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from tryon.backends import create_backend
from tryon.memory import retain_freed_memory
from tryon.native_logs import routed_native_logs
from tryon.observability import setup_tracing
from tryon.runtime import StageServer, configure_logging, exit_process, serve
from tryon.settings import load_stage_settings
from tryon.stages import EXIT_NO_MODEL
from tryon.stages import stage as stage_of
from tryon.types import BackendKind, ModelUnavailableError

log = logging.getLogger("tryon.service")


def build_server(stage: str, argv: list[str] | None = None) -> StageServer:
    defaults = stage_of(stage)
    parser = argparse.ArgumentParser(
        prog=f"python -m services.{stage}", description=f"Serve the {stage} stage."
    )
    parser.add_argument(
        "--port", type=int, help=f"gRPC port, 0 = any free one (default: TRYON_PORT or {defaults.port})"
    )
    parser.add_argument("--host", help="address to bind (default: TRYON_HOST or 0.0.0.0)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        help=f"Prometheus /metrics port, 0 = any free one (default: {defaults.metrics_port})",
    )
    parser.add_argument(
        "--backend", choices=[kind.value for kind in BackendKind], help="default: TRYON_BACKEND or auto"
    )
    args = parser.parse_args(argv)

    settings = load_stage_settings(
        port=args.port, host=args.host, metrics_port=args.metrics_port, backend=args.backend
    )
    configure_logging(settings)
    setup_tracing(f"tryon-{stage}")  # OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set
    backend = create_backend(stage, settings)
    servicer_module = importlib.import_module(f"services.{stage}.servicer")
    return StageServer(
        stage,
        backend,
        [servicer_module.binding(backend)],
        settings,
        port=defaults.port if settings.port is None else settings.port,
        max_concurrency=settings.max_concurrency or defaults.max_concurrency(),
        metrics_port=defaults.metrics_port if settings.metrics_port is None else settings.metrics_port,
    )


def main(stage: str, argv: list[str] | None = None) -> None:
    try:
        server = build_server(stage, argv)
    except ModelUnavailableError as error:
        # `--backend full` without its weights or packages: one line saying what to do, not a traceback.
        log.error("%s", error)
        sys.exit(EXIT_NO_MODEL)
    if server.settings.retain_freed_memory:
        retain_freed_memory()  # every call's megabyte buffers reused, not re-faulted (tryon/memory.py)
    with routed_native_logs(keep_native=server.settings.log_level == "DEBUG"):
        status = serve(server)
    exit_process(status)
