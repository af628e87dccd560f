"""A FallbackPolicy evaluation as what to write: the status, its conditions and its events.

The controller gathers the inputs (does the target exist, which policy governs it, the trigger
readings and the chain's health), calls :func:`fallback_outcome`, and applies the result.
Three cases, each one function:

1. The target does not exist (:func:`target_missing`): Ready=False TargetNotFound; the state
   machine is not run and the status stays as it is.
2. Another policy naming the same target governs it (:func:`overruled`, policy/conflicts.py):
   Ready=False and FallbackActive=False with reason Conflict (one event, the Ready one), and the
   status stands down.
3. Otherwise the state machine decides (:func:`decided`, policy/fallback.py): an event when the
   front door switches (which tells FallbackActive's change, so that condition posts none of
   its own), FallbackActive, MetricsAvailable, and Ready (TargetNotFound when a chain step
   names no service: the state machine skips it, but a chain naming nothing is a mistake the
   user must see, not a silently shorter chain).

When it is due (:func:`fallback_due`): every evaluationInterval from the last evaluation
(policy/due.py), and also at the tick a pending trigger's `for` or the recovery hold runs out
(:func:`deadline_passed`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aipolicy.api.common import parse_duration
from aipolicy.api.conditions import (
    CONFLICT,
    DRY_RUN,
    ENFORCING,
    FALLBACK_ACTIVE,
    METRICS_AVAILABLE,
    METRICS_FOUND,
    METRICS_UNAVAILABLE,
    READY,
    TARGET_NOT_FOUND,
)
from aipolicy.api.fallbackpolicy import FallbackPolicy, FallbackPolicyStatus, FallbackStep
from aipolicy.api.inferenceservice import InferenceServiceStatus
from aipolicy.policy.conflicts import stand_down
from aipolicy.policy.due import when_due
from aipolicy.policy.fallback import (
    BackendHealth,
    FallbackDecision,
    TriggerObservation,
    decide_fallback,
    service_step_health,
    trigger_names,
)
from aipolicy.policy.outcome import ConditionUpdate, Event, Outcome

__all__ = [
    "FallbackInputs",
    "FallbackOutcome",
    "deadline_passed",
    "decided",
    "fallback_due",
    "fallback_outcome",
    "overruled",
    "step_health",
    "target_missing",
    "warming_from_zero",
]


@dataclass(frozen=True)
class FallbackInputs:
    """What the controller gathered for one evaluation."""

    target_exists: bool
    governing: str
    """The policy that governs the target: this one's name unless another sorts first."""
    triggers: Sequence[TriggerObservation] = ()
    """One per spec trigger; gathered only when the target exists and this policy governs it."""
    health: Sequence[BackendHealth] = ()
    """One per chain step; gathered with the triggers."""
    target_warming: bool = False
    """The target scaled up from zero and has no ready replica yet (:func:`warming_from_zero`)."""


@dataclass(frozen=True)
class FallbackOutcome:
    outcome: Outcome[FallbackPolicyStatus]
    active: bool | None
    """For the FallbackActive gauge; None when the state machine was not run (no target)."""
    switched: bool
    """The front door switches in this evaluation (for the transitions counter)."""


def fallback_outcome(policy: FallbackPolicy, inputs: FallbackInputs, now: datetime) -> FallbackOutcome:
    """One evaluation of the policy: the module docstring's three cases."""
    if not inputs.target_exists:
        return target_missing(policy)
    if inputs.governing != policy.metadata.name:
        return overruled(policy, inputs.governing)
    return decided(policy, inputs, now)


def target_missing(policy: FallbackPolicy) -> FallbackOutcome:
    message = (
        f"InferenceService {policy.spec.target} does not exist in {policy.metadata.namespace}; "
        "traffic is not switched"
    )
    ready = ConditionUpdate(READY, "False", TARGET_NOT_FOUND, message)
    return FallbackOutcome(Outcome(policy.status, (ready,)), active=None, switched=False)


def overruled(policy: FallbackPolicy, governing: str) -> FallbackOutcome:
    message = (
        f"FallbackPolicy {governing} governs {policy.spec.target} (of the policies naming one "
        "target, the first by name does); this one is ignored"
    )
    conditions = (
        ConditionUpdate(READY, "False", CONFLICT, message),
        ConditionUpdate(FALLBACK_ACTIVE, "False", CONFLICT, message),
    )
    status = stand_down(policy.spec, policy.status)
    # the Ready event says the same as FallbackActive's would
    outcome = Outcome(status, conditions, told_elsewhere=(FALLBACK_ACTIVE,))
    return FallbackOutcome(outcome, active=False, switched=False)


