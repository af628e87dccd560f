"""AIBudget bad input end to end: what a budget says when it cannot count (issue #6, "Bad input").

A cost source whose query Prometheus rejects, or that returns NaN, a negative value, several
series or none; a service priced at zero; a selector that matches nothing. Each must give a
condition saying what to fix, a Warning event, spend that is never invented, and an operator
that goes on running.

Cost sources here are constant PromQL, so no traffic is needed. The CRD requires `$window` in a
query; `or sum(increase(<a metric nobody exports>[$window]))` carries it without changing the
answer (a sum over no series is no series). Budgets reuse the manifests and status helpers of
test_budget.py: Daily in a zone where it is about noon, so no run straddles a period boundary.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.cluster import Cluster, ManagedProcess, Prometheus, wait_until
from tests.e2e.conftest import OperatorFactory
from tests.e2e.test_budget import (
    LADDER,
    _api_service,
    _budget,
    _condition,
    _gpu_service,
    _status,
    _wait_status,
)

# Nobody exports this: the sum over it has no series, so `X or ABSENT` answers X.
ABSENT = "sum(increase(aipolicy_e2e_nobody_exports_this_total[$window]))"
GOOD = f"vector(0.25) or {ABSENT}"  # adds $0.25 at each evaluation
# What the CRD accepts (it has $window) and Prometheus refuses when asked: a parenthesis short.
UNBALANCED = "sum(increase(litellm_spend_metric_total[$window])"
# Anything a test waits for happens within a few 5 s evaluations; these bound a stuck operator.
CONDITION_TIMEOUT = 60


@pytest.fixture(autouse=True)
def _crds(crds_installed: None) -> None:
    """Every test here needs the CRDs."""


def _source(name: str, query: str) -> dict[str, str]:
    return {"name": name, "query": query}


def _warning_events(
    cluster: Cluster, namespace: str, budget: str, condition: str, reason: str
) -> list[dict[str, Any]]:
    """Warning events of the budget posted for `condition` with `reason` (two conditions may
    change with the same reason: Ready and MetricsAvailable are both NoData at first)."""
    return [
        event
        for event in cluster.events(namespace, budget)
        if event["involvedObject"].get("kind") == "AIBudget"
        and event["type"] == "Warning"
        and event["reason"] == reason
        and event["message"].startswith(f"{condition}=")
    ]


def _wait_warning(
    cluster: Cluster, namespace: str, budget: str, condition: str, reason: str
) -> dict[str, Any]:
    """The one Warning event for this condition and reason (posted once, when it changed)."""
    events = wait_until(
        f"a Warning event {reason} for {condition} of AIBudget {budget}",
        lambda: _warning_events(cluster, namespace, budget, condition, reason),
        timeout=30,
    )
    assert len(events) == 1, events
    return events[0]


def _wait_condition(
    cluster: Cluster, namespace: str, budget: str, type_: str, status: str, reason: str
) -> dict[str, Any]:
    """The budget's status once condition `type_` has this status and reason."""
    return _wait_status(
        cluster,
        namespace,
        budget,
        f"{type_}={status} ({reason})",
        lambda s: (
            (_condition(s, type_).get("status"), _condition(s, type_).get("reason")) == (status, reason)
        ),
        timeout=CONDITION_TIMEOUT,
    )


def _assert_stays(cluster: Cluster, namespace: str, budget: str, expected: dict[str, Any]) -> None:
    """These status fields keep their values over several evaluations (a sample a second; an
    unusable reading is retried every tick, the checkpoint being held)."""
    for _ in range(6):
        status = _status(cluster, "aibudget", budget, namespace)
        assert {field: status.get(field) for field in expected} == expected, status
        time.sleep(1)


def _assert_never_crashed(operator: ManagedProcess) -> None:
    assert operator.running, operator.log_tail()
    log = operator.log_path.read_text(errors="replace")
    assert "Traceback" not in log, operator.log_tail(120)


