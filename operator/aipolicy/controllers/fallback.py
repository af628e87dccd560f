"""FallbackPolicy controller: gathers trigger readings and backend health, asks the pure state
machine which backend the target's front door should point at, and records it in status.

The shell only gathers, calls and applies: when it is due, and every condition and event,
are decided in policy/fallback_outcome.py; reading the spec and writing the outcome are
controllers/evaluation.py's.

The front door itself is written by the InferenceService controller from this status (one
writer per object), within one tick of the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import kopf

from aipolicy.api.common import ConditionStatus
from aipolicy.api.conditions import FALLBACK_ACTIVE, METRICS_AVAILABLE, READY
from aipolicy.api.fallbackpolicy import FallbackPolicy, Trigger
from aipolicy.api.inferenceservice import GPU, InferenceServiceStatus
from aipolicy.controllers import metrics
from aipolicy.controllers.cycle import cycle
from aipolicy.controllers.evaluation import begin, finish
from aipolicy.controllers.indexes import Key, one
from aipolicy.controllers.runtime import Runtime
from aipolicy.observe import presets
from aipolicy.observe.pods import count_pods
from aipolicy.policy.conflicts import governing_name
from aipolicy.policy.fallback import BackendHealth, TriggerObservation
from aipolicy.policy.fallback_outcome import (
    FallbackInputs,
    fallback_due,
    fallback_outcome,
    step_health,
    warming_from_zero,
)
from aipolicy.policy.observations import Reading, Unavailable, Value

TICK = Runtime.default_tick()
# Key in kopf's per-object memo: when the policy was last evaluated (dropped with the object;
# empty after a restart, which only evaluates once sooner).
LAST_EVALUATED = "fallback_last_evaluated"
WARN_WHEN: dict[str, ConditionStatus] = {
    READY: "False",
    FALLBACK_ACTIVE: "True",
    METRICS_AVAILABLE: "False",
}


def _isvc_status(isvc: dict[str, Any] | None) -> InferenceServiceStatus | None:
    if isvc is None:
        return None
    try:
        return InferenceServiceStatus.model_validate(isvc.get("status") or {})
    except ValueError:
        return InferenceServiceStatus()


def backend_health(
    policy: FallbackPolicy, inferenceservices: kopf.Index[Key, dict[str, Any]]
) -> list[BackendHealth]:
    """Per chain step: does it exist, and could it take traffic now?"""
    namespace = policy.metadata.namespace
    return [
        step_health(step, one(inferenceservices, (namespace, step.inference_service or "")))
        for step in policy.spec.chain
    ]


async def _request_reading(rt: Runtime, query: str, key: Key, out_of_rotation: bool) -> Reading:
    """A request-based reading (error rate, latency) of the target.

    Out of rotation the target gets no requests, so these series vanish. Counting that as
    "clear" makes recovery a half-open probe, as a circuit breaker does: traffic returns after
    the hold, and if the target still fails the trigger fires again (bounded by the policy's
    minimum switch interval). Without it a policy with only request triggers would never recover.
    """
    assert rt.prometheus is not None
    reading = (await rt.prometheus.grouped(query)).reading(key)
    if out_of_rotation and isinstance(reading, Unavailable) and reading.reason in ("NoData", "NotANumber"):
        return Value(0.0)
    return reading


def _gpu_resource(target: dict[str, Any] | None) -> str:
    """The extended resource that counts the target's GPUs (serving.gpu.resourceName)."""
    serving = ((target or {}).get("spec") or {}).get("serving") or {}
    return str((serving.get("gpu") or {}).get("resourceName") or GPU.model_fields["resource_name"].default)


@dataclass(frozen=True)
class _Target:
    """What the triggers read of the policy's target."""

    key: Key
    status: InferenceServiceStatus | None
    provider_backed: bool
    out_of_rotation: bool
    """The front door points away from it: request-based series vanish (see _request_reading)."""
    gpu_resource: str
    pods: list[dict[str, Any]]
    budgets: list[dict[str, Any]]


NO_PROMETHEUS = TriggerObservation(Unavailable("QueryError", "no Prometheus configured"))


async def observe_triggers(
    rt: Runtime,
    policy: FallbackPolicy,
    target: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    budgets: list[dict[str, Any]],
) -> list[TriggerObservation]:
    seen = _Target(
        key=(policy.metadata.namespace, policy.spec.target),
        status=_isvc_status(target),
        provider_backed=bool(target and (target.get("spec") or {}).get("provider")),
        out_of_rotation=policy.status.active,
        gpu_resource=_gpu_resource(target),
        pods=pods,
        budgets=budgets,
    )
    return [await _observe(rt, trigger, seen) for trigger in policy.spec.triggers]


async def _observe(rt: Runtime, trigger: Trigger, target: _Target) -> TriggerObservation:
    if trigger.type == "Budget":
        return _budget_state(trigger, target.budgets)
    if trigger.type == "GPUShortage":
        # only pods Pending for lack of the target's own GPU resource: not memory, not a taint
        return TriggerObservation(Value(float(count_pods(target.pods, target.gpu_resource).short_of_gpus)))
    if trigger.type == "Unavailable":
        return await _availability(rt, target)
    if rt.prometheus is None:
        return NO_PROMETHEUS
    names = rt.metric_names
    if trigger.type == "ErrorRate":
        query = presets.error_rate(names, trigger.window)
        return TriggerObservation(await _request_reading(rt, query, target.key, target.out_of_rotation))
    if trigger.type == "Latency":
        return await _latency(rt, trigger, target)
    assert trigger.query is not None
    return TriggerObservation(await rt.prometheus.scalar(trigger.query))


