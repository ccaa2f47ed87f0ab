"""The weights registry: local directories, the Hugging Face cache layout, pull's file selection."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.tiny_models import tiny_model_settings
from tryon import models
from tryon.settings import ModelSettings
from tryon.types import ModelUnavailableError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(cache_dir: Path, repo_id: str, source: Path, files: list[str] | None = None) -> Path:
    """Lay ``source``'s files out as huggingface_hub caches a download: blobs, a snapshot of symlinks to
    them, and refs/main naming the snapshot's commit."""
    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    names = files or [str(p.relative_to(source)) for p in source.rglob("*") if p.is_file()]
    for index, name in enumerate(names):
        blob = repo / "blobs" / f"blob{index}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, blob)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)
    return snapshot


def test_tiny_local_directories_are_present_with_path_and_size(tiny_models_dir: dict[str, Path]) -> None:
    rows = models.list_status(tiny_model_settings(tiny_models_dir))
    assert [(row.stage, row.name) for row in rows] == [
        ("segmentation", "segformer"),
        ("pose", "openpose"),
        ("inpaint", "sdxl"),
        ("inpaint", "controlnet"),
        ("inpaint", "ip_adapter"),
    ]
    for row in rows:
        assert row.present and row.missing == ()
        assert row.path == tiny_models_dir[row.name]
        assert row.size_bytes > 0 and row.detail.startswith("local directory")
    for stage in models.MODEL_STAGES:
        assert all(row.present for row in models.stage_status(stage, tiny_model_settings(tiny_models_dir)))


def test_defaults_are_missing_from_an_empty_cache(tmp_path: Path) -> None:
    rows = models.list_status(ModelSettings(cache_dir=tmp_path))
    assert rows and not any(row.present for row in rows)
    assert {row.source for row in rows} >= {"mattmdjaga/segformer_b2_clothes", "lllyasviel/Annotators"}
    assert all(row.path is None and row.size_bytes == 0 for row in rows)
    assert all("not in the Hugging Face cache" in row.detail for row in rows)


def test_incomplete_directory_lists_what_is_missing(tmp_path: Path, tiny_models_dir: dict[str, Path]) -> None:
    partial = tmp_path / "openpose"
    shutil.copytree(tiny_models_dir["openpose"], partial)
    (partial / "facenet.pth").unlink()
    row = models.model_status(models.SPECS_BY_NAME["openpose"], ModelSettings(openpose_model=str(partial)))
    assert not row.present and row.missing == ("facenet.pth",)
    assert "incomplete" in row.detail
    missing_dir = models.model_status(
        models.SPECS_BY_NAME["openpose"], ModelSettings(openpose_model=str(tmp_path / "nowhere"))
    )
    assert not missing_dir.present and "does not exist" in missing_dir.detail


def test_cached_snapshot_is_found_and_a_partial_one_is_not(
    tmp_path: Path, tiny_models_dir: dict[str, Path]
) -> None:
    snapshot = cache_repo(tmp_path, "acme/tiny-sdxl", tiny_models_dir["sdxl"])
    settings = ModelSettings(sdxl_inpaint_model="acme/tiny-sdxl", cache_dir=tmp_path)
    row = models.model_status(models.SPECS_BY_NAME["sdxl"], settings)
    assert row.present and row.path == snapshot and "cached snapshot" in row.detail
    (snapshot / "unet" / "diffusion_pytorch_model.fp16.safetensors").unlink()
    row = models.model_status(models.SPECS_BY_NAME["sdxl"], settings)
    assert not row.present and any(name.startswith("unet/diffusion_pytorch_model") for name in row.missing)


def test_full_backend_loads_from_the_cache_snapshot(tmp_path: Path, tiny_models_dir: dict[str, Path]) -> None:
    import numpy as np

    from services.segmentation.full import FullSegmentation
    from tryon.types import SegmentationInput

    cache_repo(tmp_path, "acme/tiny-segformer", tiny_models_dir["segformer"])
    settings = ModelSettings(segformer_model="acme/tiny-segformer", cache_dir=tmp_path, device="cpu")
    backend = FullSegmentation(settings)
    backend.setup()
    assert backend.run(SegmentationInput(person=np.zeros((40, 30, 3), np.uint8))).label_map.shape == (40, 30)


def test_require_stage_names_the_model_and_the_pull_command(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError) as error:
        models.require_stage("inpaint", ModelSettings(cache_dir=tmp_path))
    message = str(error.value)
    assert "diffusers/stable-diffusion-xl-1.0-inpainting-0.1" in message
    assert "tryon models pull --stage inpaint" in message
    assert "TRYON_MODELS__SDXL_INPAINT_MODEL" in message


def test_vae_is_needed_only_when_configured() -> None:
    assert [spec.name for spec in models.specs_for_stage("inpaint", ModelSettings())] == [
        "sdxl",
        "controlnet",
        "ip_adapter",
    ]
    with_vae = ModelSettings(vae_model="madebyollin/sdxl-vae-fp16-fix")
    assert "vae" in [spec.name for spec in models.specs_for_stage("inpaint", with_vae)]
    # The IP-Adapter is on by default; an empty setting turns it (and its download) off.
    assert "ip_adapter" not in [
        spec.name for spec in models.specs_for_stage("inpaint", ModelSettings(ip_adapter_model=""))
    ]
    with pytest.raises(ValueError):
        models.specs_for_stage("warp", ModelSettings())


