"""The GPU inpaint benchmark's CPU smoke mode, and its stored full-size configs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "bench_inpaint_gpu.py"
CONFIGS = REPO_ROOT / "bench" / "configs" / "sdxl"
sys.path.insert(0, str(SCRIPT.parent))
from bench_inpaint_gpu import OPTIONS, load_configs, parse_config  # noqa: E402


def _run_tiny(*arguments: str, timeout: int) -> dict[str, list[str]]:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--runs", "1", "--steps", "2", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[1:]]
    return {row[0]: row for row in cells}


def test_tiny_run_prints_a_row_per_configuration() -> None:
    table = _run_tiny(
        "--configs", "base,channels_last+fp16_vae+deepcache+vanilla_attn,distilled", timeout=600
    )
    assert list(table) == ["base", "channels_last+fp16_vae+deepcache+vanilla_attn", "distilled"]
    for config, cells in table.items():
        assert cells[1:4] == ["cpu", "fp32", "128x128"]
        assert cells[4] == ("8" if config == "distilled" else "2")  # the distilled mode runs 8 steps
        assert float(cells[7]) > 0  # median latency


@pytest.mark.slow
def test_tiny_run_of_every_configuration_but_torch_compile() -> None:
    # torch.compile is left out on CPU: inductor's C++ compilation of even the tiny models ran for over
    # 20 minutes on the 2-core CI machine without finishing. The compiled path is timed where a GPU is lent.
    configs = ["base", *(option for option in OPTIONS if option != "compile")]
    table = _run_tiny("--configs", ",".join(configs), timeout=1200)
    assert list(table) == configs


def test_configurations_parse_and_unknown_options_are_refused() -> None:
    assert parse_config("fast+distilled") == ("fp16_vae", "channels_last", "compile", "distilled")
    assert parse_config("base") == ()
    with pytest.raises(ValueError, match="turbo"):
        parse_config("base+turbo")


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

    configs = load_configs()
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(configs["unet"])
        controlnet = ControlNetModel.from_config(configs["controlnet"])
    assert round(sum(p.numel() for p in unet.parameters()) / 1e9, 2) == 2.57
    assert round(sum(p.numel() for p in controlnet.parameters()) / 1e9, 2) == 1.25
