"""Full inpaint stage benchmark: SDXL inpainting + OpenPose ControlNet at full size, random weights.

    python bench/bench_inpaint_gpu.py                      # CUDA, fp16, 1024x1024, 30 steps, 5 runs
    python bench/bench_inpaint_gpu.py --compile both       # also with torch.compile'd UNet + ControlNet
    python bench/bench_inpaint_gpu.py --tiny               # CPU smoke test on the tests' tiny models

Measures the production code path, :class:`services.inpaint.full.FullInpaint`: the models are built from
the published architectures with random weights (no hub access: timing does not depend on weight values),
saved as a diffusers checkpoint in a scratch directory and loaded by ``FullInpaint.load()``. Reports load
time, the first (warm-up) call, the median of ``--runs`` calls at batch 1, and peak GPU memory, as a
markdown table for docs/BENCHMARKS.md.

Where the architecture numbers come from (bench/configs/sdxl/*.json; regenerate them with
``--derive-configs INVOKEAI_CONFIGS OPEN_CLIP_CONFIGS``, the two folders being
``invokeai/configs/stable-diffusion`` of the invokeai wheel and ``open_clip/model_configs`` of the
open_clip_torch wheel, which are Stability AI's ``sd_xl_inpaint.yaml`` / ``sd_xl_base.yaml`` and OpenCLIP's
model configs):

* ``unet.json``: diffusers' own single-file converter (``create_unet_diffusers_config_from_ldm``) applied
  to ``sd_xl_inpaint.yaml``: model_channels 320 x channel_mult (1, 2, 4) = blocks 320/640/1280,
  transformer_depth (1, 2, 10), context_dim 2048 (cross-attention), num_head_channels 64, adm_in_channels
  2816 (= 6 x 256 time ids + 1280 pooled text), **in_channels 9** (4 latents + 4 masked-image latents + mask).
  About 2.57 B parameters.
* ``controlnet.json``: the same converter on ``sd_xl_base.yaml`` (4 input channels: a ControlNet sees the
  noisy latents only), restricted to ControlNetModel's arguments, plus diffusers' default conditioning
  embedding (16, 32, 96, 256), the layout of thibaud/controlnet-openpose-sdxl-1.0. About 1.25 B parameters.
* ``vae.json``: ``create_vae_diffusers_config_from_ldm`` on ``sd_xl_inpaint.yaml``: ch 128 x ch_mult
  (1, 2, 4, 4), z_channels 4, scale_factor 0.13025; ``force_upcast`` true as in the published SDXL VAE
  (it overflows in fp16).
* ``text_encoder.json`` / ``text_encoder_2.json``: OpenCLIP ``ViT-L-14.json`` (width 768, 12 layers, 12 heads,
  context 77, vocab 49408, embed_dim 768) and ``ViT-bigG-14.json`` (width 1280, 32 layers, 20 heads,
  embed_dim 1280) text towers as transformers CLIPTextConfig, MLP ratio 4; quick_gelu for OpenAI's
  ViT-L/14, gelu for OpenCLIP's bigG, penultimate layer used by SDXL (the yaml's ``layer: hidden`` /
  ``penultimate``).
* ``scheduler.json``: Euler discrete over the yaml's 1000-step ``LegacyDDPMDiscretization`` (scaled-linear
  betas 0.00085 to 0.012), as the published inpainting checkpoint ships it.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script from anywhere: tryon, services and tests importable

from services.inpaint.full import FullInpaint  # noqa: E402
from tryon.settings import ModelSettings  # noqa: E402
from tryon.types import GarmentCategory, GenerationOptions, InpaintInput  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parent / "configs" / "sdxl"
COMPONENTS = ("unet", "controlnet", "vae", "text_encoder", "text_encoder_2", "scheduler")


# ---------------------------------------------------------------------------------------------- configs


def derive_configs(invokeai_configs: Path, open_clip_configs: Path) -> dict[str, dict[str, Any]]:
    """The component configs, derived from the published model definitions (see the module docstring)."""
    import warnings

    import yaml
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import (
        create_unet_diffusers_config_from_ldm,
        create_vae_diffusers_config_from_ldm,
    )

    inpaint_yaml = yaml.safe_load((invokeai_configs / "sd_xl_inpaint.yaml").read_text())
    base_yaml = yaml.safe_load((invokeai_configs / "sd_xl_base.yaml").read_text())
    with warnings.catch_warnings():  # image_size is "deprecated" but the only way to skip a checkpoint
        warnings.simplefilter("ignore")
        unet = create_unet_diffusers_config_from_ldm(inpaint_yaml, {}, image_size=1024)
        base_unet = create_unet_diffusers_config_from_ldm(base_yaml, {}, image_size=1024)
        vae = create_vae_diffusers_config_from_ldm(inpaint_yaml, {}, image_size=1024)
    controlnet_arguments = set(inspect.signature(ControlNetModel.__init__).parameters)
    controlnet = {key: value for key, value in base_unet.items() if key in controlnet_arguments}
    controlnet.update(conditioning_channels=3, conditioning_embedding_out_channels=[16, 32, 96, 256])
    vae["force_upcast"] = True

    def text_config(name: str, hidden_act: str) -> dict[str, Any]:
        open_clip = json.loads((open_clip_configs / f"{name}.json").read_text())
        text = open_clip["text_cfg"]
        return {
            "architectures": ["CLIPTextModel" if name == "ViT-L-14" else "CLIPTextModelWithProjection"],
            "hidden_size": text["width"],
            "intermediate_size": 4 * text["width"],
            "num_hidden_layers": text["layers"],
            "num_attention_heads": text["heads"],
            "max_position_embeddings": text["context_length"],
            "vocab_size": text["vocab_size"],
            "projection_dim": open_clip["embed_dim"],
            "hidden_act": hidden_act,
            "layer_norm_eps": 1e-5,
            # The published SDXL text encoder configs keep CLIP's legacy ids (pooling takes the argmax id).
            "bos_token_id": 0,
            "eos_token_id": 2,
            "pad_token_id": 1,
        }

    scheduler = {
        "_class_name": "EulerDiscreteScheduler",
        "num_train_timesteps": inpaint_yaml["model"]["params"]["denoiser_config"]["params"]["num_idx"],
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "prediction_type": "epsilon",
        "steps_offset": 1,
        "timestep_spacing": "leading",
    }
    return {
        "unet": {"_class_name": "UNet2DConditionModel", "_source": "sd_xl_inpaint.yaml", **unet},
        "controlnet": {"_class_name": "ControlNetModel", "_source": "sd_xl_base.yaml", **controlnet},
        "vae": {"_class_name": "AutoencoderKL", "_source": "sd_xl_inpaint.yaml", **vae},
        "text_encoder": {"_source": "open_clip ViT-L-14.json", **text_config("ViT-L-14", "quick_gelu")},
        "text_encoder_2": {"_source": "open_clip ViT-bigG-14.json", **text_config("ViT-bigG-14", "gelu")},
        "scheduler": {"_source": "sd_xl_inpaint.yaml denoiser_config", **scheduler},
    }


def load_configs(directory: Path = CONFIG_DIR) -> dict[str, dict[str, Any]]:
    """The stored configs, without the provenance keys (those starting with "_")."""
    configs = {}
    for name in COMPONENTS:
        raw = json.loads((directory / f"{name}.json").read_text())
        configs[name] = {key: value for key, value in raw.items() if not key.startswith("_")}
    return configs


# ---------------------------------------------------------------------------------------------- models


def build_full_size(directory: Path, device: str, dtype_name: str) -> dict[str, Any]:
    """Random-weight SDXL inpaint pipeline + ControlNet saved under ``directory``; returns facts."""
    import torch
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        EulerDiscreteScheduler,
        StableDiffusionXLInpaintPipeline,
        UNet2DConditionModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    from tests.tiny_models import write_clip_tokenizer

    configs = load_configs()
    dtype = getattr(torch, dtype_name)
    started = time.perf_counter()
    torch.manual_seed(0)
    # Initialise on the target device: random init of 4 B parameters on the CPU takes minutes.
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(configs["unet"]).to(dtype)
        controlnet = ControlNetModel.from_config(configs["controlnet"]).to(dtype)
        vae = AutoencoderKL.from_config(configs["vae"]).to(dtype)
        text_encoder = CLIPTextModel(CLIPTextConfig(**configs["text_encoder"])).to(dtype)
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**configs["text_encoder_2"])).to(dtype)
    # The tokenizers only turn the prompt into ids; a byte-level vocabulary costs the same text-encoder time.
    for name, pad_token in (("tokenizer", "<|endoftext|>"), ("tokenizer_2", "!")):
        write_clip_tokenizer(directory / "sdxl" / name, pad_token=pad_token)
    pipeline = StableDiffusionXLInpaintPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=CLIPTokenizer.from_pretrained(directory / "sdxl" / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(directory / "sdxl" / "tokenizer_2"),
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(configs["scheduler"]),
        requires_aesthetics_score=False,
        add_watermarker=False,
    )
    built = time.perf_counter() - started
    variant = "fp16" if dtype == torch.float16 else None
    pipeline.save_pretrained(directory / "sdxl", variant=variant)
    for name, pad_token in (("tokenizer", "<|endoftext|>"), ("tokenizer_2", "!")):
        write_clip_tokenizer(directory / "sdxl" / name, pad_token=pad_token)  # the published file layout
    controlnet.save_pretrained(directory / "controlnet", variant=variant)
    facts = {
        "unet_params": sum(p.numel() for p in unet.parameters()),
        "controlnet_params": sum(p.numel() for p in controlnet.parameters()),
        "vae_params": sum(p.numel() for p in vae.parameters()),
        "text_encoder_params": sum(p.numel() for p in text_encoder.parameters())
        + sum(p.numel() for p in text_encoder_2.parameters()),
        "build_s": built,
    }
    del pipeline, unet, controlnet, vae, text_encoder, text_encoder_2
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return facts


def build_tiny(directory: Path) -> dict[str, Any]:
    from tests.tiny_models import build_controlnet, build_ip_adapter, build_sdxl_inpaint

    started = time.perf_counter()
    build_sdxl_inpaint(directory / "sdxl")
    build_controlnet(directory / "controlnet")
    build_ip_adapter(directory / "ip-adapter")
    return {"build_s": time.perf_counter() - started}


# ---------------------------------------------------------------------------------------------- bench


def synthetic_request(size: int, steps: int, seed: int) -> InpaintInput:
    """A 1024-class request: a smooth 'photo', a torso-sized mask, a garment layer and a stick figure."""
    import cv2

    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    person = np.stack([200 * xs + 30, 180 * ys + 40, 120 + 60 * xs * ys], axis=-1).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 255
    garment = np.zeros((size, size, 4), np.uint8)
    garment[size // 4 : 2 * size // 3, size // 3 : 2 * size // 3] = (30, 60, 200, 255)
    pose = np.zeros((size, size, 3), np.uint8)
    cv2.line(pose, (size // 2, size // 6), (size // 2, size // 2), (255, 0, 0), max(2, size // 128))
    return InpaintInput(
        person=person,
        clothing_mask=mask,
        warped_garment=garment,
        pose_image=pose,
        category=GarmentCategory.UPPER_BODY,
        options=GenerationOptions(seed=seed, steps=steps),
    )


@dataclass
class Row:
    mode: str
    device: str
    dtype: str
    size: int
    steps: int
    load_s: float
    first_call_s: float
    median_s: float
    peak_gib: float | None


def bench_once(models: ModelSettings, *, size: int, steps: int, runs: int, compiled: bool) -> Row:
    import torch

    cuda = models.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    backend = FullInpaint(models, max_long_side=size)
    started = time.perf_counter()
    backend.load()
    load_s = time.perf_counter() - started
    if compiled:
        pipeline = backend._pipeline
        pipeline.unet = torch.compile(pipeline.unet)
        pipeline.controlnet = torch.compile(pipeline.controlnet)
    started = time.perf_counter()
    backend.run(synthetic_request(size, steps, seed=0))  # warm-up at the measured size (compiles, if on)
    _sync(cuda)
    first_call_s = time.perf_counter() - started
    latencies = []
    for run in range(runs):
        started = time.perf_counter()
        backend.run(synthetic_request(size, steps, seed=run + 1))
        _sync(cuda)
        latencies.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    info = backend.info()
    del backend
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return Row(
        mode="torch.compile" if compiled else "eager",
        device=info.device,
        dtype=models.dtype if cuda else "fp32",
        size=size,
        steps=steps,
        load_s=load_s,
        first_call_s=first_call_s,
        median_s=statistics.median(latencies),
        peak_gib=peak,
    )


def _sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def markdown(rows: list[Row]) -> str:
    lines = [
        "| mode | device | dtype | size | steps | load (s) | first call (s) | median (s) | s/step "
        "| peak GPU mem (GiB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        peak = f"{row.peak_gib:.1f}" if row.peak_gib is not None else "n/a"
        lines.append(
            f"| {row.mode} | {row.device} | {row.dtype} | {row.size}x{row.size} | {row.steps} "
            f"| {row.load_s:.1f} | {row.first_call_s:.2f} | {row.median_s:.3f} "
            f"| {row.median_s / row.steps:.4f} | {peak} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run on the tests' tiny models")
    parser.add_argument("--device", default=None, help="cuda (default) or cpu; --tiny implies cpu")
    parser.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16")
    parser.add_argument("--size", type=int, default=None, help="square side in px (default 1024, tiny 128)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 30, tiny 4)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs after warm-up (default 5, tiny 3)")
    parser.add_argument("--compile", choices=["off", "on", "both"], default="off", help="torch.compile")
    parser.add_argument("--workdir", type=Path, default=None, help="where the random checkpoint is written")
    parser.add_argument(
        "--derive-configs",
        nargs=2,
        type=Path,
        metavar=("INVOKEAI_CONFIGS", "OPEN_CLIP_CONFIGS"),
        help="rewrite bench/configs/sdxl/*.json from the published yaml/json definitions and exit",
    )
    args = parser.parse_args(argv)

    if args.derive_configs:
        CONFIG_DIR.mkdir(parents=True, exist_ok=True)
        for name, config in derive_configs(*args.derive_configs).items():
            (CONFIG_DIR / f"{name}.json").write_text(json.dumps(config, indent=2) + "\n")
        print(f"wrote {len(COMPONENTS)} configs to {CONFIG_DIR}", file=sys.stderr)
        return 0

    import torch

    device = "cpu" if args.tiny else (args.device or "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: use --tiny (or --device cpu for a very slow full-size run)")
    size = args.size or (128 if args.tiny else 1024)
    steps = args.steps or (4 if args.tiny else 30)
    runs = args.runs or (3 if args.tiny else 5)
    dtype = "fp32" if device == "cpu" else args.dtype

    with tempfile.TemporaryDirectory(prefix="tryon-bench-", dir=args.workdir) as scratch:
        root = Path(scratch)
        dtype_name = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}[dtype]
        facts = build_tiny(root) if args.tiny else build_full_size(root, device, dtype_name)
        models = ModelSettings(
            sdxl_inpaint_model=str(root / "sdxl"),
            controlnet_openpose_model=str(root / "controlnet"),
            ip_adapter_model=str(root / "ip-adapter") if (root / "ip-adapter").is_dir() else "",
            device="cpu" if device == "cpu" else "cuda",
            dtype=dtype,
        )
        modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
        rows = [bench_once(models, size=size, steps=steps, runs=runs, compiled=mode) for mode in modes]

    gpu = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
    print(f"# inpaint stage ({'tiny models' if args.tiny else 'SDXL inpaint + ControlNet, random weights'})")
    print(f"{gpu}; torch {torch.__version__}; batch 1; median of {runs} runs after one warm-up call")
    for key, value in facts.items():
        print(f"- {key}: {value / 1e9:.3f} B" if key.endswith("params") else f"- {key}: {value:.1f}")
    print()
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
