"""InferenceService controller: owns the Deployment and the front door, decides replicas.

A pass, every tick (kopf keeps the indexes current; nothing here reads the API):

1. gather what the indexes hold about the service (:class:`Related`); a pass whose inputs
   equal those of a quiet pass, before any evaluation is due, stops here;
2. read: the service (an invalid spec is reported and nothing else done), the budgets and the
   governing FallbackPolicy into typed views (policy/mode.py);
3. decide, in pure functions: the mode (policy/mode.py), at each `scaling.evaluationInterval`
   the replicas (policy/scaling.py), every condition and event (policy/service_conditions.py);
4. apply: the Deployment, the PodDisruptionBudget and the front door when what they would be
   differs from what was applied (kube/children.py), the events, and the status when it differs.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from aipolicy.api import conditions as kinds
from aipolicy.api.common import ConditionStatus, json_dict, parse_duration
from aipolicy.api.fallbackpolicy import FallbackStep
from aipolicy.api.inferenceservice import (
    ColdStart,
    InferenceService,
    InferenceServiceStatus,
    Recommendation,
    Scaling,
    ScalingDecisionRecord,
)
from aipolicy.api.reading import read
from aipolicy.controllers import economics, evaluation, metrics, slo
from aipolicy.controllers.cycle import cycle
from aipolicy.controllers.events import StatusConditions, status_differs, write_status
from aipolicy.controllers.indexes import Key, observed_gateway
from aipolicy.controllers.runtime import Neighbours, Runtime, Specs
from aipolicy.gateway import manifests as gateway_manifests
from aipolicy.kube import children
from aipolicy.kube import gateway as namespace_gateway
from aipolicy.observe import presets
from aipolicy.observe.absence import absent_or
from aipolicy.observe.pods import PodCounts, count_pods, ready_since, with_creation_failure
from aipolicy.policy import service_conditions as decide
from aipolicy.policy.coldstart import ColdStartSample, lead_time, measure_cold_starts
from aipolicy.policy.conflicts import governing_policy
from aipolicy.policy.cycles import aligned
from aipolicy.policy.due import when_due
from aipolicy.policy.frontdoor import api_backed, l7_reason
from aipolicy.policy.mode import (
    ModeDecision,
    decide_mode,
    policy_chain,
    read_budget,
    read_policy,
    serving_backend,
)
from aipolicy.policy.observations import Reading, Unavailable, Value
from aipolicy.policy.outcome import ConditionUpdate, Event
from aipolicy.policy.scaling import (
    ScalingDecision,
    ScalingMemory,
    ScalingObservation,
    applied_replicas,
    decide_replicas,
    reported_change,
)
from aipolicy.policy.secrets import REASONS as SECRET_REASONS
from aipolicy.policy.secrets import SecretsVerdict, referenced, secrets_verdict
from aipolicy.policy.spend import display_money

PAUSE_ANNOTATION = decide.PAUSE_ANNOTATION
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
class Related:
    """What the indexes hold about one service: everything a pass reads besides the service."""

    budgets: list[dict[str, Any]]
    policies: list[dict[str, Any]]
    pods: list[dict[str, Any]]
    deployments: list[dict[str, Any]]
    front_doors: list[dict[str, Any]]
    disruption_budgets: list[dict[str, Any]]
    #: the namespace's API-backed services: whether a chain needs the gateway depends on them
    api_services: frozenset[str]

    @property
    def deployment(self) -> dict[str, Any] | None:
        return self.deployments[0] if self.deployments else None

    @property
    def front_door(self) -> dict[str, Any] | None:
        return self.front_doors[0] if self.front_doors else None

    @property
    def disruption_budget(self) -> dict[str, Any] | None:
        return self.disruption_budgets[0] if self.disruption_budgets else None

    def versions(self, body: kopf.Body) -> tuple[Any, ...]:
        """Everything a pass reads from the API, as resource versions: equal means unchanged.

        Decisions are pure functions of these and of the clock, and the clock only matters at a
        scaling evaluation, so a tick with the same inputs as a quiet pass, before the next
        evaluation, would decide exactly the same nothing. At a thousand services, skipping
        those ticks took the operator at rest from 51 % of a core to 22 % (the rest is kopf's
        own per-timer work).
        """
        groups = [self.budgets, self.policies, self.pods, self.deployments]
        groups += [self.front_doors, self.disruption_budgets]
        versions = tuple(
            tuple(sorted(str(item.get("metadata", {}).get("resourceVersion", "")) for item in group))
            for group in groups
        )
        return (body.metadata.get("resourceVersion"), self.api_services, *versions)


@dataclass
class Pass:
    """One evaluation of one valid service: what was gathered, decided, and the status built."""

    rt: Runtime
    memo: kopf.Memo
    body: kopf.Body
    logger: kopf.Logger
    isvc: InferenceService
    related: Related
    now: datetime
    status: InferenceServiceStatus
    conditions: StatusConditions
    pods: PodCounts
    mode: ModeDecision
    chain: list[FallbackStep]

    @property
    def key(self) -> Key:
        return (self.isvc.metadata.namespace, self.isvc.metadata.name)


@cycle("inferenceservices", index="inferenceservices_by_key", tick=TICK, initial_delay=0.5)
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
    key = (namespace, name)
    # before the quiet-inputs skip: the namespace's gateway depends on its other services
    services: Collection[Mapping[str, Any]] = inferenceservices_by_namespace.get(namespace, [])
    neighbours = await _reconcile_gateway(
        rt, namespace, services, fallbackpolicies_by_target, observed_gateway(_, namespace), logger
    )
    related = Related(
        budgets=list(aibudgets_by_namespace.get(namespace, [])),
        policies=list(fallbackpolicies_by_target.get(key, [])),
        pods=list(pods_by_service.get(key, [])),
        deployments=list(deployments_by_service.get(key, [])),
        front_doors=list(services_by_service.get(key, [])),
        disruption_budgets=list(disruption_budgets_by_service.get(key, [])),
        api_services=neighbours.api_services,
    )
    await _reconcile(rt, memo, body, patch, logger, related, datetime.now(UTC))


async def _reconcile(
    rt: Runtime,
    memo: kopf.Memo,
    body: kopf.Body,
    patch: kopf.Patch,
    logger: kopf.Logger,
    related: Related,
    now: datetime,
) -> None:
    """Skip a pass with a quiet pass's inputs; else read, decide, apply, and write status."""
    inputs = related.versions(body)
    if memo.get(QUIET_INPUTS) == inputs and now < memo.get(NEXT_EVALUATION, now):
        return  # the same inputs as a pass that found nothing to do, and no evaluation due
    memo.pop(QUIET_INPUTS, None)
    step = evaluation.begin(InferenceService, body, patch, WARN_WHEN, now=now)
    if step is None:
        return  # reported as InvalidSpec
    new, wrote = await _evaluate(_gather(rt, memo, body, logger, step.model, related, now))
    metrics.EVALUATION_SECONDS.labels("InferenceService").observe(time.monotonic() - step.started)
    if status_differs(step.old_status, new):
        write_status(patch, step.old_status, new)
    elif not wrote:
        # Only a pass that wrote nothing marks its inputs quiet: after a write, the next tick
        # runs in full and sees it landed (a status patch that failed is retried, not skipped).
        memo[QUIET_INPUTS] = inputs


