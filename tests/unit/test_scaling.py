"""The replica decision: formulas, cold starts, stabilization, steps, bounds, zero, capacity,
missing metrics, pause, degraded cap and pre-warm; then properties over simulated loops.

Decisions are pure, so the simulations below are plain loops over a toy plant: virtual time,
no sleeping, no clock.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aipolicy.api.inferenceservice import PrewarmSchedule, Scaling, ScalingMetric
from aipolicy.policy.observations import Reading, Unavailable, Value
from aipolicy.policy.scaling import (
    MAX_RECOMMENDATIONS,
    ScalingDecision,
    ScalingMemory,
    ScalingObservation,
    decide_replicas,
)

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # a Monday
TICK = timedelta(seconds=15)
EMPTY = ScalingMemory()
MetricType = Literal["QueueDepth", "RequestsInFlight", "TokensPerSecond", "Latency", "PromQL"]


def make_scaling(**overrides: Any) -> Scaling:
    """A spec whose stabilization and steps stay out of the way unless a test sets them."""
    fields: dict[str, Any] = {
        "min_replicas": 1,
        "max_replicas": 20,
        "scale_up_stabilization": "0s",
        "scale_down_stabilization": "0s",
        "max_scale_up_step": 1000,
        "max_scale_down_step": 1000,
    }
    fields.update(overrides)
    return Scaling(**fields)


def metric(kind: MetricType = "QueueDepth", target: float = 4, **extra: Any) -> ScalingMetric:
    if kind == "PromQL":
        extra.setdefault("query", "sum by (namespace, service) (my_queue)")
    return ScalingMetric(type=kind, target=target, **extra)


def observe(
    current: int,
    load: Reading | float,
    *,
    ready: int | None = None,
    starting: int = 0,
    unschedulable: int = 0,
    demand: Reading | float = 0.0,
    now: datetime = T0,
) -> ScalingObservation:
    return ScalingObservation(
        now=now,
        current_replicas=current,
        ready_replicas=current - starting - unschedulable if ready is None else ready,
        starting_replicas=starting,
        unschedulable_replicas=unschedulable,
        metric=load if isinstance(load, Value | Unavailable) else Value(load),
        demand=demand if isinstance(demand, Value | Unavailable) else Value(demand),
    )


def replace_scaling(scaling: Scaling, **update: Any) -> Scaling:
    return Scaling(**(scaling.model_dump() | update))


def prewarm(min_replicas: int = 5, cron: str = "0 8 * * 1-5", duration: str = "10h") -> PrewarmSchedule:
    return PrewarmSchedule(
        name="office-hours",
        schedule=cron,
        time_zone="Europe/Paris",
        duration=duration,
        min_replicas=min_replicas,
    )


# ----------------------------------------------------------------------------------------------
# The metric → replicas formulas (no stabilization, no steps).
@dataclass(frozen=True)
class Case:
    scaling: Scaling
    obs: ScalingObservation
    desired: int
    reason: str
    memory: ScalingMemory = EMPTY


FORMULA_CASES = {
    # ceil(total / target), the per-replica value over the replicas that carry load.
    "queue-above-target": Case(make_scaling(), observe(2, 46), 12, "ScaleUp"),
    "queue-below-target": Case(make_scaling(), observe(4, 8), 2, "ScaleDown"),
    "within-tolerance-above": Case(make_scaling(), observe(4, 17.6), 4, "WithinTolerance"),
    "within-tolerance-below": Case(make_scaling(), observe(4, 14.4), 4, "WithinTolerance"),
    "just-outside-tolerance": Case(make_scaling(), observe(4, 18), 5, "ScaleUp"),
    "zero-tolerance": Case(make_scaling(tolerance=0), observe(4, 16.4), 5, "ScaleUp"),
    "in-flight": Case(make_scaling(metric=metric("RequestsInFlight", 8)), observe(3, 50), 7, "ScaleUp"),
    "tokens-per-second": Case(
        make_scaling(metric=metric("TokensPerSecond", 500)), observe(4, 2600), 6, "ScaleUp"
    ),
    "promql": Case(make_scaling(metric=metric("PromQL", 100)), observe(2, 1000), 10, "ScaleUp"),
    # 1.1 / 0.1 is 11.000000000000002 in floating point: still 11 replicas, not 12.
    "float-quotient": Case(
        make_scaling(tolerance=0, metric=metric("PromQL", 0.1)), observe(5, 1.1), 11, "ScaleUp"
    ),
    "negative-promql-is-no-load": Case(
        make_scaling(metric=metric("PromQL", 1)), observe(3, -5), 1, "ScaleDown"
    ),
    # Latency: HPA-style ratio applied to the ready replicas.
    "latency-double": Case(make_scaling(metric=metric("Latency", 1.0)), observe(4, 2.0), 8, "ScaleUp"),
    "latency-half": Case(make_scaling(metric=metric("Latency", 1.0)), observe(4, 0.5), 2, "ScaleDown"),
    "latency-within": Case(
        make_scaling(metric=metric("Latency", 1.0)), observe(4, 1.05), 4, "WithinTolerance"
    ),
    # Starting pods are capacity on its way: no second request for them.
    "cold-start-covered": Case(make_scaling(), observe(4, 16, starting=2), 4, "WithinTolerance"),
    "cold-start-more-load": Case(make_scaling(), observe(4, 24, starting=2), 6, "ScaleUp"),
    "cold-start-none-ready": Case(make_scaling(), observe(3, 12, starting=3), 3, "WithinTolerance"),
    "latency-cold-start-holds": Case(
        make_scaling(metric=metric("Latency", 1.0)), observe(4, 3.0, starting=2), 4, "ColdStart"
    ),
    "latency-cold-start-may-shrink": Case(
        make_scaling(metric=metric("Latency", 1.0)), observe(4, 0.25, starting=2), 1, "ScaleDown"
    ),
    "latency-no-ready": Case(
        make_scaling(metric=metric("Latency", 1.0)), observe(2, 3.0, starting=2), 2, "ColdStart"
    ),
    # No pod Ready, so no metric: a cold start, not an outage (ScaleToMax must not fire).
    "no-ready-no-data": Case(
        make_scaling(on_metrics_unavailable="ScaleToMax"),
        observe(3, Unavailable("NoData"), starting=3),
        3,
        "ColdStart",
    ),
}


@pytest.mark.parametrize("case", FORMULA_CASES.values(), ids=FORMULA_CASES.keys())
def test_formula(case: Case) -> None:
    decision = decide_replicas(case.scaling, case.obs, case.memory)
    assert (decision.desired, decision.reason) == (case.desired, case.reason), decision.message
    assert decision.memory.last_desired == case.desired
    assert decision.capacity_available


def test_message_has_the_numbers() -> None:
    decision = decide_replicas(make_scaling(), observe(2, 46), EMPTY)
    assert decision.message.startswith("queue 23 per replica > target 4 on 2 replicas; needs 12")


def test_no_ready_replica_reports_why_the_metric_is_missing() -> None:
    decision = decide_replicas(make_scaling(), observe(2, Unavailable("NoData"), starting=2), EMPTY)
    assert (decision.metrics_available, decision.metrics_reason) == (False, "NoReadyReplicas")
    # A real outage while no pod is Ready still follows the policy.
    outage = decide_replicas(
        make_scaling(on_metrics_unavailable="ScaleToMax"),
        observe(2, Unavailable("QueryError"), starting=2),
        EMPTY,
    )
    assert (outage.desired, outage.reason, outage.metrics_reason) == (20, "MetricsUnavailable", "QueryError")


# ----------------------------------------------------------------------------------------------
# Stabilization windows and steps.
def history(*entries: tuple[int, int]) -> ScalingMemory:
    """Recommendations at (seconds before T0, replicas)."""
    return ScalingMemory(recommendations=tuple((T0 - timedelta(seconds=s), r) for s, r in entries))


STABILIZATION_CASES = {
    # Scale down to the highest recommendation of the down window.
    "down-held-by-window": Case(
        make_scaling(scale_down_stabilization="5m"),
        observe(8, 12),
        8,
        "Stabilizing",
        history((240, 8), (120, 6)),
    ),
    "down-to-window-max": Case(
        make_scaling(scale_down_stabilization="5m"),
        observe(8, 12),
        6,
        "ScaleDown",
        history((360, 8), (120, 6)),
    ),
    "down-window-edge-excluded": Case(
        make_scaling(scale_down_stabilization="5m"), observe(8, 12), 3, "ScaleDown", history((300, 8))
    ),
    # Scale up to the lowest recommendation of the up window.
    "up-to-window-min": Case(
        make_scaling(scale_up_stabilization="1m"), observe(4, 40), 5, "ScaleUp", history((30, 5))
    ),
    "up-held-by-window": Case(
        make_scaling(scale_up_stabilization="1m"), observe(4, 40), 4, "Stabilizing", history((30, 3))
    ),
    "up-window-expired": Case(
        make_scaling(scale_up_stabilization="1m"), observe(4, 40), 10, "ScaleUp", history((60, 3))
    ),
    # Future entries (the clock went back) are dropped, not allowed to hold a window.
    "future-entry-ignored": Case(
        make_scaling(scale_down_stabilization="5m"), observe(8, 12), 3, "ScaleDown", history((-60, 8))
    ),
    # Steps.
    "max-up-step": Case(make_scaling(max_scale_up_step=4), observe(2, 80), 6, "ScaleUp"),
    "max-down-step": Case(make_scaling(max_scale_down_step=1), observe(10, 4), 9, "ScaleDown"),
    # Default spec: 5m down window, step 1 down, 4 up.
    "defaults": Case(Scaling(max_replicas=20), observe(2, 80), 6, "ScaleUp"),
}


@pytest.mark.parametrize("case", STABILIZATION_CASES.values(), ids=STABILIZATION_CASES.keys())
def test_stabilization_and_steps(case: Case) -> None:
    decision = decide_replicas(case.scaling, case.obs, case.memory)
    assert (decision.desired, decision.reason) == (case.desired, case.reason), decision.message


def test_memory_keeps_the_longest_window_and_compresses_runs() -> None:
    scaling = make_scaling(scale_up_stabilization="1m", scale_down_stabilization="5m")
    memory = history((400, 9), (200, 7), (50, 5))
    decision = decide_replicas(scaling, observe(5, 20), memory)  # within tolerance: 5 again
    assert decision.memory.recommendations == ((T0 - timedelta(seconds=200), 7), (T0, 5))


def test_memory_is_bounded() -> None:
    scaling = make_scaling(scale_down_stabilization="1d")
    memory = ScalingMemory(
        recommendations=tuple((T0 - timedelta(seconds=10 * i), i % 2 + 1) for i in range(3000, 0, -1))
    )
    decision = decide_replicas(scaling, observe(5, 40), memory)
    assert len(decision.memory.recommendations) == MAX_RECOMMENDATIONS
    assert decision.memory.recommendations[-1] == (T0, 10)


# ----------------------------------------------------------------------------------------------
# Bounds, pre-warm, cap, pause, capacity.
PREWARM_OPEN = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)  # 08:00 in Paris (CEST), a Monday
WARM_FROM = PREWARM_OPEN - timedelta(seconds=120)  # default coldStartSeconds 120

LIMIT_CASES = {
    "min-floor": Case(make_scaling(min_replicas=3), observe(4, 2), 3, "MinReplicas"),
    "max-ceiling": Case(make_scaling(max_replicas=5), observe(5, 40), 5, "MaxReplicas"),
    "above-max-drops-at-once": Case(
        make_scaling(max_replicas=5, max_scale_down_step=1), observe(9, 40), 5, "MaxReplicas"
    ),
    "below-min-rises-at-once": Case(
        make_scaling(min_replicas=6, max_scale_up_step=1), observe(2, 8), 6, "MinReplicas"
    ),
    "prewarm-floor": Case(make_scaling(prewarm=[prewarm(5)]), observe(1, 0, now=WARM_FROM), 5, "Prewarm"),
    "prewarm-not-yet": Case(
        make_scaling(prewarm=[prewarm(5)]), observe(1, 0, now=WARM_FROM - timedelta(seconds=1)), 1, "Hold"
    ),
    "prewarm-load-above-floor": Case(
        make_scaling(prewarm=[prewarm(5)]), observe(5, 40, now=PREWARM_OPEN), 10, "ScaleUp"
    ),
    "prewarm-ends": Case(
        make_scaling(prewarm=[prewarm(5)]),
        observe(5, 4, now=PREWARM_OPEN + timedelta(hours=10)),
        1,
        "ScaleDown",
    ),
    "prewarm-from-zero": Case(
        make_scaling(min_replicas=0, scale_to_zero_after="5m", prewarm=[prewarm(3)]),
        observe(0, Unavailable("NoData"), now=WARM_FROM),
        3,
        "Prewarm",
    ),
    "capacity-blocks-scale-up": Case(make_scaling(), observe(6, 40, unschedulable=2), 6, "CapacityLimited"),
    "capacity-allows-scale-down": Case(make_scaling(), observe(6, 8, unschedulable=2), 2, "ScaleDown"),
    # Pending pods are wanted while the running ones are over target: keep them Pending.
    "capacity-keeps-pending": Case(make_scaling(), observe(6, 20, unschedulable=2), 6, "Hold"),
    "capacity-floor-still-rises": Case(
        make_scaling(min_replicas=4), observe(2, 0, unschedulable=1), 4, "MinReplicas"
    ),
}


@pytest.mark.parametrize("case", LIMIT_CASES.values(), ids=LIMIT_CASES.keys())
def test_limits(case: Case) -> None:
    decision = decide_replicas(case.scaling, case.obs, case.memory)
    assert (decision.desired, decision.reason) == (case.desired, case.reason), decision.message
    assert decision.capacity_available == (case.obs.unschedulable_replicas == 0)
    assert decision.capacity_shortfall == case.obs.unschedulable_replicas


def test_prewarm_is_reported() -> None:
    decision = decide_replicas(make_scaling(prewarm=[prewarm(5)]), observe(5, 40, now=PREWARM_OPEN), EMPTY)
    assert decision.active_prewarm == "office-hours"
    evening = observe(5, 40, now=PREWARM_OPEN + timedelta(hours=11))
    assert decide_replicas(make_scaling(prewarm=[prewarm(5)]), evening, EMPTY).active_prewarm is None


@pytest.mark.parametrize(
    ("scaling", "obs", "cap", "desired", "reason"),
    [
        pytest.param(make_scaling(), observe(2, 32), 3, 3, "DegradedCap", id="caps-scale-up"),
        pytest.param(make_scaling(), observe(8, 32), 3, 3, "DegradedCap", id="cuts-at-once"),
        pytest.param(make_scaling(), observe(2, 8), 3, 2, "WithinTolerance", id="not-binding"),
        pytest.param(make_scaling(min_replicas=4), observe(4, 16), 2, 2, "DegradedCap", id="wins-over-min"),
        pytest.param(
            make_scaling(prewarm=[prewarm(5)]),
            observe(5, 0, now=PREWARM_OPEN),
            1,
            1,
            "DegradedCap",
            id="wins-over-prewarm",
        ),
        pytest.param(make_scaling(min_replicas=3), observe(3, 12), 0, 0, "DegradedCap", id="suspends"),
        pytest.param(
            make_scaling(min_replicas=0, scale_to_zero_after="1m"),
            observe(0, Unavailable("NoData"), demand=9),
            0,
            0,
            "DegradedCap",
            id="suspended-ignores-demand",
        ),
    ],
)
def test_degraded_cap(scaling: Scaling, obs: ScalingObservation, cap: int, desired: int, reason: str) -> None:
    decision = decide_replicas(scaling, obs, EMPTY, max_replicas_cap=cap)
    assert (decision.desired, decision.reason) == (desired, reason), decision.message


@pytest.mark.parametrize(
    ("obs", "cap"),
    [
        pytest.param(observe(3, 400), None, id="load"),
        pytest.param(observe(3, Unavailable("QueryError")), None, id="missing-metric"),
        pytest.param(observe(3, 0), 0, id="suspended"),
        pytest.param(observe(0, Unavailable("NoData"), demand=5), None, id="demand-at-zero"),
    ],
)
def test_pause_keeps_current(obs: ScalingObservation, cap: int | None) -> None:
    scaling = make_scaling(min_replicas=0, scale_to_zero_after="1m", on_metrics_unavailable="ScaleToMax")
    decision = decide_replicas(scaling, obs, EMPTY, max_replicas_cap=cap, paused=True)
    assert (decision.desired, decision.reason) == (obs.current_replicas, "Paused")
    assert decision.memory.recommendations == ()


# ----------------------------------------------------------------------------------------------
# Scale to zero and from zero.
TO_ZERO = make_scaling(min_replicas=0, scale_to_zero_after="5m")


@pytest.mark.parametrize(
    ("scaling", "obs", "idle_since", "desired", "reason"),
    [
        pytest.param(
            TO_ZERO, observe(1, 0), T0 - timedelta(minutes=5), 0, "ScaleToZero", id="after-idle-period"
        ),
        pytest.param(TO_ZERO, observe(1, 0), T0 - timedelta(seconds=299), 1, "Idle", id="not-yet"),
        pytest.param(TO_ZERO, observe(1, 0), None, 1, "Idle", id="idle-just-began"),
        pytest.param(
            TO_ZERO, observe(1, 0, demand=1), T0 - timedelta(hours=1), 1, "Hold", id="demand-waiting"
        ),
        pytest.param(TO_ZERO, observe(1, 0.5), T0 - timedelta(hours=1), 1, "Hold", id="some-load"),
        pytest.param(
            TO_ZERO,
            observe(1, Unavailable("QueryError")),
            T0 - timedelta(hours=1),
            1,
            "MetricsUnavailable",
            id="missing-metric",
        ),
        pytest.param(
            TO_ZERO,
            observe(1, 0, demand=Unavailable("Stale")),
            T0 - timedelta(hours=1),
            1,
            "Hold",
            id="missing-demand",
        ),
        pytest.param(
            make_scaling(min_replicas=0),
            observe(1, 0),
            T0 - timedelta(hours=1),
            1,
            "Hold",
            id="no-scale-to-zero-after",
        ),
        pytest.param(
            # T0 is 14:00 in Paris: a window opening then is in force.
            replace_scaling(TO_ZERO, prewarm=[prewarm(2, cron="0 14 * * *")]),
            observe(2, 0),
            T0 - timedelta(hours=1),
            2,
            "Prewarm",
            id="prewarm-blocks",
        ),
        pytest.param(
            replace_scaling(TO_ZERO, max_scale_down_step=2),
            observe(5, 0),
            T0 - timedelta(hours=1),
            3,
            "ScaleDown",
            id="steps-towards-zero",
        ),
        pytest.param(
            replace_scaling(TO_ZERO, metric=metric("Latency", 1.0)),
            observe(1, 0),
            T0 - timedelta(minutes=5),
            0,
            "ScaleToZero",
            id="latency-zero-means-no-requests",
        ),
    ],
)
def test_scale_to_zero(
    scaling: Scaling, obs: ScalingObservation, idle_since: datetime | None, desired: int, reason: str
) -> None:
    decision = decide_replicas(scaling, obs, ScalingMemory(idle_since=idle_since))
    assert (decision.desired, decision.reason) == (desired, reason), decision.message


def test_idle_since_tracks_continuous_idleness() -> None:
    first = decide_replicas(TO_ZERO, observe(2, 0), EMPTY)
    assert first.memory.idle_since == T0
    later = decide_replicas(TO_ZERO, observe(2, 0, now=T0 + TICK), first.memory)
    assert later.memory.idle_since == T0
    busy = decide_replicas(TO_ZERO, observe(2, 3, now=T0 + 2 * TICK), later.memory)
    assert busy.memory.idle_since is None
    gap = decide_replicas(TO_ZERO, observe(2, Unavailable("NoData"), now=T0 + TICK), first.memory)
    assert gap.memory.idle_since is None  # a gap in observation breaks the idle period


@pytest.mark.parametrize(
    ("scaling", "obs", "memory", "desired", "reason", "available"),
    [
        pytest.param(
            TO_ZERO, observe(0, Unavailable("NoData"), demand=3), EMPTY, 1, "ScaleFromZero", True, id="demand"
        ),
        # Immediately: a window full of zero recommendations does not delay it.
        pytest.param(
            replace_scaling(TO_ZERO, scale_up_stabilization="10m"),
            observe(0, Unavailable("NoData"), demand=0.5),
            history((30, 0), (60, 0)),
            1,
            "ScaleFromZero",
            True,
            id="no-stabilization",
        ),
        pytest.param(TO_ZERO, observe(0, Unavailable("NoData")), EMPTY, 0, "Idle", True, id="no-demand"),
        # A lingering metric value at zero (a rate window) does not wake the service.
        pytest.param(TO_ZERO, observe(0, 7.0), EMPTY, 0, "Idle", True, id="metric-ignored-at-zero"),
        pytest.param(
            TO_ZERO,
            observe(0, Unavailable("NoData"), demand=Unavailable("QueryError")),
            EMPTY,
            0,
            "MetricsUnavailable",
            False,
            id="demand-missing-hold",
        ),
        pytest.param(
            replace_scaling(
                TO_ZERO, on_metrics_unavailable="ScaleToMax", max_replicas=8, max_scale_up_step=3
            ),
            observe(0, Unavailable("NoData"), demand=Unavailable("QueryError")),
            EMPTY,
            3,
            "MetricsUnavailable",
            False,
            id="demand-missing-scale-to-max",
        ),
        pytest.param(
            make_scaling(min_replicas=2),
            observe(0, Unavailable("NoData")),
            EMPTY,
            2,
            "MinReplicas",
            True,
            id="back-to-min-after-suspension",
        ),
    ],
)
def test_at_zero(
    scaling: Scaling,
    obs: ScalingObservation,
    memory: ScalingMemory,
    desired: int,
    reason: str,
    available: bool,
) -> None:
    decision = decide_replicas(scaling, obs, memory)
    assert (decision.desired, decision.reason) == (desired, reason), decision.message
    assert decision.metrics_available is available


# ----------------------------------------------------------------------------------------------
# Missing metrics: a policy, never zero.
@pytest.mark.parametrize(
    ("policy", "memory", "current", "desired"),
    [
        pytest.param("Hold", ScalingMemory(last_desired=5), 4, 5, id="hold-last-desired"),
        pytest.param("Hold", EMPTY, 4, 4, id="hold-current"),
        pytest.param("ScaleToMin", EMPTY, 6, 2, id="to-min"),
        pytest.param("ScaleToMax", EMPTY, 6, 10, id="to-max-stepped"),
    ],
)
def test_missing_metric_policies(policy: str, memory: ScalingMemory, current: int, desired: int) -> None:
    scaling = make_scaling(
        min_replicas=2, max_replicas=12, on_metrics_unavailable=policy, max_scale_up_step=4
    )
    for reading in (Unavailable("QueryError", "connection refused"), Unavailable("Stale"), Value(math.nan)):
        decision = decide_replicas(scaling, observe(current, reading), memory)
        assert (decision.desired, decision.reason) == (desired, "MetricsUnavailable"), decision.message
        assert decision.metrics_available is False
        assert decision.metrics_reason in {"QueryError", "Stale", "NotANumber"}
        assert decision.memory.recommendations == memory.recommendations


@pytest.mark.parametrize("policy", ["Hold", "ScaleToMin"])
def test_missing_metric_never_reaches_zero(policy: str) -> None:
    scaling = make_scaling(min_replicas=0, scale_to_zero_after="1m", on_metrics_unavailable=policy)
    memory = ScalingMemory(idle_since=T0 - timedelta(hours=1), last_desired=0)
    decision = decide_replicas(scaling, observe(3, Unavailable("NoData")), memory)
    assert (decision.desired, decision.reason) == (1, "MetricsUnavailable"), decision.message
    assert decision.memory.idle_since is None


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide_replicas(make_scaling(), observe(1, 1, now=datetime(2026, 5, 4)), EMPTY)
    with pytest.raises(ValueError, match="negative"):
        decide_replicas(make_scaling(), observe(1, 1, ready=-1), EMPTY)
    with pytest.raises(ValueError, match="cap"):
        decide_replicas(make_scaling(), observe(1, 1), EMPTY, max_replicas_cap=-1)


# ----------------------------------------------------------------------------------------------
# Properties. A toy plant: the load is fixed; the metric is the load, noisy; new pods become
# Ready after `ready_after` ticks; decisions are applied at once.
@dataclass
class Plant:
    scaling: Scaling
    replicas: int
    ready_after: int = 0
    memory: ScalingMemory = EMPTY
    now: datetime = T0
    ages: list[int] | None = None  # ticks since each pod was created

    def __post_init__(self) -> None:
        self.ages = [self.ready_after] * self.replicas

    def step(self, load: float, *, demand: float = 0.0, latency: bool = False) -> ScalingDecision:
        assert self.ages is not None
        ready = sum(1 for age in self.ages if age >= self.ready_after)
        starting = len(self.ages) - ready
        if latency:
            # Linear: the target latency when each ready pod carries `target` of the load.
            value: Reading = Value(load / ready) if ready else Unavailable("NoData")
        else:
            value = Value(load) if ready else Unavailable("NoData")
        obs = ScalingObservation(
            now=self.now,
            current_replicas=self.replicas,
            ready_replicas=ready,
            starting_replicas=starting,
            unschedulable_replicas=0,
            metric=value,
            demand=Value(demand),
        )
        decision = decide_replicas(self.scaling, obs, self.memory)
        self.memory = decision.memory
        self.ages = [age + 1 for age in self.ages]
        if decision.desired > self.replicas:
            self.ages += [0] * (decision.desired - self.replicas)
        else:
            # The ReplicaSet removes the youngest (not yet Ready) pods first.
            self.ages = sorted(self.ages, reverse=True)[: decision.desired]
        self.replicas = decision.desired
        self.now += TICK
        return decision


def changes(path: Sequence[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(path) if b != a]


def reversals(path: Sequence[int]) -> int:
    moves = changes(path)
    return sum(1 for a, b in itertools.pairwise(moves) if (a > 0) != (b > 0))


@settings(max_examples=150, deadline=None)
@given(
    load=st.floats(min_value=0.5, max_value=300),
    tolerance=st.sampled_from([0.05, 0.1, 0.2, 0.3]),
    start=st.integers(min_value=1, max_value=40),
    down=st.sampled_from(["0s", "1m", "5m"]),
    up_step=st.integers(min_value=1, max_value=10),
    down_step=st.integers(min_value=1, max_value=10),
    noise=st.lists(st.floats(min_value=-1, max_value=1), min_size=80, max_size=80),
)
def test_no_oscillation_under_noisy_flat_load(
    load: float, tolerance: float, start: int, down: str, up_step: int, down_step: int, noise: list[float]
) -> None:
    """Noise below tolerance/(2+tolerance) can never undo a scale-down with a scale-up (a full
    cycle needs the measured load to move by more than the tolerance band), so the replicas
    move one way, then at most the other way, then settle."""
    scaling = make_scaling(
        max_replicas=40,
        tolerance=tolerance,
        scale_down_stabilization=down,
        max_scale_up_step=up_step,
        max_scale_down_step=down_step,
    )
    plant = Plant(scaling, start)
    amplitude = 0.9 * tolerance / (2 + tolerance)
    path = [start]
    for e in noise:
        plant.step(load * 4 * (1 + amplitude * e))
        path.append(plant.replicas)
    assert reversals(path) <= 1, path
    need = math.ceil(load * (1 + amplitude))
    assert all(r <= max(start, need) for r in path), path


@settings(max_examples=150, deadline=None)
@given(
    load=st.floats(min_value=0.5, max_value=200),
    start=st.integers(min_value=1, max_value=10),
    ready_after=st.integers(min_value=1, max_value=12),
    up_step=st.integers(min_value=1, max_value=50),
    noise=st.lists(st.floats(min_value=-0.05, max_value=0.05), min_size=40, max_size=40),
)
def test_no_cascade_during_cold_start(
    load: float, start: int, ready_after: int, up_step: int, noise: list[float]
) -> None:
    """New pods take `ready_after` ticks to be Ready; the replicas asked for never exceed what
    the load needs (here: its noisy maximum), however long the cold start."""
    scaling = make_scaling(max_replicas=100, max_scale_up_step=up_step)
    plant = Plant(scaling, start, ready_after=ready_after)
    need = max(start, math.ceil(round(load * 1.05, 9)))
    for e in noise:
        plant.step(load * 4 * (1 + e))
        assert plant.replicas <= need


@settings(max_examples=100, deadline=None)
@given(
    load=st.floats(min_value=0.5, max_value=50),
    start=st.integers(min_value=1, max_value=5),
    ready_after=st.integers(min_value=1, max_value=12),
)
def test_no_cascade_on_latency(load: float, start: int, ready_after: int) -> None:
    """Latency says nothing about what starting pods will take: no scale-up while any start."""
    scaling = make_scaling(max_replicas=200, metric=metric("Latency", 1.0), max_scale_up_step=3)
    plant = Plant(scaling, start, ready_after=ready_after)
    for _ in range(40):
        before = plant.replicas
        starting = sum(1 for age in plant.ages or [] if age < ready_after)
        plant.step(load, latency=True)
        if starting:
            assert plant.replicas <= before
        assert plant.replicas <= max(start, math.ceil(round(load, 9)))


# Random single decisions, for the invariants that hold whatever the inputs.
readings: st.SearchStrategy[Reading] = st.one_of(
    st.builds(Value, st.floats(min_value=0, max_value=500)),
    st.builds(Value, st.just(0.0)),
    st.sampled_from(
        [Unavailable("NoData"), Unavailable("QueryError"), Unavailable("Stale"), Value(math.nan)]
    ),
)


@st.composite
def scalings(draw: st.DrawFn) -> Scaling:
    low = draw(st.integers(min_value=0, max_value=6))
    high = draw(st.integers(min_value=max(low, 1), max_value=15))
    kinds: list[MetricType] = ["QueueDepth", "RequestsInFlight", "TokensPerSecond", "Latency", "PromQL"]
    kind = draw(st.sampled_from(kinds))
    windows = st.sampled_from(["0s", "30s", "1m", "5m"])
    return make_scaling(
        min_replicas=low,
        max_replicas=high,
        metric=metric(kind, draw(st.sampled_from([0.5, 1, 4, 100]))),
        tolerance=draw(st.sampled_from([0.0, 0.1, 0.25])),
        scale_up_stabilization=draw(windows),
        scale_down_stabilization=draw(windows),
        max_scale_up_step=draw(st.integers(min_value=1, max_value=5)),
        max_scale_down_step=draw(st.integers(min_value=1, max_value=5)),
        scale_to_zero_after=draw(st.sampled_from([None, "30s", "5m"])) if low == 0 else None,
        on_metrics_unavailable=draw(st.sampled_from(["Hold", "ScaleToMin", "ScaleToMax"])),
        prewarm=draw(st.sampled_from([[], [prewarm(min(high, 3), cron="*/20 * * * *", duration="10m")]])),
    )


@st.composite
def observations(draw: st.DrawFn, load: Reading | None = None) -> ScalingObservation:
    current = draw(st.integers(min_value=0, max_value=18))
    unschedulable = draw(st.integers(min_value=0, max_value=current))
    starting = draw(st.integers(min_value=0, max_value=current - unschedulable))
    ready = draw(st.integers(min_value=0, max_value=current - unschedulable - starting))
    return ScalingObservation(
        now=T0 + timedelta(minutes=draw(st.integers(min_value=0, max_value=60))),
        current_replicas=current,
        ready_replicas=ready,
        starting_replicas=starting,
        unschedulable_replicas=unschedulable,
        metric=draw(readings) if load is None else load,
        demand=draw(readings),
    )


@st.composite
def memories(draw: st.DrawFn) -> ScalingMemory:
    recs = draw(
        st.lists(
            st.tuples(st.integers(min_value=0, max_value=600), st.integers(min_value=0, max_value=20)),
            max_size=8,
        )
    )
    return ScalingMemory(
        recommendations=tuple(sorted(((T0 - timedelta(seconds=s), r) for s, r in recs), key=lambda e: e[0])),
        idle_since=draw(st.sampled_from([None, T0 - timedelta(hours=1), T0])),
        last_desired=draw(st.one_of(st.none(), st.integers(min_value=0, max_value=20))),
    )


@settings(max_examples=400, deadline=None)
@given(
    scaling=scalings(),
    obs=observations(),
    memory=memories(),
    cap=st.one_of(st.none(), st.integers(min_value=0, max_value=12)),
    paused=st.booleans(),
)
def test_bounds_always_hold(
    scaling: Scaling, obs: ScalingObservation, memory: ScalingMemory, cap: int | None, paused: bool
) -> None:
    decision = decide_replicas(scaling, obs, memory, max_replicas_cap=cap, paused=paused)
    assert decision == decide_replicas(scaling, obs, memory, max_replicas_cap=cap, paused=paused)
    desired, current = decision.desired, obs.current_replicas
    if paused:
        assert desired == current
        return
    ceiling = min(scaling.max_replicas, cap if cap is not None else scaling.max_replicas)
    assert desired <= ceiling
    floor = scaling.min_replicas
    if decision.active_prewarm:
        floor = max(floor, scaling.prewarm[0].min_replicas)
    assert desired >= min(floor, ceiling), decision.message
    if desired == 0 and current > 0 and cap != 0:
        # Only the scale-to-zero rule, on observed idleness, reaches zero from above.
        assert decision.reason == "ScaleToZero"
        assert scaling.min_replicas == 0
        assert scaling.scale_to_zero_after is not None
        assert obs.metric == Value(0)
        assert obs.demand == Value(0)
    if desired > current and desired > floor:
        # Load-driven growth: within the step, and never while pods are unschedulable.
        assert desired - current <= scaling.max_scale_up_step
        assert obs.unschedulable_replicas == 0
    if current > desired and desired < scaling.max_replicas and desired != cap and desired > 0:
        assert current - desired <= scaling.max_scale_down_step
    assert decision.capacity_available == (obs.unschedulable_replicas == 0)
    assert decision.capacity_shortfall == obs.unschedulable_replicas


@settings(max_examples=200, deadline=None)
@given(
    scaling=scalings(),
    obs=observations(load=Unavailable("Stale")),
    memory=memories(),
    reason=st.sampled_from(["NoData", "QueryError", "Stale", "Ambiguous", "NotANumber"]),
)
def test_missing_metric_is_never_zero(
    scaling: Scaling, obs: ScalingObservation, memory: ScalingMemory, reason: Any
) -> None:
    """Whatever the policy, the memory (long idle, last decision 0) or the demand, a missing
    metric never takes a running service to zero, and never counts as idle."""
    assume(obs.current_replicas > 0)
    scaling = replace_scaling(scaling, min_replicas=0, scale_to_zero_after="30s", prewarm=[])
    memory = replace(memory, idle_since=T0 - timedelta(days=1), last_desired=0)
    decision = decide_replicas(scaling, replace(obs, metric=Unavailable(reason)), memory)
    assert decision.desired >= 1
    assert decision.memory.idle_since is None
    assert not decision.metrics_available


@settings(max_examples=300, deadline=None)
@given(
    scaling=scalings(),
    obs=observations(load=Value(0)),
    memory=memories(),
    loads=st.tuples(st.floats(min_value=0, max_value=500), st.floats(min_value=0, max_value=500)),
    cap=st.one_of(st.none(), st.integers(min_value=0, max_value=12)),
)
def test_monotone_in_load(
    scaling: Scaling,
    obs: ScalingObservation,
    memory: ScalingMemory,
    loads: tuple[float, float],
    cap: int | None,
) -> None:
    low, high = sorted(loads)

    def decide(load: float) -> int:
        with_load = replace(obs, metric=Value(load))
        return decide_replicas(scaling, with_load, memory, max_replicas_cap=cap).desired

    assert decide(low) <= decide(high)


@settings(max_examples=100, deadline=None)
@given(
    after_seconds=st.integers(min_value=15, max_value=900),
    start=st.integers(min_value=1, max_value=6),
    busy_ticks=st.integers(min_value=0, max_value=5),
)
def test_scale_to_zero_timing(after_seconds: int, start: int, busy_ticks: int) -> None:
    """Zero comes at the first decision at least scaleToZeroAfter after idleness was first
    observed, and not a tick earlier; demand brings one replica back at once."""
    scaling = make_scaling(min_replicas=0, scale_to_zero_after=f"{after_seconds}s")
    plant = Plant(scaling, start)
    for _ in range(busy_ticks):
        plant.step(8)
    idle_from = plant.now
    while plant.replicas:
        elapsed = plant.now - idle_from
        decision = plant.step(0)
        assert (decision.desired == 0) == (elapsed >= timedelta(seconds=after_seconds))
        assert elapsed <= timedelta(seconds=after_seconds) + TICK
    woken = plant.step(0, demand=2)
    assert (woken.desired, woken.reason) == (1, "ScaleFromZero")


@settings(max_examples=100, deadline=None)
@given(
    window_ticks=st.integers(min_value=0, max_value=30),
    high=st.integers(min_value=3, max_value=12),
    busy_ticks=st.integers(min_value=1, max_value=10),
)
def test_scale_down_waits_for_the_window(window_ticks: int, high: int, busy_ticks: int) -> None:
    """After the load drops, replicas stay until the last high recommendation leaves the
    scale-down window, then step down."""
    scaling = make_scaling(scale_down_stabilization=f"{window_ticks * 15}s", max_scale_down_step=1)
    plant = Plant(scaling, 1)
    for _ in range(busy_ticks):
        plant.step(high * 4)
    assert plant.replicas == high
    last_high = plant.now - TICK
    while plant.replicas == high:
        plant.step(4)
    assert plant.now - TICK - last_high == max(TICK, timedelta(seconds=window_ticks * 15))
    assert plant.replicas == high - 1


@pytest.mark.parametrize(
    ("activity", "zeroes"),
    [
        pytest.param(Value(12.0), False, id="queue-empty-but-requests-served-is-not-idle"),
        pytest.param(Value(0.0), True, id="no-requests-served-is-idle"),
        pytest.param(Unavailable("QueryError"), False, id="unknown-activity-is-not-idle"),
    ],
)
def test_idleness_follows_activity_not_an_empty_queue(activity: Reading, zeroes: bool) -> None:
    """A well-sized service under load has an empty queue; only no activity is idleness."""
    scaling = make_scaling(min_replicas=0, scale_to_zero_after="1m", metric=metric("QueueDepth"))
    observation = replace(observe(1, 0.0, now=T0 + timedelta(minutes=5)), activity=activity)
    # idle for five minutes so far: this reading either continues the idle period or breaks it
    decision = decide_replicas(scaling, observation, ScalingMemory(idle_since=T0))
    assert (decision.desired == 0) is zeroes, decision
