"""The weights each full backend needs: where they are, whether they are complete, and how to fetch them.

Every ``*_model`` setting of :class:`~tryon.settings.ModelSettings` is either a local directory laid out
like the Hugging Face repo, or a repo id looked up in the Hugging Face cache (``cache_dir``, else
huggingface_hub's default, ``HF_HUB_CACHE``). A model counts as *present* when every file its loader reads
is there: a repo that was half downloaded is missing, not present.

Pure functions returning data; nothing here prints (``pull``'s progress bars are huggingface_hub's own) and
nothing imports torch at module level, so the lite path can ask "are the full weights here?" for free.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tryon.settings import ModelSettings
from tryon.stages import MODEL_STAGES, STAGE_TABLE
from tryon.types import ModelUnavailableError

PULL_HINT = "tryon models pull --stage {stage}"


def _weights(folder: str, stem: str) -> tuple[str, ...]:
    """Weight files of one component, best first: the fp16 variant halves the download and is what a GPU
    runs; the loaders upcast it for fp32 (CPU) use."""
    prefix = f"{folder}/" if folder else ""
    return (f"{prefix}{stem}.fp16.safetensors", f"{prefix}{stem}.safetensors", f"{prefix}{stem}.bin")


@dataclass(frozen=True)
class ModelSpec:
    """One checkpoint a stage loads."""

    name: str  # role, e.g. "segformer"; also ModelInfo.name in BackendInfo
    stage: str
    setting: str  # the ModelSettings field holding its repo id or directory
    #: Files the loader reads. Each entry is a group of alternatives, best first; one of each must exist.
    files: tuple[tuple[str, ...], ...]
    #: Small files fetched alongside when the repo has them (the loaders use them if present).
    extras: tuple[str, ...] = ()
    optional: bool = False  # only needed when its setting is non-empty

    def source(self, models: ModelSettings) -> str:
        return str(getattr(models, self.setting) or "")

    @property
    def env_var(self) -> str:
        return f"TRYON_MODELS__{self.setting.upper()}"


_TOKENIZER_FILES = (("vocab.json", "tokenizer.json"), ("merges.txt", "tokenizer.json"))

SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="segformer",
        stage="segmentation",
        setting="segformer_model",
        files=(("config.json",), ("preprocessor_config.json",), ("model.safetensors", "pytorch_model.bin")),
    ),
    ModelSpec(
        name="openpose",
        stage="pose",
        setting="openpose_model",
        # controlnet_aux's OpenposeDetector.from_pretrained opens all three, even for body-only detection.
        files=(("body_pose_model.pth",), ("hand_pose_model.pth",), ("facenet.pth",)),
    ),
    ModelSpec(
        name="sdxl",
        stage="inpaint",
        setting="sdxl_inpaint_model",
        files=(
            ("model_index.json",),
            ("scheduler/scheduler_config.json",),
            ("unet/config.json",),
            _weights("unet", "diffusion_pytorch_model"),
            ("vae/config.json",),
            _weights("vae", "diffusion_pytorch_model"),
            ("text_encoder/config.json",),
            _weights("text_encoder", "model"),
            ("text_encoder_2/config.json",),
            _weights("text_encoder_2", "model"),
            *(tuple(f"tokenizer/{name}" for name in group) for group in _TOKENIZER_FILES),
            *(tuple(f"tokenizer_2/{name}" for name in group) for group in _TOKENIZER_FILES),
        ),
        extras=(
            "tokenizer/tokenizer_config.json",
            "tokenizer/special_tokens_map.json",
            "tokenizer_2/tokenizer_config.json",
            "tokenizer_2/special_tokens_map.json",
        ),
    ),
    ModelSpec(
        name="controlnet",
        stage="inpaint",
        setting="controlnet_openpose_model",
        files=(("config.json",), _weights("", "diffusion_pytorch_model")),
    ),
    ModelSpec(
        name="vae",
        stage="inpaint",
        setting="vae_model",
        files=(("config.json",), _weights("", "diffusion_pytorch_model")),
        optional=True,
    ),
    # IP-Adapter Plus SDXL and the ViT-H CLIP image encoder it was trained with (same repo, h94/IP-Adapter).
    ModelSpec(
        name="ip_adapter",
        stage="inpaint",
        setting="ip_adapter_model",
        files=(
            tuple(f"sdxl_models/ip-adapter-plus_sdxl_vit-h.{ext}" for ext in ("safetensors", "bin")),
            ("models/image_encoder/config.json",),
            ("models/image_encoder/model.safetensors", "models/image_encoder/pytorch_model.bin"),
        ),
        optional=True,
    ),
    # Optional second ControlNet on the warped garment's edges (e.g. diffusers/controlnet-canny-sdxl-1.0).
    ModelSpec(
        name="controlnet_edges",
        stage="inpaint",
        setting="controlnet_edges_model",
        files=(("config.json",), _weights("", "diffusion_pytorch_model")),
        optional=True,
    ),
)
SPECS_BY_NAME = {spec.name: spec for spec in SPECS}


@dataclass(frozen=True)
class ModelStatus:
    """Where one checkpoint stands locally (a row of ``tryon models list``)."""

    stage: str
    name: str
    source: str  # the setting's value: repo id or directory
    present: bool
    path: Path | None  # the directory the loader is given (a local dir or a cache snapshot), when found
    size_bytes: int  # of the files the loader reads (0 when missing)
    missing: tuple[str, ...]  # files (or "a | b" alternatives) not found
    detail: str  # one human-readable line

    @property
    def pull_command(self) -> str:
        return PULL_HINT.format(stage=self.stage)


def specs_for_stage(stage: str, models: ModelSettings) -> list[ModelSpec]:
    """The checkpoints ``stage``'s full backend loads with these settings (the VAE only when set)."""
    if stage not in MODEL_STAGES:
        raise ValueError(f"stage {stage!r} has no model weights (model stages: {', '.join(MODEL_STAGES)})")
    return [spec for spec in SPECS if spec.stage == stage and (not spec.optional or spec.source(models))]


