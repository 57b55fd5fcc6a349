"""The Kubernetes manifests (deploy/k8s): what scripts/k8s_manifests.py writes, valid against
a pinned Kubernetes version's schemas (offline, `kubernetes-validate`), and consistent with the
code: ports, probes, commands, settings and the objects that point at each other."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from scripts import k8s_manifests
from services.common.settings import DEFAULT_PORTS, peer_address

KUBERNETES = "1.34.0"
ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
FILES = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
DOCUMENTS = [doc for path in FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in DOCUMENTS if d["kind"] == kind}


def test_the_committed_manifests_are_what_the_script_writes() -> None:
    for process in k8s_manifests.PROCESSES:
        written = (K8S / f"{process.name}.yaml").read_text()
        assert written == k8s_manifests.manifest(process), "run `make k8s` and commit it"


def test_kustomization_applies_every_file() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in FILES)


@pytest.mark.parametrize(
    "document", DOCUMENTS, ids=[f"{d['kind']}/{d['metadata']['name']}" for d in DOCUMENTS]
)
def test_valid_against_the_pinned_kubernetes(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_the_validator_refuses_what_kubernetes_would() -> None:
    deployment = objects("Deployment")["ledger"]
    typo = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, KUBERNETES, strict=True)


def test_each_process_has_probes_a_service_an_autoscaler_and_a_disruption_budget() -> None:
    services, autoscalers = objects("Service"), objects("HorizontalPodAutoscaler")
    budgets = objects("PodDisruptionBudget")
    for name, deployment in objects("Deployment").items():
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"] == labels
        (container,) = pod["spec"]["containers"]
        port = DEFAULT_PORTS[name]
        assert {"name": "grpc" if name != "gateway" else "http", "containerPort": port} in (
            container["ports"]
        )
        module = container["command"][-1]
        assert importlib.util.find_spec(module) is not None, module
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            check = container[probe]
            assert check.get("grpc", {}).get("port") == port or "httpGet" in check, (name, probe)
        service = services[name]
        assert service["spec"]["selector"] == labels
        if name != "gateway":  # gRPC: headless, so clients see and balance over every pod
            assert service["spec"]["clusterIP"] == "None"
            assert service["spec"]["ports"][0]["port"] == port
        assert autoscalers[name]["spec"]["scaleTargetRef"]["name"] == name
        assert autoscalers[name]["spec"]["minReplicas"] >= 2
        assert budgets[name]["spec"]["selector"]["matchLabels"] == labels
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_settings_are_documented_and_peers_are_the_headless_services() -> None:
    config = objects("ConfigMap")["points-config"]["data"]
    secret = objects("Secret")["points-secrets"]["stringData"]
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", readme))
    assert set(config) | set(secret) <= documented
    services = objects("Service")
    for name in ("ledger", "rules", "mall", "webhooks"):
        address = config[f"{name.upper()}_ADDR"]
        assert address == f"{name}.points.svc.cluster.local:{DEFAULT_PORTS[name]}"
        assert peer_address(name, config) == address
        assert services[name]["spec"]["ports"][0]["port"] == DEFAULT_PORTS[name]
    # After SIGTERM a pod drains, then lets calls finish, within the grace Kubernetes gives.
    stop = float(config["DRAIN_SECONDS"]) + float(config["GRACE_PERIOD_SECONDS"])
    for deployment in objects("Deployment").values():
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > stop
    assert config["MIGRATE_ON_START"] == "false"
    (job,) = objects("Job").values()
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-3:] == [
        "services.cli",
        "migrate",
        "up",
    ]


HA = K8S / "ha"
CNPG_CLUSTER = json.loads(
    (ROOT / "tests" / "unit" / "schemas" / "cnpg_cluster_v1.json").read_text()
)


def test_the_ha_overlay_is_valid_and_points_the_services_at_the_primary() -> None:
    documents = [d for d in yaml.safe_load_all((HA / "cluster.yaml").read_text()) if d]
    (cluster,) = [d for d in documents if d["kind"] == "Cluster"]
    jsonschema.validate(cluster, CNPG_CLUSTER)
    for document in documents:
        if document["kind"] != "Cluster":
            kubernetes_validate.validate(document, KUBERNETES, strict=True)
    synchronous = cluster["spec"]["postgresql"]["synchronous"]
    assert synchronous["number"] >= 1 and cluster["spec"]["instances"] > synchronous["number"] + 1
    overlay = yaml.safe_load((HA / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["..", "cluster.yaml"]
    (patch,) = yaml.safe_load(overlay["patches"][0]["patch"])
    assert f"@{cluster['metadata']['name']}-rw.points.svc" in patch["value"]


def test_the_operator_schema_refuses_what_the_operator_would() -> None:
    documents = yaml.safe_load_all((HA / "cluster.yaml").read_text())
    (cluster,) = [d for d in documents if d and d["kind"] == "Cluster"]
    typo = {**cluster, "spec": {**cluster["spec"], "instances": "three"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(typo, CNPG_CLUSTER)
