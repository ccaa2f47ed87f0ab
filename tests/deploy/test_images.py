"""The images: one parameterised Dockerfile for every Python component, pinned bases, non-root, no build tools
or weights in the final image.

Every Python image is a target of the root Dockerfile with build arguments that docker-compose.yml holds;
the tests render the file for each image's build (tests/deploy/dockerfiles.py) and check what it resolves to
(base, extras, sources, entrypoint, ports, health check) against what the component needs: the stage
registry (tryon/stages.py), the settings and pyproject.toml. What can be run here is run for real: hadolint on
every Dockerfile, each image's requirements step against pyproject.toml, a CPU stage's whole serving path on
the base dependencies alone, a stage image's entrypoint and the HEALTHCHECK one-liners against a live
service.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.deploy.conftest import (
    IMAGES,
    PYTHON_DOCKERFILE,
    PYTHON_IMAGES,
    REPO,
    Image,
    compose_builds,
    dev_tool,
    render_image,
)
from tests.deploy.dockerfiles import (
    Rendered,
    build_stages,
    declared_args,
    global_args,
    only,
    reachable_stages,
    render,
    stage_names,
)
from tryon.local_services import RunningService, free_port, start_service
from tryon.stages import STAGE_TABLE, STAGES

GPU_STAGES = tuple(stage for stage in STAGES if STAGE_TABLE[stage].gpu)
CPU_STAGES = tuple(stage for stage in STAGES if not STAGE_TABLE[stage].gpu)
PYTHON_BASE = re.compile(r"^python:3\.11\.\d+-slim-bookworm$")
CUDA_BASE = re.compile(r"^nvidia/cuda:(\d+)\.\d+\.\d+-base-ubuntu24\.04$")
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def text(image: Image) -> str:
    return image.dockerfile.read_text()


def image(name: str) -> Rendered:
    """The final image docker-compose.yml builds as ``name``."""
    return render_image(name, COMPOSE)


def build_args(name: str) -> dict[str, str]:
    return {key: str(value) for key, value in compose_builds(COMPOSE)[name][0].get("args", {}).items()}


def venv_build(name: str) -> Rendered:
    """The build stage whose /opt/venv the image ``name`` copies, rendered with the image's arguments."""
    (source,) = [
        stage for stage, copies in image(name).copied_from().items() if "/opt/venv /opt/venv" in copies
    ]
    return render(PYTHON_DOCKERFILE.read_text(), source, build_args(name))


def all_dockerfiles() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*Dockerfile"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return sorted(REPO / path for path in listed)


# ------------------------------------------------------------------------------------- every image


def test_every_dockerfile_is_an_image_of_the_project() -> None:
    assert set(all_dockerfiles()) == {image.dockerfile for image in IMAGES.values()}
    assert set(all_dockerfiles()) == {PYTHON_DOCKERFILE, REPO / "deploy" / "nginx" / "Dockerfile"}