def _gather(
    rt: Runtime,
    memo: kopf.Memo,
    body: kopf.Body,
    logger: kopf.Logger,
    isvc: InferenceService,
    related: Related,
    now: datetime,
) -> Pass:
    """The pass's observations and its mode, decided from the budgets' and policy's status."""
    status = isvc.status.model_copy(deep=True)
    pods = with_creation_failure(count_pods(related.pods, _gpu_resource(isvc)), related.deployment)
    governing_body = governing_policy(related.policies)
    policy = read_policy(governing_body) if governing_body is not None else None
    return Pass(
        rt=rt,
        memo=memo,
        body=body,
        logger=logger,
        isvc=isvc,
        related=related,
        now=now,
        status=status,
        conditions=StatusConditions(status.conditions, isvc.metadata.generation, now),
        pods=pods,
        mode=decide_mode(isvc, [read_budget(b) for b in related.budgets], policy),
        chain=policy_chain(policy),
    )


async def _evaluate(p: Pass) -> tuple[dict[str, Any], bool]:
    """Apply the children, decide the conditions; the status to write, and whether a child
    was written."""
    if p.isvc.spec.serving is not None:
        wrote = await _reconcile_serving(p)
    else:
        wrote = await _reconcile_provider_backed(p)
    wrote = await _reconcile_front_door(p) or wrote
    mode_event = decide.mode_event(p.status.mode, p.mode)
    _write_mode(p, changed=mode_event is not None)
    await _refresh_economics(p)
    verdict = await _secrets(p)
    ready = decide.ReadyFacts(
        namespace=p.isvc.metadata.namespace,
        provider_backed=p.isvc.spec.provider is not None,
        active_backend=p.status.active_backend,
        mode=p.mode,
        desired_replicas=p.status.desired_replicas,
        pods=p.pods,
        secrets=verdict,
    )
    _set(p.conditions, decide.degraded(p.mode), decide.ready(ready), decide.secrets_available(verdict))
    _set(p.conditions, decide.policies_valid(p.mode))
    if mode_event is not None:
        _post(p.body, mode_event)
        p.conditions.told_elsewhere(kinds.DEGRADED)  # by the mode event
    p.conditions.post_changes(p.body, WARN_WHEN)
    p.status.conditions = p.conditions.conditions
    _export_metrics(p.isvc, p.status, p.mode)
    return json_dict(p.status), wrote


