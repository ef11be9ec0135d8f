"""The Kubernetes manifests: they parse, reference the image, ports and settings that exist,
and their parts fit each other (selectors, probes, Service ports, the drain and the grace).

No cluster is needed: these are the mistakes that make ``kubectl apply`` succeed and the pods
misbehave, caught by reading the files.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

from tests.deploy.files import DOCKERFILE, K8S, ROOT, load_all_yaml, load_yaml
from tests.deploy.test_compose import settings_in_code

COMPONENTS = ("gateway", "router", "presence")


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def deployment(objects: list[dict[str, Any]], component: str) -> dict[str, Any]:
    return by_kind(objects, "Deployment")[f"switchboard-{component}"]


def container(objects: list[dict[str, Any]], component: str) -> dict[str, Any]:
    (only,) = deployment(objects, component)["spec"]["template"]["spec"]["containers"]
    return only


def env(spec: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in spec["env"]}


def test_every_object_is_complete(k8s_objects: list[dict[str, Any]]) -> None:
    kinds = {obj["kind"] for obj in k8s_objects}
    assert {"Namespace", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler",
            "PodDisruptionBudget", "Ingress"} <= kinds
    for obj in k8s_objects:
        assert obj["apiVersion"] and obj["metadata"]["name"], obj
    assert set(by_kind(k8s_objects, "Deployment")) == {f"switchboard-{c}" for c in COMPONENTS}


@pytest.mark.parametrize("component", COMPONENTS)
def test_deployment_runs_the_image_and_its_module(k8s_objects: list[dict[str, Any]],
                                                 component: str) -> None:
    spec = container(k8s_objects, component)
    kustomization = load_yaml(K8S / "kustomization.yaml")
    (image,) = kustomization["images"]
    compose_image = load_yaml(ROOT / "docker-compose.yml")["services"][component]["image"]
    assert spec["image"] == image["name"] == "switchboard"
    assert re.fullmatch(r"\$\{SWITCHBOARD_IMAGE:-switchboard:\w+\}", compose_image), \
        "compose builds the same image name"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert image["newTag"] == version
    assert spec["args"] == [component] and (ROOT / component / "__main__.py").is_file()


@pytest.mark.parametrize("component", COMPONENTS)
def test_ports_probes_and_service_agree(k8s_objects: list[dict[str, Any]],
                                       component: str) -> None:
    dep = deployment(k8s_objects, component)
    spec = container(k8s_objects, component)
    (port,) = spec["ports"]
    assert int(env(spec)["SB_PORT"]) == port["containerPort"]
    compose = load_yaml(ROOT / "docker-compose.yml")["services"][component]
    assert compose["environment"]["SB_PORT"] == str(port["containerPort"]), \
        "same port as compose (and so the Prometheus config)"
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    service = by_kind(k8s_objects, "Service")[f"switchboard-{component}"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pod = dep["spec"]["template"]["spec"]
    assert set(pod) <= {"terminationGracePeriodSeconds", "securityContext", "containers",
                        "volumes", "topologySpreadConstraints"}, "a mis-indented key"
    for spread in pod.get("topologySpreadConstraints", []):
        assert spread["labelSelector"]["matchLabels"].items() <= labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]


@pytest.mark.parametrize("component", COMPONENTS)
def test_settings_and_secrets_exist(k8s_objects: list[dict[str, Any]], component: str) -> None:
    known = settings_in_code()
    (config,) = by_kind(k8s_objects, "ConfigMap").values()
    assert set(config["data"]) <= known, set(config["data"]) - known
    assert config["data"]["SB_HOST"] == "0.0.0.0"
    (secret,) = load_all_yaml(K8S / "secret.example.yaml")
    assert set(secret["stringData"]) == {"SB_JWT_SECRET", "SB_API_KEY"} <= known
    spec = container(k8s_objects, component)
    refs = {next(iter(ref)): next(iter(ref.values()))["name"] for ref in spec["envFrom"]}
    assert refs == {"configMapRef": config["metadata"]["name"],
                    "secretRef": secret["metadata"]["name"]}
    assert set(env(spec)) <= known


@pytest.mark.parametrize("component", COMPONENTS)
def test_pods_run_as_the_image_s_non_root_user(k8s_objects: list[dict[str, Any]],
                                              component: str) -> None:
    (user,) = re.findall(r"^USER (\d+)", DOCKERFILE.read_text(), re.MULTILINE)
    pod = deployment(k8s_objects, component)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(user)
    spec = container(k8s_objects, component)
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(mount["mountPath"] == "/tmp" for mount in spec["volumeMounts"])


def test_gateway_drain_fits_the_grace_period(k8s_objects: list[dict[str, Any]]) -> None:
    """preStop (the ingress forgets the pod) + the drain (SB_DRAIN_WINDOW_S) + clean-up must end
    before Kubernetes sends SIGKILL."""
    pod = deployment(k8s_objects, "gateway")["spec"]["template"]["spec"]
    spec = container(k8s_objects, "gateway")
    command = spec["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    (config,) = by_kind(k8s_objects, "ConfigMap").values()
    drain = float(config["data"]["SB_DRAIN_WINDOW_S"])
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + 10
    strategy = deployment(k8s_objects, "gateway")["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_gateway_autoscaling_and_disruption_budget(k8s_objects: list[dict[str, Any]]) -> None:
    dep = deployment(k8s_objects, "gateway")
    (hpa,) = by_kind(k8s_objects, "HorizontalPodAutoscaler").values()
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": dep["metadata"]["name"]}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pdb = by_kind(k8s_objects, "PodDisruptionBudget")["switchboard-gateway"]
    assert pdb["apiVersion"] == "policy/v1"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_ingress_terminates_tls_and_reaches_existing_services(
        k8s_objects: list[dict[str, Any]]) -> None:
    (ingress,) = by_kind(k8s_objects, "Ingress").values()
    assert ingress["spec"]["tls"][0]["secretName"]
    services = by_kind(k8s_objects, "Service")
    paths = {path["path"]: path["backend"]["service"]
             for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}
    assert paths["/socket.io/"]["name"] == "switchboard-gateway"
    assert paths["/api/"]["name"] == "switchboard-router"
    for backend in paths.values():
        port_names = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
        assert backend["port"]["name"] in port_names
    (config,) = by_kind(k8s_objects, "ConfigMap").values()
    assert config["data"]["SB_ENV"] == "production" and config["data"]["SB_TRUSTED_PROXIES"]


def test_nats_helm_values_give_the_cluster_the_config_expects(
        k8s_objects: list[dict[str, Any]]) -> None:
    values = load_yaml(K8S / "nats-values.yaml")
    assert values["config"]["cluster"]["enabled"] is True
    assert values["config"]["jetstream"]["enabled"] is True
    assert values["config"]["jetstream"]["fileStore"]["pvc"]["size"]
    (config,) = by_kind(k8s_objects, "ConfigMap").values()
    assert int(config["data"]["SB_STREAM_REPLICAS"]) <= values["config"]["cluster"]["replicas"]
    assert config["data"]["SB_NATS_URL"].startswith("nats://nats:")


def test_pod_monitor_names_jobs_after_components(k8s_objects: list[dict[str, Any]]) -> None:
    (monitor,) = load_all_yaml(K8S / "podmonitor.yaml")
    for component in COMPONENTS:
        labels = deployment(k8s_objects, component)["spec"]["template"]["metadata"]["labels"]
        assert labels[monitor["spec"]["jobLabel"]] == component, \
            "the alert rules select job=\"gateway\"/\"router\"/\"presence\""
        assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"


def test_manifests_match_the_kubernetes_schemas(k8s_objects: list[dict[str, Any]]) -> None:
    """Every field where Kubernetes' own OpenAPI schemas (strict: no unknown keys) want it."""
    validator = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate not installed (pip install "
        "kubernetes-validate: Kubernetes' schemas, offline); the structure tests above ran")
    version = validator.latest_version()
    for obj in [*k8s_objects, *load_all_yaml(K8S / "secret.example.yaml")]:
        try:
            validator.validate(obj, version, strict=True)
        except validator.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc}")
