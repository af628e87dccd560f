"""The replica decision of an InferenceService: pure, deterministic, ``now`` is an argument.

:func:`decide_replicas` takes the spec's :class:`~aipolicy.api.inferenceservice.Scaling`, one
:class:`ScalingObservation` and the :class:`ScalingMemory` persisted in status, and returns a
:class:`ScalingDecision` (the replicas, a CamelCase reason, a sentence with the numbers, and
the memory to persist). The controller applies ``desired`` to the Deployment.

The pipeline, in order (each step is documented where it is implemented):

1. **Pause** (``paused=True``): desired = current, reason ``Paused``. Nothing else applies, not
   even the degraded cap: pausing hands the replicas to a human (``kubectl scale``).
2. **Proposal**, from one of four sources:

   - at 0 replicas: the demand signal (``ScaleFromZero`` as soon as demand > 0, no
     stabilization); the scaling metric is not read, since no pod carries it;
   - no replica Ready and the metric has ``NoData``: hold (a cold start, not an outage);
   - the metric is unavailable: ``onMetricsUnavailable`` (Hold, ScaleToMin, ScaleToMax),
     never scaling to zero;
   - the metric: a recommendation (the replicas the load needs, see :func:`recommend`),
     stabilized (HPA windows), then limited to ``maxScaleUpStep`` / ``maxScaleDownStep``;
     or, after ``scaleToZeroAfter`` of continuous idleness, a step towards 0.

3. **GPU capacity**: while some pods are unschedulable, a proposal above the current replicas
   is cut to the current replicas (``CapacityLimited``); going down is allowed.
4. **Bounds**: ``[floor, maxReplicas]``; floor = ``minReplicas`` (at least 1 unless scaling to
   or staying at zero), raised to a pre-warm schedule's ``minReplicas`` while it is in force.
   Bounds apply in one step (they are not rate-limited) and override the capacity cut: a
   floor is an explicit intent, and its Pending pods are what a cluster autoscaler reacts to.
5. **Cap** (``max_replicas_cap``, from degraded mode or a budget): ``min(desired, cap)``; it
   wins over the floor and pre-warm, and may be 0 (suspended).

Missing data is never zero: an unavailable metric or demand never counts as idle and never
leads to zero replicas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aipolicy.api.common import parse_duration
from aipolicy.api.inferenceservice import PrewarmSchedule, Scaling, ScalingMetric
from aipolicy.policy.coldstart import DEFAULT_COLD_START_SECONDS
from aipolicy.policy.observations import Reading, Unavailable, Value
from aipolicy.policy.schedule import prewarm_in_force
from aipolicy.policy.serving import ServingProfile
from aipolicy.policy.slo import ServiceLoad, SloMemory, slo_replicas, slo_requirement

# Status must stay small: one entry per distinct recommendation, at most this many. At the
# default 15 s interval that is over 4 hours of alternating recommendations, far more than a
# stabilization window needs; the oldest go first.
MAX_RECOMMENDATIONS = 1000


@dataclass(frozen=True)
class ScalingObservation:
    """What the controller saw at ``now``. Replica counts come from the Deployment's pods."""

    now: datetime
    """The decision time, timezone-aware (UTC)."""
    current_replicas: int
    """The Deployment's spec.replicas now."""
    ready_replicas: int
    """Pods Ready: the ones carrying load."""
    starting_replicas: int
    """Pods scheduled but not Ready yet: capacity on its way (cold start)."""
    unschedulable_replicas: int
    """Pods Pending because no node has enough GPUs (FailedScheduling)."""
    metric: Reading
    """The scaling metric summed over the service's pods (total waiting requests for
    QueueDepth, total running for RequestsInFlight, total generated tokens/s for
    TokensPerSecond, the query's value for PromQL); for Latency the service-wide percentile in
    seconds. A Latency of 0 means "no requests in the window" (the observer reports it so)."""
    demand: Reading
    """Demand waiting while at zero (front-door waiting requests, or activationQuery);
    Value(0) = none."""
    activity: Reading | None = None
    """Requests served, running or waiting recently (for scale to zero); None = judge
    idleness from the metric."""
    cold_start_seconds: int | None = None
    """The measured pre-warm lead time (policy/coldstart.lead_time); spec.scaling.coldStartSeconds
    wins when set, and with neither the default of 120 s applies."""
    load: ServiceLoad | Unavailable | None = None
    """For metric type SLO: request rate and token sizes over the metric window (the metric
    reading is then not used)."""


