"""Writes each process' Kubernetes manifest in deploy/k8s (Deployment, Service,
HorizontalPodAutoscaler, PodDisruptionBudget) from one description, so the five stay alike:
`make k8s`.

The YAML files are committed, to be applied as they are (`kubectl apply -k deploy/k8s`);
tests/unit/test_kubernetes.py checks they are what this script writes and validates them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from services.common.catalog import GATEWAY, GATEWAY_MODULE, GATEWAY_PORT, SERVICES

DIRECTORY = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
NAMESPACE = "points"
METRICS_PORT = 9464
HEADER = "# Written by scripts/k8s_manifests.py (`make k8s`): edit that, not this file.\n"


@dataclass(frozen=True)
class Process:
    name: str
    module: str
    port: int
    max_replicas: int
    cpu: str  # requested per replica; the autoscaler aims at 70 % of it
    memory: str  # requested; the limit is twice this
    http: bool = False  # the gateway: HTTP probes and a ClusterIP Service

    @property
    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.name}


# Sizing per process: (most replicas, CPU requested, memory requested).
SIZES = {
    "ledger": (12, "1", "256Mi"),
    "rules": (12, "1", "256Mi"),
    "mall": (8, "500m", "256Mi"),
    "webhooks": (6, "500m", "256Mi"),
    GATEWAY: (12, "500m", "256Mi"),
}
PROCESSES = (
    *(Process(s.name, s.module, s.port, *SIZES[s.name]) for s in SERVICES),
    Process(GATEWAY, GATEWAY_MODULE, GATEWAY_PORT, *SIZES[GATEWAY], http=True),
)


def _meta(p: Process) -> dict[str, Any]:
    return {"name": p.name, "namespace": NAMESPACE, "labels": p.labels}


def _probes(p: Process) -> dict[str, Any]:
    if p.http:
        ready: dict[str, Any] = {"httpGet": {"path": "/readyz", "port": "http"}}
        live: dict[str, Any] = {"httpGet": {"path": "/healthz", "port": "http"}}
    else:  # gRPC health: NOT_SERVING while migrations wait, after SIGTERM, or a job died
        ready = live = {"grpc": {"port": p.port}}
    return {
        # Up to five minutes to start (a replica waits for the migration Job).
        "startupProbe": {**live, "periodSeconds": 2, "failureThreshold": 150},
        "readinessProbe": {**ready, "periodSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {**live, "periodSeconds": 10, "failureThreshold": 3},
    }


def _container(p: Process) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": f"{p.name.upper()}_METRICS_PORT", "value": str(METRICS_PORT)},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "OTEL_RESOURCE_ATTRIBUTES",
            "value": f"k8s.pod.name=$(POD_NAME),k8s.namespace.name={NAMESPACE}",
        },
    ]
    container = {
        "name": p.name,
        "image": "points",
        "command": ["python", "-m", p.module],
        "ports": [
            {"name": "http" if p.http else "grpc", "containerPort": p.port},
            {"name": "metrics", "containerPort": METRICS_PORT},
        ],
        "envFrom": [
            {"configMapRef": {"name": "points-config"}},
            {"secretRef": {"name": "points-secrets"}},
        ],
        "env": env,
        **_probes(p),
        "resources": {
            "requests": {"cpu": p.cpu, "memory": p.memory},
            "limits": {"memory": f"{int(p.memory.removesuffix('Mi')) * 2}Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return container


def deployment(p: Process) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(p),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": p.labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": p.labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(METRICS_PORT),
                    },
                },
                "spec": {
                    # SIGTERM: DRAIN_SECONDS + GRACE_PERIOD_SECONDS (config.yaml) fit in this.
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": key,
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": p.labels},
                        }
                        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
                    ],
                    "containers": [_container(p)],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def service(p: Process) -> dict[str, Any]:
    if p.http:
        spec: dict[str, Any] = {
            "type": "ClusterIP",
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        }
    else:  # headless: DNS answers every ready pod, and clients balance per call
        spec = {
            "clusterIP": "None",
            "ports": [{"name": "grpc", "port": p.port, "targetPort": "grpc"}],
        }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(p),
        "spec": {**spec, "selector": p.labels},
    }


def autoscaler(p: Process) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(p),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": p.name},
            "minReplicas": 2,
            "maxReplicas": p.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def disruption_budget(p: Process) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(p),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": p.labels}},
    }


def manifest(p: Process) -> str:
    documents = [deployment(p), service(p), autoscaler(p), disruption_budget(p)]
    return HEADER + yaml.safe_dump_all(documents, sort_keys=False, width=100)


def main() -> None:
    for p in PROCESSES:
        (DIRECTORY / f"{p.name}.yaml").write_text(manifest(p))
    print(f"wrote {len(PROCESSES)} manifests in {DIRECTORY}", file=sys.stderr)


if __name__ == "__main__":
    main()
