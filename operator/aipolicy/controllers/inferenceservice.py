"""InferenceService controller: owns the Deployment and the front door, decides replicas.

Every tick it reconciles the children from the indexes (drift is repaired, nothing is written
when nothing differs); every `scaling.evaluationInterval` it asks the pure scaling policy for
the replica count. Mode comes from the API: budgets' and fallback policies' status.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from aipolicy.api import conditions as kinds
from aipolicy.api.common import ConditionStatus, LabelSelector, json_dict, parse_duration
from aipolicy.api.fallbackpolicy import FallbackPolicySpec, FallbackPolicyStatus, FallbackStep
from aipolicy.api.inferenceservice import (
    ColdStart,
    InferenceService,
    InferenceServiceStatus,
    Mode,
    Recommendation,
    ScalingDecisionRecord,
)
from aipolicy.api.reading import InvalidSpec, read
from aipolicy.controllers import economics, metrics, slo
from aipolicy.controllers.events import StatusConditions, report_invalid_spec, status_differs, write_status
from aipolicy.controllers.indexes import Key, one
from aipolicy.controllers.runtime import Runtime
from aipolicy.gateway import manifests as gateway_manifests
from aipolicy.kube import children
from aipolicy.kube import gateway as namespace_gateway
from aipolicy.observe import presets
from aipolicy.observe.absence import absent_or
from aipolicy.observe.pods import (
    PodCounts,
    count_pods,
    missing_reference,
    ready_since,
    with_creation_failure,
)
from aipolicy.observe.unschedulable import UNSCHEDULABLE
from aipolicy.policy.backends import Backend
from aipolicy.policy.coldstart import ColdStartSample, lead_time, measure_cold_starts
from aipolicy.policy.conflicts import governing_policy
from aipolicy.policy.cycles import aligned
from aipolicy.policy.frontdoor import l7_reason
from aipolicy.policy.observations import Reading, Unavailable, Value
from aipolicy.policy.scaling import (
    ScalingMemory,
    ScalingObservation,
    applied_replicas,
    decide_replicas,
    reported_change,
)
from aipolicy.policy.secrets import REASONS as SECRET_REASONS
from aipolicy.policy.secrets import SecretsVerdict, referenced, secrets_verdict
from aipolicy.policy.spend import display_money

PAUSE_ANNOTATION = "aipolicy.dev/autoscaling-paused"
TICK = Runtime.default_tick()
DECISIONS_KEPT = 5
# Keys in kopf's per-object memo (dropped with the object; empty after a restart, which only
# costs one full pass per object).
EVALUATED_AT = "scaling_evaluated_at"
NEXT_EVALUATION = "next_scaling_evaluation"
QUIET_INPUTS = "quiet_inputs"
NEVER = datetime.max.replace(tzinfo=UTC)
SECRET_RECHECK = timedelta(seconds=5)
WARN_WHEN: dict[str, ConditionStatus] = {
    kinds.READY: "False",
    kinds.METRICS_AVAILABLE: "False",
    kinds.CAPACITY_AVAILABLE: "False",
    kinds.DEGRADED: "True",
    kinds.SECRETS_AVAILABLE: "False",
    kinds.POLICIES_VALID: "False",
}


@dataclass(frozen=True)
class ModeDecision:
    mode: Mode
    reason: str
    cap: int | None
    backend: Backend


def decide_mode(
    isvc: InferenceService,
    budgets: list[dict[str, Any]],
    policy: dict[str, Any] | None,
) -> ModeDecision:
    """Mode and replica cap from the budgets selecting this service and its fallback policy.

    Pure: a function of the objects as stored in the API (their status is the state).
    """
    own = _own_backend(isvc)
    suspend_by = degrade_by = None
    for budget in budgets:
        spec = budget.get("spec", {})
        if spec.get("enforcement", "Enforce") != "Enforce":
            continue
        try:
            selector = LabelSelector.model_validate(spec.get("selector") or {})
        except ValueError:
            continue
        if not selector.matches(isvc.metadata.labels):
            continue
        action = (budget.get("status") or {}).get("activeAction")
        budget_name = budget["metadata"]["name"]
        if action == "Suspend":
            suspend_by = budget_name
        elif action == "Degrade":
            degrade_by = degrade_by or budget_name

    backend = own
    fallback_reason = None
    degraded_by_policy = False
    if policy is not None:
        status = FallbackPolicyStatus.model_validate(policy.get("status") or {})
        try:
            spec = FallbackPolicySpec.model_validate(policy.get("spec") or {})
        except ValueError:
            spec = None
        if (
            spec is not None
            and spec.enforcement == "Enforce"
            and status.active
            and 0 <= status.active_step < len(spec.chain)
        ):
            step = spec.chain[status.active_step]
            name = policy["metadata"]["name"]
            if step.degraded:
                degraded_by_policy = True
                fallback_reason = f"FallbackPolicy {name} chose degraded mode"
            elif step.inference_service:
                backend = Backend(service=step.inference_service)
                fallback_reason = f"FallbackPolicy {name} sent traffic to {step.inference_service}"
            elif step.provider:
                backend = Backend.provider(step.provider.url)
                fallback_reason = f"FallbackPolicy {name} sent traffic to {backend.describe()}"

    if suspend_by:
        return ModeDecision("Suspended", f"AIBudget {suspend_by} is exceeded", 0, backend)
    if degrade_by or degraded_by_policy:
        why = f"AIBudget {degrade_by} asks for degraded mode" if degrade_by else str(fallback_reason)
        return ModeDecision("Degraded", why, isvc.spec.degraded.max_replicas, backend)
    if fallback_reason:
        return ModeDecision("Fallback", fallback_reason, None, backend)
    return ModeDecision("Normal", "", None, own)


def serving_backend(isvc: InferenceService, backend: Backend) -> str:
    """status.backend: "self" while the service's own pods (or provider) take its traffic,
    else the fallback that does. The mode alone cannot say it: Degraded by a budget and switched
    by a FallbackPolicy at once shows as Degraded."""
    return "self" if backend == _own_backend(isvc) else backend.describe()


def _own_backend(isvc: InferenceService) -> Backend:
    if isvc.spec.provider is not None:
        return Backend.provider(isvc.spec.provider.url)
    return Backend(service=isvc.metadata.name)


def _endpoint(isvc: InferenceService) -> str:
    if isvc.spec.provider is not None:
        return isvc.spec.provider.url
    assert isvc.spec.serving is not None
    return f"http://{isvc.metadata.name}.{isvc.metadata.namespace}.svc:{isvc.spec.serving.port}"


def _cost_per_hour(isvc: InferenceService, gpus: int) -> str:
    if isvc.spec.pricing.gpu_hour is None:
        return "0"
    return display_money(Decimal(isvc.spec.pricing.gpu_hour) * gpus, isvc.spec.pricing.currency)


def _scaling_memory(status: InferenceServiceStatus) -> ScalingMemory:
    return ScalingMemory(
        recommendations=tuple((r.time, r.replicas) for r in status.recommendations),
        last_scale_time=status.last_scale_time,
        idle_since=status.idle_since,
        last_desired=status.desired_replicas if status.decisions or status.recommendations else None,
    )


async def _observe_metric(
    rt: Runtime, isvc: InferenceService, key: Key, at: datetime, ready_since: datetime | None
) -> tuple[Reading, Reading, Reading | None]:
    """The scaling metric, the demand at the front door, and (for scale to zero) activity, in
    the names of the service's metrics preset."""
    if rt.prometheus is None:
        missing = Unavailable("QueryError", "no Prometheus URL configured")
        return missing, missing, missing
    names = presets.metric_names(isvc.spec.metrics.preset, rt.metric_names)
    metric_spec = isvc.spec.scaling.metric
    metric: Reading
    try:
        series = presets.scaling_series(metric_spec, names)
        metric_query = presets.scaling_metric(metric_spec, names)
    except presets.MissingMetricError as missing_metric:
        metric = Unavailable("Absent", str(missing_metric))
    else:
        metric_result = await rt.prometheus.grouped(metric_query, at)
        if metric_spec.type == "Latency":
            metric = metric_result.reading(key)
        else:
            # a sum over the pods: no series for an answered query means no load at all...
            metric = metric_result.reading_or_zero_when_answered(key)
        if series is not None:
            # ...unless the pods export no such series at all (a renamed metric, another server)
            present = (await rt.prometheus.grouped(presets.presence(series), at)).reading(key)
            metric = absent_or(metric, present, series, names.preset, ready_since, at)
    demand_query = isvc.spec.scaling.activation_query or presets.demand(names)
    demand = (await rt.prometheus.grouped(demand_query, at)).reading_or_zero_when_answered(key)
    activity = None
    if isvc.spec.scaling.scale_to_zero_after is not None:
        # strict: a pod not scraped yet has no series, and that is not idleness
        activity = (await rt.prometheus.grouped(presets.activity(names), at)).reading(key)
    return metric, demand, activity


