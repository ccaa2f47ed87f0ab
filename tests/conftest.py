"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random checkpoints of every full backend, in their published layouts (tests/tiny_models.py).

    Built once per session (a few seconds, ~10 MB); maps model name ("segformer", "openpose", "sdxl",
    "controlnet") to its directory. Requires the ``full`` extra (torch, transformers, diffusers).
    """
    from tests.tiny_models import build_all

    return build_all(tmp_path_factory.mktemp("tiny-models"))
