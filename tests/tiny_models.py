"""Tiny, randomly initialised stand-ins for the full backends' checkpoints, written to disk.

Each builder writes the same files in the same layout as the public checkpoint it stands in for, so the
production loaders (``from_pretrained`` on a local directory) read them unchanged:

* :func:`build_segformer` — ``mattmdjaga/segformer_b2_clothes``: ``config.json`` with the 18 ATR labels,
  ``preprocessor_config.json``, ``model.safetensors``.
* :func:`build_openpose` — ``lllyasviel/Annotators``: ``body_pose_model.pth``, ``hand_pose_model.pth``,
  ``facenet.pth`` in controlnet_aux's key layout. The networks have a fixed architecture (127 M parameters),
  so each weight is stored as a small random tensor expanded along its input channels: full-shape tensors,
  a few kilobytes on disk. The weights are small, so the body network's heatmaps stay below OpenPose's peak
  threshold and it finds no person (a trained network is needed for keypoints).
* :func:`build_sdxl_inpaint` — ``diffusers/stable-diffusion-xl-1.0-inpainting-0.1``: ``model_index.json``,
  an inpainting UNet (9 input channels, ``addition_embed_type="text_time"``), VAE, both CLIP text encoders
  and tokenizers (from a byte-level ``vocab.json`` + ``merges.txt`` written here), Euler scheduler, weights
  as the ``fp16`` variant like the published repo.
* :func:`build_controlnet` — ``thibaud/controlnet-openpose-sdxl-1.0``: ``config.json`` +
  ``diffusion_pytorch_model.bin`` (that repo ships pickled weights), made with ``ControlNetModel.from_unet``
  from a 4-channel twin of the tiny UNet.
* :func:`build_ip_adapter` — ``h94/IP-Adapter`` (the parts the full inpaint loads):
  ``sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors`` in the original IP-Adapter Plus key layout
  (``image_proj.*``: the Perceiver resampler; ``ip_adapter.<n>.to_k_ip/to_v_ip``: one pair per
  cross-attention layer of the tiny UNet) and ``models/image_encoder`` (a tiny CLIP vision tower with
  projection standing in for OpenCLIP ViT-H/14), read by diffusers' ``load_ip_adapter`` unchanged.

Everything is seeded, so two builds are identical.
"""

from __future__ import annotations

import json
from pathlib import Path

from tryon.settings import ModelSettings
from tryon.types import ClothesLabel

#: Hidden sizes of the two tiny text encoders; the UNet's cross-attention width is their sum, as in SDXL.
TEXT_HIDDEN = (32, 32)
TEXT_PROJECTION = 32
TIME_EMBED_DIM = 8
TINY_UNET = {
    "block_out_channels": (32, 64),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "layers_per_block": 1,
    "transformer_layers_per_block": (1, 2),
    "attention_head_dim": (2, 4),
    "use_linear_projection": True,
    "cross_attention_dim": sum(TEXT_HIDDEN),
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": TIME_EMBED_DIM,
    # SDXL: 6 time ids (original size, crop, target size) x time embed dim + the pooled text projection.
    "projection_class_embeddings_input_dim": 6 * TIME_EMBED_DIM + TEXT_PROJECTION,
    "norm_num_groups": 8,
    "sample_size": 16,
    "out_channels": 4,
}
#: Four VAE blocks make the VAE scale factor 8, as in SDXL; the ControlNet's conditioning embedding must
#: downscale the pose image by the same factor, so it gets four entries too.
TINY_VAE_CHANNELS = (8, 16, 16, 16)
TINY_CONTROLNET_CONDITIONING = (8, 8, 16, 16)
#: The tiny CLIP image encoder (ViT-H/14 in production: width 1280, 32 layers, 224 px, patch 14).
TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
    "projection_dim": 32,
}
#: IP-Adapter Plus resampler: queries (16 in production), width, depth 4 and 64-wide heads as published.
TINY_IP_QUERIES = 4
TINY_IP_HIDDEN = 32
TINY_IP_HEADS = 1


def build_segformer(directory: Path) -> Path:
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    torch.manual_seed(0)
    id2label = {label.value: label.name.lower().replace("_", "-") for label in ClothesLabel}
    config = SegformerConfig(
        num_channels=3,
        num_encoder_blocks=4,
        depths=[1, 1, 1, 1],
        sr_ratios=[8, 4, 2, 1],
        hidden_sizes=[8, 16, 24, 32],
        num_attention_heads=[1, 1, 2, 2],
        mlp_ratios=[2, 2, 2, 2],
        decoder_hidden_size=32,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={name: index for index, name in id2label.items()},
    )
    SegformerForSemanticSegmentation(config).eval().save_pretrained(directory)
    # The published processor resizes to 512x512; 64x64 keeps the tiny model fast.
    SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(directory)
    return directory