def is_local_path(source: str) -> bool:
    """A directory rather than a repo id: it exists, or it is written as a path (absolute, ./, ~/)."""
    return (
        os.path.isdir(os.path.expanduser(source))
        or os.path.isabs(source)
        or source.startswith(("~", "."))
        or source.count("/") > 1  # repo ids are "owner/name"
    )


def model_status(spec: ModelSpec, models: ModelSettings) -> ModelStatus:
    source = spec.source(models)
    every_file = tuple(" | ".join(group) for group in spec.files)
    if not source:
        return _status(spec, source, None, {}, every_file, "not configured (empty setting)")
    if is_local_path(source):
        directory = Path(source).expanduser()
        if not directory.is_dir():
            return _status(spec, source, None, {}, every_file, f"directory {directory} does not exist")
        found, missing = _find_in_directory(spec, directory)
        where = "local directory"
    elif importlib.util.find_spec("huggingface_hub") is None:
        # A lite-only install has no hub client, and so no cache of hub checkpoints to look in.
        return _status(spec, source, None, {}, every_file, "huggingface_hub is not installed (`full` extra)")
    else:
        snapshot, found, missing = _find_in_cache(spec, source, models.cache_dir)
        if snapshot is None:
            where = f"not in the Hugging Face cache at {_cache_location(models.cache_dir)}"
            return _status(spec, source, None, {}, every_file, where)
        directory = snapshot
        where = f"cached snapshot {snapshot}"
    if missing:
        return _status(spec, source, directory, found, missing, f"incomplete {where}")
    return _status(spec, source, directory, found, (), where)


def list_status(models: ModelSettings, stages: Iterable[str] = MODEL_STAGES) -> list[ModelStatus]:
    """Status of every checkpoint the given stages' full backends need, in pipeline order."""
    return [model_status(spec, models) for stage in stages for spec in specs_for_stage(stage, models)]


