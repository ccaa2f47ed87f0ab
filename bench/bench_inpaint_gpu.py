"""Full inpaint stage benchmark: SDXL inpainting + OpenPose ControlNet + IP-Adapter Plus, random weights.

    python bench/bench_inpaint_gpu.py                        # CUDA, every configuration below, one table
    python bench/bench_inpaint_gpu.py --configs base,fast    # a subset ('+' combines options)
    python bench/bench_inpaint_gpu.py --dtype bf16           # bf16 instead of fp16 as the base precision
    python bench/bench_inpaint_gpu.py --tiny                 # CPU smoke run of the same code on tiny models

Configurations (``--configs``, comma-separated; each is one option or several joined by '+'):

* ``base``: the production defaults: fp16 (``--dtype``), PyTorch SDPA attention, IP-Adapter Plus on,
  stock VAE (decoded in fp32: ``force_upcast``), eager PyTorch, 30 steps.
* ``bf16``: bfloat16 instead of ``--dtype``.
* ``no_ip``: without the IP-Adapter (what the image prompt costs).
* ``vanilla_attn``: diffusers' classic ``AttnProcessor`` instead of SDPA (without the IP-Adapter, whose
  processors are SDPA-only here).
* ``channels_last``: UNet, ControlNet(s) and VAE in channels-last memory format.
* ``compile``: ``torch.compile(mode="max-autotune")`` of the UNet and ControlNet(s), with the inductor
  flags of diffusers' "accelerate inference of SDXL" tutorial (``--tiny``: mode "default", which checks the
  compiled path runs without the autotuning that takes tens of minutes on a CPU).
* ``fp16_vae``: the fp16-fix VAE (``force_upcast`` off: the VAE runs in fp16).
* ``deepcache``: DeepCache-style feature reuse, ``deep_cache_interval=3``.
* ``distilled``: 8 steps with DDIM "trailing" timesteps and classifier-free guidance kept: the schedule of
  Hyper-SD's CFG-preserving 8-step SDXL LoRA. A LoRA fused into the weights adds no inference cost, so
  random weights time it exactly; loading the real LoRA needs ``peft``, which the project does not ship yet.
* ``edges``: with the optional edges ControlNet (MultiControlNet).
* ``fast``: shorthand for ``fp16_vae+channels_last+compile``.

Measures the production code path, :class:`services.inpaint.full.FullInpaint` (strength map, crop,
IP-Adapter, paste-back included): the models are built from the published architectures with random
weights (no hub access: timing does not depend on weight values), saved as diffusers checkpoints in a
scratch directory and loaded by ``FullInpaint.load()``. Reports, per configuration, load time, the first
(warm-up) call, the median of ``--runs`` calls at batch 1, and peak GPU memory, as a markdown table for
docs/BENCHMARKS.md. The IP-Adapter stand-in is IP-Adapter Plus SDXL's resampler (16 queries, width 1280,
depth 4, 20 heads) and OpenCLIP ViT-H/14's vision tower (width 1280, 32 layers, 224 px, patch 14).

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
#: OpenCLIP ViT-H/14's vision tower as transformers' CLIPVisionConfig (h94/IP-Adapter models/image_encoder).
IP_ADAPTER_VISION = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "projection_dim": 1024,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}
OPTIONS = (
    "bf16",
    "no_ip",
    "vanilla_attn",
    "channels_last",
    "compile",
    "fp16_vae",
    "deepcache",
    "distilled",
    "edges",
)
ALIASES = {"base": (), "fast": ("fp16_vae", "channels_last", "compile")}
DEFAULT_CONFIGS = ",".join(("base", *OPTIONS, "fast", "fast+distilled"))
DISTILLED_STEPS = 8
DEEP_CACHE_INTERVAL = 3


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

    from tests.tiny_models import write_clip_tokenizer, write_ip_adapter_plus

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
    # The fp16-fix VAE has the stock architecture; only force_upcast differs (it runs in fp16).
    vae.register_to_config(force_upcast=False)
    vae.save_pretrained(directory / "vae-fp16", variant=variant)
    write_ip_adapter_plus(
        directory / "ip-adapter",
        vision=IP_ADAPTER_VISION,
        unet_config=configs["unet"],
        hidden=1280,
        heads=20,
        queries=16,
        std=0.02,
        device=device,
        dtype=dtype,
    )
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
    import shutil

    from tests.tiny_models import build_controlnet, build_ip_adapter, build_sdxl_inpaint

    started = time.perf_counter()
    build_sdxl_inpaint(directory / "sdxl")
    build_controlnet(directory / "controlnet")
    build_ip_adapter(directory / "ip-adapter")
    shutil.copytree(directory / "sdxl" / "vae", directory / "vae-fp16")
    config = json.loads((directory / "vae-fp16" / "config.json").read_text())
    (directory / "vae-fp16" / "config.json").write_text(json.dumps({**config, "force_upcast": False}))
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
    config: str
    device: str
    dtype: str
    size: int
    steps: int
    load_s: float
    first_call_s: float
    median_s: float
    peak_gib: float | None


def parse_config(config: str) -> tuple[str, ...]:
    """``"fast+distilled"`` -> the options it names (aliases expanded); unknown names are an error."""
    options: list[str] = []
    for part in config.split("+"):
        part = part.strip()
        if part in ALIASES:
            options.extend(ALIASES[part])
        elif part in OPTIONS:
            options.append(part)
        else:
            raise ValueError(
                f"unknown option {part!r} in {config!r} (options: {', '.join(OPTIONS)}, base, fast)"
            )
    return tuple(dict.fromkeys(options))


def config_settings(options: tuple[str, ...], root: Path, *, device: str, dtype: str) -> ModelSettings:
    """The ModelSettings of one configuration (the optimisations that are settings)."""
    return ModelSettings(
        sdxl_inpaint_model=str(root / "sdxl"),
        controlnet_openpose_model=str(root / "controlnet"),
        ip_adapter_model="" if {"no_ip", "vanilla_attn"} & set(options) else str(root / "ip-adapter"),
        vae_model=str(root / "vae-fp16") if "fp16_vae" in options else "",
        controlnet_edges_model=str(root / "controlnet") if "edges" in options else "",
        deep_cache_interval=DEEP_CACHE_INTERVAL if "deepcache" in options else 1,
        device="cpu" if device == "cpu" else "cuda",
        dtype="bf16" if "bf16" in options else dtype,
    )


def apply_options(
    backend: FullInpaint, options: tuple[str, ...], *, compile_mode: str = "max-autotune"
) -> None:
    """The optimisations that act on the loaded pipeline (not settings of the service)."""
    import torch

    pipeline = backend._pipeline
    controlnets = getattr(pipeline.controlnet, "nets", [pipeline.controlnet])
    if "vanilla_attn" in options:
        from diffusers.models.attention_processor import AttnProcessor

        for model in (pipeline.unet, *controlnets, pipeline.vae):
            model.set_attn_processor(AttnProcessor())
    if "channels_last" in options:
        for model in (pipeline.unet, *controlnets, pipeline.vae):
            model.to(memory_format=torch.channels_last)
    if "distilled" in options:
        from diffusers import DDIMScheduler

        pipeline.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config, timestep_spacing="trailing")
    if "compile" in options:
        import torch._inductor.config as inductor

        # diffusers' SDXL tutorial ("accelerate inference of text-to-image diffusion models").
        inductor.conv_1x1_as_mm = True
        inductor.coordinate_descent_tuning = True
        inductor.epilogue_fusion = False
        inductor.coordinate_descent_check_all_directions = True
        pipeline.unet = torch.compile(pipeline.unet, mode=compile_mode, fullgraph=False)
        pipeline.controlnet = torch.compile(pipeline.controlnet, mode=compile_mode, fullgraph=False)


def bench_once(
    config: str,
    root: Path,
    *,
    device: str,
    dtype: str,
    size: int,
    steps: int,
    runs: int,
    compile_mode: str = "max-autotune",
) -> Row:
    import torch

    options = parse_config(config)
    models = config_settings(options, root, device=device, dtype=dtype)
    steps = DISTILLED_STEPS if "distilled" in options else steps
    cuda = models.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    backend = FullInpaint(models, max_long_side=size)
    started = time.perf_counter()
    backend.load()
    load_s = time.perf_counter() - started
    apply_options(backend, options, compile_mode=compile_mode)
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
        config=config,
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
        "| config | device | dtype | size | steps | load (s) | first call (s) | median (s) | s/step "
        "| peak GPU mem (GiB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        peak = f"{row.peak_gib:.1f}" if row.peak_gib is not None else "n/a"
        lines.append(
            f"| {row.config} | {row.device} | {row.dtype} | {row.size}x{row.size} | {row.steps} "
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
    parser.add_argument("--dtype", choices=["fp16", "bf16"], default="fp16", help="base precision on CUDA")
    parser.add_argument("--size", type=int, default=None, help="square side in px (default 1024, tiny 128)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 30, tiny 4)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs after warm-up (default 5, tiny 3)")
    parser.add_argument(
        "--configs",
        default=DEFAULT_CONFIGS,
        help=f"comma-separated configurations (default {DEFAULT_CONFIGS})",
    )
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

    configs = [config.strip() for config in args.configs.split(",") if config.strip()]
    try:
        for config in configs:
            parse_config(config)
    except ValueError as error:
        parser.error(str(error))

    import torch

    device = "cpu" if args.tiny else (args.device or "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: use --tiny (or --device cpu for a very slow full-size run)")
    size = args.size or (128 if args.tiny else 1024)
    steps = args.steps or (4 if args.tiny else 30)
    runs = args.runs or (3 if args.tiny else 5)
    dtype = "fp32" if device == "cpu" else args.dtype

    gpu = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
    what = "tiny models" if args.tiny else "SDXL inpaint + ControlNet + IP-Adapter Plus, random weights"
    print(f"# inpaint stage ({what})")
    print(f"{gpu}; torch {torch.__version__}; batch 1; median of {runs} runs after one warm-up call")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="tryon-bench-", dir=args.workdir) as scratch:
        root = Path(scratch)
        dtype_name = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}[dtype]
        facts = build_tiny(root) if args.tiny else build_full_size(root, device, dtype_name)
        for key, value in facts.items():
            print(f"- {key}: {value / 1e9:.3f} B" if key.endswith("params") else f"- {key}: {value:.1f}")
        print()
        # The table grows a row per configuration as it finishes, so a cut-short run keeps its figures.
        print(markdown([]), flush=True)
        for config in configs:
            try:
                # On the CPU smoke run, compile checks that the path works; autotuning would take tens of
                # minutes on a small machine and says nothing about a GPU.
                row = bench_once(
                    config,
                    root,
                    device=device,
                    dtype=dtype,
                    size=size,
                    steps=steps,
                    runs=runs,
                    compile_mode="default" if args.tiny else "max-autotune",
                )
            except (
                Exception
            ) as error:  # one failing optimisation (e.g. a compiler error) must not end the run
                failed += 1
                print(f"| {config} | failed: {type(error).__name__}: {str(error)[:200]} |", flush=True)
                continue
            print(markdown([row]).splitlines()[-1], flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
