"""Every condition and event a FallbackPolicy evaluation writes (policy/fallback_outcome.py),
and when it is due: tables whose ids are sentences, with plain data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aipolicy.api.fallbackpolicy import FallbackPolicy, FallbackStep
from aipolicy.api.inferenceservice import InferenceServiceStatus
from aipolicy.policy.fallback import BackendHealth, TriggerObservation
from aipolicy.policy.fallback_outcome import (
    FallbackInputs,
    FallbackOutcome,
    fallback_due,
    fallback_outcome,
    step_health,
    warming_from_zero,
)
from aipolicy.policy.observations import Unavailable, Value

NOW = datetime(2026, 3, 15, 12, 0, 0, tzinfo=UTC)
S = timedelta(seconds=1)
UP = BackendHealth(exists=True, healthy=True)
GONE = BackendHealth(exists=False, healthy=False)
FAILING = TriggerObservation(Value(0.5))  # above the 0.1 threshold
FINE = TriggerObservation(Value(0.0))
NO_READING = TriggerObservation(Unavailable("NoData", "no series"))
ACTIVE = {
    "active": True,
    "activeStep": 0,
    "activeBackend": "service/small",
    "triggeredBy": ["ErrorRate"],
    "since": "2026-03-15T11:00:00Z",
    "lastSwitchTime": "2026-03-15T11:00:00Z",
}


def policy(status: Mapping[str, Any] | None = None, **spec: Any) -> FallbackPolicy:
    return FallbackPolicy.model_validate(
        {
            "metadata": {"name": "fb", "namespace": "team-a", "generation": 1},
            "spec": {
                "target": "big",
                "triggers": [{"type": "ErrorRate", "threshold": 0.1, "for": "0s"}],
                "chain": [{"inferenceService": "small"}],
                "recovery": {"holdFor": "0s", "minSwitchInterval": "0s"},
                **spec,
            },
            "status": dict(status or {}),
        }
    )


def inputs(
    trigger: TriggerObservation = FINE, health: Sequence[BackendHealth] = (UP,), governing: str = "fb"
) -> FallbackInputs:
    return FallbackInputs(target_exists=True, governing=governing, triggers=[trigger], health=health)


def run(p: FallbackPolicy, given: FallbackInputs) -> FallbackOutcome:
    return fallback_outcome(p, given, NOW)


def said(result: FallbackOutcome) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in result.outcome.conditions}


CONDITIONS = [
    pytest.param(
        policy(),
        FallbackInputs(target_exists=False, governing="fb"),
        {"Ready": ("False", "TargetNotFound")},
        id="a policy whose target does not exist is not ready and decides nothing else",
    ),
    pytest.param(
        policy(),
        inputs(governing="a-first"),
        {"Ready": ("False", "Conflict"), "FallbackActive": ("False", "Conflict")},
        id="a policy overruled by one sorting first reports the conflict",
    ),
    pytest.param(
        policy(),
        inputs(),
        {
            "FallbackActive": ("False", "TriggersClear"),
            "MetricsAvailable": ("True", "MetricsFound"),
            "Ready": ("True", "Enforcing"),
        },
        id="a target whose triggers are clear serves",
    ),
    pytest.param(
        policy(),
        inputs(FAILING),
        {
            "FallbackActive": ("True", "FallbackActivated"),
            "MetricsAvailable": ("True", "MetricsFound"),
            "Ready": ("True", "Enforcing"),
        },
        id="a trigger that fires switches to the chain",
    ),
    pytest.param(
        policy(),
        inputs(NO_READING),
        {
            "FallbackActive": ("False", "MetricsUnavailable"),
            "MetricsAvailable": ("False", "NoData"),
            "Ready": ("True", "Enforcing"),
        },
        id="a trigger without a reading makes metrics unavailable with its reason",
    ),
    pytest.param(
        policy(),
        inputs(FAILING, (GONE,)),
        {
            "FallbackActive": ("False", "NoHealthyFallback"),
            "MetricsAvailable": ("True", "MetricsFound"),
            "Ready": ("False", "TargetNotFound"),
        },
        id="a chain step naming no service makes the policy not ready",
    ),
    pytest.param(
        policy(enforcement="DryRun"),
        inputs(),
        {
            "FallbackActive": ("False", "TriggersClear"),
            "MetricsAvailable": ("True", "MetricsFound"),
            "Ready": ("True", "DryRun"),
        },
        id="a DryRun policy says so in Ready",
    ),
]


@pytest.mark.parametrize(("p", "given", "expected"), CONDITIONS)
def test_fallback_conditions(
    p: FallbackPolicy, given: FallbackInputs, expected: dict[str, tuple[str, str]]
) -> None:
    assert said(run(p, given)) == expected


EVENTS = [
    pytest.param(
        policy(),
        inputs(FAILING),
        [("Warning", "FallbackActivated", "switched big's front door to service/small")],
        ("FallbackActive",),
        id="a switch into fallback posts one Warning, and FallbackActive none of its own",
    ),
    pytest.param(
        policy(ACTIVE),
        inputs(FINE),
        [("Normal", "FallbackRecovered", "switched big's front door to big")],
        ("FallbackActive",),
        id="a switch back to the target posts one Normal event",
    ),
    pytest.param(
        policy(enforcement="DryRun"),
        inputs(FAILING),
        [("Warning", "FallbackActivated", "would switch big's front door")],
        ("FallbackActive",),
        id="a DryRun switch says it would switch",
    ),
    pytest.param(policy(ACTIVE), inputs(FAILING), [], (), id="staying in fallback posts no event"),
    pytest.param(
        policy(),
        inputs(governing="a-first"),
        [],
        ("FallbackActive",),
        id="a conflict is told by the Ready event only",
    ),
    pytest.param(
        policy(),
        FallbackInputs(target_exists=False, governing="fb"),
        [],
        (),
        id="a missing target posts only its Ready change",
    ),
]


@pytest.mark.parametrize(("p", "given", "events", "told_elsewhere"), EVENTS)
def test_fallback_events(
    p: FallbackPolicy,
    given: FallbackInputs,
    events: list[tuple[str, str, str]],
    told_elsewhere: tuple[str, ...],
) -> None:
    outcome = run(p, given).outcome
    assert [(e.type, e.reason) for e in outcome.events] == [(t, r) for t, r, _ in events]
    for event, (_, _, text) in zip(outcome.events, events, strict=True):
        assert text in event.message
    assert outcome.told_elsewhere == told_elsewhere


def test_an_overruled_policy_stands_down_and_a_missing_target_changes_no_status() -> None:
    overruled = run(policy(ACTIVE), inputs(governing="a-first"))
    assert (overruled.outcome.status.active, overruled.outcome.status.active_backend) == (False, "big")
    assert (overruled.active, overruled.switched) == (False, False)
    missing = run(policy(ACTIVE), FallbackInputs(target_exists=False, governing="fb"))
    assert missing.outcome.status == policy(ACTIVE).status
    assert missing.active is None  # the gauge is left as it is


PENDING = {"triggerSince": {"ErrorRate": "2026-03-15T11:59:50Z"}}
DUE = [
    pytest.param(policy(), None, NOW, True, id="a policy never evaluated is due"),
    pytest.param(
        policy(), NOW - 2 * S, NOW, False, id="a policy evaluated less than an interval ago is not due"
    ),
    pytest.param(policy(), NOW - 5 * S, NOW, True, id="a policy evaluated an interval ago is due"),
    pytest.param(
        policy(PENDING, triggers=[{"type": "ErrorRate", "threshold": 0.1, "for": "11s"}]),
        NOW - 2 * S,
        NOW + S,
        True,
        id="a trigger's for running out since the last evaluation makes it due",
    ),
    pytest.param(
        policy(PENDING, triggers=[{"type": "ErrorRate", "threshold": 0.1, "for": "11s"}]),
        NOW + 3 * S / 2,
        NOW + 3 * S,
        False,
        id="a trigger's for that ran out before the last evaluation does not",
    ),
    pytest.param(
        policy({**ACTIVE, "clearSince": "2026-03-15T11:59:00Z"}, recovery={"holdFor": "61s"}),
        NOW,
        NOW + 2 * S,
        True,
        id="the recovery hold running out since the last evaluation makes it due",
    ),
]


@pytest.mark.parametrize(("p", "last", "now", "due"), DUE)
def test_fallback_due(p: FallbackPolicy, last: datetime | None, now: datetime, due: bool) -> None:
    assert fallback_due(p, last, now) is due


WARMING = [
    pytest.param(None, False, id="no target is not warming"),
    pytest.param(
        {
            "desiredReplicas": 1,
            "readyReplicas": 0,
            "decisions": [{"time": "2026-03-15T11:59:00Z", "from": 0, "to": 1, "reason": "x"}],
        },
        True,
        id="a target scaled up from zero without a ready replica is warming",
    ),
    pytest.param(
        {
            "desiredReplicas": 1,
            "readyReplicas": 1,
            "decisions": [{"time": "2026-03-15T11:59:00Z", "from": 0, "to": 1, "reason": "x"}],
        },
        False,
        id="a target with a ready replica is warm",
    ),
    pytest.param(
        {
            "desiredReplicas": 2,
            "readyReplicas": 0,
            "decisions": [{"time": "2026-03-15T11:59:00Z", "from": 1, "to": 2, "reason": "x"}],
        },
        False,
        id="a target that scaled from one is not warming from zero",
    ),
]


@pytest.mark.parametrize(("status", "warming"), WARMING)
def test_warming_from_zero(status: dict[str, Any] | None, warming: bool) -> None:
    parsed = None if status is None else InferenceServiceStatus.model_validate(status)
    assert warming_from_zero(parsed) is warming


HEALTH = [
    pytest.param({"degraded": True}, None, UP, id="the degraded step is always there and healthy"),
    pytest.param(
        {"provider": {"url": "https://api.example.com/v1", "model": "m"}},
        None,
        UP,
        id="a provider step is always there and healthy",
    ),
    pytest.param(
        {"inferenceService": "small"}, None, GONE, id="a service step naming no service does not exist"
    ),
    pytest.param(
        {"inferenceService": "small"},
        {"readyReplicas": 1, "mode": "Normal"},
        UP,
        id="a service with a ready replica is healthy",
    ),
    pytest.param(
        {"inferenceService": "small"},
        {"readyReplicas": 0, "mode": "Normal"},
        BackendHealth(exists=True, healthy=False),
        id="a service without a ready replica is unhealthy",
    ),
    pytest.param(
        {"inferenceService": "small"},
        {"readyReplicas": 2, "mode": "Fallback"},
        BackendHealth(exists=True, healthy=False),
        id="a service itself in fallback is unhealthy",
    ),
    pytest.param(
        {"inferenceService": "small"},
        {"readyReplicas": 2, "mode": "Suspended"},
        BackendHealth(exists=True, healthy=False),
        id="a suspended service is unhealthy",
    ),
    pytest.param(
        {"inferenceService": "small", "provider": {"url": "https://api.example.com/v1"}},
        {"mode": "Normal"},
        UP,
        id="an API-backed service has no replicas and is healthy",
    ),
    pytest.param(
        {"inferenceService": "small", "provider": {"url": "https://api.example.com/v1"}},
        {"mode": "Suspended"},
        BackendHealth(exists=True, healthy=False),
        id="a suspended API-backed service is unhealthy",
    ),
]


@pytest.mark.parametrize(("step", "status", "health"), HEALTH)
def test_step_health(step: dict[str, Any], status: dict[str, Any] | None, health: BackendHealth) -> None:
    # a step naming an API-backed service carries that service's provider here, for the table
    step = dict(step)
    provider = step.pop("provider", None) if "inferenceService" in step else None
    spec = {"model": "m", "provider": provider} if provider is not None else {"model": "m"}
    stored = None if status is None else {"spec": spec, "status": status}
    assert step_health(FallbackStep.model_validate(step), stored) == health