def stage_status(stage: str, models: ModelSettings) -> list[ModelStatus]:
    return list_status(models, [stage])


def unavailable_message(row: ModelStatus, models: ModelSettings) -> str:
    spec = SPECS_BY_NAME[row.name]
    # List the files only for a partial checkpoint; for an absent one the detail says it all.
    missing = f", missing {', '.join(row.missing[:4])}{', ...' if len(row.missing) > 4 else ''}"
    local_fix = f"or point {spec.env_var} at a directory holding them"
    if is_local_path(row.source):
        default = ModelSettings.model_fields[spec.setting].default
        fix = (
            f"put the {spec.name} files there, or unset {spec.env_var} and run `{row.pull_command}` "
            f"to fetch {default!r} into the Hugging Face cache"
        )
    else:
        fix = f"fetch them with `{row.pull_command}` ({local_fix})"
    return (
        f"{row.stage}: the full backend needs the {row.name} weights {row.source!r}, which are not "
        f"available locally ({row.detail}{missing if row.path is not None else ''}); {fix}"
    )


def require_stage(stage: str, models: ModelSettings) -> dict[str, Path]:
    """The local directory of each checkpoint of ``stage``, or :class:`ModelUnavailableError` naming the
    first missing one and the command that fetches it.

    With ``offline=False`` missing repo weights are downloaded first (``offline=True``, the default, never
    reaches a hub at serve time: ``tryon models pull`` is then the only downloader).
    """
    rows = stage_status(stage, models)
    absent = [row for row in rows if not row.present]
    if absent and not models.offline and not any(is_local_path(row.source) for row in absent):
        pull([stage], models, progress=False)
        rows = stage_status(stage, models)
        absent = [row for row in rows if not row.present]
    if absent:
        raise ModelUnavailableError(unavailable_message(absent[0], models))
    return {row.name: row.path for row in rows if row.path is not None}


# ---------------------------------------------------------------------------------------------- pull


def download_patterns(spec: ModelSpec, remote_files: Iterable[str]) -> list[str]:
    """Which files of a repo to fetch: the best alternative of each group that the repo has, plus extras.

    Raises :class:`ModelUnavailableError` when the repo lacks a group altogether (wrong repo for the role).
    """
    available = set(remote_files)
    chosen: list[str] = []
    for group in spec.files:
        candidate = next((name for name in group if name in available), None)
        if candidate is None:
            raise ModelUnavailableError(
                f"{spec.name}: the repo has none of {' | '.join(group)}; is it the right checkpoint?"
            )
        if candidate not in chosen:
            chosen.append(candidate)
    chosen.extend(extra for extra in spec.extras if extra in available and extra not in chosen)
    return chosen


def pull(stages: Sequence[str], models: ModelSettings, *, progress: bool = True) -> list[ModelStatus]:
    """Download the weights of ``stages`` into the Hugging Face cache; returns their status afterwards.

    Only the files the loaders read come down (e.g. three ``.pth`` files of ``lllyasviel/Annotators``, the
    fp16 safetensors of the SDXL components). Checkpoints configured as local directories are not
    downloaded; complete cached ones are skipped. Needs network access, regardless of ``offline``.
    """
    if importlib.util.find_spec("huggingface_hub") is None:
        raise ModelUnavailableError(
            "downloading weights needs huggingface_hub: "
            "install the project's `full` extra (pip install '.[full]')"
        )
    from huggingface_hub import HfApi, snapshot_download

    for stage in stages:
        for spec in specs_for_stage(stage, models):
            row = model_status(spec, models)
            if row.present:
                continue
            if is_local_path(row.source):
                raise ModelUnavailableError(unavailable_message(row, models))
            try:
                patterns = download_patterns(spec, HfApi().list_repo_files(row.source))
                with _progress_bars(progress):
                    snapshot_download(
                        row.source,
                        allow_patterns=patterns,
                        cache_dir=str(models.cache_dir) if models.cache_dir else None,
                    )
            except ModelUnavailableError:
                raise
            except Exception as error:  # network, authentication, unknown repo: one clear message
                raise ModelUnavailableError(
                    f"{stage}: could not download the {spec.name} weights {row.source!r}: "
                    f"{type(error).__name__}: {error}"
                ) from error
    return list_status(models, stages)


