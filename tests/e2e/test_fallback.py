"""FallbackPolicy end to end: a real apiserver, scheduler and EndpointSlice controller, a real
Prometheus scraping the simulator, and the operator as a subprocess.

Each test makes a large model (A100) and, where it needs one, a small model (L4), gives the
large one traffic in the simulator, injects a fault or drives a budget, and then reads what a
user would read: the front door Service and its EndpointSlices, both objects' status,
`kubectl get fbp`, and events. No test connects to a pod IP; no test asserts on durations it
measured itself (only on the times the operator recorded in status).
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.e2e.builders import aibudget
from tests.e2e.cluster import Cluster, Prometheus, Simulator, wait_until
from tests.e2e.conftest import OperatorFactory
from tests.e2e.fallback_setup import (
    ERROR_RATE_TRIGGER,
    LARGE,
    POLICY,
    SERVICE_LABEL,
    SMALL,
    TRAFFIC,
    _condition,
    _front_door,
    _large_with_traffic,
    _pods_of,
    _points_at,
    _policy,
    _status,
    _switched_to,
    _time,
    _watching,
)

NO_SUCH_GPU = "NVIDIA-H100-80GB-HBM3"  # no node has it: pods stay Pending, the service never Ready
PROVIDER_URL = "https://api.openai.com/v1"


# the reasons the state machine gives only when the front door moves
TRANSITION_REASONS = frozenset(
    {"FallbackActivated", "FallbackRecovered", "FallbackStepChanged", "ColdStartBridgeEnded"}
)


# ---- reading the cluster -----------------------------------------------------------------------


GATEWAY_SELECTOR = {"app.kubernetes.io/name": "aipolicy-gateway"}


def _transition_events(cluster: Cluster, namespace: str, name: str = POLICY) -> list[dict[str, Any]]:
    """Events of the policy whose reason is a switch's: there must be one per switch (a
    condition event repeating the same reason would show here as a second one)."""
    return [
        e
        for e in cluster.events(namespace, name)
        if e["involvedObject"].get("kind") == "FallbackPolicy" and e["reason"] in TRANSITION_REASONS
    ]


def _event_count(events: list[dict[str, Any]]) -> int:
    return sum(int(e.get("count") or 1) for e in events)


def _event_time(event: dict[str, Any]) -> str:
    return str(event.get("eventTime") or event.get("lastTimestamp") or event.get("firstTimestamp") or "")


def _get_fbp_columns(cluster: Cluster, namespace: str) -> dict[str, str]:
    """`kubectl get fbp` as a user sees it: header name -> value of our policy's row."""
    lines = cluster.kubectl("-n", namespace, "get", "fbp").stdout.splitlines()
    header, *rows = (line.split() for line in lines)
    row = next(r for r in rows if r[0] == POLICY)
    return dict(zip(header, row, strict=True))


def _fresh_evaluation(cluster: Cluster, namespace: str, name: str = POLICY) -> dict[str, Any]:
    """Make the operator evaluate the policy again and wait until it has; return its status.

    Changing the spec bumps the generation, and only an evaluation writes observedGeneration:
    a deterministic "it has looked since", where sleeping would only be a likely one.
    """
    body = cluster.get("fallbackpolicy", name, namespace)
    assert body is not None
    current = body["spec"]["recovery"]["minSwitchInterval"]
    patch = {"spec": {"recovery": {"minSwitchInterval": "3s" if current == "2s" else "2s"}}}
    cluster.kubectl("-n", namespace, "patch", "fallbackpolicy", name, "--type=merge", "-p", json.dumps(patch))
    generation = (cluster.get("fallbackpolicy", name, namespace) or {})["metadata"]["generation"]

    def evaluated() -> dict[str, Any] | None:
        status = _status(cluster, "fallbackpolicy", name, namespace)
        return status if status.get("observedGeneration", 0) >= generation else None

    return wait_until(f"{name} evaluated at generation {generation}", evaluated, timeout=30)


