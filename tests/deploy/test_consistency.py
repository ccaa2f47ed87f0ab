"""One truth for every deployment: the code's settings and stage registry, docker-compose.yml and the
Kubernetes manifests must agree on ports, environment variable names and image names.

Environment variable names are derived from the pydantic-settings classes themselves (prefix, field names,
nested delimiter), so renaming or removing a setting fails here for every deployment file that still sets
the old name, instead of being silently ignored by `extra="ignore"` in production.
"""

from __future__ import annotations

import re

import pytest
from pydantic import AliasChoices, BaseModel
from pydantic_settings import BaseSettings

from gateway.config import GatewaySettings
from orchestrator.settings import WorkerSettings
from tests.deploy.conftest import IMAGES, K8S, REPO, render, render_image
from tryon.jobs.settings import JobSettings
from tryon.observability.settings import ObservabilitySettings
from tryon.settings import StageSettings
from tryon.stages import STAGE_TABLE, STAGES

#: Variables our processes get that are not TRYON_* settings: where caches go under a read-only root.
NON_SETTINGS = {"HOME", "HF_HOME", "HF_TOKEN"}


def env_names(settings: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads (nested settings objects included: a nested
    BaseSettings built by its default factory reads its own variables too)."""
    config = settings.model_config
    prefix, delimiter = config.get("env_prefix", ""), config.get("env_nested_delimiter")
    names: set[str] = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, AliasChoices):
            # Explicit variable names (as tryon/observability/settings.py gives): the upper-case choices.
            names |= {choice for choice in alias.choices if isinstance(choice, str) and choice.isupper()}
            continue
        variable = (alias if isinstance(alias, str) else f"{prefix}{name}").upper()
        names.add(variable)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            names |= env_names(annotation)
        elif delimiter and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= {f"{variable}{delimiter}{sub}".upper() for sub in annotation.model_fields}
    return names


def template_variables() -> set[str]:
    """The variables the nginx image's config template substitutes."""
    template = (REPO / "deploy" / "nginx" / "templates" / "default.conf.template").read_text()
    return set(re.findall(r"\$\{(TRYON_[A-Z_]+)\}", template))


#: What each kind of process reads: one settings object each (the worker also builds its stage clients).
#: Every Python process also reads the logging / tracing settings.
_EVERY_PROCESS = env_names(ObservabilitySettings)
PROCESS_SETTINGS: dict[str, set[str]] = {
    "stage": env_names(StageSettings) | _EVERY_PROCESS,
    "worker": env_names(WorkerSettings) | _EVERY_PROCESS,
    "gateway": env_names(GatewaySettings) | _EVERY_PROCESS,
    "nginx": template_variables(),
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
    assert {"TRYON_STAGE_MODE", "TRYON_REDIS_URL", "TRYON_BACKEND"} <= PROCESS_SETTINGS["worker"]
    assert {"TRYON_REDIS_URL", "TRYON_PORT", "TRYON_API_KEYS", "TRYON_S3_BUCKET"} <= PROCESS_SETTINGS[
        "gateway"
    ]
    assert {"TRYON_GATEWAY_UPSTREAM", "TRYON_NGINX_MAX_BODY"} <= PROCESS_SETTINGS["nginx"]
    assert {"TRYON_LOG_JSON", "OTEL_EXPORTER_OTLP_ENDPOINT"} <= _EVERY_PROCESS


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


# ------------------------------------------------------------------------------------- cross-process values


def _env(container: dict) -> dict[str, str]:
    return {
        variable["name"]: variable["value"] for variable in container.get("env", []) if "value" in variable
    }


def _workloads(documents: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] in {"Deployment", "StatefulSet", "Job"}}


def test_gateway_port_and_body_limit_agree_everywhere(compose: dict, rendered: dict[str, list[dict]]) -> None:
    from tests.deploy.dockerfiles import only

    gateway = GatewaySettings()
    port = gateway.port
    body = f"{gateway.max_body_bytes // (1024 * 1024)}m"  # two photos + form fields, as nginx must allow
    upstream = f"gateway:{port}"
    services = compose["services"]
    assert services["gateway"]["environment"]["TRYON_PORT"] == str(port)
    assert services["nginx"]["environment"]["TRYON_GATEWAY_UPSTREAM"] == upstream
    assert services["nginx"]["environment"]["TRYON_NGINX_MAX_BODY"] == f"${{TRYON_NGINX_MAX_BODY:-{body}}}"
    assert f"TRYON_NGINX_MAX_BODY={body}\n" in (REPO / ".env.example").read_text()
    nginx_env = only((REPO / "deploy" / "nginx" / "Dockerfile").read_text(), "ENV")[0]
    assert f"TRYON_GATEWAY_UPSTREAM={upstream}" in nginx_env and f"TRYON_NGINX_MAX_BODY={body}" in nginx_env
    assert render_image("tryon-gateway", compose).exposed() == [port]
    documents = rendered["gpu"]
    workloads = _workloads(documents)
    container = workloads["gateway"]["spec"]["template"]["spec"]["containers"][0]
    assert _env(container)["TRYON_PORT"] == str(port)
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    (service,) = [d for d in documents if d["kind"] == "Service" and d["metadata"]["name"] == "gateway"]
    assert service["spec"]["ports"][0]["port"] == port
    assert (
        _env(workloads["nginx"]["spec"]["template"]["spec"]["containers"][0])["TRYON_GATEWAY_UPSTREAM"]
        == upstream
    )
    (ingress,) = [d for d in documents if d["kind"] == "Ingress"]
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == body


def test_queue_and_redis_agree_everywhere(compose: dict, rendered: dict[str, list[dict]]) -> None:
    jobs = JobSettings()
    for overlay, documents in rendered.items():
        (config,) = [d["data"] for d in documents if d["kind"] == "ConfigMap"]
        assert config["TRYON_QUEUE_NAME"] == jobs.queue_name, overlay
        (scaled,) = [d for d in documents if d["kind"] == "ScaledObject"]
        trigger = scaled["spec"]["triggers"][0]["metadata"]
        # KEDA watches the list the workers consume: Celery's Redis transport keeps a queue in a list of
        # its name.
        assert trigger["listName"] == jobs.queue_name, overlay
        (redis,) = [d for d in documents if d["kind"] == "Service" and d["metadata"]["name"] == "redis"]
        port = redis["spec"]["ports"][0]["port"]
        assert config["TRYON_REDIS_URL"] == f"redis://redis:{port}/0"
        # The operator runs in another namespace: the Service's full name.
        assert trigger["address"] == f"redis.{redis['metadata']['namespace']}.svc.cluster.local:{port}"
        assert trigger["databaseIndex"] == config["TRYON_REDIS_URL"].rsplit("/", 1)[1]
    for name in ("gateway", "worker"):
        environment = compose["services"][name]["environment"]
        assert environment["TRYON_REDIS_URL"] == "redis://redis:6379/0"
        assert environment["TRYON_QUEUE_NAME"] == jobs.queue_name


def test_worker_metrics_port_and_grace_agree_everywhere(
    compose: dict, rendered: dict[str, list[dict]]
) -> None:
    worker = WorkerSettings()
    port = worker.worker_metrics_port
    assert render_image("tryon-worker", compose).exposed() == [port]
    service = compose["services"]["worker"]
    assert service["environment"]["TRYON_WORKER_METRICS_PORT"] == str(port)
    assert service["environment"]["TRYON_STAGE_MODE"] == "remote"
    assert f":{port}/metrics" in service["healthcheck"]["test"][-1]
    # A job in flight finishes before the worker is killed (warm shutdown): longer than a job may run.
    assert int(service["stop_grace_period"].rstrip("s")) > worker.job_time_limit_s
    for overlay, documents in rendered.items():
        deployment = _workloads(documents)["worker"]
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        assert container["ports"] == [{"name": "metrics", "containerPort": port}], overlay
        assert _env(container)["TRYON_WORKER_METRICS_PORT"] == str(port)
        assert _env(container)["TRYON_STAGE_MODE"] == "remote"
        assert spec["terminationGracePeriodSeconds"] > worker.job_time_limit_s
        assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)