@kopf.timer("aipolicy.dev", "v1alpha1", "inferenceservices", interval=TICK, initial_delay=0.5)  # type: ignore[arg-type]
async def reconcile_inference_service(
    body: kopf.Body,
    namespace: str,
    name: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    aibudgets_by_namespace: kopf.Index[str, dict[str, Any]],
    fallbackpolicies_by_target: kopf.Index[Key, dict[str, Any]],
    pods_by_service: kopf.Index[Key, dict[str, Any]],
    deployments_by_service: kopf.Index[Key, dict[str, Any]],
    services_by_service: kopf.Index[Key, dict[str, Any]],
    disruption_budgets_by_service: kopf.Index[Key, dict[str, Any]],
    inferenceservices_by_namespace: kopf.Index[str, dict[str, Any]],
    **_: Any,
) -> None:
    rt: Runtime = memo["runtime"]
    now = datetime.now(UTC)
    key = (namespace, name)
    # before the quiet-inputs skip: the namespace's gateway depends on its other services
    await _reconcile_gateway(
        rt, namespace, inferenceservices_by_namespace.get(namespace, []), fallbackpolicies_by_target, logger
    )
    inputs = _inputs(
        body,
        aibudgets_by_namespace.get(namespace, []),
        fallbackpolicies_by_target.get(key, []),
        pods_by_service.get(key, []),
        deployments_by_service.get(key, []),
        services_by_service.get(key, []),
        disruption_budgets_by_service.get(key, []),
    )
    if memo.get(QUIET_INPUTS) == inputs and now < memo.get(NEXT_EVALUATION, now):
        return  # the same inputs as a pass that found nothing to do, and no evaluation due
    memo.pop(QUIET_INPUTS, None)
    started = time.monotonic()
    old_status = dict(body.get("status") or {})
    parsed = read(InferenceService, body)
    if isinstance(parsed, InvalidSpec):
        report_invalid_spec(body, patch, old_status, parsed.message, WARN_WHEN, now)
        return

    isvc = parsed
    status = isvc.status.model_copy(deep=True)
    conditions = StatusConditions(status.conditions, isvc.metadata.generation, now)
    pods = count_pods(
        pods_by_service.get(key, []),
        isvc.spec.serving.gpu.resource_name if isvc.spec.serving else "nvidia.com/gpu",
    )
    pods = with_creation_failure(pods, one(deployments_by_service, key))
    policy = governing_policy(list(fallbackpolicies_by_target.get(key, [])))
    mode = decide_mode(isvc, list(aibudgets_by_namespace.get(namespace, [])), policy)
    via_gateway = l7_reason(isvc, _chain(policy)) is not None

    if isvc.spec.serving is not None:
        wrote = await _reconcile_serving(
            rt,
            memo,
            isvc,
            key,
            status,
            conditions,
            pods,
            mode,
            body,
            deployments_by_service,
            now,
            pods_by_service.get(key, []),
        )
        budget = one(disruption_budgets_by_service, key)
        wrote = await _reconcile_disruption_budget(rt, isvc, status.desired_replicas, budget) or wrote
    else:
        memo[NEXT_EVALUATION] = NEVER
        deployment = one(deployments_by_service, key)
        wrote = deployment is not None
        if deployment is not None:  # a service that moved from serving to provider
            await rt.kube.delete_deployment(namespace, name)
        wrote = (
            await _reconcile_disruption_budget(rt, isvc, 0, one(disruption_budgets_by_service, key)) or wrote
        )
        status.replicas = status.ready_replicas = status.desired_replicas = 0
        conditions.set(
            kinds.SCALING_ACTIVE,
            "False",
            kinds.PROVIDER_BACKED,
            "an API-backed service has no replicas to scale",
        )

    front_door = children.with_hash(children.front_door(isvc, mode.backend, via_gateway=via_gateway))
    observed_door = one(services_by_service, key)
    if children.applied_hash(observed_door) != children.applied_hash(front_door):
        wrote = True
        await rt.kube.apply(front_door)
        if observed_door is not None:
            via = " through the gateway" if via_gateway else ""
            logger.info("front door %s now points at %s%s", name, mode.backend.describe(), via)

    mode_changed = status.mode != mode.mode
    if mode_changed:
        kopf.event(
            body,
            type="Warning" if mode.mode in ("Degraded", "Suspended") else "Normal",
            reason=kinds.mode_reason(mode.mode),
            message=mode.reason or f"back to {mode.mode} mode",
        )
        status.mode_since = now
    status.mode = mode.mode
    status.mode_reason = mode.reason
    status.active_backend = mode.backend.describe()
    status.backend = serving_backend(isvc, mode.backend)
    status.endpoint = _endpoint(isvc)
    status.gpus = pods.gpus_held
    status.cost_per_hour = _cost_per_hour(isvc, pods.gpus_held)
    economics_at = economics.due(status.economics, now)
    if economics_at is not None:
        status.economics = await economics.evaluate(rt, isvc, key, economics_at)
    memo[NEXT_EVALUATION] = min(memo.get(NEXT_EVALUATION, NEVER), economics.next_refresh(now))
    status.observed_generation = isvc.metadata.generation
    if mode.mode in ("Degraded", "Suspended"):
        conditions.set(kinds.DEGRADED, "True", kinds.mode_reason(mode.mode), mode.reason)
    else:
        conditions.set(
            kinds.DEGRADED, "False", kinds.NOT_DEGRADED, "the service runs with its normal settings"
        )
    _set_ready(isvc, status, conditions, pods, mode)
    chain = _chain(policy)
    if referenced(isvc, chain):
        verdict = await _secrets_verdict(rt, isvc, chain, now)
        if verdict is not None:
            conditions.set(kinds.SECRETS_AVAILABLE, verdict.status, verdict.reason, verdict.message)
            if verdict.own_missing:
                conditions.set(kinds.READY, "False", verdict.reason, verdict.message)
        # a Secret created later must show without waiting for another change of inputs
        memo[NEXT_EVALUATION] = min(memo.get(NEXT_EVALUATION, NEVER), now + SECRET_RECHECK)
    if mode_changed:
        conditions.told_elsewhere(kinds.DEGRADED)  # by the mode event
    conditions.post_changes(body, WARN_WHEN)
    status.conditions = conditions.conditions
    currency = isvc.spec.pricing.currency
    metrics.SERVICE_COST_PER_HOUR.labels(namespace, name, currency).set(float(status.cost_per_hour))
    if isvc.spec.pricing.gpu_hour is not None:
        metrics.SERVICE_GPU_HOUR_RATE.labels(namespace, name, currency).set(float(isvc.spec.pricing.gpu_hour))
    for each in ("Normal", "Degraded", "Fallback", "Suspended"):
        metrics.SERVICE_MODE.labels(namespace, name, each).set(1 if each == mode.mode else 0)
    metrics.EVALUATION_SECONDS.labels("InferenceService").observe(time.monotonic() - started)
    new = json_dict(status)
    if status_differs(old_status, new):
        write_status(patch, old_status, new)
    elif not wrote:
        # Only a pass that wrote nothing marks its inputs quiet: after a write, the next tick
        # runs in full and sees it landed (a status patch that failed is retried, not skipped).
        memo[QUIET_INPUTS] = inputs