def test_a_cost_source_prometheus_rejects_holds_the_last_known_spend(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    """A query that counted, then edited into one Prometheus refuses: the spend counted so far
    and its checkpoint are held (HoldLastKnown, the default), nothing more is added."""
    operator = operator_process(namespace)
    budget = _budget("gateway", "1000", LADDER, selector={}, costSources=[_source("gateway", GOOD)])
    del budget["spec"]["onMetricsUnavailable"]  # the default
    cluster.apply(budget, namespace)
    counted = _wait_status(
        cluster,
        namespace,
        "gateway",
        "spend counted from the cost source",
        lambda s: Decimal(s.get("spent", "0")) > 0 and s.get("state") == "Ok",
        timeout=CONDITION_TIMEOUT,
    )

    budget["spec"]["costSources"] = [_source("gateway", UNBALANCED)]
    cluster.apply(budget, namespace)
    held = _wait_condition(cluster, namespace, "gateway", "MetricsAvailable", "False", "QueryError")

    message = _condition(held, "MetricsAvailable")["message"]
    assert message.startswith("cost source gateway: the query failed"), message
    assert "parse error" in message and "fix its PromQL in spec.costSources" in message, message
    # the last known spend, not reset and not advanced
    assert Decimal(held["spent"]) >= Decimal(counted["spent"]) > 0
    assert held["state"] == "Ok" and held["activeAction"] == ""
    assert _condition(held, "ThresholdReached")["reason"] == "MetricsUnavailableHoldLastKnown"
    _assert_stays(
        cluster,
        namespace,
        "gateway",
        {field: held.get(field) for field in ("spent", "lastEvaluated", "breakdown", "state")},
    )
    event = _wait_warning(cluster, namespace, "gateway", "MetricsAvailable", "QueryError")
    assert event["message"].startswith("MetricsAvailable=False: cost source gateway: the query failed")
    _assert_never_crashed(operator)


@dataclass(frozen=True)
class Unusable:
    query: str
    reason: str
    says: tuple[str, ...]
    """Words of the condition's message after "cost source odd: "."""
    policy: str | None
    """spec.onMetricsUnavailable; None leaves the default (HoldLastKnown)."""
    state: str
    action: str
    threshold_reason: str


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            Unusable(
                f"vector(0) / vector(0) or {ABSENT}",
                "NotANumber",
                ("the query returned nan", "division by zero"),
                None,
                "Unknown",
                "",
                "AwaitingMetrics",
            ),
            id="NaN",
        ),
        pytest.param(
            Unusable(
                f"vector(-1) or {ABSENT}",
                "Negative",
                ("the query returned -1", "spend never goes down"),
                "FailClosed",
                "Exceeded",
                "Suspend",
                "MetricsUnavailableFailClosed",
            ),
            id="negative",
        ),
        pytest.param(
            Unusable(
                f'vector(1) or label_replace(vector(2), "copy", "2", "", "") or {ABSENT}',
                "Ambiguous",
                ("the query returned 2 series where one was expected", "wrap it in sum(...)"),
                "FailOpen",
                "Ok",
                "",
                "MetricsUnavailableFailOpen",
            ),
            id="several-series",
        ),
        pytest.param(
            Unusable(
                ABSENT,
                "NoData",
                ("the query returned no series", "or vector(0)"),
                "HoldLastKnown",
                "Unknown",
                "",
                "AwaitingMetrics",
            ),
            id="no-series",
        ),
    ],
)
def test_an_unusable_cost_source_reading_adds_nothing(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory, case: Unusable
) -> None:
    """Beside a cost source that answers $0.25 each time: if anything were committed partially,
    spend would move off 0; the policy decides the state and action, never the spend."""
    operator = operator_process(namespace)
    budget = _budget(
        "odd",
        "10",
        LADDER,
        selector={},
        costSources=[_source("fine", GOOD), _source("odd", case.query)],
    )
    if case.policy is None:
        del budget["spec"]["onMetricsUnavailable"]
    else:
        budget["spec"]["onMetricsUnavailable"] = case.policy
    cluster.apply(budget, namespace)
    status = _wait_condition(cluster, namespace, "odd", "MetricsAvailable", "False", case.reason)

    message = _condition(status, "MetricsAvailable")["message"]
    assert message.startswith("cost source odd: "), message
    assert "fine" not in message, message
    for words in case.says:
        assert words in message, message
    assert _condition(status, "ThresholdReached")["reason"] == case.threshold_reason
    _assert_stays(
        cluster,
        namespace,
        "odd",
        {"spent": "0", "state": case.state, "activeAction": case.action, "breakdown": []},
    )
    if case.state == "Unknown":  # nothing known of this period: not Ready, and it says so
        assert (_condition(status, "Ready")["status"], _condition(status, "Ready")["reason"]) == (
            "False",
            "NoData",
        )
        _wait_warning(cluster, namespace, "odd", "Ready", "NoData")
    event = _wait_warning(cluster, namespace, "odd", "MetricsAvailable", case.reason)
    assert event["message"].startswith("MetricsAvailable=False: cost source odd: "), event
    _assert_never_crashed(operator)