# ---- the tests ---------------------------------------------------------------------------------


def test_errors_in_the_large_model_switch_the_front_door_to_the_small_one(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    simulator: Simulator,
    operator_process: OperatorFactory,
) -> None:
    operator_process(namespace)
    _large_with_traffic(cluster, namespace, simulator)
    cluster.apply(_policy([{"inferenceService": SMALL}], [ERROR_RATE_TRIGGER], hold_for="5m"), namespace)
    before = _watching(cluster, namespace)
    assert before["active"] is False and before["transitions"] == 0
    assert before["activeBackend"] == LARGE

    simulator.fault(namespace, LARGE, errorRate=0.9)
    status = _switched_to(cluster, namespace, f"service/{SMALL}")
    wait_until("the front door on the small model", lambda: _points_at(cluster, namespace, SMALL), timeout=30)

    # the policy's status says what happened, when, and why
    assert status["transitions"] == 1
    assert status["activeStep"] == 0
    assert status["triggeredBy"] == ["ErrorRate"]
    assert status["since"] == status["lastSwitchTime"]
    assert _time(status["since"]) >= _time(status["triggerSince"]["ErrorRate"])
    fallback_active = _condition(status, "FallbackActive")
    assert (fallback_active["status"], fallback_active["reason"]) == ("True", "FallbackActivated")
    assert _condition(status, "Ready")["status"] == "True"

    # the InferenceService follows: mode Fallback, traffic to the small model
    def in_fallback() -> dict[str, Any] | None:
        isvc = _status(cluster, "inferenceservice", LARGE, namespace)
        return isvc if isvc.get("mode") == "Fallback" else None

    isvc = wait_until("the InferenceService in Fallback mode", in_fallback, timeout=30)
    assert isvc["activeBackend"] == f"service/{SMALL}"
    assert POLICY in isvc["modeReason"] and SMALL in isvc["modeReason"]
    annotations = (cluster.get("service", LARGE, namespace) or {})["metadata"]["annotations"]
    assert annotations["aipolicy.dev/active-backend"] == f"service/{SMALL}"

    columns = _get_fbp_columns(cluster, namespace)
    assert columns["TARGET"] == LARGE
    assert columns["ACTIVE"] == "true"
    assert columns["BACKEND"] == f"service/{SMALL}"
    assert columns["SINCE"] not in ("", "<none>")

    events = wait_until("the switch's event", lambda: _transition_events(cluster, namespace), timeout=30)
    assert _event_count(events) == 1, [(e["reason"], e["message"], e.get("count")) for e in events]
    assert (events[0]["type"], events[0]["reason"]) == ("Warning", "FallbackActivated")
    assert f"service/{SMALL}" in events[0]["message"]


