"""The CLI and the pipeline with the full backends, on tiny random checkpoints (CPU, no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data

from services.blend.backend import Blender
from services.inpaint.full import FullInpaint
from services.pose.lite import LitePose
from services.segmentation.full import FullSegmentation
from services.warp.backend import GarmentWarper
from tests.imagegen import draw_garment
from tests.tiny_models import tiny_model_settings
from tryon import imaging
from tryon.cli import EXIT_NO_MODEL, main
from tryon.pipeline import TryOnPipeline
from tryon.types import GarmentCategory, GenerationOptions


def _point_env_at(monkeypatch: pytest.MonkeyPatch, directories: dict[str, Path]) -> None:
    settings = tiny_model_settings(directories)
    fields = (
        "segformer_model",
        "openpose_model",
        "sdxl_inpaint_model",
        "controlnet_openpose_model",
        "ip_adapter_model",
    )
    for field in fields:
        monkeypatch.setenv(f"TRYON_MODELS__{field.upper()}", getattr(settings, field))
    monkeypatch.setenv("TRYON_MODELS__DEVICE", "cpu")


def test_models_list_reports_present_weights(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tiny_models_dir: dict[str, Path]
) -> None:
    _point_env_at(monkeypatch, tiny_models_dir)
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    assert all(" present " in line for line in lines)
    assert any(line.startswith("inpaint") and "controlnet" in line for line in lines)
    assert any(line.startswith("inpaint") and "ip_adapter" in line for line in lines)


def test_models_list_reports_missing_weights(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("TRYON_MODELS__CACHE_DIR", str(tmp_path / "empty-cache"))
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert out.count(" missing ") == 5  # segformer, openpose, sdxl, controlnet, ip_adapter
    assert "mattmdjaga/segformer_b2_clothes" in out


def test_run_full_without_weights_names_the_model_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("TRYON_MODELS__CACHE_DIR", str(tmp_path / "empty-cache"))
    person, garment = tmp_path / "p.png", tmp_path / "g.png"
    person.write_bytes(imaging.encode_png(skimage.data.astronaut()))
    garment.write_bytes(imaging.encode_png(draw_garment()))
    code = main(["run", str(person), str(garment), "-o", str(tmp_path / "o.png"), "--backend", "full", "-q"])
    err = capsys.readouterr().err
    assert code == EXIT_NO_MODEL
    assert "tryon models pull" in err
    assert "mattmdjaga/segformer_b2_clothes" in err or "lllyasviel/Annotators" in err


@pytest.fixture(scope="module")
def full_pipeline(tiny_models_dir: dict[str, Path]) -> TryOnPipeline:
    models = tiny_model_settings(tiny_models_dir)
    # Random OpenPose weights find no person, so pose comes from the lite backend (same contract).
    pipeline = TryOnPipeline(
        {
            "segmentation": FullSegmentation(models),
            "pose": LitePose(),
            "warp": GarmentWarper(),
            "inpaint": FullInpaint(models),
            "blend": Blender(),
        }
    )
    pipeline.setup()
    return pipeline


def test_full_pipeline_produces_a_working_resolution_image_deterministically(
    full_pipeline: TryOnPipeline,
) -> None:
    person = skimage.data.astronaut()[:, 64:448]  # 384 x 512: a portrait frame
    garment = draw_garment(GarmentCategory.UPPER_BODY, size=(384, 512))
    options = GenerationOptions(seed=11, steps=2)
    first = full_pipeline.run(person, garment, options=options)
    assert first.image.shape == (1024, 768, 3) and first.image.dtype == np.uint8
    assert first.inpaint.image.shape == first.image.shape
    again = full_pipeline.run(person, garment, options=options)
    assert imaging.encode_png(again.image) == imaging.encode_png(first.image)
