"""The stage images and the Compose file, checked without a Docker engine.

What can be run here is run for real: each Dockerfile's requirements step against pyproject.toml, and its
HEALTHCHECK one-liner (and Compose's) against a live service. The rest is read structurally and compared with
the stage registry (tryon/stages.py), so a port or entrypoint changed in one place fails here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from tryon.local_services import RunningService, free_port, start_service
from tryon.stages import STAGE_TABLE
from tryon.types import STAGES

REPO = Path(__file__).resolve().parents[2]
GPU_STAGES = tuple(stage for stage in STAGES if STAGE_TABLE[stage].gpu)
CPU_STAGES = tuple(stage for stage in STAGES if not STAGE_TABLE[stage].gpu)


def dockerfile(stage: str) -> str:
    return (REPO / "services" / stage / "Dockerfile").read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in logical]


def only(text: str, instruction: str, stage_index: int = -1) -> list[str]:
    """Arguments of every ``instruction`` in one build stage (default: the final image)."""
    stages: list[list[tuple[str, str]]] = []
    for name, arguments in instructions(text):
        if name == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((name, arguments))
    return [arguments for name, arguments in stages[stage_index] if name == instruction]


def healthcheck_command(text: str) -> list[str]:
    (arguments,) = only(text, "HEALTHCHECK")
    return json.loads(arguments[arguments.index("CMD") + 3 :])


# ------------------------------------------------------------------------------------- Dockerfiles


@pytest.mark.parametrize("stage", STAGES)
def test_image_serves_its_stage_on_the_default_ports_as_non_root(stage: str) -> None:
    text = dockerfile(stage)
    defaults = STAGE_TABLE[stage]
    assert json.loads(only(text, "ENTRYPOINT")[0]) == ["python", "-m", f"services.{stage}"]
    assert only(text, "EXPOSE") == [f"{defaults.port} {defaults.metrics_port}"]
    (user,) = only(text, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root user (Kubernetes runAsNonRoot)"
    # The final image is built from the slim Python base, never from the build stage's compilers.
    assert only(text, "FROM")[0] == "${PYTHON_IMAGE}"
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    # mediapipe / opencv-contrib-python is the non-headless cv2: it needs libGL and glib at import.
    (apt,) = [run for run in only(text, "RUN") if "apt-get install" in run]
    assert "libgl1" in apt and "libglib2.0-0" in apt and "rm -rf /var/lib/apt/lists/*" in apt


@pytest.mark.parametrize("stage", STAGES)
def test_image_installs_only_its_extras_with_the_constraints(stage: str, tmp_path: Path) -> None:
    text = dockerfile(stage)
    build_runs = only(text, "RUN", stage_index=0)
    (requirements_step,) = [run for run in build_runs if "requirements.txt" in run]
    assert "-c constraints.txt" in requirements_step
    assert any(run == "pip install --no-deps -c constraints.txt ." for run in build_runs)
    # Run the image's own requirements step on the real pyproject.toml.
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    script = shlex.split(requirements_step.split(">", 1)[0].replace("python -c", "", 1))[0]
    listed = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    names = {re.split(r"[=<>\[]", requirement, maxsplit=1)[0].lower() for requirement in listed}
    assert {"grpcio", "numpy", "opencv-contrib-python", "pydantic-settings"} <= names
    if stage in GPU_STAGES:
        assert {"mediapipe", "torch", "diffusers", "controlnet_aux"} <= names
    else:
        assert not names & {"mediapipe", "torch", "jax", "diffusers"}, "CPU stages need only the base deps"
    assert not names & {"celery", "fastapi", "pytest"}


def test_gpu_images_share_one_recipe_and_cpu_images_another() -> None:
    """The five files are written out in full (one per image, no build args to remember); they may differ
    only in the stage's name, ports and descriptive comments."""

    def normalised(stage: str) -> str:
        defaults = STAGE_TABLE[stage]
        text = "\n".join(line for line in dockerfile(stage).splitlines() if not line.startswith("#"))
        text = text.replace(str(defaults.port), "PORT").replace(str(defaults.metrics_port), "METRICS")
        text = re.sub(r"--start-period=\d+s", "--start-period=N", text)
        return text.replace(f"services.{stage}", "services.STAGE")

    assert len({normalised(stage) for stage in GPU_STAGES}) == 1
    assert len({normalised(stage) for stage in CPU_STAGES}) == 1


