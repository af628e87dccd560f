"""FallbackPolicy controller: gathers trigger readings and backend health, asks the pure state
machine which backend the target's front door should point at, and records it in status.

The front door itself is written by the InferenceService controller from this status (one
writer per object), within one tick of the decision.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from aipolicy.api.common import ConditionStatus, json_dict, parse_duration
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
from aipolicy.api.fallbackpolicy import FallbackPolicy, Trigger
from aipolicy.api.inferenceservice import GPU, InferenceServiceStatus
from aipolicy.api.reading import InvalidSpec, read
from aipolicy.controllers import metrics
from aipolicy.controllers.events import StatusConditions, report_invalid_spec, write_status
from aipolicy.controllers.indexes import Key, one
from aipolicy.controllers.runtime import Runtime
from aipolicy.observe import presets
from aipolicy.observe.pods import count_pods
from aipolicy.policy.conflicts import governing_name, stand_down
from aipolicy.policy.fallback import (
    BackendHealth,
    TriggerObservation,
    decide_fallback,
    trigger_names,
)
from aipolicy.policy.observations import Reading, Unavailable, Value

TICK = Runtime.default_tick()
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
    health = []
    for step in policy.spec.chain:
        if step.inference_service is None:
            health.append(BackendHealth(exists=True, healthy=True))
            continue
        status = _isvc_status(one(inferenceservices, (namespace, step.inference_service)))
        if status is None:
            health.append(BackendHealth(exists=False, healthy=False))
        else:
            healthy = status.ready_replicas > 0 and status.mode not in ("Fallback", "Suspended")
            health.append(BackendHealth(exists=True, healthy=healthy))
    return health


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


async def observe_triggers(
    rt: Runtime,
    policy: FallbackPolicy,
    target: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    budgets: list[dict[str, Any]],
) -> list[TriggerObservation]:
    key = (policy.metadata.namespace, policy.spec.target)
    status = _isvc_status(target)
    provider_backed = bool(target and (target.get("spec") or {}).get("provider"))
    out_of_rotation = policy.status.active
    observations = []
    for trigger in policy.spec.triggers:
        observations.append(
            await _observe(
                rt,
                trigger,
                key,
                status,
                provider_backed,
                out_of_rotation,
                pods,
                budgets,
                gpu_resource=_gpu_resource(target),
            )
        )
    return observations


async def _observe(
    rt: Runtime,
    trigger: Trigger,
    key: Key,
    status: InferenceServiceStatus | None,
    provider_backed: bool,
    out_of_rotation: bool,
    pods: list[dict[str, Any]],
    budgets: list[dict[str, Any]],
    *,
    gpu_resource: str,
) -> TriggerObservation:
    names = rt.metric_names
    if trigger.type == "Budget":
        budget = next((b for b in budgets if b["metadata"]["name"] == trigger.budget), None)
        if budget is None:
            return TriggerObservation(Value(0.0), budget_state=None)
        # A budget not yet evaluated has no state: that is Unknown (missing data), not a budget
        # that does not exist, which would tell the user to go and create it.
        state = (budget.get("status") or {}).get("state") or "Unknown"
        return TriggerObservation(Value(0.0), budget_state=state)
    if trigger.type == "GPUShortage":
        # only pods Pending for lack of the target's own GPU resource: not memory, not a taint
        return TriggerObservation(Value(float(count_pods(pods, gpu_resource).short_of_gpus)))
    if trigger.type == "Unavailable":
        if status is None:
            return TriggerObservation(Unavailable("NoData", "the target does not exist"))
        if provider_backed:
            if rt.prometheus is None:
                return TriggerObservation(Unavailable("QueryError", "no Prometheus configured"))
            failing = await _request_reading(rt, presets.error_rate(names, "1m"), key, out_of_rotation)
            if isinstance(failing, Unavailable):
                return TriggerObservation(failing)
            return TriggerObservation(Value(0.0 if failing.value >= 0.99 else 1.0))
        if status.mode == "Suspended":
            # a budget suspended it: down on purpose, but down; route to the chain if any
            return TriggerObservation(Value(0.0))
        # scaled to zero on purpose is not "down": only wanted-but-not-ready counts
        wanted = status.desired_replicas > 0
        return TriggerObservation(Value(float(status.ready_replicas if wanted else 1)))
    if rt.prometheus is None:
        return TriggerObservation(Unavailable("QueryError", "no Prometheus configured"))
    if trigger.type == "ErrorRate":
        return TriggerObservation(
            await _request_reading(rt, presets.error_rate(names, trigger.window), key, out_of_rotation)
        )
    if trigger.type == "Latency":
        histogram: str | None
        if provider_backed:
            histogram = names.gateway_latency
        else:
            histogram = names.ttft if trigger.latency == "TimeToFirstToken" else names.e2e_latency
            if histogram is None:
                return TriggerObservation(
                    Unavailable(
                        "NoData", f"the {names.preset} metrics preset has no time-to-first-token metric"
                    )
                )
        query = presets.latency_quantile(histogram, trigger.percentile, trigger.window)
        return TriggerObservation(await _request_reading(rt, query, key, out_of_rotation))
    assert trigger.query is not None
    return TriggerObservation(await rt.prometheus.scalar(trigger.query))


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


def _warming_from_zero(status: InferenceServiceStatus | None) -> bool:
    """The target scaled up from zero and has no ready replica yet."""
    if status is None or status.desired_replicas == 0 or status.ready_replicas > 0:
        return False
    return bool(status.decisions) and status.decisions[-1].from_replicas == 0


@kopf.timer("aipolicy.dev", "v1alpha1", "fallbackpolicies", interval=TICK, initial_delay=1.0)  # type: ignore[arg-type]
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
    rt: Runtime = memo["runtime"]
    now = datetime.now(UTC)
    old_status = dict(body.get("status") or {})
    generation = int(body.metadata.get("generation") or 0)
    parsed = read(FallbackPolicy, body)
    if isinstance(parsed, InvalidSpec):
        report_invalid_spec(body, patch, old_status, parsed.message, WARN_WHEN, now)
        return
    policy = parsed
    interval = parse_duration(policy.spec.evaluation_interval).total_seconds()
    run_key = ("FallbackPolicy", namespace, name)
    monotonic = time.monotonic()
    last = rt.last_run.get(run_key)
    if not rt.due(*run_key, interval, monotonic):
        assert last is not None  # due() is always true the first time
        if not deadline_passed(policy, now - timedelta(seconds=monotonic - last), now):
            return
        rt.last_run[run_key] = monotonic  # the next regular evaluation is an interval from this one
    started = time.monotonic()
    target_key = (namespace, policy.spec.target)
    target = one(inferenceservices_by_key, target_key)
    conditions = StatusConditions(policy.status.conditions, generation, now)

    # this policy counts even before the index has it (it is one event behind at creation)
    governing = governing_name([*fallbackpolicies_by_target.get(target_key, []), body]) or name
    if target is None:
        conditions.set(
            READY,
            "False",
            TARGET_NOT_FOUND,
            f"InferenceService {policy.spec.target} does not exist in {namespace}; traffic is not switched",
        )
    elif governing != name:
        message = (
            f"FallbackPolicy {governing} governs {policy.spec.target} (of the policies naming one "
            "target, the first by name does); this one is ignored"
        )
        conditions.set(READY, "False", CONFLICT, message)
        conditions.set(FALLBACK_ACTIVE, "False", CONFLICT, message)
        conditions.told_elsewhere(FALLBACK_ACTIVE)  # the Ready event says the same
        policy = policy.model_copy(update={"status": stand_down(policy.spec, policy.status)})
        metrics.FALLBACK_ACTIVE.labels(namespace, name).set(0)
    else:
        triggers = await observe_triggers(
            rt,
            policy,
            target,
            list(pods_by_service.get(target_key, [])),
            list(aibudgets_by_namespace.get(namespace, [])),
        )
        health = backend_health(policy, inferenceservices_by_key)
        decision = decide_fallback(
            policy.spec,
            policy.status,
            triggers,
            health,
            now,
            target_scaled_to_zero_warming=policy.spec.cold_start_bridge
            and _warming_from_zero(_isvc_status(target)),
        )
        status = decision.status
        dry = policy.spec.enforcement == "DryRun"
        if decision.switched:
            verb = "would switch" if dry else "switched"
            kopf.event(
                body,
                type="Warning" if decision.active else "Normal",
                reason=decision.reason,
                message=(
                    f"{verb} {policy.spec.target}'s front door to {status.active_backend}: {decision.message}"
                ),
            )
            metrics.FALLBACK_TRANSITIONS.labels(namespace, name).inc()
        metrics.FALLBACK_ACTIVE.labels(namespace, name).set(1 if decision.active else 0)
        if decision.active:
            conditions.set(FALLBACK_ACTIVE, "True", decision.reason, decision.message)
        else:
            conditions.set(FALLBACK_ACTIVE, "False", decision.reason, decision.message)
        if decision.switched:
            # The event above is the switch's; FallbackActive changing with it would post the
            # same reason and message a second time (one switch, two events).
            conditions.told_elsewhere(FALLBACK_ACTIVE)
        if decision.metrics_available:
            conditions.set(METRICS_AVAILABLE, "True", METRICS_FOUND, "every trigger has a reading")
        else:
            conditions.set(
                METRICS_AVAILABLE,
                "False",
                decision.metrics_reason or METRICS_UNAVAILABLE,
                decision.metrics_message or "a trigger has no reading; it neither fires nor clears",
            )
        missing = [
            step.inference_service
            for step, backend in zip(policy.spec.chain, health, strict=True)
            if step.inference_service is not None and not backend.exists
        ]
        if missing:
            # The state machine skips these steps, so traffic never goes to them; but a chain
            # naming nothing is a mistake the user must see, not a silently shorter chain.
            conditions.set(
                READY,
                "False",
                TARGET_NOT_FOUND,
                f"fallback InferenceService {', '.join(missing)} does not exist in {namespace}; "
                f"traffic is never switched to it (traffic goes to {status.active_backend})",
            )
        else:
            ready_message = (
                "DryRun: decisions are reported, not applied"
                if dry
                else f"traffic goes to {status.active_backend}"
            )
            conditions.set(READY, "True", DRY_RUN if dry else ENFORCING, ready_message)
        policy = policy.model_copy(update={"status": status})

    status = policy.status
    status.observed_generation = generation
    conditions.post_changes(body, WARN_WHEN)
    status.conditions = conditions.conditions
    metrics.EVALUATION_SECONDS.labels("FallbackPolicy").observe(time.monotonic() - started)
    new = json_dict(status)
    # clearSince and triggerSince entries the state machine dropped must go from the API
    # too: read back, a stale one would start the next hold or `for` already elapsed
    write_status(patch, old_status, new)
