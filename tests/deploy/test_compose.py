"""docker-compose.yml and docker-compose.gpu.yml, checked without a Docker engine.

Each profile's effective configuration (the services Compose would start, with the GPU override merged for
`gpu`) is validated against the Compose specification and checked for what a one-command start needs:
every dependency present and healthy-gated, GPU reservations where the full backends run, none elsewhere.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import IMAGES, REPO, compose_builds, dev_tool
from tryon.stages import STAGE_TABLE, STAGES

GPU_STAGES = tuple(stage for stage in STAGES if STAGE_TABLE[stage].gpu)
#: The profile combinations docs/DEPLOY.md and .env.example offer.
PROFILES = (("cpu",), ("gpu",), ("cpu", "s3"), ("gpu", "s3"))
#: Long-running services (everything but the one-shot jobs) carry a health check.
ONE_SHOT = {"models", "minio-init"}


def _merge(base: object, override: object) -> object:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return override


def effective(compose: dict, compose_gpu: dict, profiles: tuple[str, ...]) -> dict:
    """What `docker compose [-f docker-compose.gpu.yml] --profile ... config` would hold."""
    config = copy.deepcopy(compose)
    if "gpu" in profiles:
        config = _merge(config, {"services": {name: compose_gpu["services"][name] for name in GPU_STAGES}})
    config["services"] = {
        name: service
        for name, service in config["services"].items()
        if not service.get("profiles") or set(service["profiles"]) & set(profiles)
    }
    return config


def _validate(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    command = [dev_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True)


def test_compose_files_match_the_compose_specification(tmp_path: Path) -> None:
    result = _validate([REPO / "docker-compose.yml", REPO / "docker-compose.gpu.yml"])
    assert result.returncode == 0, result.stdout + result.stderr
    # The validator really checks: a misspelled key fails.
    broken = tmp_path / "broken.yml"
    broken.write_text((REPO / "docker-compose.yml").read_text().replace("healthcheck:", "healthchek:", 1))
    assert _validate([broken]).returncode != 0


@pytest.mark.parametrize("profiles", PROFILES, ids="+".join)
def test_each_profile_is_a_complete_valid_system(
    profiles: tuple[str, ...], compose: dict, compose_gpu: dict, tmp_path: Path
) -> None:
    config = effective(compose, compose_gpu, profiles)
    path = tmp_path / "effective.yml"
    path.write_text(yaml.safe_dump(config))
    result = _validate([path])
    assert result.returncode == 0, result.stdout + result.stderr

    services = config["services"]
    # Every stage is reachable under its own name (the worker's addresses), exactly once.
    names = {
        alias
        for name, service in services.items()
        for alias in [name, *service.get("networks", {}).get("default", {}).get("aliases", [])]
    }
    assert set(STAGES) <= names
    for stage in STAGES:
        holders = [
            n
            for n, s in services.items()
            if stage in [n, *s.get("networks", {}).get("default", {}).get("aliases", [])]
        ]
        assert len(holders) == 1, (stage, holders)
    # Dependencies: present in this profile unless marked optional, and gated on health or completion.
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            if rule.get("required", True):
                assert dependency in services, f"{name} needs {dependency}, absent with {profiles}"
            if dependency in services:
                expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
                assert rule["condition"] == expected, (name, dependency)
        if name not in ONE_SHOT:
            assert "healthcheck" in service, f"{name} has no health check"
            assert service["restart"] == "unless-stopped"
    # The storage profile brings MinIO and its bucket.
    assert ("minio" in services) == ("s3" in profiles) == ("minio-init" in services)
    # GPUs: reserved for the full backends only.
    reserving = {name for name, service in services.items() if "deploy" in service}
    assert reserving == (set(GPU_STAGES) if "gpu" in profiles else set())
    for name in reserving:
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        # One card for all three by default; .env spreads them.
        assert device["device_ids"] == [f"${{TRYON_{name.upper()}_GPU:-0}}"]


def test_stage_services_run_their_backend_with_the_right_volumes(compose: dict) -> None:
    services = compose["services"]
    for stage in STAGES:
        entry = STAGE_TABLE[stage]
        variants = (
            {stage: services[stage]}
            if not entry.gpu
            else {stage: services[stage], f"{stage}-lite": services[f"{stage}-lite"]}
        )
        for name, service in variants.items():
            environment = service["environment"]
            build = service["build"]
            assert (build["dockerfile"], build["target"]) == ("Dockerfile", "stage")
            assert build["args"]["STAGE"] == stage
            assert (build["args"]["PORT"], build["args"]["METRICS_PORT"]) == (
                str(entry.port),
                str(entry.metrics_port),
            ), "the image's default ports are the stage's"
            assert service["image"] == f"tryon-{stage}:${{TRYON_IMAGE_TAG:-dev}}"
            assert service["ports"] == [
                f"127.0.0.1:{entry.port}:{entry.port}",
                f"127.0.0.1:{entry.metrics_port}:{entry.metrics_port}",
            ], "stage ports only on the host's loopback"
            # Compose waits longer than the service's own drain before it kills, and the drain outlasts the
            # client's deadline for the stage (inpaint: minutes).
            drain = float(environment["TRYON_SHUTDOWN_GRACE_S"])
            assert int(service["stop_grace_period"].rstrip("s")) > drain >= entry.timeout_s, name
            full = entry.gpu and name == stage
            assert environment["TRYON_BACKEND"] == ("full" if full else "lite")
            if full:
                assert service["profiles"] == ["gpu"] and service["volumes"] == ["models:/models"]
                assert environment["HF_HOME"] == "/models"
                assert environment["TRYON_MODELS__OFFLINE"] == "true", "serving never downloads"
                assert service["depends_on"]["models"]["condition"] == "service_completed_successfully"
            else:
                assert "volumes" not in service and "HF_HOME" not in environment
            if entry.gpu and name != stage:
                assert service["profiles"] == ["cpu"]
    models = services["models"]
    assert models["entrypoint"] == ["tryon", "models", "pull"]
    assert models["environment"]["TRYON_MODELS__OFFLINE"] == "false" and models["volumes"] == [
        "models:/models"
    ]


def test_state_survives_restarts(compose: dict) -> None:
    services = compose["services"]
    redis = services["redis"]
    assert redis["command"][:3] == ["redis-server", "--appendonly", "yes"]
    assert redis["volumes"] == ["redis-data:/data"]
    assert services["minio"]["volumes"] == ["minio-data:/data"]
    script = " ".join(services["minio-init"]["entrypoint"])
    assert 'mc mb --ignore-existing "local/$$TRYON_S3_BUCKET"' in script
    assert services["minio-init"]["environment"]["TRYON_S3_BUCKET"] == "${TRYON_S3_BUCKET:-tryon}"


def test_every_built_image_has_its_dockerfile(compose: dict) -> None:
    builds = compose_builds(compose)
    assert set(builds) == set(IMAGES)
    for name, image in IMAGES.items():
        for build in builds[name]:
            assert REPO / build["context"] / build["dockerfile"] == image.dockerfile, name
            assert build.get("target") == image.target, name
        # Services that run one image (segmentation and segmentation-lite, inpaint and models, ...) build it
        # the same way: otherwise whichever Compose builds last would be the image both run.
        assert all(build == builds[name][0] for build in builds[name]), name


def test_env_example_sets_only_what_the_compose_files_read() -> None:
    """.env.example's variables are exactly the ${...} the Compose files interpolate (plus Compose's own)."""
    import re

    used = set()
    for name in ("docker-compose.yml", "docker-compose.gpu.yml"):
        used |= set(re.findall(r"\$\{([A-Z0-9_]+)", (REPO / name).read_text()))
    example = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in (REPO / ".env.example").read_text().splitlines()
        if re.match(r"^#? ?[A-Z0-9_]+=", line)
    }
    assert example - used <= {"COMPOSE_PROFILES", "COMPOSE_FILE"}, example - used
    assert used <= example, f"not in .env.example: {used - example}"


def test_our_services_mount_volumes_only_where_the_images_prepared_them(compose: dict) -> None:
    """Named volumes take the owner of the image's directory: only /models and /data/jobs belong to UID 10001
    (tests/deploy/test_images.py), so a volume anywhere else would not be writable."""
    mounted = {
        volume.split(":")[1]
        for service in compose["services"].values()
        if service.get("image", "").startswith("tryon-")
        and service.get("build", {}).get("dockerfile") != "deploy/nginx/Dockerfile"
        for volume in service.get("volumes", [])
    }
    assert mounted == {"/models", "/data/jobs"}