@dataclass(frozen=True)
class ScalingMemory:
    """Decision state persisted in the InferenceService status, so a restart loses nothing."""

    recommendations: tuple[tuple[datetime, int], ...] = ()
    """Recent raw recommendations (time, replicas), oldest first, for the stabilization
    windows. Pruned to the longest window; a run of equal values keeps only its latest time,
    which answers the windows' min and max exactly."""
    last_scale_time: datetime | None = None
    """When a decision last changed the replicas."""
    idle_since: datetime | None = None
    """Since when (first observation) metric load and demand have both been zero."""
    last_desired: int | None = None
    """The last decision, held when the metric goes missing (policy Hold)."""
    slo: SloMemory = field(default_factory=SloMemory)
    """For metric type SLO: the forecast's memory (status.slo)."""


@dataclass(frozen=True)
class ScalingDecision:
    """The replicas to run, why, and the memory to persist."""

    desired: int
    reason: str
    """CamelCase: ScaleUp, ScaleDown, Hold, WithinTolerance, Stabilizing, ScaleToZero,
    ScaleFromZero, Idle, ColdStart, Prewarm, MinReplicas, MaxReplicas, CapacityLimited,
    MetricsUnavailable, DegradedCap, Paused."""
    message: str
    """A sentence with the numbers behind the reason."""
    memory: ScalingMemory
    metrics_available: bool
    """Whether the signal this decision needed was there (the metric; the demand at zero)."""
    metrics_reason: str
    """Why not (NoData, QueryError, Stale, Ambiguous, NotANumber, NoReadyReplicas), or ""."""
    capacity_available: bool
    """False while pods are unschedulable for lack of GPUs."""
    capacity_shortfall: int
    """Replicas that cannot be scheduled for lack of GPUs."""
    active_prewarm: str | None
    """The name of the pre-warm schedule in force, if any."""


@dataclass(frozen=True)
class Recommendation:
    """What the metric says the load needs, before stabilization, steps and bounds."""

    replicas: int
    within_tolerance: bool
    """metric/target within 1 ± tolerance: replicas is the current count."""
    cold_start_hold: bool
    """A Latency scale-up held back while replicas are starting."""
    summary: str
    """The numbers, such as "queue 23 per replica > target 4 on 2 replicas"."""


@dataclass(frozen=True)
class _Proposal:
    """The replicas a source proposes, before capacity, bounds and the cap."""

    replicas: int
    reason: str
    message: str
    allow_zero: bool
    """Whether the floor may be 0: scaling to zero, or staying at zero."""


_METRIC_NOUNS = {
    "QueueDepth": "queue",
    "RequestsInFlight": "requests in flight",
    "TokensPerSecond": "tokens/s",
    "KVCacheUsage": "KV cache usage",
    "PromQL": "metric",
}


def _ceil(x: float) -> int:
    # 1.1 / 0.1 is 11.000000000000002 in binary floating point; rounding first keeps such
    # quotients from asking for a replica more than the arithmetic means.
    return math.ceil(round(x, 9))


def _within(ratio: float, tolerance: float) -> bool:
    """``|ratio - 1| <= tolerance``, with the edge inclusive despite binary floating point
    (17.6 / 16 - 1 is 0.10000000000000009)."""
    return round(abs(ratio - 1), 9) <= tolerance


def _number(x: float) -> str:
    return f"{x:.3g}"


def _usable(reading: Reading) -> Reading:
    """A non-finite value is no value (missing data is never a number, let alone zero)."""
    if isinstance(reading, Value) and not math.isfinite(reading.value):
        return Unavailable("NotANumber", f"value {reading.value}")
    return reading


def _describe(reading: Unavailable) -> str:
    return f"{reading.reason}: {reading.message}" if reading.message else reading.reason