def build_openpose(directory: Path) -> Path:
    import warnings

    import torch

    with warnings.catch_warnings():  # controlnet_aux's package import re-registers timm models, noisily
        warnings.simplefilter("ignore")
        from controlnet_aux.open_pose.face import FaceNet
        from controlnet_aux.open_pose.model import bodypose_model, handpose_model

    directory.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    files = {
        "body_pose_model.pth": (bodypose_model, True),
        "hand_pose_model.pth": (handpose_model, True),
        "facenet.pth": (FaceNet, False),
    }
    for filename, (network_class, strip_prefix) in files.items():
        state = {}
        for key, tensor in network_class().state_dict().items():
            # controlnet_aux's body/hand loaders look keys up without their first component
            # ("model0.conv1_1.weight" is stored as "conv1_1.weight"); the face loader uses them as they are.
            stored_key = key.split(".", 1)[1] if strip_prefix else key
            if tensor.ndim == 4:  # conv weight: random per output channel and tap, shared across inputs
                out_channels, in_channels, kernel_h, kernel_w = tensor.shape
                small = torch.randn(out_channels, 1, kernel_h, kernel_w, generator=generator) * 1e-3
                state[stored_key] = small.expand(out_channels, in_channels, kernel_h, kernel_w)
            else:
                state[stored_key] = torch.zeros_like(tensor)
        torch.save(state, directory / filename)
    return directory


def write_clip_tokenizer(directory: Path, *, pad_token: str) -> Path:
    """A byte-level BPE tokenizer in the published SDXL tokenizer layout (vocab.json, merges.txt, configs).

    Every byte is a token and there are no merges: enough for the text encoders to see real token ids.
    """
    directory.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    tokens = [*symbols, *(symbol + "</w>" for symbol in symbols), "<|startoftext|>", "<|endoftext|>"]
    (directory / "vocab.json").write_text(json.dumps({token: index for index, token in enumerate(tokens)}))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    special_tokens = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": pad_token,
    }
    (directory / "special_tokens_map.json").write_text(json.dumps(special_tokens, indent=2))
    tokenizer_config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "do_lower_case": True,
        **special_tokens,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    return directory


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (GPT-2's ``bytes_to_unicode`` table)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for _, code in sorted(zip(printable, codes, strict=True))]


def _text_encoder_config(hidden_size: int, eos_token_id: int, bos_token_id: int):  # -> CLIPTextConfig
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=2 * 256 + 2,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=TEXT_PROJECTION,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
    )


def _tiny_unet(in_channels: int):  # -> UNet2DConditionModel
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(in_channels=in_channels, **TINY_UNET)


def build_sdxl_inpaint(directory: Path) -> Path:
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLInpaintPipeline,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    # SDXL's second tokenizer pads with "!" (its tokenizer_config.json says so).
    for name, pad_token in (("tokenizer", "<|endoftext|>"), ("tokenizer_2", "!")):
        write_clip_tokenizer(directory / name, pad_token=pad_token)
    tokenizer = CLIPTokenizer.from_pretrained(directory / "tokenizer")
    tokenizer_2 = CLIPTokenizer.from_pretrained(directory / "tokenizer_2")
    eos, bos = tokenizer.eos_token_id, tokenizer.bos_token_id

    torch.manual_seed(0)
    unet = _tiny_unet(in_channels=9)
    vae = AutoencoderKL(
        block_out_channels=TINY_VAE_CHANNELS,
        down_block_types=("DownEncoderBlock2D",) * len(TINY_VAE_CHANNELS),
        up_block_types=("UpDecoderBlock2D",) * len(TINY_VAE_CHANNELS),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=128,
        scaling_factor=0.13025,
        force_upcast=True,  # like the published SDXL VAE: fp16 overflows, diffusers decodes in fp32
    )
    text_encoder = CLIPTextModel(_text_encoder_config(TEXT_HIDDEN[0], eos, bos))
    text_encoder_2 = CLIPTextModelWithProjection(_text_encoder_config(TEXT_HIDDEN[1], eos, bos))
    # The published inpainting checkpoint's scheduler config.
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="leading",
    )
    pipeline = StableDiffusionXLInpaintPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        requires_aesthetics_score=False,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    pipeline.to(torch.float16).save_pretrained(directory, variant="fp16")
    # save_pretrained rewrote the tokenizers as tokenizer.json; restore the published layout.
    for name, pad_token in (("tokenizer", "<|endoftext|>"), ("tokenizer_2", "!")):
        _remove_tree(directory / name)
        write_clip_tokenizer(directory / name, pad_token=pad_token)
    return directory


def build_controlnet(directory: Path) -> Path:
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(1)
    # The ControlNet sees the 4-channel noisy latents, not the inpainting UNet's 9-channel input.
    controlnet = ControlNetModel.from_unet(
        _tiny_unet(in_channels=4), conditioning_embedding_out_channels=TINY_CONTROLNET_CONDITIONING
    )
    # thibaud/controlnet-openpose-sdxl-1.0 publishes diffusion_pytorch_model.bin; load the same format.
    controlnet.save_pretrained(directory, safe_serialization=False)
    return directory


def build_ip_adapter(directory: Path) -> Path:
    return write_ip_adapter_plus(
        directory,
        vision=TINY_VISION,
        unet_config={"in_channels": 9, **TINY_UNET},
        hidden=TINY_IP_HIDDEN,
        heads=TINY_IP_HEADS,
        queries=TINY_IP_QUERIES,
        std=0.2,
    )


