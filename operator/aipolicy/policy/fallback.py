"""The FallbackPolicy state machine: which backend a target's front door points at, and why.

Pure: no clock, network, kopf or Kubernetes access. The controller gathers one
`TriggerObservation` per trigger and one `BackendHealth` per chain step, passes the persisted
status as `previous` and the time as `now`, then applies and persists what comes back. All
memory (trigger timers, the recovery hold, the last switch) lives in the returned status, so a
restart or a failover that feeds the persisted status back in resumes exactly.

Semantics, each chosen against a failure mode seen in other tools (see the reference anchors):

Triggers
    A trigger's *condition* is instantaneous (`trigger_condition`): ErrorRate, Latency, PromQL:
    value > threshold; Unavailable: ready value <= 0; GPUShortage: value > 0; Budget: the named
    budget's state is in `budget_states`. It *fires* once the condition has held continuously for
    its `for` (timer in `status.trigger_since`, dropped as soon as the condition is known false).
    `trigger_mode` Any fires when one trigger fires, All only when every trigger fires.
Missing data (KEDA switches on a failing metric source, Flagger rolls back on "no values")
    An unknown condition (an `Unavailable` reading, NaN, a missing or Unknown budget) neither
    fires nor clears: its timer is kept as is, and it blocks recovery because "all clear" needs
    every condition known false. So missing data alone never switches, either way. The gap is
    bridged: a condition true on both sides of a gap counts as held through it (same for the
    recovery hold), otherwise a flaky pipeline would pin a policy in whichever state it is in.
Entering
    The first chain step that exists and is healthy; unhealthy or nonexistent steps are skipped.
    With none, the front door stays on the target (NoHealthyFallback) and the next evaluation
    tries again.
While active
    The front door stays on the step while it is healthy, even if an earlier, preferred step
    heals (every switch drops in-flight requests and warms caches, so no needless moves). When
    the active step turns unhealthy it moves to the first other healthy step in chain order;
    with none it stays (the target's triggers say the target is no better). When the active step
    no longer exists (deleted, or removed from the chain) it moves at once, ignoring the
    minimum interval: a front door to nothing is an outage. With no healthy step left it then
    goes back to the target (NoHealthyFallback) rather than point at nothing.
Recovering
    Every condition known false, continuously, for `recovery.holdFor` (`status.clear_since`) and
    then the front door returns to the target (FallbackRecovered). A condition seen true, even
    before its `for` has passed, restarts the hold: "continuously clear" means every reading.
    In All mode this is deliberate hysteresis: entering needs all triggers, leaving needs none.
Minimum switch interval
    No switch happens sooner than `recovery.minSwitchInterval` after the previous one, whatever
    its direction; the only exception is moving off a backend that no longer exists. Hence
    switches <= 1 + elapsed / minSwitchInterval + (number of times the active step vanished).
Cold-start bridge
    With `coldStartBridge` and `target_scaled_to_zero_warming`, the front door goes to the first
    healthy step (a switch, reason ColdStartBridge, `triggered_by == ["ColdStart"]`, which is
    how a restart knows it is a bridge) and returns as soon as the caller says the target is
    warm and the triggers do not fire (ColdStartBridgeEnded). Missing data does not hold the
    bridge: a target without traffic has no request metrics. If the triggers fire meanwhile,
    the bridge becomes an ordinary fallback and recovers through the hold.

`spec.enforcement` is not read here: a DryRun policy decides the same and the controller does
not apply it. Times must be timezone-aware; a clock that steps backwards only delays switches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from aipolicy.api.common import parse_duration
from aipolicy.api.fallbackpolicy import (
    FallbackPolicySpec,
    FallbackPolicyStatus,
    Trigger,
)
from aipolicy.policy.backends import step_label
from aipolicy.policy.observations import Reading, Unavailable

COLD_START = "ColdStart"
"""The `triggered_by` entry of a cold-start bridge; persisted, so a restart knows the mode."""

METRICS_OK = "AllReadingsAvailable"
"""`metrics_reason` when every trigger has a usable reading."""

_KNOWN_BUDGET_STATES = frozenset({"Ok", "Warning", "Degraded", "Exceeded"})

Reason = Literal[
    "FallbackActivated",
    "FallbackRecovered",
    "FallbackStepChanged",
    "ColdStartBridge",
    "ColdStartBridgeEnded",
    "Holding",
    "RecoveryPending",
    "NoHealthyFallback",
    "MinSwitchInterval",
    "MetricsUnavailable",
    "TriggerPending",
    "TriggersClear",
]


@dataclass(frozen=True)
class TriggerObservation:
    """What the controller saw for one trigger, in spec order."""

    value: Reading
    """ErrorRate: failing share; Latency: seconds; Unavailable: ready replicas (or 1/0 provider
    healthy); GPUShortage: pods Pending for lack of the target's GPU resource; Budget: not used;
    PromQL: the query's value."""
    budget_state: str | None = None
    """Budget triggers: the named budget's status.state; None if the budget does not exist."""


