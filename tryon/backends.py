"""Backend selection: which implementation serves a stage, given the settings and what this machine has.

``lite`` is weight-free and CPU-only; ``full`` runs the model checkpoints (docs/MODELS.md); ``auto`` takes
``full`` when its weights are complete on local disk *and* a device can run them (CUDA, or
``TRYON_MODELS__DEVICE=cpu`` set explicitly), otherwise ``lite``. Warp and blend have one implementation.

Implementations are imported only once chosen, so a lite process never imports torch: deciding ``auto``
looks at files first and imports torch only when the weights are there and CUDA must be probed.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

from tryon import models as model_registry
from tryon.settings import ModelSettings, StageSettings
from tryon.stages import stage as stage_of
from tryon.types import BackendKind, ModelUnavailableError, StageBackend

logger = logging.getLogger("tryon.backends")


@dataclass(frozen=True)
class BackendChoice:
    stage: str
    kind: BackendKind  # LITE or FULL, never AUTO
    reason: str


def choose_backend(stage: str, requested: BackendKind, models: ModelSettings) -> BackendChoice:
    """Resolve ``requested`` for ``stage``; raises :class:`ModelUnavailableError` for ``full`` without
    its weights (the message names the model and ``tryon models pull --stage <stage>``)."""
    if not stage_of(stage).has_models:
        return BackendChoice(stage, BackendKind.LITE, "the stage has a single implementation")
    requested = BackendKind(requested)
    if requested is BackendKind.LITE:
        return BackendChoice(stage, BackendKind.LITE, "requested")

    # Packages first: a lite-only install (no torch, no huggingface_hub) settles auto without looking further.
    missing_packages = model_registry.full_packages_missing(stage)
    if requested is BackendKind.FULL and missing_packages:
        raise ModelUnavailableError(
            f"{stage}: the full backend needs the packages {', '.join(missing_packages)} "
            "(install the project's `full` extra)"
        )
    if missing_packages:
        return BackendChoice(
            stage,
            BackendKind.LITE,
            f"the full backend's packages are not installed: {', '.join(missing_packages)}",
        )
    rows = model_registry.stage_status(stage, models)
    absent = [row for row in rows if not row.present]
    if requested is BackendKind.FULL:
        if absent and models.offline:
            raise ModelUnavailableError(model_registry.unavailable_message(absent[0], models))
        if absent:
            return BackendChoice(stage, BackendKind.FULL, "requested; weights will be downloaded in setup()")
        return BackendChoice(stage, BackendKind.FULL, "requested")

    # auto: cheap checks first, so a machine without the weights never imports torch.
    if absent:
        row = absent[0]
        return BackendChoice(
            stage,
            BackendKind.LITE,
            f"{row.name} weights {row.source!r} not available locally ({row.detail}); "
            f"`{row.pull_command}` fetches them",
        )
    if models.device == "cpu":
        return BackendChoice(stage, BackendKind.FULL, "weights present; device=cpu set explicitly")
    if model_registry.cuda_available():
        return BackendChoice(stage, BackendKind.FULL, "weights present and CUDA available")
    return BackendChoice(
        stage,
        BackendKind.LITE,
        "weights present but no CUDA device "
        "(set TRYON_MODELS__DEVICE=cpu to run the full backend on the CPU)",
    )


def create_backend(stage: str, settings: StageSettings) -> StageBackend[Any, Any]:
    """Build (not set up) the backend serving ``stage``; ``setup()`` loads and warms it."""
    choice = choose_backend(stage, settings.backend, settings.models)
    entry = stage_of(stage)
    if entry.full_backend is None:
        backend_class = _import(entry.lite_backend)
        logger.info("%s: %s", stage, backend_class.__name__)
        return backend_class()
    logger.info(
        "%s: %s backend (%s%s)",
        stage,
        choice.kind.value,
        f"{settings.backend.value} -> " if settings.backend is BackendKind.AUTO else "",
        choice.reason,
    )
    if choice.kind is BackendKind.FULL:
        return _import(entry.full_backend)(settings.models)
    return _import(entry.lite_backend)()


def _import(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)