@pytest.mark.parametrize("path", all_dockerfiles(), ids=lambda path: str(path.relative_to(REPO)))
def test_hadolint_is_clean(path: Path) -> None:
    result = subprocess.run([dev_tool("hadolint"), str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_image_is_built_with_arguments_and_a_target_the_dockerfile_has() -> None:
    """Docker ignores a misspelled build argument (the image gets the default): every argument a compose
    build passes must be one the stages it builds declare, and its target a stage of the file."""
    dockerfile = PYTHON_DOCKERFILE.read_text()
    for name in PYTHON_IMAGES:
        builds = compose_builds(COMPOSE)[name]
        build = builds[0]
        assert REPO / build["context"] / build["dockerfile"] == PYTHON_DOCKERFILE, name
        assert build["target"] == IMAGES[name].target and build["target"] in stage_names(dockerfile), name
        args = build_args(name)
        unknown = set(args) - declared_args(dockerfile, reachable_stages(dockerfile, build["target"], args))
        assert not unknown, f"{name}: build arguments the build does not read: {sorted(unknown)}"
        assert args["RUNTIME"] == IMAGES[name].kind, name


@pytest.mark.parametrize("name", PYTHON_IMAGES)
def test_python_image_is_multi_stage_on_a_pinned_base_and_runs_as_non_root(name: str) -> None:
    kind = IMAGES[name].kind
    final = image(name)
    bases = global_args(PYTHON_DOCKERFILE.read_text())
    assert PYTHON_BASE.match(bases["PYTHON_IMAGE"]), "the slim Python base, pinned to a patch release"
    # The venv is built on the Python image, whatever the final base.
    build = venv_build(name)
    assert build.base_image == bases["PYTHON_IMAGE"] and "dependencies" in build.chain
    assert final.chain == [f"runtime-{kind}", "runtime", IMAGES[name].target]
    if kind == "gpu":
        assert CUDA_BASE.match(final.base_image) and final.base_image == bases["CUDA_IMAGE"]
        # uv's standalone CPython comes along with the venv; the CUDA base has no Python of its own.
        assert final.copied_from() == {
            "python-gpu": ["/opt/python /opt/python"],
            build.chain[-1]: ["/opt/venv /opt/venv"],
        }
        assert "uv python install" in " ".join(build.only("RUN"))
        assert final.env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"
    else:
        assert final.base_image == bases["PYTHON_IMAGE"]
        assert final.copied_from() == {build.chain[-1]: ["/opt/venv /opt/venv"]}
        assert "NVIDIA_DRIVER_CAPABILITIES" not in final.env
    (user,) = final.only("USER")
    uid, gid = user.split(":")
    assert uid.isdigit() and int(uid) > 10000 and gid.isdigit(), (
        "numeric non-root (runAsNonRoot, UID > 10000)"
    )
    # Nothing is built or installed in the final image: apt for two runtime libraries only, and no pip / uv.
    (run,) = final.only("RUN")
    assert "uv " not in run and "pip install" not in run
    assert "--no-install-recommends" in run and "rm -rf /var/lib/apt/lists/*" in run
    # mediapipe / opencv-contrib-python is the non-headless cv2: it needs libGL and glib at import.
    assert "libgl1" in run and "libglib2.0-0" in run
    assert final.only("HEALTHCHECK"), "a health check"
    assert final.env["PYTHONDONTWRITEBYTECODE"] == "1" and final.env["PATH"].startswith("/opt/venv/bin:")


def test_cuda_base_matches_the_cuda_of_the_torch_wheels() -> None:
    """The CUDA base image and the nvidia-* wheels torch pulls must be one CUDA major version: the driver
    the host needs is the newer of the two."""
    pins = dict(
        line.split("==", 1) for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line
    )
    wheel_major = pins["nvidia-cuda-runtime"].split(".")[0]
    for stage in GPU_STAGES:
        match = CUDA_BASE.match(image(f"tryon-{stage}").base_image)
        assert match and match.group(1) == wheel_major, (stage, wheel_major)


def test_per_image_arguments_come_after_the_shared_layers() -> None:
    """Images of one RUNTIME and EXTRAS share every layer up to their sources: an argument a RUN could read
    changes its cache key, so nothing is RUN after the per-image arguments are declared, and the build stages
    read no argument but EXTRAS."""
    for name in PYTHON_IMAGES:
        final = image(name)
        steps = [instruction for instruction, _ in final.steps]
        assert "ARG" not in steps or "RUN" not in steps[steps.index("ARG") :], name
        assert set(venv_build(name).args) == {"EXTRAS"}, name


def test_volume_mount_points_belong_to_the_user() -> None:
    """A named volume mounted on a directory the image owns takes its owner: the model cache (written by
    `tryon models pull`) and the local job store must be writable by UID 10001."""
    for name in PYTHON_IMAGES:
        (run,) = image(name).only("RUN")
        assert "mkdir -p /models /data/jobs && chown tryon:tryon /models /data/jobs" in run, name
        assert image(name).env["HF_HOME"] == "/models", "the weights come from the mounted cache"


# ------------------------------------------------------------------------------------- what each image runs


@pytest.mark.parametrize("stage", STAGES)
def test_stage_image_serves_its_stage_on_the_default_ports(stage: str) -> None:
    final = image(f"tryon-{stage}")
    entry = STAGE_TABLE[stage]
    assert venv_build(f"tryon-{stage}").args["EXTRAS"] == ("lite,full" if entry.gpu else "")
    assert final.entrypoint() == ["python", "-m", f"services.{stage}"]
    assert (REPO / "services" / stage / "__main__.py").exists()
    assert "services/ services/" in venv_build(f"tryon-{stage}").only("COPY")
    assert final.exposed() == [entry.port, entry.metrics_port]
    # The image's defaults of the stage's own settings are the registry's; the health check reads TRYON_PORT.
    assert final.env["TRYON_PORT"] == str(entry.port)
    assert final.env["TRYON_METRICS_PORT"] == str(entry.metrics_port)
    assert "os.environ['TRYON_PORT']" in final.healthcheck()[-1]
    assert "HealthStub" in final.healthcheck()[-1]


#: What the worker and the gateway run: (console script, the package it lives in, the port the image exposes,
#: the setting that moves it, the health check's path).
PROCESSES = {
    "tryon-worker": ("tryon-worker", "orchestrator", 9100, "TRYON_WORKER_METRICS_PORT", "/metrics"),
    "tryon-gateway": ("tryon-gateway", "gateway", 8000, "TRYON_PORT", "/api/health"),
}


@pytest.mark.parametrize("name", PROCESSES)
def test_worker_and_gateway_images_run_their_command(name: str) -> None:
    script, package, port, port_setting, path = PROCESSES[name]
    final = image(name)
    assert final.entrypoint() == [script]
    # The console script is the project's, and its package is in the image's venv.
    assert PYPROJECT["scripts"][script].split(".")[0] == package
    assert f"{package}/ {package}/" in venv_build(name).only("COPY")
    assert final.exposed() == [port]
    assert final.env["TRYON_STORAGE_DIR"] == "/data/jobs"
    command = final.healthcheck()[-1]
    assert f"os.environ.get('{port_setting}', '{port}')" in command and f"+ '{path}'" in command


def test_each_image_copies_only_the_sources_it_runs() -> None:
    sources = {
        name: {copy.split()[0] for copy in venv_build(name).only("COPY")} - {"pyproject.toml"}
        for name in PYTHON_IMAGES
    }
    for stage in STAGES:
        assert sources[f"tryon-{stage}"] == {"tryon/", "services/"}
    # The worker imports the stages too (TRYON_STAGE_MODE=inprocess).
    assert sources["tryon-worker"] == {"tryon/", "services/", "orchestrator/"}
    assert sources["tryon-gateway"] == {"tryon/", "gateway/"}
    assert image("tryon-gateway").env["TRYON_SERVE_FRONTEND"] == "false", "nginx serves the page"


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


@pytest.mark.parametrize("name", PYTHON_IMAGES)
def test_image_installs_only_its_extras_with_the_constraints(name: str, tmp_path: Path) -> None:
    build = venv_build(name)
    build_runs = build.only("RUN")
    (requirements_step,) = [run for run in build_runs if "requirements.txt" in run]
    assert "uv pip install -r requirements.txt -c constraints.txt" in requirements_step
    assert build_runs[-1] == "uv pip install --no-deps -c constraints.txt ."
    # Run the image's own requirements step on the real pyproject.toml, with the image's EXTRAS.
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    script = shlex.split(requirements_step.split(">", 1)[0].split("python -c", 1)[1])[0]
    listed = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True,
        env={"EXTRAS": build.args["EXTRAS"]},
    ).stdout.split()  # fmt: skip
    names = {re.split(r"[=<>\[]", requirement, maxsplit=1)[0].lower() for requirement in listed}
    assert {"grpcio", "numpy", "opencv-contrib-python", "pydantic-settings"} <= names, "base dependencies"
    wanted, unwanted = EXPECTED_DISTRIBUTIONS[name]
    assert wanted <= names, wanted - names
    assert not names & (unwanted | {"pytest", "ruff"}), names & unwanted


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


def _here(command: list[str]) -> list[str]:
    """An image's command with this interpreter for `python` (the venv's, with the project's packages)."""
    return [sys.executable if part == "python" else part for part in command]


@pytest.mark.parametrize("source", ["Dockerfile", "docker-compose.yml"])
def test_health_check_commands_pass_on_a_serving_stage_and_fail_without_one(
    source: str, warp_service: RunningService, compose: dict
) -> None:
    if source == "Dockerfile":
        command = image("tryon-warp").healthcheck()
    else:
        command = compose["services"]["warp"]["healthcheck"]["test"][1:]
    command = _here(command)
    env = {**os.environ, "TRYON_PORT": str(warp_service.port)}
    assert _wait_serving(command, env) == 0
    nobody = {**os.environ, "TRYON_PORT": str(free_port())}
    assert subprocess.run(command, env=nobody, capture_output=True, timeout=30).returncode != 0


def test_stage_image_entrypoint_serves_the_stage_as_pid_of_python() -> None:
    """The warp image's ENTRYPOINT as written (the shell form that reads STAGE_MODULE), with the image's own
    environment: it execs the stage (so SIGTERM reaches Python and drains), passes the container's
    arguments on, and its health check passes; SIGTERM stops it cleanly."""
    final = image("tryon-warp")
    entrypoint = json.loads(final.only("ENTRYPOINT")[-1])
    port = free_port()
    env = {
        **os.environ,
        **{key: value for key, value in final.env.items() if key != "PATH"},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "TRYON_PORT": str(port),
        "TRYON_METRICS_PORT": str(free_port()),
    }
    env.pop("HF_HOME")  # /models does not exist here; warp reads no models
    process = subprocess.Popen(
        [*entrypoint, "--host", "127.0.0.1", "--backend", "lite"], cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert _wait_serving(_here(final.healthcheck()), env) == 0, process.stderr
        command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert b"-m" in command_line and b"services.warp" in command_line, "the shell exec'd Python"
        assert b"--backend" in command_line, "the container's arguments reach the stage"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        # The whole group: with a shell that did not exec, Python is its child and would outlive it.
        if process.poll() is None or _group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def test_deploy_doc_lists_each_images_build() -> None:
    """docs/DEPLOY.md's table of targets and build arguments is the one docker-compose.yml builds with."""
    doc = (REPO / "docs" / "DEPLOY.md").read_text()
    table = doc[doc.index("| | target | `RUNTIME` | `EXTRAS` |") :].split("\n\n", 1)[0].splitlines()[2:]
    listed: dict[str, tuple[str, str, str]] = {}
    for row in table:
        components, target, runtime, extras = (
            cell.strip().strip("`") for cell in row.strip("|").split("|")[:4]
        )
        for component in components.split(", "):
            listed[f"tryon-{component}"] = (target, runtime, "" if extras == "(none)" else extras)
    assert set(listed) == set(PYTHON_IMAGES)
    for name, (target, runtime, extras) in listed.items():
        args = build_args(name)
        assert (compose_builds(COMPOSE)[name][0]["target"], args["RUNTIME"], args["EXTRAS"]) == (
            target,
            runtime,
            extras,
        ), name