def _dev_tool(name: str) -> str:
    """A command-line tool of the dev extra: next to this interpreter in the venv, else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: it is in the dev extra (make setup installs it)"
    return found


@pytest.mark.parametrize("stage", STAGES)
def test_hadolint_is_clean(stage: str) -> None:
    result = subprocess.run(
        [_dev_tool("hadolint"), str(REPO / "services" / stage / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_files_match_the_compose_specification(tmp_path: Path) -> None:
    files = [str(REPO / "docker-compose.yml"), str(REPO / "docker-compose.gpu.yml")]
    validate = [_dev_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec"]
    result = subprocess.run([*validate, *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # The validator really checks: a misspelled key fails.
    broken = tmp_path / "broken.yml"
    broken.write_text((REPO / "docker-compose.yml").read_text().replace("healthcheck:", "healthchek:", 1))
    assert subprocess.run([*validate, str(broken)], capture_output=True, text=True).returncode != 0


def test_dockerignore_keeps_the_context_to_what_the_images_copy() -> None:
    patterns = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv/", ".git/", "tests/", "**/*.safetensors"} <= patterns
    copied = {
        arguments.split()[0].rstrip("/")
        for stage in STAGES
        for arguments in only(dockerfile(stage), "COPY", stage_index=0)
    }
    assert copied == {"pyproject.toml", "tryon", "services"}
    assert not any(pattern.rstrip("/") in copied | {"constraints.txt"} for pattern in patterns)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distribution_closure(requirements: list[str]) -> set[str]:
    """Every installed distribution ``requirements`` pull in (extras' requirements left out)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen: set[str] = set()
    pending = [Requirement(requirement) for requirement in requirements]
    while pending:
        requirement = pending.pop()
        name = canonical(requirement.name)
        if name in seen or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        pending.extend(Requirement(line) for line in metadata.requires(requirement.name) or ())
    return seen


#: Run in a fresh interpreter: build the stage's server as `python -m services.<stage>` does, set the backend
#: up, run one call, and print the distributions every imported module comes from.
_IMPORT_PROBE = """
import json, sys
from importlib import metadata
import numpy as np
from tryon.service_main import build_server
server = build_server(sys.argv[1], ["--port", "0", "--host", "127.0.0.1", "--backend", "lite"])
server.backend.setup()
inputs = np.load(sys.argv[2], allow_pickle=True)["inputs"].item()
server.backend.run(inputs)
owners = metadata.packages_distributions()
modules = {name.split(".")[0] for name in list(sys.modules)}
print(json.dumps({module: owners[module] for module in sorted(modules) if module in owners}))
"""


def _cpu_stage_input(stage: str) -> object:
    """A small valid input of a CPU stage, built without any other stage (so nothing else is imported)."""
    from tests.imagegen import draw_garment
    from tryon.types import BlendInput, WarpInput

    height, width = 512, 384
    # A frontal standing pose, COCO-18 order, x right and y down.
    points = [
        (192, 80), (192, 130), (142, 132), (122, 200), (112, 262), (242, 132), (262, 200), (272, 262),
        (165, 280), (165, 380), (165, 470), (219, 280), (219, 380), (219, 470),
        (184, 72), (200, 72), (176, 78), (208, 78),
    ]  # fmt: skip
    keypoints = np.array([(x, y, 0.9) for x, y in points], np.float32)
    if stage == "warp":
        garment = draw_garment(size=(300, 400))
        return WarpInput(garment=garment, keypoints=keypoints, target_size=(height, width))
    person = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[150:300, 120:260] = 255
    face = np.zeros_like(mask)
    face[50:110, 170:215] = 255
    return BlendInput(person=person, generated=person[:, ::-1].copy(), clothing_mask=mask, face_mask=face)


@pytest.mark.parametrize("stage", CPU_STAGES)
def test_cpu_stage_runs_on_the_base_dependencies_alone(stage: str, tmp_path: Path) -> None:
    """What the warp and blend images install (the base dependencies) is all that serving them imports."""
    import tomllib

    inputs_file = tmp_path / "inputs.npz"
    np.savez(inputs_file, inputs=np.array(_cpu_stage_input(stage), dtype=object))
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, stage, str(inputs_file)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    owners: dict[str, list[str]] = json.loads(result.stdout.splitlines()[-1])
    base = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    allowed = _distribution_closure(base) | {"tryon"}
    # A module may be shipped by several distributions here (cv2: contrib and headless OpenCV); one of them
    # being a base dependency is enough. Imported only because the dev venv has them, and optional:
    # _distutils_hack (setuptools' start-up hook), grpc_tools (grpc imports it if present).
    optional = {"_distutils_hack", "grpc_tools"}
    outside = {
        module: dists
        for module, dists in owners.items()
        if module not in optional and not {canonical(dist) for dist in dists} & allowed
    }
    assert not outside, f"imported beyond the base dependencies: {outside}"
    assert "cv2" in owners and "torch" not in owners and "mediapipe" not in owners


# ------------------------------------------------------------------------------------- Compose


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_runs_the_five_stages_and_redis(compose: dict) -> None:
    assert set(compose["services"]) == {*STAGES, "redis"}
    for stage in STAGES:
        service = compose["services"][stage]
        defaults = STAGE_TABLE[stage]
        assert service["build"] == {"context": ".", "dockerfile": f"services/{stage}/Dockerfile"}
        assert (REPO / service["build"]["dockerfile"]).is_file()
        environment = service["environment"]
        assert environment["TRYON_PORT"] == str(defaults.port)
        assert environment["TRYON_METRICS_PORT"] == str(defaults.metrics_port)
        assert environment["TRYON_BACKEND"] == "${TRYON_BACKEND:-auto}"
        assert service["ports"] == [
            f"127.0.0.1:{defaults.port}:{defaults.port}",
            f"127.0.0.1:{defaults.metrics_port}:{defaults.metrics_port}",
        ]
        # Compose waits longer than the service's own drain before it kills.
        assert int(service["stop_grace_period"].rstrip("s")) > float(environment["TRYON_SHUTDOWN_GRACE_S"])
        if stage in GPU_STAGES:
            assert service["volumes"] == ["models:/models"] and environment["HF_HOME"] == "/models"
            assert environment["TRYON_MODELS__OFFLINE"] == "true", "serving never downloads"
        else:
            assert "volumes" not in service and "HF_HOME" not in environment
    assert set(compose["volumes"]) == {"models", "redis-data"}
    assert compose["services"]["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_gpu_override_reserves_a_gpu_for_the_gpu_stages_only() -> None:
    override = yaml.safe_load((REPO / "docker-compose.gpu.yml").read_text())
    assert set(override["services"]) == set(GPU_STAGES)
    for service in override["services"].values():
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


# ------------------------------------------------------------------------------------- health checks, live


@pytest.fixture(scope="module")
def warp_service() -> Iterator[RunningService]:
    service = start_service("warp")  # the quickest stage to start: no models
    try:
        yield service
    finally:
        service.stop()


def _wait_serving(command: list[str], env: dict[str, str], timeout: float = 60) -> int:
    """Run a health check command until it passes (the service is still starting at first)."""
    deadline = time.monotonic() + timeout
    while True:
        code = subprocess.run(command, env=env, capture_output=True, timeout=30).returncode
        if code == 0 or time.monotonic() > deadline:
            return code
        time.sleep(0.2)


@pytest.mark.parametrize("source", ["Dockerfile", "docker-compose.yml"])
def test_health_check_commands_pass_on_a_serving_stage_and_fail_without_one(
    source: str, warp_service: RunningService, compose: dict
) -> None:
    if source == "Dockerfile":
        command = healthcheck_command(dockerfile("warp"))
    else:
        command = compose["services"]["warp"]["healthcheck"]["test"][1:]
    command = [sys.executable if part == "python" else part for part in command]
    env = {**os.environ, "TRYON_PORT": str(warp_service.port)}
    assert _wait_serving(command, env) == 0
    nobody = {**os.environ, "TRYON_PORT": str(free_port())}
    assert subprocess.run(command, env=nobody, capture_output=True, timeout=30).returncode != 0


@pytest.mark.parametrize("stage", STAGES)
def test_dockerfile_health_check_defaults_to_the_stage_port(stage: str) -> None:
    command = healthcheck_command(dockerfile(stage))
    assert f"os.environ.get('TRYON_PORT', '{STAGE_TABLE[stage].port}')" in command[-1]
