"""FallbackPolicy triggers and recovery settings that only unit tests covered, end to end:
a TTFT latency trigger, a GPUShortage trigger, the degraded step, minSwitchInterval, and a
budget threshold acted on from its forecast (onForecast).

Some triggers here are a "trip": PromQL over kube-state-metrics' spec.replicas of a plain
Deployment the test scales between 0 and 1, so the test decides when a condition holds and
the operator's switching is what is measured. The others come from the simulator's faults
and the real scheduler, as in test_fallback.py.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.e2e.builders import aibudget, deployment
from tests.e2e.cluster import Cluster, Prometheus, Simulator, wait_until
from tests.e2e.conftest import OperatorFactory
from tests.e2e.fallback_setup import (
    A100,
    L4,
    LARGE,
    POLICY,
    SERVICE_LABEL,
    SMALL,
    _condition,
    _isvc,
    _large_with_traffic,
    _points_at,
    _policy,
    _serving,
    _status,
    _switched_to,
    _time,
    _watching,
)

TRIP = "trip"


def _trip_trigger(namespace: str) -> dict[str, Any]:
    query = f'sum(kube_deployment_spec_replicas{{namespace="{namespace}",deployment="{TRIP}"}}) or vector(0)'
    return {"type": "PromQL", "query": query, "threshold": 0.5, "for": "0s"}


def _trip(cluster: Cluster, namespace: str, prometheus: Prometheus, on: bool) -> None:
    """Set the trip and wait until Prometheus has scraped it."""
    cluster.kubectl("-n", namespace, "scale", "deployment", TRIP, f"--replicas={int(on)}")
    query = _trip_trigger(namespace)["query"]
    wait_until(
        f"Prometheus seeing the trip {'on' if on else 'off'}", lambda: prometheus.value(query) == int(on), 30
    )


def _make_trip(cluster: Cluster, namespace: str, prometheus: Prometheus) -> None:
    pause = {"name": "pause", "image": "registry.k8s.io/pause:3.10"}
    trip = deployment(TRIP, pause, labels={"app": TRIP}, replicas=0)
    cluster.apply(trip, namespace)
    query = f'kube_deployment_spec_replicas{{namespace="{namespace}",deployment="{TRIP}"}}'
    wait_until("the trip's series in Prometheus", lambda: prometheus.query(query), timeout=60)


def _replicas(cluster: Cluster, namespace: str, name: str) -> int:
    return int(((cluster.get("deployment", name, namespace) or {}).get("spec") or {}).get("replicas", -1))


def test_a_time_to_first_token_trigger_switches_the_front_door(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    simulator: Simulator,
    operator_process: OperatorFactory,
) -> None:
    operator_process(namespace)
    _large_with_traffic(cluster, namespace, simulator)
    # At this load TTFT is ~0.02 s and end-to-end latency ~0.5 s (20 tokens at 40/s): a
    # threshold between them fires only if the trigger reads TTFT (read end to end, it would
    # fire before any fault). 50x slower prefill puts TTFT near 1 s.
    ttft = {
        "type": "Latency",
        "latency": "TimeToFirstToken",
        "percentile": 0.9,
        "threshold": 0.25,
        "window": "10s",
        "for": "2s",
    }
    cluster.apply(_policy([{"inferenceService": SMALL}], [ttft], hold_for="5m"), namespace)
    _watching(cluster, namespace)

    simulator.fault(namespace, LARGE, latencyMultiplier=50)
    status = _switched_to(cluster, namespace, f"service/{SMALL}")
    assert status["triggeredBy"] == ["Latency(p90 TimeToFirstToken)"]
    assert status["transitions"] == 1
    wait_until("the front door on the small model", lambda: _points_at(cluster, namespace, SMALL), timeout=30)
    assert _status(cluster, "inferenceservice", LARGE, namespace)["backend"] == f"service/{SMALL}"


def test_a_gpu_shortage_switches_the_front_door(
    cluster: Cluster, namespace: str, prometheus: Prometheus, operator_process: OperatorFactory
) -> None:
    operator_process(namespace)
    cluster.apply(_isvc(SMALL, L4), namespace)
    _serving(cluster, namespace, SMALL)
    # more GPUs than any A100 node has: the scheduler leaves the large model's pod Unschedulable
    # for Insufficient nvidia.com/gpu (a GPU type no node has is a NodeAffinityMismatch, no
    # shortage of GPUs: observe/unschedulable.py)
    large = _isvc(LARGE, A100)
    large["spec"]["serving"]["gpu"]["count"] = 8
    cluster.apply(large, namespace)
    shortage = {"type": "GPUShortage", "for": "2s"}
    cluster.apply(_policy([{"inferenceService": SMALL}], [shortage], hold_for="5m"), namespace)

    status = _switched_to(cluster, namespace, f"service/{SMALL}")
    assert status["triggeredBy"] == ["GPUShortage"]
    pods = cluster.list("pods", namespace, f"{SERVICE_LABEL}={LARGE}")
    scheduled = [
        c
        for p in pods
        for c in (p.get("status") or {}).get("conditions") or []
        if c["type"] == "PodScheduled"
    ]
    assert scheduled and all(c["reason"] == "Unschedulable" for c in scheduled), scheduled
    wait_until("the front door on the small model", lambda: _points_at(cluster, namespace, SMALL), timeout=30)
    isvc = _status(cluster, "inferenceservice", LARGE, namespace)
    assert (isvc["mode"], isvc["backend"]) == ("Fallback", f"service/{SMALL}")


def test_the_degraded_step_caps_the_target_on_its_own_pods(
    cluster: Cluster, namespace: str, prometheus: Prometheus, operator_process: OperatorFactory
) -> None:
    operator_process(namespace)
    _make_trip(cluster, namespace, prometheus)
    large = _isvc(LARGE, A100)
    large["spec"]["scaling"] = {"minReplicas": 2, "maxReplicas": 2, "evaluationInterval": "2s"}
    large["spec"]["degraded"] = {"maxReplicas": 1}
    cluster.apply(large, namespace)
    wait_until("two replicas of the large model", lambda: _replicas(cluster, namespace, LARGE) == 2, 60)
    policy = _policy([{"degraded": True}], [_trip_trigger(namespace)], hold_for="0s")
    policy["spec"]["recovery"]["minSwitchInterval"] = "0s"
    cluster.apply(policy, namespace)
    _watching(cluster, namespace)

    _trip(cluster, namespace, prometheus, on=True)
    status = _switched_to(cluster, namespace, "degraded")
    assert status["activeStep"] == 0

    def degraded() -> dict[str, Any] | None:
        isvc = _status(cluster, "inferenceservice", LARGE, namespace)
        return isvc if isvc.get("mode") == "Degraded" else None

    isvc = wait_until("the large model Degraded by its policy", degraded, timeout=30)
    assert isvc["backend"] == "self"
    assert POLICY in isvc["modeReason"] and "degraded" in isvc["modeReason"]
    wait_until(
        "the Deployment capped at degraded.maxReplicas", lambda: _replicas(cluster, namespace, LARGE) == 1, 30
    )
    # the front door stays on the service's own pods
    door = (cluster.get("service", LARGE, namespace) or {})["spec"]
    assert door["selector"] == {SERVICE_LABEL: LARGE}

    _trip(cluster, namespace, prometheus, on=False)
    wait_until(
        "the large model Normal again",
        lambda: _status(cluster, "inferenceservice", LARGE, namespace).get("mode") == "Normal",
        timeout=60,
    )
    wait_until("two replicas again", lambda: _replicas(cluster, namespace, LARGE) == 2, 30)


def test_min_switch_interval_delays_the_switch_back(
    cluster: Cluster, namespace: str, prometheus: Prometheus, operator_process: OperatorFactory
) -> None:
    interval = timedelta(seconds=25)
    operator_process(namespace)
    _make_trip(cluster, namespace, prometheus)
    cluster.apply(_isvc(LARGE, A100), namespace)
    cluster.apply(_isvc(SMALL, L4), namespace)
    _serving(cluster, namespace, LARGE)
    _serving(cluster, namespace, SMALL)
    policy = _policy([{"inferenceService": SMALL}], [_trip_trigger(namespace)], hold_for="0s")
    policy["spec"]["recovery"]["minSwitchInterval"] = "25s"
    cluster.apply(policy, namespace)
    _watching(cluster, namespace)

    _trip(cluster, namespace, prometheus, on=True)
    first = _switched_to(cluster, namespace, f"service/{SMALL}")
    _trip(cluster, namespace, prometheus, on=False)  # clear at once: only the interval holds it

    def held() -> dict[str, Any] | None:
        status = _status(cluster, "fallbackpolicy", POLICY, namespace)
        return status if _condition(status, "FallbackActive").get("reason") == "MinSwitchInterval" else None

    status = wait_until("the switch back held by minSwitchInterval", held, timeout=30)
    assert status["active"] is True and "minSwitchInterval" in _condition(status, "FallbackActive")["message"]
    assert _points_at(cluster, namespace, SMALL)

    def back() -> dict[str, Any] | None:
        status = _status(cluster, "fallbackpolicy", POLICY, namespace)
        return status if status.get("active") is False else None

    final = wait_until("the policy back on the target", back, timeout=90)
    assert final["transitions"] == 2
    assert _time(final["lastSwitchTime"]) - _time(first["lastSwitchTime"]) >= interval, json.dumps(final)
    wait_until("the front door back on the large model", lambda: _points_at(cluster, namespace, LARGE), 30)


def test_a_forecast_threshold_degrades_before_the_money_is_spent(
    cluster: Cluster, namespace: str, prometheus: Prometheus, operator_process: OperatorFactory
) -> None:
    operator_process(namespace)
    # One GPU at $36/h spends $0.01/s; a Rolling hour at that rate is $36, well past 80 % of a
    # $10 limit, while what is spent in the test's minute stays under 10 % of it.
    labels = {"tier": "large"}
    large = _isvc(LARGE, A100, labels=labels, pricing={"gpuHour": "36"})
    large["spec"]["scaling"] = {"minReplicas": 1, "maxReplicas": 1, "evaluationInterval": "2s"}
    cluster.apply(large, namespace)
    _serving(cluster, namespace, LARGE)
    budget = aibudget(
        "spend",
        {
            "limit": "10",
            "period": {"type": "Rolling", "window": "1h"},
            "selector": {"matchLabels": labels},
            "thresholds": [{"percent": 80, "action": "Degrade", "onForecast": True}],
            "forecast": {"window": "30s"},
            "evaluationInterval": "2s",
        },
    )
    cluster.apply(budget, namespace)

    def degraded() -> dict[str, Any] | None:
        status = _status(cluster, "aibudget", "spend", namespace)
        return status if status.get("state") == "Degraded" else None

    status = wait_until("the budget Degraded", degraded, timeout=120)
    assert _condition(status, "ThresholdReached")["reason"] == "ForecastDegradeThresholdReached"
    assert status["percentUsed"] < 80 and float(status["spent"]) < 8, status
    assert float(status["forecast"]) >= 8, status
    wait_until(
        "the service Degraded by the forecast",
        lambda: _status(cluster, "inferenceservice", LARGE, namespace).get("mode") == "Degraded",
        timeout=30,
    )


@pytest.fixture(autouse=True)
def _crds(crds_installed: None) -> None:
    """Every test here needs the CRDs."""


@pytest.fixture(autouse=True)
def _traffic_stopped(namespace: str, request: pytest.FixtureRequest) -> Iterator[None]:
    """Stop this test's traffic in the session's simulator, if it used one."""
    yield
    if "simulator" in request.fixturenames:
        simulator: Simulator = request.getfixturevalue("simulator")
        with contextlib.suppress(urllib.error.HTTPError):
            simulator.stop_traffic(namespace, LARGE)