def test_clearing_the_fault_switches_back_only_after_the_recovery_hold(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    simulator: Simulator,
    operator_process: OperatorFactory,
) -> None:
    hold = timedelta(seconds=10)
    operator_process(namespace)
    _large_with_traffic(cluster, namespace, simulator)
    cluster.apply(_policy([{"inferenceService": SMALL}], [ERROR_RATE_TRIGGER], hold_for="10s"), namespace)
    _watching(cluster, namespace)
    simulator.fault(namespace, LARGE, errorRate=0.9)
    _switched_to(cluster, namespace, f"service/{SMALL}")
    wait_until("the front door on the small model", lambda: _points_at(cluster, namespace, SMALL), timeout=30)

    simulator.clear_fault(namespace, LARGE)

    # The errors leave the 10 s rate window, every trigger reads clear, and the hold starts:
    # the policy says so while the front door still points at the small model.
    def pending() -> dict[str, Any] | None:
        status = _status(cluster, "fallbackpolicy", POLICY, namespace)
        return status if _condition(status, "FallbackActive").get("reason") == "RecoveryPending" else None

    status = wait_until("the recovery hold to start", pending, timeout=60)
    clear_since = _time(status["clearSince"])
    assert status["active"] is True and status["activeBackend"] == f"service/{SMALL}"
    assert _front_door(cluster, namespace)["selector"] == {SERVICE_LABEL: SMALL}

    # Follow the policy until it switches back, keeping the last clearSince it showed: a
    # trigger seen true during the hold would restart it, and the hold counts from the last.
    def recovered() -> dict[str, Any] | None:
        nonlocal clear_since
        current = _status(cluster, "fallbackpolicy", POLICY, namespace)
        if current.get("active"):
            if current.get("clearSince"):
                clear_since = _time(current["clearSince"])
            return None
        return current

    back = wait_until("the policy to switch back", recovered, timeout=60)
    assert back["activeBackend"] == LARGE and back["activeStep"] == -1
    assert back["transitions"] == 2
    # the next fallback's `for` and hold start from scratch: no timer is left behind in status
    assert back.get("clearSince") is None
    assert not back.get("triggerSince")
    # not before: the switch back came at least the hold after every trigger read clear
    assert _time(back["lastSwitchTime"]) - clear_since >= hold
    fallback_active = _condition(back, "FallbackActive")
    assert (fallback_active["status"], fallback_active["reason"]) == ("False", "FallbackRecovered")

    wait_until("the front door back on the large model", lambda: _points_at(cluster, namespace, LARGE), 30)

    def normal() -> dict[str, Any] | None:
        isvc = _status(cluster, "inferenceservice", LARGE, namespace)
        return isvc if isvc.get("mode") == "Normal" else None

    isvc = wait_until("the InferenceService back to Normal", normal, timeout=30)
    assert isvc["activeBackend"] == f"service/{LARGE}"
    assert _get_fbp_columns(cluster, namespace)["ACTIVE"] == "false"

    def both_events() -> list[dict[str, Any]] | None:
        events = _transition_events(cluster, namespace)
        return events if _event_count(events) >= 2 else None

    events = sorted(wait_until("an event per switch", both_events, timeout=30), key=_event_time)
    assert [(e["type"], e["reason"]) for e in events] == [
        ("Warning", "FallbackActivated"),
        ("Normal", "FallbackRecovered"),
    ]


def test_an_outage_without_a_healthy_in_cluster_fallback_goes_to_the_provider(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    simulator: Simulator,
    operator_process: OperatorFactory,
) -> None:
    operator_process(namespace)
    # the small model exists but can never be Ready: no node has its GPU
    _large_with_traffic(cluster, namespace, simulator, small=NO_SUCH_GPU)
    chain = [{"inferenceService": SMALL}, {"provider": {"url": PROVIDER_URL, "model": "gpt-4o-mini"}}]
    cluster.apply(_policy(chain, [ERROR_RATE_TRIGGER], hold_for="10s"), namespace)
    _watching(cluster, namespace)

    # the server is broken but its process is up: every request fails after a second
    simulator.fault(namespace, LARGE, outage=True, outageLatencySeconds=1)
    status = _switched_to(cluster, namespace, "provider/api.openai.com")
    assert status["activeStep"] == 1 and status["transitions"] == 1
    message = _condition(status, "FallbackActive")["message"]
    assert f"service/{SMALL} is unhealthy" in message, message

    # A provider in the chain makes the front door L7 from the start (the gateway calls the
    # provider with its key, path and model name, which an ExternalName never could): the
    # Service keeps its name and selects the gateway's pods; only the backend it names moves.
    def on_the_provider() -> dict[str, Any] | None:
        door = cluster.get("service", LARGE, namespace) or {}
        annotations = door.get("metadata", {}).get("annotations") or {}
        return door if annotations.get("aipolicy.dev/active-backend") == "provider/api.openai.com" else None

    door = wait_until("the front door naming the provider", on_the_provider, timeout=30)
    assert door["spec"]["type"] == "ClusterIP"
    assert door["spec"]["selector"] == GATEWAY_SELECTOR
    assert door["metadata"]["annotations"]["aipolicy.dev/front-door"] == "gateway"
    assert _pods_of(cluster, namespace, SMALL), "the small model's pod exists, Pending"

    def provider_mode() -> dict[str, Any] | None:
        isvc = _status(cluster, "inferenceservice", LARGE, namespace)
        return isvc if isvc.get("activeBackend") == "provider/api.openai.com" else None

    isvc = wait_until("the InferenceService on the provider", provider_mode, timeout=30)
    assert isvc["mode"] == "Fallback"

    # and back: still the gateway's Service, now naming the large model's own pods
    simulator.clear_fault(namespace, LARGE)

    def back_on_the_large_model() -> bool:
        door = cluster.get("service", LARGE, namespace) or {}
        annotations = door.get("metadata", {}).get("annotations") or {}
        return (
            annotations.get("aipolicy.dev/active-backend") == f"service/{LARGE}"
            and door["spec"].get("selector") == GATEWAY_SELECTOR
        )

    wait_until("the front door back on the large model", back_on_the_large_model, timeout=90)
    assert _status(cluster, "fallbackpolicy", POLICY, namespace)["transitions"] == 2