def _set(conditions: StatusConditions, *updates: ConditionUpdate | None) -> None:
    """Apply condition updates in order; None leaves a condition as it was."""
    for update in updates:
        if update is not None:
            conditions.set(update.type, update.status, update.reason, update.message)


def _post(body: kopf.Body, event: Event) -> None:
    kopf.event(body, type=event.type, reason=event.reason, message=event.message)


def _gpu_resource(isvc: InferenceService) -> str:
    return isvc.spec.serving.gpu.resource_name if isvc.spec.serving else "nvidia.com/gpu"


def _paused(isvc: InferenceService) -> bool:
    return isvc.metadata.annotations.get(PAUSE_ANNOTATION, "").lower() == "true"


def _write_mode(p: Pass, *, changed: bool) -> None:
    """The status fields that follow the mode, the backend and the pods held."""
    status = p.status
    if changed:
        status.mode_since = p.now
    status.mode = p.mode.mode
    status.mode_reason = p.mode.reason
    status.active_backend = p.mode.backend.describe()
    status.backend = serving_backend(p.isvc, p.mode.backend)
    status.endpoint = _endpoint(p.isvc)
    status.gpus = p.pods.gpus_held
    status.cost_per_hour = _cost_per_hour(p.isvc, p.pods.gpus_held)
    status.observed_generation = p.isvc.metadata.generation


async def _refresh_economics(p: Pass) -> None:
    """status.economics once a minute, at the minute (controllers/economics.py)."""
    economics_at = economics.due(p.status.economics, p.now)
    if economics_at is not None:
        p.status.economics = await economics.evaluate(p.rt, p.isvc, p.key, economics_at)
    p.memo[NEXT_EVALUATION] = min(p.memo.get(NEXT_EVALUATION, NEVER), economics.next_refresh(p.now))


async def _secrets(p: Pass) -> SecretsVerdict | None:
    """What the gateway says of the Secrets the service's providers name; None when none is
    named or Prometheus cannot say."""
    if not referenced(p.isvc, p.chain):
        return None
    # a Secret created later must show without waiting for another change of inputs
    p.memo[NEXT_EVALUATION] = min(p.memo.get(NEXT_EVALUATION, NEVER), p.now + SECRET_RECHECK)
    return await _secrets_verdict(p.rt, p.isvc, p.chain, p.now)


def _export_metrics(isvc: InferenceService, status: InferenceServiceStatus, mode: ModeDecision) -> None:
    namespace, name, currency = isvc.metadata.namespace, isvc.metadata.name, isvc.spec.pricing.currency
    metrics.SERVICE_COST_PER_HOUR.labels(namespace, name, currency).set(float(status.cost_per_hour))
    if isvc.spec.pricing.gpu_hour is not None:
        metrics.SERVICE_GPU_HOUR_RATE.labels(namespace, name, currency).set(float(isvc.spec.pricing.gpu_hour))
    for each in ("Normal", "Degraded", "Fallback", "Suspended"):
        metrics.SERVICE_MODE.labels(namespace, name, each).set(1 if each == mode.mode else 0)


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


