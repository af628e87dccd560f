"""Cold starts measured from pods, the lead time they give, and pre-warm following it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aipolicy.controllers.indexes import slim_pod
from aipolicy.observe.pods import ready_since
from aipolicy.policy.coldstart import (
    DEFAULT_COLD_START_SECONDS,
    MAX_COLD_STARTS,
    ColdStartSample,
    lead_time,
    measure_cold_starts,
    percentile,
)
from aipolicy.policy.scaling import decide_replicas
from tests.unit.test_scaling import EMPTY, PREWARM_OPEN, make_scaling, observe, prewarm

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name: str, created: datetime, ready_after: float | None) -> dict[str, Any]:
    """A pod as the API server has it (kwok's stages write these conditions)."""
    conditions: list[dict[str, Any]] = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": _stamp(created)}
    ]
    if ready_after is None:
        conditions.append(
            {
                "type": "Ready",
                "status": "False",
                "reason": "ContainersNotReady",
                "lastTransitionTime": _stamp(created),
            }
        )
    else:
        ready_at = created + timedelta(seconds=ready_after)
        conditions.append({"type": "Ready", "status": "True", "lastTransitionTime": _stamp(ready_at)})
    return {
        "metadata": {"name": name, "creationTimestamp": _stamp(created), "resourceVersion": "1"},
        "spec": {"containers": [{"name": "server"}], "nodeName": "gpu-node-1"},
        "status": {"phase": "Running", "conditions": conditions},
    }


def test_a_ready_pod_is_measured_from_creation_to_ready_through_the_pod_index() -> None:
    pods = [slim_pod(pod("a", T0, 42)), slim_pod(pod("b", T0, None))]
    assert measure_cold_starts(pods, ()) == (ColdStartSample("a", 42.0, T0 + timedelta(seconds=42)),)


def test_each_pod_is_counted_once_and_only_pods_ready_since_the_newest_measurement() -> None:
    first = measure_cold_starts([pod("a", T0, 30)], ())
    again = measure_cold_starts([pod("a", T0, 30), pod("b", T0, 50)], first)
    assert [s.pod for s in again] == ["a", "b"]
    assert measure_cold_starts([pod("a", T0, 30), pod("b", T0, 50)], again) == again


def test_the_list_is_bounded_and_a_pod_that_fell_out_is_not_counted_again() -> None:
    pods = [pod(f"p{i:02d}", T0 + timedelta(seconds=i), 10 + i) for i in range(MAX_COLD_STARTS + 5)]
    kept = measure_cold_starts(pods, ())
    assert len(kept) == MAX_COLD_STARTS
    assert kept[0].pod == "p05" and kept[-1].pod == f"p{MAX_COLD_STARTS + 4:02d}"
    # the same pods, still Ready: nothing changes (no churn in status on every tick)
    assert measure_cold_starts(pods, kept) == kept


def test_a_pod_ready_again_hours_after_creation_is_no_cold_start() -> None:
    assert measure_cold_starts([pod("old", T0, 3 * 3600)], ()) == ()


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([5.0], 0.9, 5.0), ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9, 9), ([10, 1, 30], 0.9, 30), ([3, 1], 0.5, 1)],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_the_lead_time_is_the_spec_then_the_measured_p90_then_the_default() -> None:
    samples = [ColdStartSample(f"p{i}", float(s), T0) for i, s in enumerate([20, 22, 25, 21, 60.2])]
    assert lead_time(30, samples).seconds == 30 and lead_time(30, samples).source == "Spec"
    measured = lead_time(None, samples)
    assert (measured.seconds, measured.source) == (61, "Measured")
    assert (lead_time(None, []).seconds, lead_time(None, []).source) == (
        DEFAULT_COLD_START_SECONDS,
        "Default",
    )


def test_prewarm_starts_the_measured_lead_time_before_the_window() -> None:
    """Measured 30 s: replicas are wanted 30 s before the window, not the default 120 s."""
    scaling = make_scaling(prewarm=[prewarm(5)])
    measured = 30
    early = replace(observe(1, 0, now=PREWARM_OPEN - timedelta(seconds=100)), cold_start_seconds=measured)
    assert decide_replicas(scaling, early, EMPTY).desired == 1
    on_time = replace(early, now=PREWARM_OPEN - timedelta(seconds=measured))
    decision = decide_replicas(scaling, on_time, EMPTY)
    assert (decision.desired, decision.reason) == (5, "Prewarm")


def test_the_spec_wins_over_the_measurement() -> None:
    scaling = make_scaling(prewarm=[prewarm(5)], cold_start_seconds=100)
    obs = replace(observe(1, 0, now=PREWARM_OPEN - timedelta(seconds=100)), cold_start_seconds=30)
    assert decide_replicas(scaling, obs, EMPTY).desired == 5


def test_scale_from_zero_says_how_long_the_demand_will_wait() -> None:
    scaling = make_scaling(min_replicas=0, scale_to_zero_after="5m")
    obs = replace(observe(0, 0, demand=3, now=T0), cold_start_seconds=42)
    decision = decide_replicas(scaling, obs, EMPTY)
    assert decision.reason == "ScaleFromZero"
    assert "ready in about 42s" in decision.message


def test_metrics_have_had_time_to_arrive_since_the_longest_ready_pod_became_ready() -> None:
    pods = [slim_pod(pod("a", T0, 40)), slim_pod(pod("b", T0, 10)), slim_pod(pod("c", T0, None))]
    assert ready_since(pods) == T0 + timedelta(seconds=10)
    assert ready_since([slim_pod(pod("c", T0, None))]) is None
