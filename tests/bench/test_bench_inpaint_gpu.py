"""The GPU inpaint benchmark's CPU smoke mode, and its stored full-size configs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "bench_inpaint_gpu.py"
CONFIGS = REPO_ROOT / "bench" / "configs" / "sdxl"


def test_tiny_run_prints_the_results_table() -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--runs", "2", "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO_ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = [line for line in completed.stdout.splitlines() if line.startswith("| eager")]
    assert len(table) == 1
    cells = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert cells[1:5] == ["cpu", "fp32", "128x128", "2"]
    assert float(cells[7]) > 0  # median latency


def test_full_size_configs_are_the_published_sdxl_architecture() -> None:
    unet = json.loads((CONFIGS / "unet.json").read_text())
    controlnet = json.loads((CONFIGS / "controlnet.json").read_text())
    text_encoder_2 = json.loads((CONFIGS / "text_encoder_2.json").read_text())
    assert unet["in_channels"] == 9 and controlnet["in_channels"] == 4
    assert unet["block_out_channels"] == controlnet["block_out_channels"] == [320, 640, 1280]
    assert unet["transformer_layers_per_block"] == [1, 2, 10]
    assert unet["cross_attention_dim"] == 2048
    assert unet["projection_class_embeddings_input_dim"] == 6 * 256 + text_encoder_2["projection_dim"]


def test_full_size_parameter_counts() -> None:
    """Built on the meta device (no memory): UNet ~2.57 B and ControlNet ~1.25 B parameters, as published."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    sys.path.insert(0, str(SCRIPT.parent))
    from bench_inpaint_gpu import load_configs

    configs = load_configs()
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(configs["unet"])
        controlnet = ControlNetModel.from_config(configs["controlnet"])
    assert round(sum(p.numel() for p in unet.parameters()) / 1e9, 2) == 2.57
    assert round(sum(p.numel() for p in controlnet.parameters()) / 1e9, 2) == 1.25
