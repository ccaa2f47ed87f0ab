"""What the deployment tests share: the images the project builds, the validators, the rendered overlays.

Nothing here needs Docker, a cluster or a network: the validators are the dev extra's command-line tools
(hadolint, check-jsonschema, kubectl with its built-in kustomize, kubernetes-validate) and checkov from the
tools venv that `make setup` creates (it cannot share the project's venv: its pins clash).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.deploy.dockerfiles import Rendered
from tests.deploy.dockerfiles import render as render_dockerfile
from tryon.stages import STAGE_TABLE

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("gpu", "gpu-shared", "cpu-lite")


@dataclass(frozen=True)
class Image:
    name: str  # the name docker-compose.yml and the manifests use (tryon-<service>)
    dockerfile: Path
    kind: str  # "gpu" (CUDA base, Python), "cpu" (slim Python base), "nginx" (static page + proxy)
    target: str | None = None  # the build stage of the Dockerfile that is the image (None: the last one)


#: Every Python image is a target of the one Dockerfile at the root, with build arguments (docker-compose.yml
#: holds them: `compose_builds`).
PYTHON_DOCKERFILE = REPO / "Dockerfile"

#: Every image the project builds. Compose builds each of them and the manifests run each of them.
IMAGES: dict[str, Image] = {
    **{
        f"tryon-{name}": Image(f"tryon-{name}", PYTHON_DOCKERFILE, "gpu" if stage.gpu else "cpu", "stage")
        for name, stage in STAGE_TABLE.items()
    },
    "tryon-worker": Image("tryon-worker", PYTHON_DOCKERFILE, "cpu", "worker"),
    "tryon-gateway": Image("tryon-gateway", PYTHON_DOCKERFILE, "cpu", "gateway"),
    "tryon-nginx": Image("tryon-nginx", REPO / "deploy" / "nginx" / "Dockerfile", "nginx"),
}
PYTHON_IMAGES = {name: image for name, image in IMAGES.items() if image.kind != "nginx"}


def compose_builds(compose: dict) -> dict[str, list[dict]]:
    """The `build:` sections of docker-compose.yml by image name (tryon-<service>, without the tag): one per
    service that builds the image, so a test can check they agree."""
    builds: dict[str, list[dict]] = {}
    for service in compose["services"].values():
        if "build" in service:
            builds.setdefault(service["image"].split(":")[0], []).append(service["build"])
    return builds


def render_image(name: str, compose: dict | None = None) -> Rendered:
    """What docker-compose.yml builds as image ``name``: its Dockerfile rendered with the build's target and
    arguments (tests/deploy/dockerfiles.py)."""
    compose = compose if compose is not None else yaml.safe_load((REPO / "docker-compose.yml").read_text())
    build = compose_builds(compose)[name][0]
    text = (REPO / build["context"] / build.get("dockerfile", "Dockerfile")).read_text()
    return render_dockerfile(
        text, build.get("target"), {key: str(value) for key, value in build.get("args", {}).items()}
    )


def dev_tool(name: str) -> str:
    """A command-line tool of the dev extra: next to this interpreter in the venv, else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: it is in the dev extra (make setup installs it)"
    return found


def tools_venv_tool(name: str) -> str:
    """A tool of the tools venv (`make setup` makes .venv-tools beside .venv): in this checkout, or beside
    the venv running the tests (worktrees share one venv), else on PATH."""
    candidates = [
        REPO / ".venv-tools" / "bin" / name,
        Path(sys.prefix).resolve().parent / ".venv-tools" / "bin" / name,
    ]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    assert found, f"{name} is missing: `make setup` installs it into .venv-tools"
    return found


def render(overlay: str | Path) -> list[dict]:
    """`kubectl kustomize` of an overlay (a name under deploy/k8s/overlays, or a directory)."""
    path = overlay if isinstance(overlay, Path) else K8S / "overlays" / overlay
    result = subprocess.run([dev_tool("kubectl"), "kustomize", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """Every overlay, rendered once per session."""
    return {overlay: render(overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="session")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="session")
def compose_gpu() -> dict:
    return yaml.safe_load((REPO / "docker-compose.gpu.yml").read_text())