def test_a_service_priced_at_zero_counts_zero_and_says_so(
    cluster: Cluster, namespace: str, prometheus: Prometheus, operator_process: OperatorFactory
) -> None:
    """Two self-hosted services, each holding a GPU: one at $3.60/GPU-hour, one at $0."""
    operator = operator_process(namespace)
    cluster.apply(_gpu_service("paid", "3.6", replicas=1, degraded_replicas=1), namespace)
    cluster.apply(_gpu_service("free", "0", replicas=1, degraded_replicas=1), namespace)
    cluster.apply(_budget("gpus", "1000", LADDER), namespace)

    status = _wait_condition(cluster, namespace, "gpus", "PricingComplete", "False", "ZeroPrice")
    message = _condition(status, "PricingComplete")["message"]
    assert message.startswith("free has no price above zero in spec.pricing"), message
    assert "Set spec.pricing" in message and "paid" not in message, message
    event = _wait_warning(cluster, namespace, "gpus", "PricingComplete", "ZeroPrice")
    assert event["message"] == f"PricingComplete=False: {message}"

    # The free service's pod holds a GPU, as the paid one's does: usage is there, priced at 0.
    held = (
        'sum(kube_pod_container_resource_requests{{namespace="{}",resource="nvidia_com_gpu",pod=~"{}-.*"}})'
    )
    wait_until(
        "both services' pods holding a GPU in kube-state-metrics",
        lambda: all((prometheus.value(held.format(namespace, name)) or 0) > 0 for name in ("free", "paid")),
        timeout=CONDITION_TIMEOUT,
    )

    def paid_counted(s: dict[str, Any]) -> bool:
        spent = {item["name"]: Decimal(item["spent"]) for item in s.get("breakdown") or []}
        return spent.get("paid", Decimal(0)) > 0 and "free" in spent

    status = _wait_status(cluster, namespace, "gpus", "the paid service's GPU-hours counted", paid_counted)
    breakdown = {item["name"]: item["spent"] for item in status["breakdown"]}
    assert breakdown["free"] == "0", breakdown
    assert Decimal(status["spent"]) == Decimal(breakdown["paid"]), status
    assert _condition(status, "MetricsAvailable")["status"] == "True"
    ready = _condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Evaluated"), ready
    _assert_never_crashed(operator)


def test_a_selector_matching_nothing_is_not_ready_and_says_which(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    """A typo in the selector: nothing counted (0 is real), Ready=False until it is fixed."""
    operator = operator_process(namespace)
    cluster.apply(_api_service("chat"), namespace)  # labelled team=a
    budget = _budget("typo", "10", LADDER, selector={"matchLabels": {"team": "typo"}})
    cluster.apply(budget, namespace)

    status = _wait_condition(cluster, namespace, "typo", "Ready", "False", "NoServicesSelected")
    message = _condition(status, "Ready")["message"]
    assert f"spec.selector team=typo matches no InferenceService in namespace {namespace}" in message
    assert "Fix spec.selector" in message, message
    assert (status["spent"], status["state"], status.get("breakdown")) == ("0", "Ok", []), status
    assert _condition(status, "MetricsAvailable")["status"] == "True"
    event = _wait_warning(cluster, namespace, "typo", "Ready", "NoServicesSelected")
    assert event["message"] == f"Ready=False: {message}"

    # fixed: the condition clears and the service is counted
    cluster.kubectl(
        "-n",
        namespace,
        "patch",
        "aibudget",
        "typo",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"selector": {"matchLabels": {"team": "a"}}}}),
    )
    status = _wait_condition(cluster, namespace, "typo", "Ready", "True", "Evaluated")
    assert _condition(status, "Ready")["message"] == "1 service(s) selected"
    assert [item["name"] for item in status["breakdown"]] == ["chat"]
    # announced once, when it appeared; not again on every evaluation that found nothing
    names = [
        e["metadata"]["name"]
        for e in _warning_events(cluster, namespace, "typo", "Ready", "NoServicesSelected")
    ]
    assert names == [event["metadata"]["name"]]
    _assert_never_crashed(operator)