@dataclass(frozen=True)
class BackendHealth:
    """One chain step, in chain order."""

    exists: bool
    """An InferenceService step names an existing service (providers and degraded always do)."""
    healthy: bool
    """Usable now: ready replicas > 0 and not itself in fallback; providers unless known failing."""


def service_step_health(obj: Mapping[str, Any] | None) -> BackendHealth:
    """An InferenceService chain step, from the service as stored (None: it does not exist).

    A self-hosted one is usable with a Ready replica; an API-backed one has no replicas at
    all, and is usable as long as it can take requests (the gateway sends them on to its
    provider). Either is unusable while it is itself suspended or in fallback.
    """
    if obj is None:
        return BackendHealth(exists=False, healthy=False)
    status = obj.get("status") or {}
    if status.get("mode") in ("Fallback", "Suspended"):
        return BackendHealth(exists=True, healthy=False)
    if (obj.get("spec") or {}).get("provider"):
        return BackendHealth(exists=True, healthy=True)
    ready = status.get("readyReplicas")
    return BackendHealth(exists=True, healthy=isinstance(ready, int) and ready > 0)


@dataclass(frozen=True)
class FallbackDecision:
    """Where the front door points after this evaluation, why, and the status to persist."""

    active: bool
    active_step: int
    """Index in spec.chain, or -1 when the target serves."""
    switched: bool
    """This evaluation changes the front door."""
    triggered_by: tuple[str, ...]
    reason: Reason
    message: str
    status: FallbackPolicyStatus
    """`previous` with the state machine's fields replaced; persist it as is."""
    metrics_available: bool
    metrics_reason: str
    """METRICS_OK, or why the first unknown trigger is unknown (NoData, BudgetNotFound, ...)."""
    metrics_message: str = ""


@dataclass(frozen=True)
class _Verdict:
    condition: bool | None
    reason: str = ""
    message: str = ""


def trigger_names(triggers: Sequence[Trigger]) -> list[str]:
    """Display names, unique within a policy: they key `trigger_since` and fill `triggered_by`.

    A repeated name gets `#2`, `#3`...; keying by name rather than index keeps a trigger's timer
    when another trigger is inserted before it.
    """
    seen: dict[str, int] = {}
    names = []
    for trigger in triggers:
        base = _base_name(trigger)
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return names


def _base_name(trigger: Trigger) -> str:
    if trigger.type == "Latency":
        return f"Latency(p{round(trigger.percentile * 100, 4):g} {trigger.latency})"
    if trigger.type == "Budget":
        return f"Budget({trigger.budget})"
    return trigger.type


def trigger_condition(trigger: Trigger, obs: TriggerObservation) -> bool | None:
    """The trigger's instantaneous condition; None when it cannot be known (missing data)."""
    return _evaluate(trigger, obs).condition