def _budget_state(trigger: Trigger, budgets: list[dict[str, Any]]) -> TriggerObservation:
    budget = next((b for b in budgets if b["metadata"]["name"] == trigger.budget), None)
    if budget is None:
        return TriggerObservation(Value(0.0), budget_state=None)
    # A budget not yet evaluated has no state: that is Unknown (missing data), not a budget
    # that does not exist, which would tell the user to go and create it.
    state = (budget.get("status") or {}).get("state") or "Unknown"
    return TriggerObservation(Value(0.0), budget_state=state)


async def _availability(rt: Runtime, target: _Target) -> TriggerObservation:
    """Ready replicas of a self-hosted target; 1 or 0 for an API-backed one, from whether its
    requests all fail."""
    status = target.status
    if status is None:
        return TriggerObservation(Unavailable("NoData", "the target does not exist"))
    if target.provider_backed:
        if rt.prometheus is None:
            return NO_PROMETHEUS
        # the gateway's error rate: every request failing means down
        query = presets.error_rate(rt.metric_names, "1m")
        failing = await _request_reading(rt, query, target.key, target.out_of_rotation)
        if isinstance(failing, Unavailable):
            return TriggerObservation(failing)
        return TriggerObservation(Value(0.0 if failing.value >= 0.99 else 1.0))
    if status.mode == "Suspended":
        # a budget suspended it: down on purpose, but down; route to the chain if any
        return TriggerObservation(Value(0.0))
    # scaled to zero on purpose is not "down": only wanted-but-not-ready counts
    wanted = status.desired_replicas > 0
    return TriggerObservation(Value(float(status.ready_replicas if wanted else 1)))


async def _latency(rt: Runtime, trigger: Trigger, target: _Target) -> TriggerObservation:
    names = rt.metric_names
    histogram: str | None
    if target.provider_backed:
        histogram = names.gateway_latency
    else:
        histogram = names.ttft if trigger.latency == "TimeToFirstToken" else names.e2e_latency
        if histogram is None:
            return TriggerObservation(
                Unavailable("NoData", f"the {names.preset} metrics preset has no time-to-first-token metric")
            )
    query = presets.latency_quantile(histogram, trigger.percentile, trigger.window)
    return TriggerObservation(await _request_reading(rt, query, target.key, target.out_of_rotation))


async def gather(
    rt: Runtime,
    policy: FallbackPolicy,
    body: kopf.Body,
    inferenceservices: kopf.Index[Key, dict[str, Any]],
    budgets: kopf.Index[str, dict[str, Any]],
    policies: kopf.Index[Key, dict[str, Any]],
    pods: kopf.Index[Key, dict[str, Any]],
) -> FallbackInputs:
    """What :func:`fallback_outcome` decides on; triggers are read only when this policy governs
    an existing target."""
    namespace, name = policy.metadata.namespace, policy.metadata.name
    target_key = (namespace, policy.spec.target)
    target = one(inferenceservices, target_key)
    # this policy counts even before the index has it (it is one event behind at creation)
    governing = governing_name([*policies.get(target_key, []), body]) or name
    if target is None or governing != name:
        return FallbackInputs(target_exists=target is not None, governing=governing)
    namespace_budgets = list(budgets.get(namespace, []))
    triggers = await observe_triggers(rt, policy, target, list(pods.get(target_key, [])), namespace_budgets)
    return FallbackInputs(
        target_exists=True,
        governing=governing,
        triggers=triggers,
        health=backend_health(policy, inferenceservices),
        target_warming=warming_from_zero(_isvc_status(target)),
    )


@cycle("fallbackpolicies", index="fallbackpolicies_by_key", tick=TICK, initial_delay=1.0)
async def evaluate_fallback_policy(
    body: kopf.Body,
    namespace: str,
    name: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    inferenceservices_by_key: kopf.Index[Key, dict[str, Any]],
    aibudgets_by_namespace: kopf.Index[str, dict[str, Any]],
    fallbackpolicies_by_target: kopf.Index[Key, dict[str, Any]],
    pods_by_service: kopf.Index[Key, dict[str, Any]],
    **_: Any,
) -> None:
    step = begin(FallbackPolicy, body, patch, WARN_WHEN)
    if step is None or not fallback_due(step.model, memo.get(LAST_EVALUATED), step.now):
        return
    memo[LAST_EVALUATED] = step.now  # the next regular evaluation is an interval from this one
    inputs = await gather(
        memo["runtime"],
        step.model,
        body,
        inferenceservices_by_key,
        aibudgets_by_namespace,
        fallbackpolicies_by_target,
        pods_by_service,
    )
    result = fallback_outcome(step.model, inputs, step.now)
    if result.switched:
        metrics.FALLBACK_TRANSITIONS.labels(namespace, name).inc()
    if result.active is not None:
        metrics.FALLBACK_ACTIVE.labels(namespace, name).set(1 if result.active else 0)
    # clearSince and triggerSince entries the state machine dropped go from the API too (a
    # merge patch): read back, a stale one would start the next hold or `for` already elapsed
    finish(step, result.outcome, WARN_WHEN)