def test_a_budget_reaching_degraded_switches_the_front_door(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    simulator: Simulator,
    operator_process: OperatorFactory,
) -> None:
    operator_process(namespace)
    # Only generated tokens cost money: 5 requests/s x 20 tokens at $2 per million is $0.0002/s,
    # 2 % of a $0.01 limit per second. Degraded (50 %) comes after ~25 s of traffic, Exceeded
    # (100 %) ~25 s later: room for the switch to happen while the budget is Degraded. A
    # self-hosted service is charged GPU-hours only (its token prices are for comparison), so
    # the tokens are priced by a cost source of the budget, and its GPUs at zero.
    _large_with_traffic(
        cluster,
        namespace,
        simulator,
        large_labels={"tier": "large"},
        large_pricing={"gpuHour": "0"},
        traffic=False,
    )
    tokens = f'vllm:generation_tokens_total{{namespace="{namespace}",service="{LARGE}"}}'

    budget = aibudget(
        "spend",
        {
            "limit": "0.01",
            # Rolling: counted whole at every evaluation. A calendar period first catches up
            # from the 1st of the month in steps, which takes minutes late in the month.
            "period": {"type": "Rolling", "window": "10m"},
            "selector": {"matchLabels": {"tier": "large"}},
            "costSources": [
                {
                    "name": "generated-tokens",
                    "query": f"sum(increase({tokens}[$window])) or vector(0)",
                    "pricePerUnit": "0.000002",
                }
            ],
            "thresholds": [{"percent": 50, "action": "Degrade"}],
            "evaluationInterval": "5s",
        },
    )
    trigger = {"type": "Budget", "budget": "spend", "budgetStates": ["Degraded"], "for": "0s"}
    cluster.apply(_policy([{"inferenceService": SMALL}], [trigger], hold_for="5m"), namespace)
    cluster.apply(budget, namespace)

    def budget_state() -> str | None:
        return _status(cluster, "aibudget", "spend", namespace).get("state")

    wait_until("the budget Ok", lambda: budget_state() == "Ok", timeout=60)
    _watching(cluster, namespace)
    simulator.traffic(namespace, LARGE, TRAFFIC)  # the spending starts
    status = _switched_to(cluster, namespace, f"service/{SMALL}")
    # the switch came from the budget, and while it was Degraded (no later state fires it)
    assert status["triggeredBy"] == ["Budget(spend)"]
    simulator.stop_traffic(namespace, LARGE)  # spend stops growing; the budget stays Degraded
    assert budget_state() == "Degraded"
    assert status["transitions"] == 1
    wait_until("the front door on the small model", lambda: _points_at(cluster, namespace, SMALL), timeout=30)

    # The budget's own Degrade action also applies to the large model (it selects it): the
    # service is Degraded, and its traffic goes where the policy says.
    def degraded() -> dict[str, Any] | None:
        isvc = _status(cluster, "inferenceservice", LARGE, namespace)
        return isvc if isvc.get("activeBackend") == f"service/{SMALL}" else None

    isvc = wait_until("the InferenceService on the small model", degraded, timeout=30)
    assert isvc["mode"] == "Degraded"
    events = wait_until("the switch's event", lambda: _transition_events(cluster, namespace), timeout=30)
    assert "Budget(spend)" in events[0]["message"]
    degrade_events = [e for e in cluster.events(namespace, "spend") if e["reason"] == "ThresholdDegrade"]
    assert len(degrade_events) == 1, degrade_events


