"""Proof that the local cluster is a real one: real apiserver, scheduler, GPU nodes, Prometheus."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.builders import deployment
from tests.e2e.cluster import REPO, Cluster, Prometheus, wait_until


def _gpu_deployment(name: str, gpus: int) -> dict[str, Any]:
    server = {
        "name": "server",
        "image": "registry.invalid/vllm:never-pulled",
        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
    }
    return deployment(name, server, labels={"app": name})


def test_kubectl_reports_the_built_server_version(cluster: Cluster) -> None:
    versions = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    wanted = next(
        line.split("=", 1)[1].split()[0]
        for line in (REPO / "hack" / "versions.env").read_text().splitlines()
        if line.startswith("K8S_VERSION=")
    )
    assert versions["serverVersion"]["gitVersion"] == f"v{wanted}"
    assert versions["clientVersion"]["gitVersion"] == f"v{wanted}"


def test_gpu_nodes_are_ready_with_their_capacity(cluster: Cluster) -> None:
    nodes = cluster.list("nodes")
    gpu_nodes = [n for n in nodes if n["metadata"]["labels"].get("nvidia.com/gpu.present") == "true"]
    assert len(gpu_nodes) >= 2
    for node in gpu_nodes:
        assert int(node["status"]["allocatable"]["nvidia.com/gpu"]) > 0
        assert node["metadata"]["labels"]["nvidia.com/gpu.product"]
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True"
    assert any("nvidia.com/gpu" not in n["status"]["allocatable"] for n in nodes), "no CPU node"


def test_a_gpu_deployment_is_scheduled_onto_a_gpu_node_and_becomes_ready(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(_gpu_deployment("one-gpu", 1), namespace)
    cluster.kubectl("-n", namespace, "rollout", "status", "deployment/one-gpu", "--timeout=90s", timeout=100)
    (pod,) = cluster.list("pods", namespace, selector="app=one-gpu")
    node = cluster.get("node", pod["spec"]["nodeName"])
    assert node is not None
    assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
    assert pod["status"]["phase"] == "Running"


def test_a_deployment_asking_more_gpus_than_exist_stays_pending(cluster: Cluster, namespace: str) -> None:
    cluster.apply(_gpu_deployment("too-many-gpus", 64), namespace)

    def failed_scheduling() -> list[dict[str, Any]]:
        return [e for e in cluster.events(namespace) if e["reason"] == "FailedScheduling"]

    events = wait_until("a FailedScheduling event", failed_scheduling, timeout=60)
    assert "nvidia.com/gpu" in events[0]["message"]
    (pod,) = cluster.list("pods", namespace, selector="app=too-many-gpus")
    assert pod["status"]["phase"] == "Pending"


def test_a_crd_applied_with_kubectl_is_served(cluster: Cluster, namespace: str) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.proof.aipolicy.dev"},
        "spec": {
            "group": "proof.aipolicy.dev",
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    cluster.apply(crd)
    cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.proof.aipolicy.dev", "--timeout=60s")
    cluster.apply(
        {"apiVersion": "proof.aipolicy.dev/v1", "kind": "Widget", "metadata": {"name": "w1"}},
        namespace,
    )
    listed = cluster.kubectl("-n", namespace, "get", "widgets", "-o", "name").stdout.split()
    assert listed == ["widget.proof.aipolicy.dev/w1"]


def test_prometheus_scrapes_kube_state_metrics_on_loopback(
    cluster: Cluster, namespace: str, prometheus: Prometheus
) -> None:
    cluster.apply(_gpu_deployment("scraped", 2), namespace)
    query = f'sum(kube_pod_container_resource_requests{{namespace="{namespace}",resource="nvidia_com_gpu"}})'
    value = wait_until("the pod's GPU request in Prometheus", lambda: prometheus.value(query), timeout=60)
    assert value == 2
    targets = prometheus.query('up{job="kube-state-metrics"}')
    assert targets and targets[0]["metric"]["instance"].startswith("127.0.0.1:")
    assert targets[0]["value"][1] == "1"
