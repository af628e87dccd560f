"""Who holds an InferenceService's front door, end to end: two FallbackPolicies naming one
target, and a service both Degraded by a budget and switched by a policy.

Triggers here are PromQL constants (vector(1) fires, vector(0) never does), so what is tested
is the rule between objects, not a metric's timing. Reads what a user reads: the front door
Service and its EndpointSlices, status, and `kubectl get`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.builders import GROUP_VERSION, aibudget
from tests.e2e.cluster import Cluster, Prometheus, wait_until
from tests.e2e.conftest import OperatorFactory
from tests.e2e.fallback_setup import (
    A100,
    L4,
    LARGE,
    SMALL,
    _condition,
    _isvc,
    _points_at,
    _serving,
    _status,
)

FIRES = {"type": "PromQL", "query": "vector(1)", "threshold": 0, "for": "0s"}
NEVER_FIRES = {"type": "PromQL", "query": "vector(0)", "threshold": 0.5, "for": "0s"}


def _policy(name: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "FallbackPolicy",
        "metadata": {"name": name},
        "spec": {
            "target": LARGE,
            "triggers": [trigger],
            "chain": [{"inferenceService": SMALL}],
            "recovery": {"holdFor": "0s", "minSwitchInterval": "0s"},
            "evaluationInterval": "1s",
        },
    }


def _columns(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, str]:
    """`kubectl get <kind>` as a user sees it: header -> value in `name`'s row."""
    lines = cluster.kubectl("-n", namespace, "get", kind).stdout.splitlines()
    header, *rows = (line.split() for line in lines)
    row = next(r for r in rows if r[0] == name)
    return dict(zip(header, row, strict=True))


def _both_serving(cluster: Cluster, namespace: str, *, large_labels: dict[str, str] | None = None) -> None:
    large = _isvc(LARGE, A100, labels=large_labels)
    cluster.apply(large, namespace)
    cluster.apply(_isvc(SMALL, L4), namespace)
    _serving(cluster, namespace, LARGE)
    _serving(cluster, namespace, SMALL)
    wait_until("the front door on the large model", lambda: _points_at(cluster, namespace, LARGE), timeout=60)


def test_of_two_policies_on_one_target_only_the_first_by_name_holds_the_front_door(
    cluster: Cluster, namespace: str, prometheus: Prometheus, operator_process: OperatorFactory
) -> None:
    operator_process(namespace)
    _both_serving(cluster, namespace)
    # `later` governs alone and switches the front door to the small model
    cluster.apply(_policy("later", FIRES), namespace)
    wait_until("the front door on the small model", lambda: _points_at(cluster, namespace, SMALL), timeout=60)
    assert _status(cluster, "fallbackpolicy", "later", namespace)["active"] is True

    # `earlier` sorts first, so it governs from now on; its trigger never fires
    cluster.apply(_policy("earlier", NEVER_FIRES), namespace)

    def conflict() -> dict[str, Any] | None:
        status = _status(cluster, "fallbackpolicy", "later", namespace)
        return status if _condition(status, "Ready").get("reason") == "Conflict" else None

    loser = wait_until("the later policy reporting the conflict", conflict, timeout=60)
    assert "earlier" in _condition(loser, "Ready")["message"]
    # the loser's last switch is not left standing as if it still held the front door
    assert (loser["active"], loser["activeStep"], loser["activeBackend"]) == (False, -1, LARGE)
    assert _condition(loser, "FallbackActive")["reason"] == "Conflict"

    wait_until("the front door back on the large model", lambda: _points_at(cluster, namespace, LARGE), 60)

    def normal() -> dict[str, Any] | None:
        status = _status(cluster, "inferenceservice", LARGE, namespace)
        return status if status.get("mode") == "Normal" and status.get("backend") == "self" else None

    wait_until("the large model Normal, serving itself", normal, timeout=30)

    def evaluated() -> dict[str, Any] | None:
        status = _status(cluster, "fallbackpolicy", "earlier", namespace)
        return status if _condition(status, "FallbackActive").get("reason") == "TriggersClear" else None

    winner = wait_until("the earlier policy evaluated, its trigger clear", evaluated, timeout=30)
    assert winner["active"] is False
    assert _condition(winner, "Ready")["status"] == "True"
    assert _columns(cluster, namespace, "fbp", "later")["ACTIVE"] == "false"

    # once the governing policy goes, the other governs again, from a fresh start
    cluster.kubectl("-n", namespace, "delete", "fallbackpolicy", "earlier")
    wait_until("the front door on the small model again", lambda: _points_at(cluster, namespace, SMALL), 60)
    assert _condition(_status(cluster, "fallbackpolicy", "later", namespace), "Ready")["status"] == "True"


def test_a_degraded_service_switched_by_a_policy_shows_mode_and_backend(
    cluster: Cluster, namespace: str, prometheus: Prometheus, operator_process: OperatorFactory
) -> None:
    operator_process(namespace)
    # the large model's GPU at $3600/h spends $1/s: the budget's Degrade (at $5) within seconds
    large_labels = {"tier": "large"}
    cluster.apply(
        {**_isvc(LARGE, A100, labels=large_labels, pricing={"gpuHour": "3600"})},
        namespace,
    )
    cluster.apply(_isvc(SMALL, L4), namespace)
    _serving(cluster, namespace, LARGE)
    _serving(cluster, namespace, SMALL)
    budget = aibudget(
        "spend",
        {
            "limit": "10",
            "period": {"type": "Rolling", "window": "10m"},
            "selector": {"matchLabels": large_labels},
            "thresholds": [{"percent": 50, "action": "Degrade"}],
            "evaluationInterval": "2s",
        },
    )
    cluster.apply(budget, namespace)

    def degraded() -> dict[str, Any] | None:
        status = _status(cluster, "inferenceservice", LARGE, namespace)
        return status if status.get("mode") == "Degraded" else None

    status = wait_until("the large model Degraded by the budget", degraded, timeout=90)
    assert status["backend"] == "self"
    assert _columns(cluster, namespace, "aisvc", LARGE)["BACKEND"] == "self"

    cluster.apply(_policy("fallback", FIRES), namespace)
    wait_until("the front door on the small model", lambda: _points_at(cluster, namespace, SMALL), timeout=60)

    def switched() -> dict[str, str] | None:
        columns = _columns(cluster, namespace, "aisvc", LARGE)
        return columns if columns["BACKEND"] == f"service/{SMALL}" else None

    columns = wait_until("kubectl get aisvc showing the fallback", switched, timeout=30)
    assert columns["MODE"] == "Degraded"
    small = _columns(cluster, namespace, "aisvc", SMALL)
    assert (small["MODE"], small["BACKEND"]) == ("Normal", "self")


@pytest.fixture(autouse=True)
def _crds(crds_installed: None) -> None:
    """Every test here needs the CRDs."""