def recommend(
    metric: ScalingMetric, value: float, obs: ScalingObservation, tolerance: float, detail: str = ""
) -> Recommendation:
    """The replicas the load needs, from one metric value (``obs.current_replicas`` > 0).

    Per-replica metrics (QueueDepth, RequestsInFlight, TokensPerSecond, KVCacheUsage, PromQL), ``value`` being
    the total over the pods: need = ``ceil(total / target)``, the replicas that would each carry
    ``target``. Pods still starting count as capacity on its way: the tolerance ratio is
    ``total / (capacity * target)`` with capacity = ready + starting (at most current). Within
    ``1 ± tolerance``, the recommendation is the current count. Outside it, the direction
    follows the ratio: above the band it never recommends fewer than current, below it never
    more. Since the need depends on the load only, pods that are starting are never asked for
    a second time: a cold start cannot cascade.

    SLO (``value``: the replicas the SLO needs, fractional): see :func:`~aipolicy.policy.slo.slo_replicas`.

    Latency (``value`` in seconds, service-wide): ratio = ``observed / target`` applied to the
    replicas that produced it, the ready ones (HPA object metrics): need = ``ceil(ready *
    ratio)``, with the same tolerance band and direction rule. Latency does not say what share
    starting pods will take, so while pods are starting a Latency above target holds at the
    current count (one scale-up in flight at a time); below target it may still scale down.
    With no ready pod there is nothing to apply the ratio to: hold.
    """
    current = obs.current_replicas
    target = metric.target
    value = max(value, 0.0)  # a negative PromQL result is no load, not negative replicas

    if metric.type == "SLO":
        # value: the replicas the SLO needs (fractional), from policy.slo; hysteresis there
        replicas = slo_replicas(value, current, tolerance)
        head = f"{detail or 'SLO'}; needs {value:.3g} replicas"
        return Recommendation(replicas, replicas == current, False, head)

    if metric.type == "Latency":
        ready = min(obs.ready_replicas, current)
        observed = f"p{metric.percentile * 100:g} latency {_number(value)}s"
        if ready == 0:
            return Recommendation(
                current, False, obs.starting_replicas > 0, f"{observed} with no replica Ready"
            )
        ratio = value / target
        need = _ceil(ready * ratio)
        head = f"{observed} vs target {_number(target)}s on {ready} ready replicas"
        if _within(ratio, tolerance):
            return Recommendation(current, True, False, f"{head}, within ±{tolerance:g}")
        if ratio > 1:
            if obs.starting_replicas > 0:
                summary = (
                    f"{head}; {obs.starting_replicas} replicas still starting, "
                    f"waiting for them before adding more"
                )
                return Recommendation(current, False, True, summary)
            return Recommendation(max(need, current), False, False, f"{head}; needs {need}")
        return Recommendation(min(need, current), False, False, f"{head}; needs {need}")

    noun = _METRIC_NOUNS[metric.type]
    need = _ceil(value / target)
    capacity = min(obs.ready_replicas + obs.starting_replicas, current)
    if capacity == 0:
        # Nothing carries load (every pod Pending, or not created yet): the total says it all.
        summary = f"{noun} {_number(value)} with no replica up; needs {need} at target {_number(target)}"
        return Recommendation(need, False, False, summary)
    per_replica = value / capacity
    ratio = per_replica / target
    on = f"{capacity} replicas"
    if obs.starting_replicas > 0:
        on += f" ({obs.starting_replicas} starting)"
    if _within(ratio, tolerance):
        summary = (
            f"{noun} {_number(per_replica)} per replica within ±{tolerance:g} "
            f"of target {_number(target)} on {on}"
        )
        return Recommendation(current, True, False, summary)
    sign = ">" if ratio > 1 else "<"
    summary = (
        f"{noun} {_number(per_replica)} per replica {sign} target {_number(target)} on {on}; needs {need}"
    )
    replicas = max(need, current) if ratio > 1 else min(need, current)
    return Recommendation(replicas, False, False, summary)


def _windows(scaling: Scaling) -> tuple[timedelta, timedelta]:
    return parse_duration(scaling.scale_up_stabilization), parse_duration(scaling.scale_down_stabilization)