def _chain(policy: Mapping[str, Any] | None) -> list[FallbackStep]:
    """The governing policy's chain; none for no policy or one whose spec does not parse (its
    own controller reports that)."""
    if policy is None:
        return []
    try:
        return FallbackPolicySpec.model_validate(policy.get("spec") or {}).chain
    except ValueError:
        return []


async def _reconcile_gateway(
    rt: Runtime,
    namespace: str,
    services: Iterable[Mapping[str, Any]],
    policies_by_target: kopf.Index[Key, dict[str, Any]],
    logger: kopf.Logger,
) -> None:
    """Apply the namespace's gateway while a service needs L7, delete it when none does.

    Once per tick per namespace, and only when what it should look like changed (owners,
    Secrets) since the last apply: a namespace of a thousand services costs one pass per tick.
    """
    checked = time.monotonic()
    if checked - rt.gateway_checked.get(namespace, float("-inf")) < TICK / 2:
        return
    rt.gateway_checked[namespace] = checked
    parsed: list[tuple[InferenceService, list[FallbackStep]]] = []
    for body in services:
        isvc = read(InferenceService, body)
        if isinstance(isvc, InferenceService) and not body.get("metadata", {}).get("deletionTimestamp"):
            policy = governing_policy(list(policies_by_target.get((namespace, isvc.metadata.name), [])))
            parsed.append((isvc, _chain(policy)))
    need = namespace_gateway.gateway_need(parsed)
    wanted = need if need.owners else None
    if namespace in rt.gateway_applied and rt.gateway_applied[namespace] == wanted:
        return
    rt.gateway_applied.pop(namespace, None)  # until this pass succeeds
    try:
        if wanted is not None:
            for manifest in namespace_gateway.gateway_objects(namespace, rt.gateway_image, wanted):
                await rt.kube.apply(manifest)
            owners = ", ".join(name for name, _ in wanted.owners)
            logger.info("gateway of %s applied for %s", namespace, owners)
        else:
            for kind in reversed(namespace_gateway.KINDS):
                await rt.kube.delete(kind, namespace, gateway_manifests.NAME)
    except ApiException as error:
        # retried next tick; the services' own children must not wait on it
        logger.warning("gateway of %s not reconciled: %s %s", namespace, error.status, error.reason)
        return
    rt.gateway_applied[namespace] = wanted