def _evaluate(trigger: Trigger, obs: TriggerObservation) -> _Verdict:
    if trigger.type == "Budget":
        state = obs.budget_state
        if state is None:
            return _Verdict(None, "BudgetNotFound", f"AIBudget {trigger.budget} does not exist")
        if state not in _KNOWN_BUDGET_STATES:
            # An Unknown budget is itself missing data; counting it as clear would recover on it.
            return _Verdict(None, "BudgetStateUnknown", f"AIBudget {trigger.budget} is {state!r}")
        return _Verdict(state in trigger.budget_states)
    reading = obs.value
    if isinstance(reading, Unavailable):
        return _Verdict(None, reading.reason, reading.message)
    value = reading.value
    if math.isnan(value):
        # Observations should never carry NaN; if one slips through, NaN > x would read as clear.
        return _Verdict(None, "NotANumber", "the reading is NaN")
    if trigger.type == "Unavailable":
        return _Verdict(value <= 0)
    if trigger.type == "GPUShortage":
        return _Verdict(value > 0)
    if trigger.threshold is None:
        # The CRD's CEL rules refuse this; unknown rather than crash on an object built in code.
        return _Verdict(None, "ThresholdMissing", f"a {trigger.type} trigger needs a threshold")
    return _Verdict(value > trigger.threshold)


def backend_label(spec: FallbackPolicySpec, step: int) -> str:
    """What status.activeBackend shows: the target's name, service/<name>, provider/<host>, or
    degraded."""
    if step < 0:
        return spec.target
    return step_label(spec.chain[step])


@dataclass
class _Outcome:
    """What the branch logic settles on; turned into a FallbackDecision at the end."""

    step: int
    reason: Reason
    message: str
    triggered_by: list[str]


