"""Backend selection: lite / full / auto per stage, the reasons logged, and no torch on the lite path."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_models import tiny_model_settings
from tryon import models
from tryon.backends import choose_backend, create_backend
from tryon.settings import ModelSettings, StageSettings
from tryon.stages import MODEL_STAGES
from tryon.types import BackendKind, ModelUnavailableError

FULL_CLASSES = {"segmentation": "FullSegmentation", "pose": "FullPose", "inpaint": "FullInpaint"}
LITE_CLASSES = {
    "segmentation": "LiteSegmentation",
    "pose": "LitePose",
    "warp": "GarmentWarper",
    "inpaint": "LiteInpaint",
    "blend": "Blender",
}


def no_weights(tmp_path: Path, **overrides: object) -> ModelSettings:
    """Default repo ids, looked up in an empty cache: nothing is present."""
    return ModelSettings(cache_dir=tmp_path / "empty-cache", **overrides)


@pytest.mark.parametrize("stage", MODEL_STAGES)
def test_auto_takes_lite_when_weights_are_absent(tmp_path: Path, stage: str) -> None:
    choice = choose_backend(stage, BackendKind.AUTO, no_weights(tmp_path, device="cpu"))
    assert choice.kind is BackendKind.LITE
    assert f"tryon models pull --stage {stage}" in choice.reason


@pytest.mark.parametrize("stage", MODEL_STAGES)
def test_auto_takes_full_when_weights_are_present_and_cpu_is_explicit(
    tiny_models_dir: dict[str, Path], stage: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = StageSettings(backend=BackendKind.AUTO, models=tiny_model_settings(tiny_models_dir))
    with caplog.at_level(logging.INFO, logger="tryon.backends"):
        backend = create_backend(stage, settings)
    assert type(backend).__name__ == FULL_CLASSES[stage]
    assert f"{stage}: full backend (auto -> weights present; device=cpu" in caplog.text


@pytest.mark.skipif(models.cuda_available(), reason="this machine has CUDA")
def test_auto_without_a_gpu_keeps_lite_even_with_weights(tiny_models_dir: dict[str, Path]) -> None:
    settings = tiny_model_settings(tiny_models_dir, device="auto")
    choice = choose_backend("inpaint", BackendKind.AUTO, settings)
    assert choice.kind is BackendKind.LITE and "no CUDA device" in choice.reason


@pytest.mark.parametrize(("stage", "model"), [("segmentation", "segformer"), ("pose", "openpose")])
def test_full_without_weights_names_the_model_and_the_pull_command(
    tmp_path: Path, stage: str, model: str
) -> None:
    settings = StageSettings(backend=BackendKind.FULL, models=no_weights(tmp_path))
    with pytest.raises(ModelUnavailableError) as error:
        create_backend(stage, settings)
    message = str(error.value)
    assert model in message and f"tryon models pull --stage {stage}" in message


def test_full_names_the_missing_controlnet_when_only_sdxl_is_present(
    tmp_path: Path, tiny_models_dir: dict[str, Path]
) -> None:
    settings = tiny_model_settings(tiny_models_dir, controlnet_openpose_model=str(tmp_path / "no-controlnet"))
    with pytest.raises(ModelUnavailableError, match=r"controlnet.*TRYON_MODELS__CONTROLNET_OPENPOSE_MODEL"):
        create_backend("inpaint", StageSettings(backend=BackendKind.FULL, models=settings))


def test_full_with_weights_builds_without_loading(tiny_models_dir: dict[str, Path]) -> None:
    settings = StageSettings(backend=BackendKind.FULL, models=tiny_model_settings(tiny_models_dir))
    backend = create_backend("inpaint", settings)
    assert type(backend).__name__ == "FullInpaint"
    assert backend._pipeline is None  # setup() loads; creating a backend is cheap


def test_unknown_stage_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        create_backend("colourise", StageSettings())


CREATE_ALL_AND_REPORT = """
import json, sys
from tryon.backends import create_backend
from tryon.settings import ModelSettings, StageSettings
from tryon.types import STAGES
settings = StageSettings(backend=sys.argv[1], models=ModelSettings(cache_dir=sys.argv[2], device="cpu"))
names = {stage: type(create_backend(stage, settings)).__name__ for stage in STAGES}
print(json.dumps({"names": names, "torch": "torch" in sys.modules}))
"""


@pytest.mark.parametrize("requested", ["lite", "auto"])
def test_lite_path_never_imports_torch(tmp_path: Path, requested: str) -> None:
    """Every stage built as lite (asked for, or auto without weights) in a fresh interpreter."""
    completed = subprocess.run(
        [sys.executable, "-c", CREATE_ALL_AND_REPORT, requested, str(tmp_path / "empty-cache")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["names"] == LITE_CLASSES
    assert report["torch"] is False


def test_a_lite_only_install_settles_auto_without_the_full_packages(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`pip install '.[lite]'` has no torch, transformers, diffusers, controlnet_aux or huggingface_hub."""
    import importlib.util

    absent = {"torch", "transformers", "diffusers", "controlnet_aux", "huggingface_hub"}
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name in absent else real_find_spec(name, *args),
    )
    settings = no_weights(tmp_path)
    for stage in MODEL_STAGES:
        choice = choose_backend(stage, BackendKind.AUTO, settings)
        assert choice.kind is BackendKind.LITE
        assert "not installed" in choice.reason
        with pytest.raises(ModelUnavailableError, match="`full` extra"):
            choose_backend(stage, BackendKind.FULL, settings)
    rows = models.list_status(settings)
    assert rows and all(not row.present and "huggingface_hub is not installed" in row.detail for row in rows)


def test_pull_on_a_lite_only_install_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "huggingface_hub" else real_find_spec(name, *args),
    )
    with pytest.raises(ModelUnavailableError, match=r"install the project's `full` extra"):
        models.pull(["pose"], no_weights(tmp_path))