def decided(policy: FallbackPolicy, inputs: FallbackInputs, now: datetime) -> FallbackOutcome:
    decision = decide_fallback(
        policy.spec,
        policy.status,
        inputs.triggers,
        inputs.health,
        now,
        target_scaled_to_zero_warming=policy.spec.cold_start_bridge and inputs.target_warming,
    )
    events: tuple[Event, ...] = ()
    told_elsewhere: tuple[str, ...] = ()
    if decision.switched:
        events = (switch_event(policy, decision),)
        # FallbackActive changing with the switch would post the same reason and message a
        # second time (one switch, two events).
        told_elsewhere = (FALLBACK_ACTIVE,)
    conditions = (
        ConditionUpdate(
            FALLBACK_ACTIVE, "True" if decision.active else "False", decision.reason, decision.message
        ),
        metrics_condition(decision),
        ready_condition(policy, inputs.health, decision.status),
    )
    outcome = Outcome(decision.status, conditions, events, told_elsewhere)
    return FallbackOutcome(outcome, active=decision.active, switched=decision.switched)


def switch_event(policy: FallbackPolicy, decision: FallbackDecision) -> Event:
    """The event of a switch: Warning into fallback, Normal back to the target."""
    verb = "would switch" if policy.spec.enforcement == "DryRun" else "switched"
    return Event(
        "Warning" if decision.active else "Normal",
        decision.reason,
        f"{verb} {policy.spec.target}'s front door to {decision.status.active_backend}: {decision.message}",
    )


def metrics_condition(decision: FallbackDecision) -> ConditionUpdate:
    """MetricsAvailable: False, with the first unknown trigger's reason, while a trigger has no
    reading (it then neither fires nor clears)."""
    if decision.metrics_available:
        return ConditionUpdate(METRICS_AVAILABLE, "True", METRICS_FOUND, "every trigger has a reading")
    return ConditionUpdate(
        METRICS_AVAILABLE,
        "False",
        decision.metrics_reason or METRICS_UNAVAILABLE,
        decision.metrics_message or "a trigger has no reading; it neither fires nor clears",
    )


def ready_condition(
    policy: FallbackPolicy, health: Sequence[BackendHealth], status: FallbackPolicyStatus
) -> ConditionUpdate:
    """Ready: False with TargetNotFound naming the chain steps whose service does not exist,
    else True (Enforcing, or DryRun: decisions reported, not applied)."""
    missing = [
        step.inference_service
        for step, backend in zip(policy.spec.chain, health, strict=True)
        if step.inference_service is not None and not backend.exists
    ]
    if missing:
        return ConditionUpdate(
            READY,
            "False",
            TARGET_NOT_FOUND,
            f"fallback InferenceService {', '.join(missing)} does not exist in "
            f"{policy.metadata.namespace}; traffic is never switched to it "
            f"(traffic goes to {status.active_backend})",
        )
    if policy.spec.enforcement == "DryRun":
        return ConditionUpdate(READY, "True", DRY_RUN, "DryRun: decisions are reported, not applied")
    return ConditionUpdate(READY, "True", ENFORCING, f"traffic goes to {status.active_backend}")


def step_health(step: FallbackStep, service: Mapping[str, Any] | None) -> BackendHealth:
    """A chain step's health: a provider or the degraded step always exists and is healthy; a
    service step (`service`: the InferenceService as stored, None when it does not exist) by
    :func:`aipolicy.policy.fallback.service_step_health`."""
    if step.inference_service is None:
        return BackendHealth(exists=True, healthy=True)
    return service_step_health(service)


def warming_from_zero(status: InferenceServiceStatus | None) -> bool:
    """The target scaled up from zero and has no ready replica yet."""
    if status is None or status.desired_replicas == 0 or status.ready_replicas > 0:
        return False
    return bool(status.decisions) and status.decisions[-1].from_replicas == 0


def deadline_passed(policy: FallbackPolicy, after: datetime, now: datetime) -> bool:
    """A pending trigger's `for`, or the recovery hold, ran out in (after, now]: since the last
    evaluation.

    Evaluating at the tick a deadline passes, rather than at the next interval, keeps every
    `for` and hold from being rounded up to a multiple of evaluationInterval (up to a whole
    interval late). Each deadline asks for one evaluation only.
    """
    status = policy.status
    for name, trigger in zip(trigger_names(policy.spec.triggers), policy.spec.triggers, strict=True):
        since = status.trigger_since.get(name)
        if since is not None and after < since + parse_duration(trigger.for_) <= now:
            return True
    if status.active and status.clear_since is not None:
        return after < status.clear_since + parse_duration(policy.spec.recovery.hold_for) <= now
    return False


def fallback_due(policy: FallbackPolicy, last: datetime | None, now: datetime) -> bool:
    """Evaluate now: an evaluationInterval after the last evaluation (`last`, None if not
    remembered), or a deadline ran out since it."""
    interval = parse_duration(policy.spec.evaluation_interval)
    if when_due(interval=interval, aligned_to_clock=False, last=last, now=now).due:
        return True
    assert last is not None  # never evaluated is always due
    return deadline_passed(policy, last, now)