def _prune(
    recommendations: tuple[tuple[datetime, int], ...], now: datetime, keep: timedelta
) -> tuple[tuple[datetime, int], ...]:
    """Entries younger than ``keep``. Entries from the future (a clock that went back) go too:
    they would otherwise hold a window for as long as the clock is behind."""
    kept = tuple((t, r) for t, r in recommendations if t <= now and now - t < keep)
    return kept[-MAX_RECOMMENDATIONS:]


def _record(
    recommendations: tuple[tuple[datetime, int], ...], now: datetime, replicas: int
) -> tuple[tuple[datetime, int], ...]:
    # A run of equal values only needs its latest time: it lies in a window iff that time does.
    if recommendations and recommendations[-1][1] == replicas:
        recommendations = recommendations[:-1]
    return (*recommendations, (now, replicas))[-MAX_RECOMMENDATIONS:]


def stabilize(
    current: int,
    recommendation: int,
    history: tuple[tuple[datetime, int], ...],
    now: datetime,
    up_window: timedelta,
    down_window: timedelta,
) -> tuple[int, str]:
    """HPA stabilization: scale up to the lowest recommendation of the up window, down to the
    highest of the down window (both windows include the new recommendation).

    Returns the replicas and, when a window changed the outcome, why.
    """
    ups = [recommendation, *(r for t, r in history if now - t < up_window)]
    downs = [recommendation, *(r for t, r in history if now - t < down_window)]
    lowest_up, highest_down = min(ups), max(downs)
    stabilized = current
    if stabilized < lowest_up:
        stabilized = lowest_up
    if stabilized > highest_down:
        stabilized = highest_down
    note = ""
    if stabilized < recommendation:
        note = f"lowest recommendation in the last {_span(up_window)} is {lowest_up} (scale-up stabilization)"
    elif stabilized > recommendation:
        note = (
            f"highest recommendation in the last {_span(down_window)} is {highest_down} "
            "(scale-down stabilization)"
        )
    return stabilized, note


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def _step(current: int, wanted: int, scaling: Scaling) -> int:
    """At most maxScaleUpStep added, maxScaleDownStep removed, in one decision."""
    return max(current - scaling.max_scale_down_step, min(wanted, current + scaling.max_scale_up_step))


def _direction(current: int, replicas: int) -> str:
    if replicas > current:
        return "ScaleUp"
    if replicas < current:
        return "ScaleDown"
    return "Hold"


def _is_idle(obs: ScalingObservation, metric: Reading, demand: Reading) -> bool:
    """Idle = demand is zero and, above zero replicas, no activity: the `activity` reading
    when the controller gives one (requests served recently), else the metric. A queue-depth
    metric of zero is not idleness: a well-sized service under load queues nothing. Every
    reading must be observed: an unavailable one is never idle (it breaks the idle period)."""
    if not (isinstance(demand, Value) and demand.value <= 0):
        return False
    if obs.current_replicas == 0:
        return True
    signal = obs.activity if obs.activity is not None else metric
    return isinstance(signal, Value) and signal.value <= 0


def _validate(obs: ScalingObservation, cap: int | None) -> None:
    if obs.now.tzinfo is None or obs.now.utcoffset() is None:
        raise ValueError(f"obs.now must be timezone-aware (UTC), got {obs.now.isoformat()}")
    counts = {
        "current_replicas": obs.current_replicas,
        "ready_replicas": obs.ready_replicas,
        "starting_replicas": obs.starting_replicas,
        "unschedulable_replicas": obs.unschedulable_replicas,
    }
    negative = {k: v for k, v in counts.items() if v < 0}
    if negative:
        raise ValueError(f"replica counts must not be negative: {negative}")
    if cap is not None and cap < 0:
        raise ValueError(f"max_replicas_cap must not be negative, got {cap}")


def _from_zero(scaling: Scaling, demand: Reading, memory: ScalingMemory, lead: int) -> _Proposal:
    """At 0 replicas: demand > 0 starts one replica at once (no stabilization, no window);
    otherwise stay at zero (the floor still applies: minReplicas, pre-warm). The message says
    how long the demand will wait: the cold start lead time."""
    if isinstance(demand, Unavailable):
        return _when_unavailable(scaling, 0, demand, memory, what="demand")
    if demand.value > 0:
        return _Proposal(
            1,
            "ScaleFromZero",
            f"{_number(demand.value)} requests waiting at 0 replicas; ready in about {lead}s (cold start)",
            True,
        )
    return _Proposal(0, "Idle", "no demand at 0 replicas", True)


