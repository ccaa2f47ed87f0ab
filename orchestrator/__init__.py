"""The try-on worker: a Celery app whose task ``tryon.run_job`` runs one job through the five stages.

``celery -A orchestrator worker`` finds :data:`app` here; ``tryon-worker`` (``python -m orchestrator``)
starts the same worker with the settings' concurrency and log level. Settings: :mod:`orchestrator.settings`
(``TRYON_*`` environment variables); the job lifecycle and reliability settings: docs/ORCHESTRATOR.md.
"""

from __future__ import annotations

from orchestrator.settings import load_worker_settings

settings = load_worker_settings()

# Before anything imports prometheus_client: the pool processes write their metrics to files.
if settings.worker_metrics_port:
    from orchestrator import metrics as _metrics

    _metrics.configure(settings.worker_metrics_dir)

from orchestrator.celery_app import create_app  # noqa: E402

app = create_app(settings)

__all__ = ["app", "settings"]