async def _secrets_verdict(
    rt: Runtime, isvc: InferenceService, chain: list[FallbackStep], now: datetime
) -> SecretsVerdict | None:
    """From what the namespace's gateway reports (the operator reads no Secret). None when
    Prometheus cannot say: the condition keeps its last value."""
    if rt.prometheus is None:
        return None
    at = aligned(now, SECRET_RECHECK)  # one query per reason for every service at once
    problems: dict[str, str] = {}
    for reason in reversed(SECRET_REASONS):  # the worst reason last, so it wins
        result = await rt.prometheus.grouped(presets.secret_problems(reason), at)
        if result.error is not None:
            return None
        for (namespace, secret), _ in result.values.items():
            if namespace == isvc.metadata.namespace:
                problems[secret] = reason
    return secrets_verdict(isvc, chain, problems)


async def _reconcile_disruption_budget(
    rt: Runtime, isvc: InferenceService, replicas: int, observed: dict[str, Any] | None
) -> bool:
    """Apply the service's PodDisruptionBudget at two replicas or more, delete it below (at one
    it would protect nothing; at zero, in degraded mode at one, or for a provider it must not
    linger). Follows the Deployment's replicas, so it goes in the same pass that scales down.
    True if it wrote."""
    if children.wants_disruption_budget(isvc, replicas):
        manifest = children.with_hash(children.disruption_budget(isvc))
        if children.applied_hash(observed) == children.applied_hash(manifest):
            return False
        await rt.kube.apply(manifest)
        return True
    if observed is None:
        return False
    await rt.kube.delete_disruption_budget(isvc.metadata.namespace, isvc.metadata.name)
    return True