async def _reconcile_serving(p: Pass) -> bool:
    """Decide replicas when an evaluation is due, apply the Deployment and its
    PodDisruptionBudget; True if it wrote."""
    scaling, deployment, status = p.isvc.spec.scaling, p.related.deployment, p.status
    current = (
        int(deployment["spec"].get("replicas", 0)) if deployment is not None else status.desired_replicas
    )
    decided_before = bool(status.decisions or status.recommendations)
    desired = status.desired_replicas if decided_before else max(scaling.min_replicas, 0)
    lead_seconds = _record_cold_starts(status, scaling, p.related.pods)
    at = _evaluation_due(p.memo, scaling, p.now)
    if at is not None:
        decision = await _decide_replicas(p, current, lead_seconds, at)
        _record_decision(p, decision, current, decided_before)
        desired = decision.desired
    # DryRun: the Deployment keeps its replicas; what was decided is in status.desiredReplicas
    # and the events.
    dry_run = scaling.enforcement == "DryRun"
    observed = current if deployment is not None else None
    applied = applied_replicas(dry_run, desired, observed, scaling.min_replicas, p.mode.cap)
    manifest = children.with_hash(children.deployment(p.isvc, applied))
    changed = children.applied_hash(deployment) != children.applied_hash(manifest)
    wrote = deployment is None or changed or current != applied
    if wrote:
        await p.rt.kube.apply(manifest)
    status.desired_replicas = desired
    status.replicas = p.pods.total
    status.ready_replicas = p.pods.ready
    pdb = await _reconcile_disruption_budget(p.rt, p.isvc, desired, p.related.disruption_budget)
    return pdb or wrote


async def _reconcile_provider_backed(p: Pass) -> bool:
    """An API-backed service has no pods: no Deployment, no PodDisruptionBudget (one left from
    when it served is deleted), no replicas. True if it wrote."""
    p.memo[NEXT_EVALUATION] = NEVER
    wrote = p.related.deployment is not None
    if wrote:  # a service that moved from serving to provider
        await p.rt.kube.delete_deployment(p.isvc.metadata.namespace, p.isvc.metadata.name)
    wrote = await _reconcile_disruption_budget(p.rt, p.isvc, 0, p.related.disruption_budget) or wrote
    p.status.replicas = p.status.ready_replicas = p.status.desired_replicas = 0
    _set(p.conditions, decide.provider_backed_scaling())
    return wrote


def _record_cold_starts(
    status: InferenceServiceStatus, scaling: Scaling, pods: list[dict[str, Any]]
) -> int | None:
    """Cold starts of pods Ready since the last look, into status; the lead time they give
    pre-warm."""
    kept = [ColdStartSample(c.pod, c.seconds, c.ready_at) for c in status.cold_starts]
    samples = measure_cold_starts(pods, kept)
    status.cold_starts = [
        ColdStart(pod=c.pod, seconds=round(c.seconds, 3), ready_at=c.ready_at) for c in samples
    ]
    lead = lead_time(scaling.cold_start_seconds, samples)
    status.cold_start_seconds = lead.seconds
    status.cold_start_source = lead.source
    return lead.seconds


def _evaluation_due(memo: kopf.Memo, scaling: Scaling, now: datetime) -> datetime | None:
    """The instant to evaluate, or None when it was evaluated already.

    At the interval's multiples, about that instant: every service with the same interval
    shares one answer per query (policy/cycles.py). The instant evaluated lives in the
    object's own memo; a restart only evaluates once more, from the memory in status.
    """
    due = when_due(
        interval=parse_duration(scaling.evaluation_interval),
        aligned_to_clock=True,
        last=memo.get(EVALUATED_AT),
        now=now,
    )
    memo[NEXT_EVALUATION] = due.next
    if not due.due:
        return None
    memo[EVALUATED_AT] = due.at
    return due.at


