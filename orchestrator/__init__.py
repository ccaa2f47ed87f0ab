"""The try-on worker: a Celery app whose task ``tryon.run_job`` runs one job through the five stages.

``celery -A orchestrator worker`` finds :data:`app` here; ``tryon-worker`` (``python -m orchestrator``)
starts the same worker with the settings' concurrency and log level. Settings: :mod:`orchestrator.settings`
(``TRYON_*`` environment variables); the job lifecycle and reliability settings: docs/ORCHESTRATOR.md.

The app is built on first access of ``orchestrator.app``, not on import, so importing a submodule (tests,
the gateway's tooling) reads no environment and touches no metrics state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

    from orchestrator.settings import WorkerSettings

_loaded: dict[str, Any] = {}


def _load() -> dict[str, Any]:
    if not _loaded:
        from orchestrator.settings import load_worker_settings

        settings = load_worker_settings()
        if settings.worker_metrics_port:
            # Before prometheus_client is imported: the pool processes write their samples to files.
            from orchestrator import metrics

            metrics.configure(settings.worker_metrics_dir)
        from orchestrator.celery_app import create_app

        _loaded.update(worker_settings=settings, app=create_app(settings))
    return _loaded


def __getattr__(name: str) -> Any:
    if name in ("app", "worker_settings"):
        return _load()[name]
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")


app: Celery
worker_settings: WorkerSettings
__all__ = ["app", "worker_settings"]