# ---------------------------------------------------------------------------------------------- device


def full_packages_missing(stage: str) -> list[str]:
    """The ``full`` extra's packages ``stage`` needs that are not installed (checked without importing)."""
    return [name for name in STAGE_TABLE[stage].full_packages if importlib.util.find_spec(name) is None]


def cuda_available() -> bool:
    """Whether torch sees a CUDA device. Imports torch: call it only on the way to a full backend."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(models: ModelSettings) -> str:
    """``"cuda"`` or ``"cpu"``: ``auto`` takes CUDA when torch sees it."""
    if models.device == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda"
    if models.device == "cuda":
        raise ModelUnavailableError(
            "TRYON_MODELS__DEVICE=cuda, but torch sees no CUDA device (set it to auto or cpu)"
        )
    return "cpu"


def compute_dtype(models: ModelSettings, device: str) -> str:
    """The torch dtype name the weights run in: the configured half precision on GPU, fp32 on the CPU
    (CPU kernels for fp16 are slow or missing)."""
    if not device.startswith("cuda"):
        return "float32"
    return {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}[models.dtype]


# ---------------------------------------------------------------------------------------------- helpers


def _status(
    spec: ModelSpec,
    source: str,
    directory: Path | None,
    found: dict[str, Path],
    missing: tuple[str, ...],
    detail: str,
) -> ModelStatus:
    present = not missing and directory is not None
    size = sum(path.stat().st_size for path in found.values()) if present else 0
    return ModelStatus(
        stage=spec.stage,
        name=spec.name,
        source=source,
        present=present,
        path=directory,
        size_bytes=size,
        missing=missing,
        detail=f"{detail} ({_human_size(size)})" if present else detail,
    )


def _find_in_directory(spec: ModelSpec, directory: Path) -> tuple[dict[str, Path], tuple[str, ...]]:
    found: dict[str, Path] = {}
    missing: list[str] = []
    for group in spec.files:
        hit = next((name for name in group if (directory / name).is_file()), None)
        if hit is None:
            missing.append(" | ".join(group))
        else:
            found[hit] = directory / hit
    return found, tuple(missing)


def _find_in_cache(
    spec: ModelSpec, repo_id: str, cache_dir: Path | None
) -> tuple[Path | None, dict[str, Path], tuple[str, ...]]:
    """Look the files up in the Hugging Face cache at the ``main`` ref, without network access."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    found: dict[str, Path] = {}
    missing: list[str] = []
    snapshot: Path | None = None
    for group in spec.files:
        hit: tuple[str, Path] | None = None
        for name in group:
            try:
                cached = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            except (HFValidationError, ValueError):  # not a valid repo id: nothing can be cached under it
                return None, {}, ()
            if isinstance(cached, str) and os.path.isfile(cached):
                hit = (name, Path(cached))
                break
        if hit is None:
            missing.append(" | ".join(group))
            continue
        name, path = hit
        found[name] = path
        # try_to_load_from_cache returns <cache>/models--o--n/snapshots/<commit>/<name>; keep the symlink
        # path (not its blob target) so the loaders see the repo layout.
        snapshot = Path(str(path)[: -len(name) - 1])
    return snapshot, found, tuple(missing)


def _cache_location(cache_dir: Path | None) -> str:
    if cache_dir is not None:
        return str(cache_dir)
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    if not enabled:
        disable_progress_bars()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            enable_progress_bars()


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
