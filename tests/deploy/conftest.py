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

from tryon.stages import STAGE_TABLE

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("gpu", "gpu-shared", "cpu-lite")


@dataclass(frozen=True)
class Image:
    name: str  # the name docker-compose.yml and the manifests use (tryon-<service>)
    dockerfile: Path
    kind: str  # "gpu" (CUDA base, Python), "cpu" (slim Python base), "nginx" (static page + proxy)


#: Every image the project builds. Compose builds each of them and the manifests run each of them.
IMAGES: dict[str, Image] = {
    **{
        f"tryon-{name}": Image(
            f"tryon-{name}", REPO / "services" / name / "Dockerfile", "gpu" if stage.gpu else "cpu"
        )
        for name, stage in STAGE_TABLE.items()
    },
    "tryon-worker": Image("tryon-worker", REPO / "orchestrator" / "Dockerfile", "cpu"),
    "tryon-gateway": Image("tryon-gateway", REPO / "gateway" / "Dockerfile", "cpu"),
    "tryon-nginx": Image("tryon-nginx", REPO / "deploy" / "nginx" / "Dockerfile", "nginx"),
}
PYTHON_IMAGES = {name: image for name, image in IMAGES.items() if image.kind != "nginx"}


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