def _inputs(body: kopf.Body, *related: Iterable[Mapping[str, Any]]) -> tuple[Any, ...]:
    """Everything a pass reads from the API, as resource versions: equal means unchanged.

    Decisions are pure functions of these and of the clock, and the clock only matters at a
    scaling evaluation, so a tick with the same inputs as a quiet pass, before the next
    evaluation, would decide exactly the same nothing. At a thousand services, skipping those
    ticks took the operator at rest from 51 % of a core to 22 % (the rest is kopf's own
    per-timer work).
    """
    versions = tuple(
        tuple(sorted(str(item.get("metadata", {}).get("resourceVersion", "")) for item in group))
        for group in related
    )
    return (body.metadata.get("resourceVersion"), *versions)


def _set_ready(
    isvc: InferenceService,
    status: InferenceServiceStatus,
    conditions: StatusConditions,
    pods: PodCounts,
    mode: ModeDecision,
) -> None:
    if isvc.spec.provider is not None:
        conditions.set(
            kinds.READY, "True", kinds.PROVIDER_CONFIGURED, f"traffic goes to {status.active_backend}"
        )
    elif mode.mode == "Fallback":
        conditions.set(kinds.READY, "True", kinds.SERVING_FROM_FALLBACK, mode.reason)
    elif status.desired_replicas == 0:
        conditions.set(
            kinds.READY, "True", kinds.SCALED_TO_ZERO, "no replicas are wanted now; demand starts one"
        )
    elif pods.ready > 0:
        failing = f"; {pods.failing} cannot start ({pods.failing_message})" if pods.failing else ""
        conditions.set(
            kinds.READY,
            "True",
            kinds.REPLICAS_READY,
            f"{pods.ready} of {status.desired_replicas} replicas are ready{failing}",
        )
    elif pods.failing and (missing := missing_reference(pods.failing_message)) is not None:
        conditions.set(
            kinds.READY,
            "False",
            missing.reason,
            f"{missing.describe(isvc.metadata.namespace)}, and spec.serving needs it: "
            f"0 of {status.desired_replicas} replicas are ready and {pods.failing} cannot start "
            f"({pods.failing_message})",
        )
    elif pods.not_created and pods.total == 0:
        missing = missing_reference(pods.not_created)
        conditions.set(
            kinds.READY,
            "False",
            missing.reason if missing else kinds.PODS_NOT_CREATED,
            (f"{missing.describe(isvc.metadata.namespace)}, and spec.serving needs it: " if missing else "")
            + f"the Deployment cannot create pods ({pods.not_created})",
        )
    elif pods.failing:
        conditions.set(
            kinds.READY,
            "False",
            kinds.REPLICAS_FAILING,
            f"0 of {status.desired_replicas} replicas are ready and {pods.failing} cannot start: "
            f"{pods.failing_message}. Check spec.serving (image, args, resources).",
        )
    else:
        conditions.set(
            kinds.READY,
            "False",
            kinds.NO_READY_REPLICAS,
            f"0 of {status.desired_replicas} replicas are ready yet",
        )


