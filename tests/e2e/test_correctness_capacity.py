"""GPUs of any vendor, and why a pod is Pending (issue 13, items 2 and 3).

Each test makes its own kwok nodes (kwok runs every Node annotated kwok.x-k8s.io/node=fake,
as hack/kwok/nodes.yaml does) and deletes them at the end. Every such node carries a taint
unique to the test, so the other tests' pods never land on it; the pods meant for it tolerate
that taint (or, in the taint test, deliberately do not).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.builders import GROUP_VERSION, inference_service, ready_after
from tests.e2e.builders import condition_of as _condition
from tests.e2e.builders import status_of as _status
from tests.e2e.cluster import Cluster, Prometheus, wait_until
from tests.e2e.conftest import OperatorFactory
from tests.e2e.test_budget import _assert_close, _budget, _query_at, _range, _settled

TEST_TAINT = "aipolicy.dev/e2e-node"
NodeFactory = Callable[..., str]


@pytest.fixture(autouse=True)
def _crds(crds_installed: None) -> None:
    """Every test here needs the CRDs."""


@pytest.fixture
def kwok_node(cluster: Cluster) -> Iterator[NodeFactory]:
    """Create a kwok node: given capacity, labels, and the test's taint (value: the node's
    name); waits until it is Ready and schedulable. Deleted at the end of the test."""
    made: list[str] = []

    def make(stem: str, capacity: dict[str, str], extra_taints: list[dict[str, str]] | None = None) -> str:
        name = f"e2e-{stem}-{uuid.uuid4().hex[:5]}"
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/hostname": name,
                },
            },
            "spec": {
                "taints": [
                    {"key": TEST_TAINT, "value": name, "effect": "NoSchedule"},
                    *(extra_taints or []),
                ]
            },
            "status": {
                "capacity": {"pods": "110", **capacity},
                "allocatable": {"pods": "110", **capacity},
                "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"},
            },
        }
        cluster.apply(node)
        made.append(name)

        def ready() -> bool:
            obj = cluster.get("node", name) or {}
            conditions = (obj.get("status") or {}).get("conditions") or []
            is_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            taints = [t["key"] for t in (obj.get("spec") or {}).get("taints") or []]
            return is_ready and not any("not-ready" in t or "unreachable" in t for t in taints)

        wait_until(f"kwok node {name} Ready", ready, timeout=60)
        return name

    yield make
    for name in made:
        cluster.kubectl("delete", "node", name, "--wait=false", check=False)


def _tolerate(node: str) -> list[dict[str, str]]:
    return [{"key": TEST_TAINT, "operator": "Equal", "value": node, "effect": "NoSchedule"}]


def _isvc(
    name: str,
    node: str,
    *,
    gpu: dict[str, Any],
    memory: str = "1Gi",
    tolerate: bool = True,
    replicas: int = 1,
) -> dict[str, Any]:
    return inference_service(
        name,
        labels={"team": "a"},
        serving={
            "gpu": gpu,
            "resources": {"cpu": "1", "memory": memory},
            "nodeSelector": {"kubernetes.io/hostname": node},
            "tolerations": _tolerate(node) if tolerate else [],
            "podAnnotations": ready_after("1s"),
        },
        pricing={"gpuHour": "36"},
        scaling={
            "minReplicas": replicas,
            "maxReplicas": replicas,
            "evaluationInterval": "2s",
            "coldStartSeconds": 1,
        },
    )


def _gpu_shortage_policy(target: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "FallbackPolicy",
        "metadata": {"name": f"{target}-gpus"},
        "spec": {
            "target": target,
            "triggers": [{"type": "GPUShortage", "for": "0s"}],
            "chain": [{"provider": {"url": "https://api.openai.com/v1"}}],
            "evaluationInterval": "1s",
        },
    }


def _capacity_false(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        condition = _condition(_status(cluster, "inferenceservice", name, namespace), "CapacityAvailable")
        return condition if condition.get("status") == "False" else None

    result: dict[str, Any] = wait_until(f"{name}: CapacityAvailable=False", probe, timeout=90)
    return result


def test_an_amd_gpu_service_is_charged_counted_and_short_of_its_own_gpus(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    kwok_node: NodeFactory,
    operator_process: OperatorFactory,
) -> None:
    """A kwok node offering two amd.com/gpu: the service's GPU-hours reach its budget, status
    counts its GPUs, and a third replica is Pending for lack of amd.com/gpu."""
    node = kwok_node("amd", {"cpu": "32", "memory": "256Gi", "amd.com/gpu": "2"})
    operator_process(namespace)
    mi300 = _isvc("mi300", node, gpu={"count": 1, "resourceName": "amd.com/gpu"})
    cluster.apply(mi300, namespace)
    cluster.apply(_budget("amd", "1000", [(100, "Notify")]), namespace)
    wait_until(
        "mi300 ready on the AMD node",
        lambda: _status(cluster, "inferenceservice", "mi300", namespace).get("readyReplicas") == 1,
        timeout=60,
    )
    [pod] = cluster.list("pods", namespace, "aipolicy.dev/service=mi300")
    assert pod["spec"]["nodeName"] == node
    status = _status(cluster, "inferenceservice", "mi300", namespace)
    assert (status["gpus"], status["costPerHour"]) == (1, "36.00")

    # GPU-hours of amd.com/gpu reach the budget (before: the query asked for nvidia_com_gpu, 0)
    wait_until(
        "AMD GPU spend",
        lambda: Decimal(_status(cluster, "aibudget", "amd", namespace).get("spent", "0")) > Decimal("0.05"),
        timeout=90,
    )
    budget = _settled(cluster, namespace, "amd")
    end, window = _range(budget, open_left=True)
    held = (
        f'sum(kube_pod_container_resource_requests{{namespace="{namespace}",resource="amd_com_gpu"}}'
        f' * on (namespace, pod) group_left() (kube_pod_status_phase{{namespace="{namespace}",'
        'phase="Running"} == 1))'
    )
    samples = _query_at(prometheus, f"sum_over_time(({held})[{window}:5s])", end)
    _assert_close(budget["spent"], Decimal(repr(samples)) * 5 / 3600 * 36, "AMD GPU-hours x gpuHour")

    # three replicas of one GPU on a two-GPU node: one is short of amd.com/gpu
    cluster.apply(_gpu_shortage_policy("mi300"), namespace)
    cluster.apply(
        _isvc("mi300", node, gpu={"count": 1, "resourceName": "amd.com/gpu"}, replicas=3), namespace
    )
    condition = _capacity_false(cluster, namespace, "mi300")
    assert condition["reason"] == "InsufficientGPU", condition["message"]
    assert "amd.com/gpu" in condition["message"], condition
    wait_until(
        "the GPUShortage trigger switching mi300's front door",
        lambda: _status(cluster, "fallbackpolicy", "mi300-gpus", namespace).get("active") is True,
        timeout=60,
    )
    assert _status(cluster, "inferenceservice", "mi300", namespace)["gpus"] == 2


def test_pending_pods_say_whether_a_taint_or_memory_holds_them_and_gpu_shortage_stays_quiet(
    cluster: Cluster,
    namespace: str,
    kwok_node: NodeFactory,
    operator_process: OperatorFactory,
) -> None:
    """Two kwok nodes, each the only one its service selects: one with a taint the service does
    not tolerate, one with 4Gi of memory for a service asking 16Gi per replica. Neither is short
    of GPUs, so a GPUShortage trigger must not fire."""
    tainted = kwok_node(
        "tainted",
        {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "4"},
        extra_taints=[{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}],
    )
    small = kwok_node("small", {"cpu": "16", "memory": "4Gi", "nvidia.com/gpu": "4"})
    operator_process(namespace)
    # tolerates the test's own taint but not `dedicated=batch`
    cluster.apply(_isvc("untolerated", tainted, gpu={"count": 1}), namespace)
    cluster.apply(_isvc("hungry", small, gpu={"count": 1}, memory="16Gi"), namespace)
    cluster.apply(_gpu_shortage_policy("hungry"), namespace)

    condition = _capacity_false(cluster, namespace, "untolerated")
    assert condition["reason"] == "UntoleratedTaint", condition["message"]
    assert "taint" in condition["message"], condition
    condition = _capacity_false(cluster, namespace, "hungry")
    assert condition["reason"] == "InsufficientMemory", condition["message"]
    assert "Insufficient memory" in condition["message"], condition
    warnings = {(e["reason"], e["type"]) for e in cluster.events(namespace, "hungry")}
    assert ("InsufficientMemory", "Warning") in warnings, warnings

    # the policy evaluates every second; pods short of memory are no GPU shortage
    wait_until(
        "the policy evaluated",
        lambda: _condition(_status(cluster, "fallbackpolicy", "hungry-gpus", namespace), "FallbackActive"),
        timeout=30,
    )
    for _ in range(8):
        status = _status(cluster, "fallbackpolicy", "hungry-gpus", namespace)
        assert not status.get("active"), status
        assert _condition(status, "FallbackActive")["status"] == "False", status
        time.sleep(1)


def test_a_selector_no_node_matches_is_named_as_such(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    operator_process(namespace)
    cluster.apply(_isvc("nowhere", f"no-such-node-{uuid.uuid4().hex[:5]}", gpu={"count": 1}), namespace)
    condition = _capacity_false(cluster, namespace, "nowhere")
    assert condition["reason"] == "NodeAffinityMismatch", condition["message"]
