"""The worker image, read and partly run here (no Docker engine on CI): hadolint, its requirements step,
its user and entrypoint; and the worker's settings as the deployment files name them."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from orchestrator.celery_app import backoff_s, celery_config
from orchestrator.settings import WorkerSettings
from tryon.local_services import REPO

DOCKERFILE = REPO / "orchestrator" / "Dockerfile"


def instructions(name: str) -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [line.split(" ", 1)[1].strip() for line in text.splitlines() if line.startswith(name + " ")]


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("extras", "present", "absent"),
    [
        ("orchestrator", {"celery", "redis", "boto3", "httpx", "grpcio"}, {"torch", "mediapipe", "fastapi"}),
        ("orchestrator,lite,full", {"celery", "mediapipe", "torch", "diffusers"}, {"fastapi", "pytest"}),
    ],
)
def test_requirements_step(extras: str, present: set[str], absent: set[str], tmp_path: Path) -> None:
    (step,) = [run for run in instructions("RUN") if "requirements.txt" in run and "tomllib" in run]
    assert "-c constraints.txt" in step
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    script = shlex.split(step.split(">", 1)[0].split("python -c", 1)[1])[0]
    listed = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True,
        env={"EXTRAS": extras},
    ).stdout.split()  # fmt: skip
    names = {re.split(r"[=<>\[]", requirement, maxsplit=1)[0].lower() for requirement in listed}
    assert present <= names and not names & absent


def test_runs_the_console_script_as_non_root() -> None:
    assert json.loads(instructions("ENTRYPOINT")[0]) == ["tryon-worker"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["tryon-worker"] == "orchestrator.__main__:main"
    (user,) = instructions("USER")
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0
    assert instructions("EXPOSE") == ["9100"]


def test_reliability_settings() -> None:
    settings = WorkerSettings(
        job_time_limit_s=600, job_soft_time_limit_s=540, broker_visibility_timeout_s=7200
    )
    config = celery_config(settings)
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    assert config["broker_transport_options"]["visibility_timeout"] == 7200
    assert (config["task_soft_time_limit"], config["task_time_limit"]) == (540, 600)
    assert settings.problems() == []
    assert WorkerSettings(broker_visibility_timeout_s=600).problems()  # below the default hard limit
    assert WorkerSettings().concurrency == 4 and WorkerSettings(stage_mode="inprocess").concurrency == 1
    delays = [backoff_s(settings, retries) for retries in range(10) for _ in range(20)]
    assert min(delays) >= 1.0 and max(delays) <= settings.job_retry_backoff_max_s
    first = [backoff_s(settings, 0) for _ in range(50)]
    assert 1.0 <= min(first) < max(first) <= 2.0  # jitter spreads retries of jobs that failed together