async def _decide_replicas(p: Pass, current: int, lead_seconds: int | None, at: datetime) -> ScalingDecision:
    """Observe the metrics at `at` and ask the scaling policy; the decision and the reading."""
    scaling = p.isvc.spec.scaling
    metric, demand, activity = await _observe_metric(p.rt, p.isvc, p.key, at, ready_since(p.related.pods))
    if isinstance(metric, Value):
        p.status.metric_value = f"{metric.value:.4g}"
    sized = scaling.metric.type == "SLO"  # sized for scaling.slo (controllers/slo.py)
    paused = _paused(p.isvc)
    observation = ScalingObservation(
        now=p.now,
        current_replicas=current,
        ready_replicas=p.pods.ready,
        starting_replicas=p.pods.starting,
        unschedulable_replicas=p.pods.unschedulable,
        metric=metric,
        demand=demand,
        activity=activity,
        cold_start_seconds=lead_seconds,
        load=await slo.observe_load(p.rt, p.isvc, p.key, at) if sized else None,
    )
    decision = decide_replicas(
        scaling,
        observation,
        slo.with_slo_memory(_scaling_memory(p.status), p.status),
        max_replicas_cap=p.mode.cap,
        paused=paused,
        profile=slo.serving_profile(p.isvc) if sized else None,
    )
    updates = decide.evaluation_conditions(
        decision, metric, scaling, p.status.metric_value, p.pods, paused=paused
    )
    _set(p.conditions, *updates)
    return decision


def _record_decision(p: Pass, decision: ScalingDecision, current: int, decided_before: bool) -> None:
    """The decision's memory into status; a reported change also as a record, a metric and an
    event."""
    status, dry_run = p.status, p.isvc.spec.scaling.enforcement == "DryRun"
    slo.write_slo_memory(status, decision)
    status.recommendations = [Recommendation(time=t, replicas=r) for t, r in decision.memory.recommendations]
    status.idle_since = decision.memory.idle_since
    status.active_prewarm = decision.active_prewarm or ""
    previous = status.desired_replicas if decided_before else None
    if not reported_change(dry_run, current, previous, decision.desired):
        return
    status.last_scale_time = decision.memory.last_scale_time or p.now
    record = ScalingDecisionRecord(
        time=p.now,
        from_replicas=current,
        to_replicas=decision.desired,
        reason=decision.reason,
        message=f"DryRun: {decision.message}" if dry_run else decision.message,
    )
    status.decisions = [*status.decisions, record][-DECISIONS_KEPT:]
    metrics.SCALING_DECISIONS.labels(*p.key, decision.reason).inc()
    _post(p.body, decide.scaling_event(decision, dry_run=dry_run, current=current, desired=decision.desired))


async def _reconcile_front_door(p: Pass) -> bool:
    """Apply the front door when it would differ from what was applied; True if it wrote."""
    via_gateway = l7_reason(p.isvc, p.chain, p.related.api_services) is not None
    front_door = children.with_hash(children.front_door(p.isvc, p.mode.backend, via_gateway=via_gateway))
    observed = p.related.front_door
    if children.applied_hash(observed) == children.applied_hash(front_door):
        return False
    await p.rt.kube.apply(front_door)
    if observed is not None:
        via = " through the gateway" if via_gateway else ""
        p.logger.info(
            "front door %s now points at %s%s", p.isvc.metadata.name, p.mode.backend.describe(), via
        )
    return True