# ---------------------------------------------------------------------------------------------- pull

ANNOTATORS_FILES = [
    ".gitattributes", "README.md", "body_pose_model.pth", "hand_pose_model.pth", "facenet.pth",
    "ControlNetHED.pth", "dpt_hybrid-midas-501f0c75.pt", "sk_model.pth", "upernet_global_small.pth",
]  # fmt: skip
SDXL_INPAINT_FILES = [
    "model_index.json", "scheduler/scheduler_config.json",
    "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json", "text_encoder/model.fp16.safetensors", "text_encoder/model.safetensors",
    "text_encoder_2/config.json", "text_encoder_2/model.fp16.safetensors", "text_encoder_2/model.safetensors",
    "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json", "tokenizer_2/merges.txt", "tokenizer_2/special_tokens_map.json",
    "tokenizer_2/tokenizer_config.json", "tokenizer_2/vocab.json", "README.md",
]  # fmt: skip
THIBAUD_FILES = [
    "OpenPoseXL2.safetensors", "config.json", "control-lora-openposeXL2-rank256.safetensors",
    "diffusion_pytorch_model.bin", "out_ballerina.png", "README.md",
]  # fmt: skip


def test_download_patterns_take_only_what_the_loaders_read() -> None:
    spec = models.SPECS_BY_NAME
    assert sorted(models.download_patterns(spec["openpose"], ANNOTATORS_FILES)) == [
        "body_pose_model.pth",
        "facenet.pth",
        "hand_pose_model.pth",
    ]
    sdxl = models.download_patterns(spec["sdxl"], SDXL_INPAINT_FILES)
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in sdxl
    assert not any(name.endswith("model.safetensors") and ".fp16." not in name for name in sdxl)
    assert {"tokenizer/vocab.json", "tokenizer_2/merges.txt", "tokenizer/tokenizer_config.json"} <= set(sdxl)
    assert "README.md" not in sdxl
    assert models.download_patterns(spec["controlnet"], THIBAUD_FILES) == [
        "config.json",
        "diffusion_pytorch_model.bin",
    ]
    with pytest.raises(ModelUnavailableError, match="diffusion_pytorch_model"):
        models.download_patterns(spec["controlnet"], ["config.json", "OpenPoseXL2.safetensors"])


def test_pull_downloads_missing_repos_into_the_cache(
    tmp_path: Path, tiny_models_dir: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in hub serves the tiny checkpoints; pull must ask for the right files and leave them
    where the status check (and the loaders) find them."""
    import huggingface_hub

    served = {"acme/segformer": tiny_models_dir["segformer"], "acme/openpose": tiny_models_dir["openpose"]}
    requests: list[tuple[str, list[str]]] = []

    class FakeApi:
        def list_repo_files(self, repo_id: str) -> list[str]:
            return [*(p.name for p in served[repo_id].iterdir()), "README.md", "onnx/model.onnx"]

    def fake_snapshot_download(repo_id: str, *, allow_patterns: list[str], cache_dir: str | None) -> str:
        requests.append((repo_id, allow_patterns))
        return str(cache_repo(Path(cache_dir or ""), repo_id, served[repo_id], allow_patterns))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    settings = ModelSettings(
        segformer_model="acme/segformer", openpose_model="acme/openpose", cache_dir=tmp_path
    )
    rows = models.pull(["segmentation", "pose"], settings, progress=False)
    assert all(row.present for row in rows)
    assert dict(requests)["acme/segformer"] == [
        "config.json",
        "preprocessor_config.json",
        "model.safetensors",
    ]
    # Present weights are not fetched again.
    requests.clear()
    models.pull(["segmentation"], settings, progress=False)
    assert requests == []


def test_pull_reports_an_unreachable_hub_as_unavailable_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    class UnreachableApi:
        def list_repo_files(self, repo_id: str) -> list[str]:
            raise ConnectionError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "HfApi", UnreachableApi)
    with pytest.raises(ModelUnavailableError, match=r"could not download .*segformer.*unreachable"):
        models.pull(["segmentation"], ModelSettings(cache_dir=tmp_path), progress=False)


def test_pull_refuses_a_missing_local_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="TRYON_MODELS__OPENPOSE_MODEL"):
        models.pull(["pose"], ModelSettings(openpose_model=str(tmp_path / "missing")), progress=False)


# ---------------------------------------------------------------------------------------------- device


def test_device_and_dtype_resolution() -> None:
    assert models.resolve_device(ModelSettings(device="cpu")) == "cpu"
    assert models.compute_dtype(ModelSettings(dtype="fp16"), "cpu") == "float32"
    assert models.compute_dtype(ModelSettings(dtype="bf16"), "cuda") == "bfloat16"
    assert models.compute_dtype(ModelSettings(dtype="fp16"), "cuda") == "float16"
    if not models.cuda_available():
        assert models.resolve_device(ModelSettings(device="auto")) == "cpu"
        with pytest.raises(ModelUnavailableError, match="CUDA"):
            models.resolve_device(ModelSettings(device="cuda"))


def test_repo_ids_and_paths_are_told_apart(tmp_path: Path) -> None:
    assert not models.is_local_path("lllyasviel/Annotators")
    assert models.is_local_path("/models/segformer")
    assert models.is_local_path("./weights/segformer")
    assert models.is_local_path(str(tmp_path))