def test_an_operator_killed_during_fallback_keeps_it_and_switches_once(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    simulator: Simulator,
    operator_process: OperatorFactory,
) -> None:
    first = operator_process(namespace)
    _large_with_traffic(cluster, namespace, simulator)
    cluster.apply(_policy([{"inferenceService": SMALL}], [ERROR_RATE_TRIGGER], hold_for="10s"), namespace)
    _watching(cluster, namespace)
    simulator.fault(namespace, LARGE, errorRate=0.9)
    before = _switched_to(cluster, namespace, f"service/{SMALL}")
    wait_until("the front door on the small model", lambda: _points_at(cluster, namespace, SMALL), timeout=30)
    wait_until("the switch's event", lambda: _transition_events(cluster, namespace), timeout=30)

    first.kill()  # SIGKILL: no clean-up, no last status write
    assert not first.running
    operator_process(namespace)
    # The new operator has evaluated the policy, with the fault still on, once this returns.
    after = _fresh_evaluation(cluster, namespace)
    assert after["active"] is True and after["activeBackend"] == f"service/{SMALL}"
    assert after["transitions"] == before["transitions"] == 1
    assert after["since"] == before["since"]
    assert _points_at(cluster, namespace, SMALL)
    assert _status(cluster, "inferenceservice", LARGE, namespace)["mode"] == "Fallback"
    assert _event_count(_transition_events(cluster, namespace)) == 1

    # and it recovers exactly once
    simulator.clear_fault(namespace, LARGE)
    wait_until("the front door back on the large model", lambda: _points_at(cluster, namespace, LARGE), 90)
    final = _status(cluster, "fallbackpolicy", POLICY, namespace)
    assert final["transitions"] == 2 and final["active"] is False

    def two_events() -> list[dict[str, Any]] | None:
        events = _transition_events(cluster, namespace)
        return events if _event_count(events) >= 2 else None

    events = wait_until("the recovery's event", two_events, timeout=30)
    assert sorted(e["reason"] for e in events) == ["FallbackActivated", "FallbackRecovered"]