def decide_fallback(
    spec: FallbackPolicySpec,
    previous: FallbackPolicyStatus,
    triggers: Sequence[TriggerObservation],
    chain: Sequence[BackendHealth],
    now: datetime,
    *,
    target_scaled_to_zero_warming: bool = False,
) -> FallbackDecision:
    """One evaluation of the policy; see the module docstring for the semantics.

    Raises ValueError when `triggers` or `chain` do not match the spec, or `now` is naive:
    those are the caller's bugs, and guessing would switch traffic on them.
    """
    if len(triggers) != len(spec.triggers):
        raise ValueError(f"{len(triggers)} trigger observations for {len(spec.triggers)} triggers")
    if len(chain) != len(spec.chain):
        raise ValueError(f"{len(chain)} backend healths for {len(spec.chain)} chain steps")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (status times are)")

    hold_for = parse_duration(spec.recovery.hold_for)
    min_interval = parse_duration(spec.recovery.min_switch_interval)

    # --- Triggers: conditions, timers, firing ----------------------------------------------
    names = trigger_names(spec.triggers)
    trigger_since: dict[str, datetime] = {}
    fired: list[str] = []
    unknown: list[tuple[str, _Verdict]] = []
    pending: list[str] = []
    any_true = False
    for name, trigger, obs in zip(names, spec.triggers, triggers, strict=True):
        verdict = _evaluate(trigger, obs)
        if verdict.condition is None:
            unknown.append((name, verdict))
            if name in previous.trigger_since:
                trigger_since[name] = previous.trigger_since[name]
        elif verdict.condition:
            any_true = True
            since = previous.trigger_since.get(name, now)
            trigger_since[name] = since
            if now - since >= parse_duration(trigger.for_):
                fired.append(name)
            else:
                pending.append(name)
    all_clear = not any_true and not unknown
    fires = bool(fired) if spec.trigger_mode == "Any" else len(fired) == len(spec.triggers)

    metrics_available = not unknown
    metrics_reason = METRICS_OK if metrics_available else unknown[0][1].reason
    metrics_message = "; ".join(
        f"{name}: {v.reason}" + (f" ({v.message})" if v.message else "") for name, v in unknown
    )

    # --- Where the front door points now --------------------------------------------------
    position, present = _current_position(spec, previous)
    bridge = position >= 0 and list(previous.triggered_by) == [COLD_START]
    healthy_steps = [i for i, b in enumerate(chain) if b.exists and b.healthy]
    current_ok = position < 0 or (present and chain[position].exists)
    current_healthy = position >= 0 and current_ok and chain[position].healthy
    may_switch = previous.last_switch_time is None or now - previous.last_switch_time >= min_interval
    wait_text = _wait_text(previous.last_switch_time, min_interval, now)

    # The recovery hold only runs while in fallback. A true condition restarts it; an unknown
    # one keeps it as is (the gap is bridged), but recovery also needs all_clear right now.
    clear_since: datetime | None = None
    if position >= 0:
        if all_clear:
            clear_since = previous.clear_since or now
        elif not any_true:
            clear_since = previous.clear_since

    warming = spec.cold_start_bridge and target_scaled_to_zero_warming
    fired_text = ", ".join(fired)

    if position < 0:
        outcome = _on_target(
            fires=fires,
            warming=warming,
            fired=fired,
            fired_text=fired_text,
            healthy_steps=healthy_steps,
            chain=chain,
            spec=spec,
            may_switch=may_switch,
            wait_text=wait_text,
            unknown=bool(unknown),
            pending=pending,
            metrics_reason=metrics_reason,
        )
    else:
        if bridge and fires:
            # The target is unhealthy on its own terms: the bridge becomes a fallback.
            bridge = False
        if bridge:
            want_target = not warming
            back_reason: Reason = "ColdStartBridgeEnded"
            back_text = "the target is warm"
        else:
            want_target = all_clear and clear_since is not None and now - clear_since >= hold_for
            back_reason = "FallbackRecovered"
            back_text = f"all triggers clear for {spec.recovery.hold_for}"
        if fires:
            kept_by = fired
        elif bridge:
            kept_by = [COLD_START]
        else:
            kept_by = list(previous.triggered_by)
        here = backend_label(spec, position) if present else (previous.active_backend or f"step {position}")
        # When the old backend left the chain, its index may now name another, usable, backend.
        alternatives = [i for i in healthy_steps if i != position or not present]

        if want_target and (may_switch or not current_ok):
            outcome = _Outcome(-1, back_reason, f"{back_text}; back to {spec.target}", [])
        elif want_target:
            outcome = _Outcome(position, "MinSwitchInterval", f"{back_text}, {wait_text}", kept_by)
        elif current_healthy:
            outcome = _staying(
                position,
                here,
                bridge=bridge,
                fires=fires,
                fired_text=fired_text,
                unknown=bool(unknown),
                metrics_reason=metrics_reason,
                clear_since=clear_since,
                hold_for=hold_for,
                now=now,
                kept_by=kept_by,
            )
        else:
            problem = "no longer exists" if not current_ok else "is unhealthy"
            if alternatives and (may_switch or not current_ok):
                nxt = alternatives[0]
                outcome = _Outcome(
                    nxt,
                    "FallbackStepChanged",
                    f"{here} {problem}; moved to {backend_label(spec, nxt)} (step {nxt})",
                    kept_by,
                )
            elif alternatives:
                outcome = _Outcome(position, "MinSwitchInterval", f"{here} {problem}, {wait_text}", kept_by)
            elif not current_ok:
                # Pointing at nothing is a certain outage; the target may still serve some.
                outcome = _Outcome(
                    -1,
                    "NoHealthyFallback",
                    f"{here} no longer exists and no other step is healthy; back to {spec.target}",
                    fired,
                )
            else:
                outcome = _Outcome(
                    position,
                    "NoHealthyFallback",
                    f"{here} is unhealthy and no other step is healthy; staying",
                    kept_by,
                )

    # A backend that left the chain is always moved off, even to the step now at its index.
    switched = outcome.step != position or not present
    new_active = outcome.step >= 0
    if not new_active:
        clear_since = None  # the hold only runs in fallback; the next one starts from scratch
    status = previous.model_copy(
        update={
            "active": new_active,
            "active_step": outcome.step,
            "active_backend": backend_label(spec, outcome.step),
            "triggered_by": list(outcome.triggered_by),
            "since": now if switched else previous.since,
            "last_switch_time": now if switched else previous.last_switch_time,
            "clear_since": clear_since,
            "trigger_since": trigger_since,
            "transitions": previous.transitions + (1 if switched else 0),
        }
    )
    return FallbackDecision(
        active=new_active,
        active_step=outcome.step,
        switched=switched,
        triggered_by=tuple(outcome.triggered_by),
        reason=outcome.reason,
        message=outcome.message,
        status=status,
        metrics_available=metrics_available,
        metrics_reason=metrics_reason,
        metrics_message=metrics_message,
    )


