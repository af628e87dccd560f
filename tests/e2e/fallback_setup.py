"""The set-up the FallbackPolicy e2e tests share (test_fallback, test_fallback_triggers,
test_front_door): a large model (A100) and a small one (L4), the policy's manifest, traffic, and
what a user reads back (status, conditions, the front door and its EndpointSlices)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tests.e2e.builders import GROUP_VERSION, inference_service
from tests.e2e.builders import condition_of as _condition
from tests.e2e.builders import status_of as _status
from tests.e2e.cluster import Cluster, Simulator, wait_until

SERVICE_LABEL = "aipolicy.dev/service"
A100 = "NVIDIA-A100-SXM4-40GB"
L4 = "NVIDIA-L4"
LARGE, SMALL = "large", "small"
POLICY = "fallback"
# steady traffic, far below one replica's capacity, so only injected faults make errors
TRAFFIC: dict[str, Any] = {
    "kind": "constant",
    "rate": 5,
    "duration": 600,
    "promptTokens": 100,
    "outputTokens": 20,
}
# a short rate window and `for` keep the tests quick; 0.5 is far from both 0 and the fault's 0.8+
ERROR_RATE_TRIGGER: dict[str, Any] = {"type": "ErrorRate", "threshold": 0.5, "window": "10s", "for": "2s"}


# ---- manifests ---------------------------------------------------------------------------------


def _isvc(
    name: str,
    product: str,
    *,
    labels: dict[str, str] | None = None,
    pricing: dict[str, str] | None = None,
) -> dict[str, Any]:
    return inference_service(
        name,
        model=f"example/{name}",
        labels=labels or {},
        serving={"gpu": {"count": 1, "product": product}, "resources": {"cpu": "1", "memory": "4Gi"}},
        pricing=pricing or {"gpuHour": "2.50"},
        scaling={"minReplicas": 1, "maxReplicas": 1},
    )


def _policy(
    chain: list[dict[str, Any]],
    triggers: list[dict[str, Any]],
    *,
    target: str = LARGE,
    name: str = POLICY,
    hold_for: str = "10s",
    trigger_mode: str = "Any",
) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "FallbackPolicy",
        "metadata": {"name": name},
        "spec": {
            "target": target,
            "triggers": triggers,
            "triggerMode": trigger_mode,
            "chain": chain,
            "recovery": {"holdFor": hold_for, "minSwitchInterval": "2s"},
            "evaluationInterval": "1s",
        },
    }


# ---- reading the cluster -----------------------------------------------------------------------


def _front_door(cluster: Cluster, namespace: str, name: str = LARGE) -> dict[str, Any]:
    return dict((cluster.get("service", name, namespace) or {}).get("spec") or {})


def _pods_of(cluster: Cluster, namespace: str, service: str) -> set[str]:
    return {p["metadata"]["name"] for p in cluster.list("pods", namespace, f"{SERVICE_LABEL}={service}")}


def _endpoint_pods(cluster: Cluster, namespace: str, name: str = LARGE) -> set[str]:
    """The pods the front door's EndpointSlices list (by targetRef, never by address)."""
    slices = cluster.list("endpointslices", namespace, f"kubernetes.io/service-name={name}")
    return {
        endpoint["targetRef"]["name"]
        for s in slices
        for endpoint in s.get("endpoints") or []
        if (endpoint.get("targetRef") or {}).get("kind") == "Pod"
    }


def _points_at(cluster: Cluster, namespace: str, service: str) -> bool:
    """The front door selects `service`'s pods and its EndpointSlices list exactly those."""
    selector = _front_door(cluster, namespace).get("selector")
    pods = _pods_of(cluster, namespace, service)
    return bool(selector == {SERVICE_LABEL: service} and pods and _endpoint_pods(cluster, namespace) == pods)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---- setting up --------------------------------------------------------------------------------


def _serving(cluster: Cluster, namespace: str, name: str) -> None:
    def ready() -> bool:
        status = _status(cluster, "inferenceservice", name, namespace)
        return status.get("readyReplicas") == 1 and _condition(status, "Ready").get("status") == "True"

    wait_until(f"{name} serving with one ready replica", ready, timeout=90)


def _large_with_traffic(
    cluster: Cluster,
    namespace: str,
    simulator: Simulator,
    *,
    small: str | None = L4,
    large_labels: dict[str, str] | None = None,
    large_pricing: dict[str, str] | None = None,
    traffic: bool = True,
) -> None:
    """The large model serving traffic through its own front door; the small one (if any) up."""
    cluster.apply(_isvc(LARGE, A100, labels=large_labels, pricing=large_pricing), namespace)
    if small is not None:
        cluster.apply(_isvc(SMALL, small), namespace)
    _serving(cluster, namespace, LARGE)
    if small == L4:
        _serving(cluster, namespace, SMALL)
    if traffic:
        simulator.traffic(namespace, LARGE, TRAFFIC)
    wait_until("the front door on the large model", lambda: _points_at(cluster, namespace, LARGE), timeout=60)


def _watching(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """Wait until the policy has readings and the target serves: the state before any fault."""

    last: dict[str, Any] = {}

    def clear() -> dict[str, Any] | None:
        last.update(_status(cluster, "fallbackpolicy", POLICY, namespace))
        metrics = _condition(last, "MetricsAvailable")
        active = _condition(last, "FallbackActive")
        ok = metrics.get("status") == "True" and active.get("reason") == "TriggersClear"
        return last if ok else None

    try:
        return wait_until("the policy watching, triggers clear", clear, timeout=90)
    except AssertionError as error:
        raise AssertionError(f"{error}\npolicy status: {json.dumps(last, indent=1)}") from None


def _switched_to(cluster: Cluster, namespace: str, backend: str) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def active() -> dict[str, Any] | None:
        last.update(_status(cluster, "fallbackpolicy", POLICY, namespace))
        return last if last.get("active") and last.get("activeBackend") == backend else None

    try:
        return wait_until(f"the policy active on {backend}", active, timeout=90)
    except AssertionError as error:
        raise AssertionError(f"{error}\npolicy status: {json.dumps(last, indent=1)}") from None