async def _reconcile_gateway(
    rt: Runtime,
    namespace: str,
    services: Collection[Mapping[str, Any]],
    policies_by_target: kopf.Index[Key, dict[str, Any]],
    observed: Mapping[str, namespace_gateway.Observed],
    logger: kopf.Logger,
) -> Neighbours:
    """Apply the namespace's gateway while a service needs L7, delete it when none does.

    Once per tick per namespace, and it writes only what the watch shows missing or drifted
    (`observed`, from the gateway indexes; kube/gateway.py to_repair): a namespace of a thousand
    services costs one pass per tick and no API call, and someone deleting, scaling or editing
    the gateway sees it put back on the next tick.
    """
    checked = time.monotonic()
    known = rt.neighbours.get(namespace)
    if known is not None and checked - rt.gateway_checked.get(namespace, float("-inf")) < TICK / 2:
        return known[1]
    rt.gateway_checked[namespace] = checked
    neighbours = _neighbours(rt, namespace, services, policies_by_target)
    need = neighbours.gateway
    try:
        if need.owners:
            await _repair_gateway(rt, namespace, need, observed, logger)
        else:
            rt.gateway_generation.pop(namespace, None)
            for kind in reversed(namespace_gateway.KINDS):
                if kind in observed:
                    await rt.kube.delete(kind, namespace, gateway_manifests.NAME)
    except ApiException as error:
        # retried next tick; the services' own children must not wait on it
        logger.warning("gateway of %s not reconciled: %s %s", namespace, error.status, error.reason)
    return neighbours


async def _repair_gateway(
    rt: Runtime,
    namespace: str,
    need: namespace_gateway.GatewayNeed,
    observed: Mapping[str, namespace_gateway.Observed],
    logger: kopf.Logger,
) -> None:
    """Apply the gateway's objects that are missing or drifted from what `need` asks."""
    wanted = namespace_gateway.gateway_objects(namespace, rt.gateway_image, need)
    repair = namespace_gateway.to_repair(wanted, observed, rt.gateway_generation.get(namespace))
    for manifest in repair:
        stored = await rt.kube.apply(manifest)
        if manifest["kind"] == "Deployment":
            rt.gateway_generation[namespace] = int(stored["metadata"]["generation"])
    if repair:
        kinds = ", ".join(m["kind"] for m in repair)
        owners = ", ".join(n for n, _ in need.owners)
        logger.info("gateway of %s applied (%s) for %s", namespace, kinds, owners)


def _neighbours(
    rt: Runtime,
    namespace: str,
    services: Collection[Mapping[str, Any]],
    policies_by_target: kopf.Index[Key, dict[str, Any]],
) -> Neighbours:
    """What a service's pass needs to know of the other services of its namespace, decided
    again only when one of them, or their policies, changed spec, came or went.

    Keyed by generation, not resourceVersion: status writes (every service's economics, once a
    minute) do not change either answer. Reading a thousand services as models every tick, and
    listing the API-backed ones in every service's pass, was a third of the operator's CPU at
    rest at 1,000 services (BENCHMARKS.md).
    """
    policies = [p for s in services for p in policies_by_target.get((namespace, _name(s)), [])]
    inputs = (_specs(services), _specs(policies))
    known = rt.neighbours.get(namespace)
    if known is not None and known[0] == inputs:
        return known[1]
    neighbours = Neighbours(
        gateway=namespace_gateway.gateway_need(_with_chains(namespace, services, policies_by_target)),
        api_services=api_backed(services),
    )
    rt.neighbours[namespace] = (inputs, neighbours)
    return neighbours


def _name(body: Mapping[str, Any]) -> str:
    return str(body.get("metadata", {}).get("name", ""))


def _specs(bodies: Iterable[Mapping[str, Any]]) -> Specs:
    """Each object's identity, spec generation and whether it is being deleted: equal means no
    spec changed and none came or went."""
    return frozenset(
        (_name(b), str(m.get("uid", "")), int(m.get("generation") or 0), bool(m.get("deletionTimestamp")))
        for b in bodies
        for m in [b.get("metadata", {})]
    )


def _with_chains(
    namespace: str, services: Iterable[Mapping[str, Any]], policies_by_target: kopf.Index[Key, dict[str, Any]]
) -> list[tuple[InferenceService, list[FallbackStep]]]:
    """The namespace's valid, live services, each with its governing FallbackPolicy's chain."""
    parsed: list[tuple[InferenceService, list[FallbackStep]]] = []
    for body in services:
        isvc = read(InferenceService, body)
        if isinstance(isvc, InferenceService) and not body.get("metadata", {}).get("deletionTimestamp"):
            policy = governing_policy(list(policies_by_target.get((namespace, isvc.metadata.name), [])))
            parsed.append((isvc, policy_chain(read_policy(policy) if policy is not None else None)))
    return parsed


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
