"""The stage registry is the one table the rest reads: check it is complete and consistent."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tryon import stages
from tryon.client import CLIENTS, ClientSettings
from tryon.stages import STAGE_TABLE, STAGES

REPO = Path(__file__).resolve().parents[2]


def test_pipeline_order_ports_and_devices() -> None:
    assert STAGES == ("segmentation", "pose", "warp", "inpaint", "blend")
    assert [STAGE_TABLE[s].port for s in STAGES] == [50051, 50052, 50053, 50054, 50055]
    assert [STAGE_TABLE[s].metrics_port for s in STAGES] == [9101, 9102, 9103, 9104, 9105]
    assert stages.MODEL_STAGES == ("segmentation", "pose", "inpaint")
    assert [s for s in STAGES if STAGE_TABLE[s].gpu] == ["segmentation", "pose", "inpaint"]


@pytest.mark.parametrize("name", STAGES)
def test_every_stage_is_complete(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stage = STAGE_TABLE[name]
    for target in filter(None, (stage.lite_backend, stage.full_backend)):
        module, _, attribute = target.partition(":")
        assert importlib.util.find_spec(module) is not None, target
        assert f"class {attribute}" in (REPO / (module.replace(".", "/") + ".py")).read_text()
    assert (REPO / "services" / name / "servicer.py").is_file()
    assert CLIENTS[name].service == stage.service
    # Clients read the address and deadline settings the registry names, with its defaults.
    defaults = ClientSettings()
    assert defaults.address(name) == f"localhost:{stage.port}"
    assert defaults.timeout_s(name) == stage.timeout_s
    monkeypatch.setenv(stage.address_setting, "elsewhere:1")
    monkeypatch.setenv(stage.timeout_setting, "7.5")
    assert (ClientSettings().address(name), ClientSettings().timeout_s(name)) == ("elsewhere:1", 7.5)


def test_gpu_stages_do_not_get_the_cpu_deadline() -> None:
    cpu = {STAGE_TABLE[s].timeout_s for s in STAGES if not STAGE_TABLE[s].gpu}
    assert all(STAGE_TABLE[s].timeout_s > max(cpu) for s in STAGES if STAGE_TABLE[s].gpu)


def test_unknown_stage_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="segmentation, pose"):
        stages.stage("tailor")


def test_the_gpu_compose_override_gives_exactly_the_gpu_stages_a_device() -> None:
    import yaml

    override = yaml.safe_load((REPO / "docker-compose.gpu.yml").read_text())["services"]
    assert set(override) == {s for s in STAGES if STAGE_TABLE[s].gpu}
    for name, service in override.items():
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        # device 0 unless the stage's own variable spreads it (the file's comment says how)
        assert device["device_ids"] == [f"${{TRYON_{name.upper()}_GPU:-0}}"]