async def _reconcile_serving(
    rt: Runtime,
    memo: kopf.Memo,
    isvc: InferenceService,
    key: Key,
    status: InferenceServiceStatus,
    conditions: StatusConditions,
    pods: PodCounts,
    mode: ModeDecision,
    body: kopf.Body,
    deployments_by_service: kopf.Index[Key, dict[str, Any]],
    now: datetime,
    pod_bodies: Iterable[Mapping[str, Any]],
) -> bool:
    """Decides replicas when an evaluation is due and applies the Deployment; True if it wrote."""
    scaling = isvc.spec.scaling
    dry_run = scaling.enforcement == "DryRun"
    deployment = one(deployments_by_service, key)
    current = (
        int(deployment["spec"].get("replicas", 0)) if deployment is not None else status.desired_replicas
    )
    decided_before = bool(status.decisions or status.recommendations)
    desired = status.desired_replicas if decided_before else max(scaling.min_replicas, 0)
    paused = isvc.metadata.annotations.get(PAUSE_ANNOTATION, "").lower() == "true"
    pod_list = list(pod_bodies)

    # Cold starts of pods Ready since the last look, and the lead time they give pre-warm.
    samples = measure_cold_starts(
        pod_list, [ColdStartSample(c.pod, c.seconds, c.ready_at) for c in status.cold_starts]
    )
    status.cold_starts = [
        ColdStart(pod=c.pod, seconds=round(c.seconds, 3), ready_at=c.ready_at) for c in samples
    ]
    lead = lead_time(scaling.cold_start_seconds, samples)
    status.cold_start_seconds = lead.seconds
    status.cold_start_source = lead.source

    # At the interval's multiples, about that instant: every service with the same interval
    # shares one answer per query (policy/cycles.py). The instant evaluated lives in the
    # object's own memo; a restart only evaluates once more, from the memory in status.
    interval = parse_duration(scaling.evaluation_interval)
    at = aligned(now, interval)
    memo[NEXT_EVALUATION] = at + interval
    if memo.get(EVALUATED_AT) != at:
        memo[EVALUATED_AT] = at
        metric, demand, activity = await _observe_metric(rt, isvc, key, at, ready_since(pod_list))
        sized = scaling.metric.type == "SLO"  # sized for scaling.slo (controllers/slo.py)
        load = await slo.observe_load(rt, isvc, key, at) if sized else None
        decision = decide_replicas(
            scaling,
            ScalingObservation(
                now=now,
                current_replicas=current,
                ready_replicas=pods.ready,
                starting_replicas=pods.starting,
                unschedulable_replicas=pods.unschedulable,
                metric=metric,
                demand=demand,
                activity=activity,
                cold_start_seconds=lead.seconds,
                load=load,
            ),
            slo.with_slo_memory(_scaling_memory(status), status),
            max_replicas_cap=mode.cap,
            paused=paused,
            profile=slo.serving_profile(isvc) if sized else None,
        )
        slo.write_slo_memory(status, decision)
        desired = decision.desired
        status.recommendations = [
            Recommendation(time=t, replicas=r) for t, r in decision.memory.recommendations
        ]
        status.idle_since = decision.memory.idle_since
        status.active_prewarm = decision.active_prewarm or ""
        if isinstance(metric, Value):
            status.metric_value = f"{metric.value:.4g}"
        if decision.metrics_available:
            conditions.set(
                kinds.METRICS_AVAILABLE,
                "True",
                kinds.METRICS_FOUND,
                f"{scaling.metric.type} is {status.metric_value}",
            )
        else:
            reason = kinds.metrics_reason(decision.metrics_reason)
            message = metric.message if isinstance(metric, Unavailable) else decision.message
            conditions.set(
                kinds.METRICS_AVAILABLE,
                "False",
                reason,
                f"{message}; policy {scaling.on_metrics_unavailable}",
            )
        if decision.capacity_available:
            conditions.set(
                kinds.CAPACITY_AVAILABLE, "True", kinds.CAPACITY_FOUND, "every replica could be scheduled"
            )
        else:
            # the scheduler's reason, not always GPUs: memory, CPU, a taint, a selector
            conditions.set(
                kinds.CAPACITY_AVAILABLE,
                "False",
                pods.unschedulable_reason or UNSCHEDULABLE,
                f"{decision.capacity_shortfall} replica(s) cannot be scheduled: "
                f"{pods.unschedulable_message}".strip(),
            )
        if paused:
            conditions.set(
                kinds.SCALING_ACTIVE,
                "False",
                kinds.PAUSED,
                f"annotation {PAUSE_ANNOTATION}=true pauses autoscaling",
            )
        else:
            advisory = "DryRun: replicas are not changed; " if dry_run else ""
            conditions.set(kinds.SCALING_ACTIVE, "True", decision.reason, f"{advisory}{decision.message}")
        previous = status.desired_replicas if decided_before else None
        if reported_change(dry_run, current, previous, desired):
            status.last_scale_time = decision.memory.last_scale_time or now
            record = ScalingDecisionRecord(
                time=now,
                from_replicas=current,
                to_replicas=desired,
                reason=decision.reason,
                message=f"DryRun: {decision.message}" if dry_run else decision.message,
            )
            status.decisions = [*status.decisions, record][-DECISIONS_KEPT:]
            metrics.SCALING_DECISIONS.labels(key[0], key[1], decision.reason).inc()
            kind = "Warning" if decision.reason in ("CapacityLimited",) else "Normal"
            if not dry_run:
                change = f"{current} -> {desired} replicas"
            elif desired != current:
                change = f"would scale {current} -> {desired} replicas (DryRun)"
            else:
                change = f"would keep the {current} replicas (DryRun)"
            kopf.event(body, type=kind, reason=decision.reason, message=f"{change}: {decision.message}")

    # DryRun: the Deployment keeps its replicas; what was decided is in status.desiredReplicas
    # and the events.
    applied = applied_replicas(
        dry_run, desired, current if deployment is not None else None, scaling.min_replicas, mode.cap
    )
    manifest = children.with_hash(children.deployment(isvc, applied))
    wrote = (
        deployment is None
        or children.applied_hash(deployment) != children.applied_hash(manifest)
        or current != applied
    )
    if wrote:
        await rt.kube.apply(manifest)
    status.desired_replicas = desired
    status.replicas = pods.total
    status.ready_replicas = pods.ready
    return wrote
