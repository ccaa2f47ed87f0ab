"""One truth for every deployment: the code's settings and stage registry, docker-compose.yml and the
Kubernetes manifests must agree on ports, environment variable names and image names.

Environment variable names are derived from the pydantic-settings classes themselves (prefix, field names,
nested delimiter), so renaming or removing a setting fails here for every deployment file that still sets
the old name, instead of being silently ignored by `extra="ignore"` in production.
"""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from tests.deploy.conftest import IMAGES, K8S, render
from tryon.client import ClientSettings
from tryon.settings import StageSettings
from tryon.stages import STAGE_TABLE, STAGES

#: Variables our processes get that are not TRYON_* settings: where caches go under a read-only root.
NON_SETTINGS = {"HOME", "HF_HOME", "HF_TOKEN"}


def env_names(settings: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads."""
    config = settings.model_config
    prefix, delimiter = config.get("env_prefix", ""), config.get("env_nested_delimiter")
    names: set[str] = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias or field.alias
        variable = (alias if isinstance(alias, str) else f"{prefix}{name}").upper()
        names.add(variable)
        annotation = field.annotation
        if delimiter and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= {f"{variable}{delimiter}{sub}".upper() for sub in annotation.model_fields}
    return names


#: What each kind of process reads (one settings object each; the worker also builds its stage clients).
PROCESS_SETTINGS: dict[str, set[str]] = {
    "stage": env_names(StageSettings),
    "worker": env_names(ClientSettings),
}


def process_of(name: str) -> str | None:
    """Which of our processes a Compose service or Kubernetes workload runs (None: third-party)."""
    if name.removesuffix("-lite") in STAGES or name in {"models", "models-pull"}:
        return "stage"
    return name if name in PROCESS_SETTINGS else None


def test_env_names_follow_the_settings_classes() -> None:
    """The derivation itself, on known names (so the tests below cannot pass vacuously)."""
    stage = PROCESS_SETTINGS["stage"]
    assert {"TRYON_PORT", "TRYON_BACKEND", "TRYON_MODELS__DTYPE", "TRYON_MAX_CONNECTION_AGE_S"} <= stage
    assert {STAGE_TABLE[name].address_setting for name in STAGES} <= PROCESS_SETTINGS["worker"]


# ------------------------------------------------------------------------------------- Compose


def test_compose_sets_only_settings_its_processes_read(compose: dict) -> None:
    checked = 0
    for name, service in compose["services"].items():
        process = process_of(name)
        if process is None:
            continue
        unknown = set(service.get("environment", {})) - PROCESS_SETTINGS[process] - NON_SETTINGS
        assert not unknown, f"{name} sets variables no setting reads: {sorted(unknown)}"
        checked += 1
    assert checked >= len(STAGES) + 3


def test_compose_ports_and_addresses_match_the_stage_registry(compose: dict) -> None:
    services = compose["services"]
    for stage in STAGES:
        entry = STAGE_TABLE[stage]
        for name in (stage, f"{stage}-lite") if entry.gpu else (stage,):
            environment = services[name]["environment"]
            assert environment["TRYON_PORT"] == str(entry.port), name
            assert environment["TRYON_METRICS_PORT"] == str(entry.metrics_port), name
        if "worker" in services:
            assert services["worker"]["environment"][entry.address_setting] == f"{stage}:{entry.port}"


# ------------------------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("overlay", ["gpu", "cpu-lite"])
def test_manifests_set_only_settings_their_processes_read(
    overlay: str, rendered: dict[str, list[dict]]
) -> None:
    documents = rendered[overlay]
    (config,) = [document for document in documents if document["kind"] == "ConfigMap"]
    shared = set(config["data"])
    readers: set[str] = set()
    for workload in documents:
        if workload["kind"] not in {"Deployment", "StatefulSet", "Job"}:
            continue
        process = process_of(workload["metadata"]["name"])
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if process is None:
                assert "envFrom" not in container, "third-party images get no TRYON_* settings"
                continue
            explicit = {variable["name"] for variable in container.get("env", [])}
            unknown = explicit - PROCESS_SETTINGS[process] - NON_SETTINGS
            assert not unknown, f"{workload['metadata']['name']}: {sorted(unknown)}"
            if any(
                source["configMapRef"]["name"] == config["metadata"]["name"]
                for source in container.get("envFrom", [])
            ):
                readers.add(process)
    # Every shared setting is read by some process that mounts the ConfigMap.
    known = set().union(*(PROCESS_SETTINGS[process] for process in readers)) | NON_SETTINGS
    assert not shared - known, f"ConfigMap keys no process reads: {sorted(shared - known)}"


def test_manifest_ports_and_addresses_match_the_stage_registry(rendered: dict[str, list[dict]]) -> None:
    documents = rendered["gpu"]
    (config,) = [document["data"] for document in documents if document["kind"] == "ConfigMap"]
    services = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Service"}
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    for stage in STAGES:
        entry = STAGE_TABLE[stage]
        ports = {port["name"]: port["port"] for port in services[stage]["spec"]["ports"]}
        assert ports == {"grpc": entry.port, "metrics": entry.metrics_port}
        container = deployments[stage]["spec"]["template"]["spec"]["containers"][0]
        env = {variable["name"]: variable.get("value") for variable in container["env"]}
        assert env["TRYON_PORT"] == str(entry.port) and env["TRYON_METRICS_PORT"] == str(entry.metrics_port)
        assert {port["name"]: port["containerPort"] for port in container["ports"]} == ports
        # The worker resolves the headless Service: every ready pod of the stage.
        assert config[entry.address_setting] == f"dns:///{stage}:{entry.port}"


def test_images_are_the_same_in_compose_and_the_manifests(compose: dict) -> None:
    compose_images = {
        service["image"].split(":")[0]
        for service in compose["services"].values()
        if service["image"].startswith("tryon-")
    }
    manifest_images = {
        container["image"]
        for document in render(K8S / "base")
        if document["kind"] in {"Deployment", "StatefulSet", "Job"}
        for container in document["spec"]["template"]["spec"]["containers"]
        if container["image"].startswith("tryon-")
    }
    release = (K8S / "components" / "images" / "kustomization.yaml").read_text()
    pinned = set(re.findall(r"name: (tryon-[a-z-]+), newName: [^,]+/\1, newTag:", release))
    assert compose_images == manifest_images == pinned == set(IMAGES)