def write_ip_adapter_plus(
    directory: Path,
    *,
    vision: dict,
    unet_config: dict,
    hidden: int,
    heads: int,
    queries: int,
    std: float,
    device: str = "cpu",
    dtype: object = None,
) -> Path:
    """Random IP-Adapter Plus weights for a UNet of ``unet_config`` plus a CLIP vision tower of ``vision``,
    in the h94/IP-Adapter layout (also used by bench/bench_inpaint_gpu.py at full size)."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(2)
    with torch.device(device):
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**vision))
    if dtype is not None:
        encoder = encoder.to(dtype)
    encoder.save_pretrained(directory / "models" / "image_encoder")
    del encoder
    generator = torch.Generator().manual_seed(3)

    def weight(*shape: int, scale: float = std) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * scale

    # The Perceiver resampler of IP-Adapter Plus, in tencent-ailab's key layout (diffusers converts it):
    # it reads the image encoder's penultimate hidden states and writes UNet cross-attention tokens.
    inner, width = 64 * heads, unet_config["cross_attention_dim"]
    image_proj = {
        "latents": weight(1, queries, hidden, scale=hidden**-0.5),
        "proj_in.weight": weight(hidden, vision["hidden_size"]),
        "proj_in.bias": torch.zeros(hidden),
        "proj_out.weight": weight(width, hidden),
        "proj_out.bias": torch.zeros(width),
        "norm_out.weight": torch.ones(width),
        "norm_out.bias": torch.zeros(width),
    }
    for layer in range(4):
        prefix = f"layers.{layer}"
        image_proj.update(
            {
                f"{prefix}.0.norm1.weight": torch.ones(hidden),
                f"{prefix}.0.norm1.bias": torch.zeros(hidden),
                f"{prefix}.0.norm2.weight": torch.ones(hidden),
                f"{prefix}.0.norm2.bias": torch.zeros(hidden),
                f"{prefix}.0.to_q.weight": weight(inner, hidden),
                f"{prefix}.0.to_kv.weight": weight(2 * inner, hidden),
                f"{prefix}.0.to_out.weight": weight(hidden, inner),
                f"{prefix}.1.0.weight": torch.ones(hidden),
                f"{prefix}.1.0.bias": torch.zeros(hidden),
                f"{prefix}.1.1.weight": weight(4 * hidden, hidden),
                f"{prefix}.1.3.weight": weight(hidden, 4 * hidden),
            }
        )
    # One to_k_ip / to_v_ip pair per cross-attention layer, numbered 1, 3, 5, ... in the UNet's processor
    # order (the original numbering counted self-attention layers too).
    ip_adapter = {}
    channels = list(unet_config["block_out_channels"])
    with torch.device("meta"):
        processors = UNet2DConditionModel.from_config(unet_config).attn_processors
    cross_attention = [name for name in processors if "attn2" in name]
    for index, name in enumerate(cross_attention):
        if name.startswith("mid_block"):
            size = channels[-1]
        elif name.startswith("up_blocks"):
            size = list(reversed(channels))[int(name.split(".")[1])]
        else:
            size = channels[int(name.split(".")[1])]
        ip_adapter[f"{2 * index + 1}.to_k_ip.weight"] = weight(size, width)
        ip_adapter[f"{2 * index + 1}.to_v_ip.weight"] = weight(size, width)
    state = {f"image_proj.{key}": value for key, value in image_proj.items()}
    state.update({f"ip_adapter.{key}": value for key, value in ip_adapter.items()})
    if dtype is not None:
        state = {key: value.to(dtype) for key, value in state.items()}
    (directory / "sdxl_models").mkdir(parents=True, exist_ok=True)
    save_file(
        {key: value.contiguous() for key, value in state.items()},
        directory / "sdxl_models" / "ip-adapter-plus_sdxl_vit-h.safetensors",
    )
    return directory


def build_all(root: Path) -> dict[str, Path]:
    """Build every tiny checkpoint under ``root``; returns the directory of each, by model name."""
    return {
        "segformer": build_segformer(root / "segformer"),
        "openpose": build_openpose(root / "openpose"),
        "sdxl": build_sdxl_inpaint(root / "sdxl-inpaint"),
        "controlnet": build_controlnet(root / "controlnet-openpose"),
        "ip_adapter": build_ip_adapter(root / "ip-adapter"),
    }


def tiny_model_settings(directories: dict[str, Path], **overrides: object) -> ModelSettings:
    """ModelSettings pointing every full stage at the tiny checkpoints, on the CPU in fp32."""
    values: dict[str, object] = {
        "segformer_model": str(directories["segformer"]),
        "openpose_model": str(directories["openpose"]),
        "sdxl_inpaint_model": str(directories["sdxl"]),
        "controlnet_openpose_model": str(directories["controlnet"]),
        "ip_adapter_model": str(directories.get("ip_adapter", "")),
        "device": "cpu",
        "dtype": "fp32",
    }
    values.update(overrides)
    return ModelSettings(**values)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
