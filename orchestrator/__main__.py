"""``tryon-worker`` / ``python -m orchestrator``: the Celery worker with the settings' pool size.

Extra arguments go to ``celery worker`` unchanged (e.g. ``--hostname gpu-1@%h``).
"""

from __future__ import annotations

import sys

from tryon.observability import ObservabilitySettings, configure_logging, setup_tracing


def main(argv: list[str] | None = None) -> None:
    from orchestrator import app
    from orchestrator import worker_settings as settings

    # The shared job-aware log format (every line carries the job id) and tracing (tryon/observability).
    observability = ObservabilitySettings()
    configure_logging(settings.log_level, json_format=observability.log_json, service="worker")
    setup_tracing("tryon-worker", observability)
    args = [
        "worker",
        f"--loglevel={settings.log_level}",
        f"--concurrency={settings.concurrency}",
        "--pool=prefork",
        "--without-gossip",
        "--without-mingle",
        *(sys.argv[1:] if argv is None else argv),
    ]
    app.worker_main(args)


if __name__ == "__main__":
    main()