def _when_unavailable(
    scaling: Scaling, current: int, reading: Unavailable, memory: ScalingMemory, *, what: str
) -> _Proposal:
    """onMetricsUnavailable: Hold keeps the last decision (or the current count), ScaleToMin
    and ScaleToMax go to the bound, each within the max steps. Never to zero from above zero:
    a missing metric is not an idle service."""
    policy = scaling.on_metrics_unavailable
    if policy == "Hold":
        wanted = memory.last_desired if memory.last_desired is not None else current
    elif policy == "ScaleToMin":
        wanted = scaling.min_replicas
    else:
        wanted = scaling.max_replicas
    replicas = _step(current, wanted, scaling)
    if current > 0:
        replicas = max(replicas, 1)
    message = f"{what} unavailable ({_describe(reading)}); {policy}: {replicas} replicas"
    return _Proposal(replicas, "MetricsUnavailable", message, current == 0)


def _from_metric(
    scaling: Scaling,
    obs: ScalingObservation,
    value: float,
    history: tuple[tuple[datetime, int], ...],
    idle_since: datetime | None,
    prewarm: PrewarmSchedule | None,
    detail: str = "",
) -> tuple[_Proposal, int]:
    """Above zero with a metric value. Returns the proposal and the raw recommendation to
    remember.

    Scale to zero: with minReplicas 0, scaleToZeroAfter set and no pre-warm in force, once
    metric and demand have been zero for scaleToZeroAfter (since ``idle_since``), step down
    by maxScaleDownStep towards 0 (the idle period is the stabilization; the step still
    holds, so N → 0 is not a cliff, unlike KEDA's cooldown).
    """
    current = obs.current_replicas
    now = obs.now
    if (
        scaling.min_replicas == 0
        and scaling.scale_to_zero_after is not None
        and prewarm is None
        and idle_since is not None
        and now - idle_since >= parse_duration(scaling.scale_to_zero_after)
    ):
        replicas = _step(current, 0, scaling)
        message = f"idle since {idle_since.isoformat()} (scaleToZeroAfter {scaling.scale_to_zero_after})"
        reason = "ScaleToZero" if replicas == 0 else "ScaleDown"
        if replicas:
            message += f"; stepping down by at most {scaling.max_scale_down_step} towards 0"
        return _Proposal(replicas, reason, message, True), 0

    rec = recommend(scaling.metric, value, obs, scaling.tolerance, detail)
    up_window, down_window = _windows(scaling)
    stabilized, note = stabilize(current, rec.replicas, history, now, up_window, down_window)
    replicas = _step(current, stabilized, scaling)
    message = rec.summary
    if note:
        message += f"; {note}"
    if replicas != stabilized:
        limit = scaling.max_scale_up_step if replicas > current else scaling.max_scale_down_step
        message += f"; limited to a step of {limit}"
    counting_idle = False
    if replicas < 1:
        # Only the idle rule above reaches zero; until then one replica stays.
        replicas = 1
        counting_idle = idle_since is not None and scaling.scale_to_zero_after is not None
        if counting_idle and prewarm is None:
            message += (
                f"; idle since {idle_since.isoformat() if idle_since else ''}, "
                f"zero after {scaling.scale_to_zero_after}"
            )
        else:
            message += "; keeping 1 replica (zero needs minReplicas 0, scaleToZeroAfter and idleness)"
    if replicas != current:
        reason = _direction(current, replicas)
    elif counting_idle and prewarm is None:
        reason = "Idle"
    elif rec.cold_start_hold:
        reason = "ColdStart"
    elif rec.within_tolerance:
        reason = "WithinTolerance"
    elif max(rec.replicas, 1) != current:
        reason = "Stabilizing"  # the load asks for a change; a window holds it back
    else:
        reason = "Hold"
    return _Proposal(replicas, reason, message, False), rec.replicas