def _current_position(spec: FallbackPolicySpec, previous: FallbackPolicyStatus) -> tuple[int, bool]:
    """The chain index the front door points at (-1: the target), and whether that backend is
    still in the chain.

    The persisted label wins over the index: after a chain edit the same index may name another
    backend, and the front door still points at the old one.
    """
    if not previous.active or previous.active_step < 0:
        return -1, True
    labels = [step_label(step) for step in spec.chain]
    if previous.active_backend:
        if previous.active_step < len(labels) and labels[previous.active_step] == (previous.active_backend):
            return previous.active_step, True
        if previous.active_backend in labels:
            return labels.index(previous.active_backend), True
        return previous.active_step, False
    return previous.active_step, previous.active_step < len(labels)


def _wait_text(last_switch: datetime | None, min_interval: timedelta, now: datetime) -> str:
    if last_switch is None:
        return ""
    left = max(min_interval - (now - last_switch), timedelta(0))
    return f"waiting {left.total_seconds():g}s more (minSwitchInterval)"


def _skipped_text(spec: FallbackPolicySpec, chain: Sequence[BackendHealth], upto: int) -> str:
    skipped = [
        f"{step_label(spec.chain[i])} {'does not exist' if not b.exists else 'is unhealthy'}"
        for i, b in enumerate(chain[:upto])
        if not (b.exists and b.healthy)
    ]
    return f" (skipped: {', '.join(skipped)})" if skipped else ""


def _on_target(
    *,
    fires: bool,
    warming: bool,
    fired: list[str],
    fired_text: str,
    healthy_steps: list[int],
    chain: Sequence[BackendHealth],
    spec: FallbackPolicySpec,
    may_switch: bool,
    wait_text: str,
    unknown: bool,
    pending: list[str],
    metrics_reason: str,
) -> _Outcome:
    if fires or warming:
        cause = f"{fired_text} fired" if fires else "the target is warming up from zero"
        by = fired if fires else [COLD_START]
        reason: Reason = "FallbackActivated" if fires else "ColdStartBridge"
        if not healthy_steps:
            return _Outcome(
                -1,
                "NoHealthyFallback",
                f"{cause} but no chain step exists and is healthy"
                f"{_skipped_text(spec, chain, len(chain))}; staying on {spec.target}",
                by,
            )
        if not may_switch:
            return _Outcome(-1, "MinSwitchInterval", f"{cause}, {wait_text}", by)
        step = healthy_steps[0]
        return _Outcome(
            step,
            reason,
            f"{cause}; switched to {backend_label(spec, step)} (step {step})"
            f"{_skipped_text(spec, chain, step)}",
            by,
        )
    if unknown:
        return _Outcome(-1, "MetricsUnavailable", f"some readings are missing ({metrics_reason})", [])
    if pending:
        return _Outcome(-1, "TriggerPending", f"{', '.join(pending)} holding but not yet for long enough", [])
    return _Outcome(-1, "TriggersClear", f"{spec.target} serves; no trigger fires", [])


def _staying(
    position: int,
    here: str,
    *,
    bridge: bool,
    fires: bool,
    fired_text: str,
    unknown: bool,
    metrics_reason: str,
    clear_since: datetime | None,
    hold_for: timedelta,
    now: datetime,
    kept_by: list[str],
) -> _Outcome:
    if bridge:
        return _Outcome(position, "ColdStartBridge", f"the target is warming; {here} serves", kept_by)
    if fires:
        return _Outcome(position, "Holding", f"{fired_text} firing; {here} serves", kept_by)
    if unknown:
        return _Outcome(
            position,
            "MetricsUnavailable",
            f"some readings are missing ({metrics_reason}); not recovering on missing data",
            kept_by,
        )
    if clear_since is not None:
        left = max(hold_for - (now - clear_since), timedelta(0))
        return _Outcome(
            position,
            "RecoveryPending",
            f"all triggers clear; back to the target in {left.total_seconds():g}s",
            kept_by,
        )
    return _Outcome(position, "Holding", f"a trigger condition holds; {here} serves", kept_by)