def test_a_fallback_that_does_not_exist_is_reported_and_never_switched_to(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    simulator: Simulator,
    operator_process: OperatorFactory,
) -> None:
    operator_process(namespace)
    _large_with_traffic(cluster, namespace, simulator, small=None)
    cluster.apply(_policy([{"inferenceService": "ghost"}], [ERROR_RATE_TRIGGER]), namespace)
    # a policy whose target itself does not exist
    lost_policy = _policy([{"inferenceService": LARGE}], [ERROR_RATE_TRIGGER], target="nowhere", name="lost")
    cluster.apply(lost_policy, namespace)

    def not_found(name: str) -> dict[str, Any] | None:
        ready = _condition(_status(cluster, "fallbackpolicy", name, namespace), "Ready")
        return ready if ready.get("reason") == "TargetNotFound" else None

    ready = wait_until("Ready=False TargetNotFound on the chain", lambda: not_found(POLICY), timeout=60)
    assert ready["status"] == "False" and "ghost" in ready["message"]
    lost = wait_until("Ready=False TargetNotFound on the target", lambda: not_found("lost"), timeout=60)
    assert lost["status"] == "False" and "nowhere" in lost["message"]

    # the trigger fires, and with nowhere to go the front door stays on the target
    simulator.fault(namespace, LARGE, errorRate=0.9)

    def no_fallback() -> dict[str, Any] | None:
        status = _status(cluster, "fallbackpolicy", POLICY, namespace)
        return status if _condition(status, "FallbackActive").get("reason") == "NoHealthyFallback" else None

    status = wait_until("the trigger to fire with no fallback", no_fallback, timeout=60)
    assert "service/ghost does not exist" in _condition(status, "FallbackActive")["message"]
    status = _fresh_evaluation(cluster, namespace)  # and again, later: still not switched
    assert status["active"] is False and status["transitions"] == 0
    assert status["activeBackend"] == LARGE
    assert _condition(status, "Ready")["reason"] == "TargetNotFound"
    assert _points_at(cluster, namespace, LARGE)
    assert _status(cluster, "inferenceservice", LARGE, namespace)["mode"] == "Normal"
    assert _transition_events(cluster, namespace) == []
    warnings = [e for e in cluster.events(namespace, POLICY) if e["reason"] == "TargetNotFound"]
    assert warnings and all(e["type"] == "Warning" for e in warnings)


def test_a_promql_trigger_whose_query_fails_reports_it_and_does_not_switch(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    simulator: Simulator,
    operator_process: OperatorFactory,
) -> None:
    operator_process(namespace)
    _large_with_traffic(cluster, namespace, simulator)
    # All mode: the error-rate trigger fires, the broken query cannot say, so nothing switches
    # (missing data never switches; in Any mode the error rate alone would)
    broken = {"type": "PromQL", "query": "sum(rate(vllm:request_success_total[1m]", "threshold": 0}
    policy = _policy([{"inferenceService": SMALL}], [ERROR_RATE_TRIGGER, broken], trigger_mode="All")
    cluster.apply(policy, namespace)

    # (until Prometheus has scraped the large model the error rate is NoData, and named first)
    def query_error() -> dict[str, Any] | None:
        metrics = _condition(_status(cluster, "fallbackpolicy", POLICY, namespace), "MetricsAvailable")
        return metrics if metrics.get("reason") == "QueryError" else None

    metrics = wait_until("MetricsAvailable=False QueryError", query_error, timeout=60)
    assert metrics["status"] == "False"
    assert "PromQL: QueryError" in metrics["message"], metrics["message"]

    simulator.fault(namespace, LARGE, errorRate=0.9)

    def error_rate_holding() -> dict[str, Any] | None:
        status = _status(cluster, "fallbackpolicy", POLICY, namespace)
        return status if "ErrorRate" in (status.get("triggerSince") or {}) else None

    status = wait_until("the error-rate condition to hold", error_rate_holding, timeout=60)
    # past its `for`, then a fresh evaluation: the error rate has fired, the policy still waits
    time.sleep(3)
    status = _fresh_evaluation(cluster, namespace)
    assert "ErrorRate" in status["triggerSince"]
    assert status["active"] is False and status["transitions"] == 0
    assert _condition(status, "FallbackActive")["reason"] == "MetricsUnavailable"
    assert _condition(status, "MetricsAvailable")["reason"] == "QueryError"
    assert _points_at(cluster, namespace, LARGE)
    assert _transition_events(cluster, namespace) == []


@pytest.fixture(autouse=True)
def _crds(crds_installed: None) -> None:
    """Every test here needs the CRDs."""


@pytest.fixture(autouse=True)
def _traffic_stopped(namespace: str, simulator: Simulator) -> Iterator[None]:
    """The simulator lives for the whole run: stop this test's traffic even when it fails."""
    yield
    with contextlib.suppress(urllib.error.HTTPError):  # 404: the test never got to traffic
        simulator.stop_traffic(namespace, LARGE)