def decide_replicas(
    scaling: Scaling,
    obs: ScalingObservation,
    memory: ScalingMemory,
    *,
    max_replicas_cap: int | None = None,
    paused: bool = False,
    profile: ServingProfile | None = None,
) -> ScalingDecision:
    """Decide the replicas of one InferenceService; see the module docstring for the pipeline.

    ``max_replicas_cap`` lowers the ceiling (degraded mode, a budget; 0 suspends) and wins over
    minReplicas and pre-warm. ``paused`` keeps the current replicas. Raises ValueError on a
    naive ``obs.now``, negative counts or a negative cap. With metric type SLO, ``profile`` is
    the serving profile of a replica and ``obs.load`` what it is sized from (the metric reading
    becomes the replicas the SLO needs).
    """
    _validate(obs, max_replicas_cap)
    now = obs.now
    current = obs.current_replicas
    raw_metric, slo_memory, detail = obs.metric, memory.slo, ""
    if scaling.metric.type == "SLO":
        raw_metric, slo_memory, detail = _slo_metric(scaling, obs, memory.slo, profile)
    metric, demand = _usable(raw_metric), _usable(obs.demand)
    lead = cold_start_lead(scaling, obs)
    prewarm = prewarm_in_force(scaling.prewarm, lead, now)

    # The signal this decision reads: the demand at zero, the metric above it.
    signal = demand if current == 0 else metric
    metrics_reason: str = signal.reason if isinstance(signal, Unavailable) else ""
    if (
        current > 0
        and obs.ready_replicas == 0
        and isinstance(metric, Unavailable)
        and metric.reason == "NoData"
    ):
        metrics_reason = "NoReadyReplicas"

    up_window, down_window = _windows(scaling)
    history = _prune(memory.recommendations, now, max(up_window, down_window))
    idle = _is_idle(obs, metric, demand)
    idle_since = (memory.idle_since or now) if idle else None

    def decision(
        desired: int, reason: str, message: str, recommendations: tuple[tuple[datetime, int], ...]
    ) -> ScalingDecision:
        return ScalingDecision(
            desired=desired,
            reason=reason,
            message=message,
            memory=ScalingMemory(
                recommendations=recommendations,
                last_scale_time=now if desired != current else memory.last_scale_time,
                idle_since=idle_since,
                last_desired=desired,
                slo=slo_memory,
            ),
            metrics_available=not metrics_reason,
            metrics_reason=metrics_reason,
            capacity_available=obs.unschedulable_replicas == 0,
            capacity_shortfall=obs.unschedulable_replicas,
            active_prewarm=prewarm.name if prewarm else None,
        )

    if paused:
        return decision(current, "Paused", f"autoscaling paused; keeping {current} replicas", history)

    if current == 0:
        proposal = _from_zero(scaling, demand, memory, lead)
    elif isinstance(metric, Unavailable) and metrics_reason == "NoReadyReplicas":
        # No pod is Ready, so no pod exports the metric: that is a cold start (or pods stuck
        # Pending), not a metrics outage, and must not trigger ScaleToMax or ScaleToMin.
        waiting = f"{obs.starting_replicas} starting" if obs.starting_replicas else "none starting"
        proposal = _Proposal(
            current,
            "ColdStart" if obs.starting_replicas else "Hold",
            f"no replica Ready yet ({waiting}), so no metric; holding {current}",
            False,
        )
    elif isinstance(metric, Unavailable):
        proposal = _when_unavailable(scaling, current, metric, memory, what="metric")
    else:
        proposal, recommended = _from_metric(scaling, obs, metric.value, history, idle_since, prewarm, detail)
        history = _record(history, now, recommended)

    desired, reason, message = _limit(scaling, obs, proposal, prewarm, max_replicas_cap)
    return decision(desired, reason, message, history)


def cold_start_lead(scaling: Scaling, obs: ScalingObservation) -> int:
    """The pre-warm lead time: the spec's coldStartSeconds, else the measured one, else 120 s."""
    if scaling.cold_start_seconds is not None:
        return scaling.cold_start_seconds
    if obs.cold_start_seconds is not None:
        return obs.cold_start_seconds
    return DEFAULT_COLD_START_SECONDS


