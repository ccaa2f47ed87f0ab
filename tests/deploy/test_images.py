"""The images: one recipe per kind, pinned bases, non-root, no build tools or weights in the final image.

What can be run here is run for real: hadolint on every Dockerfile, each image's requirements step against
pyproject.toml, a CPU stage's whole serving path on the base dependencies alone, and the HEALTHCHECK
one-liners against a live service. The rest is read structurally and compared with the stage registry
(tryon/stages.py), so a port or entrypoint changed in one place fails here.
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

from tests.deploy.conftest import IMAGES, PYTHON_IMAGES, REPO, Image, dev_tool
from tests.deploy.dockerfiles import build_stages, global_args, healthcheck_command, only
from tryon.local_services import RunningService, free_port, start_service
from tryon.stages import STAGE_TABLE, STAGES

GPU_STAGES = tuple(stage for stage in STAGES if STAGE_TABLE[stage].gpu)
CPU_STAGES = tuple(stage for stage in STAGES if not STAGE_TABLE[stage].gpu)
PYTHON_BASE = re.compile(r"^python:3\.11\.\d+-slim-bookworm$")
CUDA_BASE = re.compile(r"^nvidia/cuda:(\d+)\.\d+\.\d+-base-ubuntu24\.04$")


def text(image: Image) -> str:
    return image.dockerfile.read_text()


def stage_image(stage: str) -> Image:
    return IMAGES[f"tryon-{stage}"]


def all_dockerfiles() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*Dockerfile"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return sorted(REPO / path for path in listed)


# ------------------------------------------------------------------------------------- every image


def test_every_dockerfile_is_an_image_of_the_project() -> None:
    assert set(all_dockerfiles()) == {image.dockerfile for image in IMAGES.values()}


@pytest.mark.parametrize("path", all_dockerfiles(), ids=lambda path: str(path.relative_to(REPO)))
def test_hadolint_is_clean(path: Path) -> None:
    result = subprocess.run([dev_tool("hadolint"), str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", PYTHON_IMAGES)
def test_python_image_is_multi_stage_on_a_pinned_base_and_runs_as_non_root(name: str) -> None:
    image = IMAGES[name]
    dockerfile = text(image)
    bases = global_args(dockerfile)
    assert PYTHON_BASE.match(bases["PYTHON_IMAGE"]), "the slim Python base, pinned to a patch release"
    stages = build_stages(dockerfile)
    assert len(stages) == 2 and only(dockerfile, "FROM", 0) == ["${PYTHON_IMAGE} AS build"]
    final_base = only(dockerfile, "FROM")[0]
    if image.kind == "gpu":
        assert final_base == "${CUDA_IMAGE}" and CUDA_BASE.match(bases["CUDA_IMAGE"])
        # uv's standalone CPython comes along with the venv; the CUDA base has no Python of its own.
        assert only(dockerfile, "COPY") == [
            "--from=build /opt/python /opt/python",
            "--from=build /opt/venv /opt/venv",
        ]
    else:
        assert final_base == "${PYTHON_IMAGE}"
        assert only(dockerfile, "COPY") == ["--from=build /opt/venv /opt/venv"]
    (user,) = only(dockerfile, "USER")
    uid, gid = user.split(":")
    assert uid.isdigit() and int(uid) > 10000 and gid.isdigit(), (
        "numeric non-root (runAsNonRoot, UID > 10000)"
    )
    # Nothing is built or installed in the final image: apt for two runtime libraries only, and no pip / uv.
    (run,) = only(dockerfile, "RUN")
    assert "uv " not in run and "pip install" not in run
    assert "--no-install-recommends" in run and "rm -rf /var/lib/apt/lists/*" in run
    assert only(dockerfile, "HEALTHCHECK"), "a health check"
    assert "PYTHONDONTWRITEBYTECODE=1" in only(dockerfile, "ENV")[0]


def test_cuda_base_matches_the_cuda_of_the_torch_wheels() -> None:
    """The CUDA base image and the nvidia-* wheels torch pulls must be one CUDA major version: the driver
    the host needs is the newer of the two."""
    pins = dict(
        line.split("==", 1) for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line
    )
    wheel_major = pins["nvidia-cuda-runtime"].split(".")[0]
    for stage in GPU_STAGES:
        match = CUDA_BASE.match(global_args(text(stage_image(stage)))["CUDA_IMAGE"])
        assert match and match.group(1) == wheel_major, (stage, wheel_major)


# ------------------------------------------------------------------------------------- stage images


@pytest.mark.parametrize("stage", STAGES)
def test_stage_image_serves_its_stage_on_the_default_ports(stage: str) -> None:
    dockerfile = text(stage_image(stage))
    entry = STAGE_TABLE[stage]
    assert _build_arg(dockerfile, "EXTRAS") == ("lite,full" if entry.gpu else "")
    assert json.loads(only(dockerfile, "ENTRYPOINT")[0]) == ["python", "-m", f"services.{stage}"]
    assert only(dockerfile, "EXPOSE") == [f"{entry.port} {entry.metrics_port}"]
    # mediapipe / opencv-contrib-python is the non-headless cv2: it needs libGL and glib at import.
    (apt,) = only(dockerfile, "RUN")
    assert "libgl1" in apt and "libglib2.0-0" in apt
    command = healthcheck_command(dockerfile)
    assert f"os.environ.get('TRYON_PORT', '{entry.port}')" in command[-1]
    if entry.gpu:
        # The weights come from the mounted cache, never from the image.
        assert "HF_HOME=/models" in only(dockerfile, "ENV")[0]


#: (distributions an image must install, distributions it must not) by image.
EXPECTED_DISTRIBUTIONS = {
    **{
        f"tryon-{stage}": (
            {"mediapipe", "torch", "diffusers", "controlnet_aux"},
            {"celery", "fastapi", "boto3"},
        )
        for stage in GPU_STAGES
    },
    **{
        f"tryon-{stage}": (set(), {"mediapipe", "torch", "jax", "diffusers", "celery", "fastapi"})
        for stage in CPU_STAGES
    },
    "tryon-worker": ({"celery", "redis", "boto3"}, {"mediapipe", "torch", "jax", "diffusers", "fastapi"}),
    "tryon-gateway": (
        {"fastapi", "uvicorn", "redis", "boto3", "celery"},
        {"mediapipe", "torch", "jax", "diffusers"},
    ),
}


def _build_arg(dockerfile: str, name: str) -> str:
    (value,) = [args.split("=", 1)[1] for args in only(dockerfile, "ARG", 0) if args.startswith(f"{name}=")]
    return value


@pytest.mark.parametrize("name", PYTHON_IMAGES)
def test_image_installs_only_its_extras_with_the_constraints(name: str, tmp_path: Path) -> None:
    dockerfile = text(IMAGES[name])
    build_runs = only(dockerfile, "RUN", stage_index=0)
    (requirements_step,) = [run for run in build_runs if "requirements.txt" in run]
    assert "uv pip install -r requirements.txt -c constraints.txt" in requirements_step
    assert build_runs[-1] == "uv pip install --no-deps -c constraints.txt ."
    # Run the image's own requirements step on the real pyproject.toml, with its default EXTRAS.
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    script = shlex.split(requirements_step.split(">", 1)[0].split("python -c", 1)[1])[0]
    listed = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True,
        env={"EXTRAS": _build_arg(dockerfile, "EXTRAS")},
    ).stdout.split()  # fmt: skip
    names = {re.split(r"[=<>\[]", requirement, maxsplit=1)[0].lower() for requirement in listed}
    assert {"grpcio", "numpy", "opencv-contrib-python", "pydantic-settings"} <= names, "base dependencies"
    wanted, unwanted = EXPECTED_DISTRIBUTIONS[name]
    assert wanted <= names, wanted - names
    assert not names & (unwanted | {"pytest", "ruff"}), names & unwanted


def test_python_images_share_one_build_stage_per_base() -> None:
    """The build stages differ only in the extras and the source folders they copy."""

    def build(image: Image) -> tuple[tuple[str, str], ...]:
        return tuple(
            (name, args)
            for name, args in build_stages(text(image))[0]
            if not (name == "ARG" and args.startswith("EXTRAS="))
            and not (name == "COPY" and args.split()[0] not in {"pyproject.toml"})
        )

    for kind in ("gpu", "cpu"):
        builds = {build(image) for image in PYTHON_IMAGES.values() if image.kind == kind}
        assert len(builds) == 1, kind
    for image in PYTHON_IMAGES.values():
        copied = [args for name, args in build_stages(text(image))[0] if name == "COPY"]
        assert copied[0] == "pyproject.toml constraints.txt ./" and "tryon/ tryon/" in copied


def test_volume_mount_points_belong_to_the_user() -> None:
    """A named volume mounted on a directory the image owns takes its owner: the model cache (written by
    `tryon models pull`) and the local job store must be writable by UID 10001."""
    for image in PYTHON_IMAGES.values():
        (run,) = only(text(image), "RUN")
        assert "mkdir -p /models /data/jobs && chown tryon:tryon /models /data/jobs" in run, image.name


def test_python_images_share_one_final_stage_per_base() -> None:
    """What runs is the same recipe everywhere: the final stages differ only in what the image serves
    (ports, health check, entrypoint, its own settings' defaults)."""

    def final(image: Image) -> tuple[tuple[str, str], ...]:
        kept = []
        for name, args in build_stages(text(image))[-1]:
            if name in {"EXPOSE", "HEALTHCHECK", "ENTRYPOINT"}:
                continue
            # An image may set defaults of its own TRYON_* settings; the rest of ENV is common.
            kept.append((name, re.sub(r"\s+TRYON_\w+=\S+", "", args) if name == "ENV" else args))
        return tuple(kept)

    for kind in ("gpu", "cpu"):
        finals = {final(image) for image in PYTHON_IMAGES.values() if image.kind == kind}
        assert len(finals) == 1, kind


def test_nginx_image_serves_the_page_as_non_root() -> None:
    dockerfile = text(IMAGES["tryon-nginx"])
    assert re.match(
        r"^nginxinc/nginx-unprivileged:1\.\d+\.\d+-alpine$", global_args(dockerfile)["NGINX_IMAGE"]
    )
    assert only(dockerfile, "USER")[-1] == "10001:10001"
    copies = only(dockerfile, "COPY")
    assert (
        "deploy/nginx/templates/ /etc/nginx/templates/" in copies
        and "frontend/ /usr/share/nginx/html/" in copies
    )
    # Every variable of the template has a default in the image (envsubst leaves unset ones in the config).
    template = (REPO / "deploy" / "nginx" / "templates" / "default.conf.template").read_text()
    variables = set(re.findall(r"\$\{(TRYON_[A-Z_]+)\}", template))
    (env,) = only(dockerfile, "ENV")
    assert variables and variables == set(re.findall(r"(TRYON_[A-Z_]+)=", env))
    assert only(dockerfile, "EXPOSE") == ["8080"] and "TRYON_NGINX_PORT=8080" in env
    assert only(dockerfile, "HEALTHCHECK")


def test_gpu_stage_images_share_one_recipe_and_cpu_stage_images_another() -> None:
    """The five files are written out in full (one per image, no build args to remember); they may differ
    only in the stage's name, ports, start period and comments."""

    def normalised(stage: str) -> str:
        entry = STAGE_TABLE[stage]
        lines = [line for line in text(stage_image(stage)).splitlines() if not line.startswith("#")]
        joined = "\n".join(lines).replace(str(entry.port), "PORT").replace(str(entry.metrics_port), "METRICS")
        joined = re.sub(r"--start-period=\d+s", "--start-period=N", joined)
        return joined.replace(f"services.{stage}", "services.STAGE")

    assert len({normalised(stage) for stage in GPU_STAGES}) == 1
    assert len({normalised(stage) for stage in CPU_STAGES}) == 1


def test_dockerignore_keeps_weights_and_the_venv_out_of_the_context() -> None:
    patterns = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv/", ".venv-tools/", ".git/", "tests/", "**/*.safetensors", "**/*.bin"} <= patterns
    copied = {
        arguments.split()[-2].rstrip("/")
        for image in IMAGES.values()
        for build_stage in build_stages(text(image))
        for name, arguments in build_stage
        if name == "COPY" and not arguments.startswith("--from")
    }
    assert copied, "the images copy sources"
    assert not any(pattern.rstrip("/") in copied | {"constraints.txt"} for pattern in patterns)


# ------------------------------------------------------------------------------------- CPU stages run lean


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
        command = healthcheck_command(text(stage_image("warp")))
    else:
        command = compose["services"]["warp"]["healthcheck"]["test"][1:]
    command = [sys.executable if part == "python" else part for part in command]
    env = {**os.environ, "TRYON_PORT": str(warp_service.port)}
    assert _wait_serving(command, env) == 0
    nobody = {**os.environ, "TRYON_PORT": str(free_port())}
    assert subprocess.run(command, env=nobody, capture_output=True, timeout=30).returncode != 0