def reported_change(dry_run: bool, current: int, previous_desired: int | None, desired: int) -> bool:
    """Whether a decision is a change to record and announce (status.decisions, an event).

    Enforced, a change is desired != the Deployment's replicas, and it is applied, so the next
    decision starts from it. In DryRun the replicas never move, so comparing with them would
    announce the same would-be change at every evaluation: a change is then a new desired count
    (the first decision counts when it differs from the replicas)."""
    if not dry_run:
        return desired != current
    if previous_desired is None:
        return desired != current
    return desired != previous_desired


def applied_replicas(
    dry_run: bool, desired: int, current: int | None, min_replicas: int, cap: int | None
) -> int:
    """The replicas to write into the Deployment (``current`` None: there is none yet).

    Enforced: the decision. DryRun: the replicas stay as they are (a new Deployment starts at
    minReplicas), since the decision is advice; but a cap from an enforced budget or fallback
    policy (degraded mode, suspension) still applies: that is their enforcement, not scaling's.
    """
    if not dry_run:
        return desired
    replicas = current if current is not None else max(min_replicas, 0)
    return replicas if cap is None else min(replicas, cap)


def _slo_metric(
    scaling: Scaling, obs: ScalingObservation, memory: SloMemory, profile: ServingProfile | None
) -> tuple[Reading, SloMemory, str]:
    """For metric type SLO: the replicas the SLO needs as the metric value, the forecast's new
    memory, and the numbers behind it. A missing load or profile is an unavailable metric."""
    if scaling.slo is None or profile is None:
        why = "no scaling.slo" if scaling.slo is None else "no serving profile for this model and GPU"
        return Unavailable("NoData", why), memory, ""
    if obs.load is None:
        return Unavailable("NoData", "no request rate and token sizes observed"), memory, ""
    if isinstance(obs.load, Unavailable):
        return obs.load, memory, ""
    lead = cold_start_lead(scaling, obs) + parse_duration(scaling.evaluation_interval).total_seconds()
    req = slo_requirement(scaling.slo, profile, obs.load, memory, obs.now, lead)
    if obs.load.requests_per_s <= 0 and obs.load.waiting <= 0 and req.plan_rate <= 0:
        return Value(0.0), req.memory, req.summary
    return Value(req.required), req.memory, req.summary


def _limit(
    scaling: Scaling,
    obs: ScalingObservation,
    proposal: _Proposal,
    prewarm: PrewarmSchedule | None,
    cap: int | None,
) -> tuple[int, str, str]:
    """GPU capacity, then bounds, then the cap; the reason names the last thing that bound."""
    current = obs.current_replicas
    replicas, reason, message = proposal.replicas, proposal.reason, proposal.message

    if obs.unschedulable_replicas > 0 and replicas > current:
        message += (
            f"; {obs.unschedulable_replicas} replicas unschedulable for lack of GPUs, "
            f"not adding any (wanted {replicas})"
        )
        replicas, reason = current, "CapacityLimited"

    floor = scaling.min_replicas if proposal.allow_zero else max(scaling.min_replicas, 1)
    min_floor = floor
    if prewarm is not None:
        floor = max(floor, prewarm.min_replicas)
    bounded = min(max(replicas, floor), scaling.max_replicas)
    if bounded > replicas:
        if prewarm is not None and bounded == prewarm.min_replicas and bounded > min_floor:
            reason = "Prewarm"
            message += f"; pre-warm {prewarm.name!r} keeps at least {bounded}"
        else:
            reason = "MinReplicas"
            message += f"; minReplicas {scaling.min_replicas}"
    elif bounded < replicas:
        reason = "MaxReplicas"
        message += f"; maxReplicas {scaling.max_replicas}"
    replicas = bounded

    if cap is not None and replicas > cap:
        reason = "DegradedCap"
        message += "; suspended (cap 0)" if cap == 0 else f"; capped at {cap} (degraded mode or budget)"
        replicas = cap

    return replicas, reason, message


__all__ = [
    "MAX_RECOMMENDATIONS",
    "Recommendation",
    "ScalingDecision",
    "ScalingMemory",
    "ScalingObservation",
    "applied_replicas",
    "cold_start_lead",
    "decide_replicas",
    "recommend",
    "reported_change",
    "stabilize",
]
