"""Pure: every condition an InferenceService shows, and the events that tell its changes.

Each function takes what the controller gathered and returns :class:`ConditionUpdate` (type,
status, reason, message) or :class:`Event`; the controller only writes them. Ready is a chain
of small checks in cert-manager's readiness-policy style: each looks at one cause and returns
a condition or passes, and the first that answers wins, so the order is the precedence:

1. the service's own provider Secret is missing: it cannot serve at all;
2. an API-backed service is ready as soon as it is configured;
3. a FallbackPolicy serves its traffic elsewhere;
4. no replica is wanted (scaled to zero);
5. some replica is Ready;
6. the pods lack a Secret, ConfigMap or PriorityClass they name (the user can fix that);
7. the Deployment cannot create pods at all;
8. the pods cannot start (image, arguments, resources);
9. otherwise the replicas are still starting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aipolicy.api import conditions as kinds
from aipolicy.api.inferenceservice import Scaling
from aipolicy.observe.pods import PodCounts, missing_reference
from aipolicy.observe.unschedulable import UNSCHEDULABLE
from aipolicy.policy.mode import ModeDecision
from aipolicy.policy.observations import Reading, Unavailable
from aipolicy.policy.outcome import ConditionUpdate, Event
from aipolicy.policy.scaling import ScalingDecision
from aipolicy.policy.secrets import SecretsVerdict

PAUSE_ANNOTATION = "aipolicy.dev/autoscaling-paused"
#: Scaling decisions whose event is a Warning.
WARNING_DECISIONS = frozenset({"CapacityLimited"})


@dataclass(frozen=True)
class ReadyFacts:
    """What Ready depends on, gathered in one evaluation."""

    namespace: str
    provider_backed: bool
    active_backend: str
    mode: ModeDecision
    desired_replicas: int
    pods: PodCounts
    #: None when no provider names a Secret, or Prometheus cannot say.
    secrets: SecretsVerdict | None = None


ReadyCheck = Callable[[ReadyFacts], ConditionUpdate | None]


def _ready(status: bool, reason: str, message: str) -> ConditionUpdate:
    return ConditionUpdate(kinds.READY, "True" if status else "False", reason, message)


def own_secret_missing(facts: ReadyFacts) -> ConditionUpdate | None:
    verdict = facts.secrets
    if verdict is None or not verdict.own_missing:
        return None
    return _ready(False, verdict.reason, verdict.message)


def provider_configured(facts: ReadyFacts) -> ConditionUpdate | None:
    if not facts.provider_backed:
        return None
    return _ready(True, kinds.PROVIDER_CONFIGURED, f"traffic goes to {facts.active_backend}")


def serving_from_fallback(facts: ReadyFacts) -> ConditionUpdate | None:
    if facts.mode.mode != "Fallback":
        return None
    return _ready(True, kinds.SERVING_FROM_FALLBACK, facts.mode.reason)


def scaled_to_zero(facts: ReadyFacts) -> ConditionUpdate | None:
    if facts.desired_replicas != 0:
        return None
    return _ready(True, kinds.SCALED_TO_ZERO, "no replicas are wanted now; demand starts one")


def replicas_ready(facts: ReadyFacts) -> ConditionUpdate | None:
    pods = facts.pods
    if pods.ready == 0:
        return None
    failing = f"; {pods.failing} cannot start ({pods.failing_message})" if pods.failing else ""
    message = f"{pods.ready} of {facts.desired_replicas} replicas are ready{failing}"
    return _ready(True, kinds.REPLICAS_READY, message)


def reference_missing(facts: ReadyFacts) -> ConditionUpdate | None:
    pods = facts.pods
    missing = missing_reference(pods.failing_message) if pods.failing else None
    if missing is None:
        return None
    return _ready(
        False,
        missing.reason,
        f"{missing.describe(facts.namespace)}, and spec.serving needs it: "
        f"0 of {facts.desired_replicas} replicas are ready and {pods.failing} cannot start "
        f"({pods.failing_message})",
    )


def pods_not_created(facts: ReadyFacts) -> ConditionUpdate | None:
    pods = facts.pods
    if not pods.not_created or pods.total != 0:
        return None
    missing = missing_reference(pods.not_created)
    needed = f"{missing.describe(facts.namespace)}, and spec.serving needs it: " if missing else ""
    return _ready(
        False,
        missing.reason if missing else kinds.PODS_NOT_CREATED,
        f"{needed}the Deployment cannot create pods ({pods.not_created})",
    )


def replicas_failing(facts: ReadyFacts) -> ConditionUpdate | None:
    pods = facts.pods
    if not pods.failing:
        return None
    return _ready(
        False,
        kinds.REPLICAS_FAILING,
        f"0 of {facts.desired_replicas} replicas are ready and {pods.failing} cannot start: "
        f"{pods.failing_message}. Check spec.serving (image, args, resources).",
    )


READY_CHECKS: tuple[ReadyCheck, ...] = (
    own_secret_missing,
    provider_configured,
    serving_from_fallback,
    scaled_to_zero,
    replicas_ready,
    reference_missing,
    pods_not_created,
    replicas_failing,
)


def ready(facts: ReadyFacts) -> ConditionUpdate:
    """The first check that answers (see the module's docstring for the order)."""
    for check in READY_CHECKS:
        if (answer := check(facts)) is not None:
            return answer
    return _ready(False, kinds.NO_READY_REPLICAS, f"0 of {facts.desired_replicas} replicas are ready yet")


def degraded(mode: ModeDecision) -> ConditionUpdate:
    if mode.mode in ("Degraded", "Suspended"):
        return ConditionUpdate(kinds.DEGRADED, "True", kinds.mode_reason(mode.mode), mode.reason)
    return ConditionUpdate(
        kinds.DEGRADED, "False", kinds.NOT_DEGRADED, "the service runs with its normal settings"
    )


def policies_valid(mode: ModeDecision) -> ConditionUpdate:
    if mode.unreadable:
        message = "; ".join(u.describe() for u in mode.unreadable)
        return ConditionUpdate(kinds.POLICIES_VALID, "False", kinds.POLICY_UNREADABLE, message)
    return ConditionUpdate(
        kinds.POLICIES_VALID,
        "True",
        kinds.POLICIES_READABLE,
        "every AIBudget and FallbackPolicy that governs the service can be read",
    )


def secrets_available(verdict: SecretsVerdict | None) -> ConditionUpdate | None:
    """None keeps the condition's last value (Prometheus could not say, or no Secret named)."""
    if verdict is None:
        return None
    return ConditionUpdate(kinds.SECRETS_AVAILABLE, verdict.status, verdict.reason, verdict.message)


def provider_backed_scaling() -> ConditionUpdate:
    return ConditionUpdate(
        kinds.SCALING_ACTIVE,
        "False",
        kinds.PROVIDER_BACKED,
        "an API-backed service has no replicas to scale",
    )


def scaling_active(decision: ScalingDecision, *, paused: bool, dry_run: bool) -> ConditionUpdate:
    if paused:
        message = f"annotation {PAUSE_ANNOTATION}=true pauses autoscaling"
        return ConditionUpdate(kinds.SCALING_ACTIVE, "False", kinds.PAUSED, message)
    advisory = "DryRun: replicas are not changed; " if dry_run else ""
    return ConditionUpdate(kinds.SCALING_ACTIVE, "True", decision.reason, f"{advisory}{decision.message}")


def metrics_available(
    decision: ScalingDecision, metric: Reading, scaling: Scaling, metric_value: str
) -> ConditionUpdate:
    """`metric_value`: status.metricValue, the last value read (kept when this one failed)."""
    if decision.metrics_available:
        return ConditionUpdate(
            kinds.METRICS_AVAILABLE,
            "True",
            kinds.METRICS_FOUND,
            f"{scaling.metric.type} is {metric_value}",
        )
    message = metric.message if isinstance(metric, Unavailable) else decision.message
    return ConditionUpdate(
        kinds.METRICS_AVAILABLE,
        "False",
        kinds.metrics_reason(decision.metrics_reason),
        f"{message}; policy {scaling.on_metrics_unavailable}",
    )


def capacity_available(decision: ScalingDecision, pods: PodCounts) -> ConditionUpdate:
    if decision.capacity_available:
        return ConditionUpdate(
            kinds.CAPACITY_AVAILABLE, "True", kinds.CAPACITY_FOUND, "every replica could be scheduled"
        )
    # the scheduler's reason, not always GPUs: memory, CPU, a taint, a selector
    return ConditionUpdate(
        kinds.CAPACITY_AVAILABLE,
        "False",
        pods.unschedulable_reason or UNSCHEDULABLE,
        f"{decision.capacity_shortfall} replica(s) cannot be scheduled: {pods.unschedulable_message}".strip(),
    )


def evaluation_conditions(
    decision: ScalingDecision,
    metric: Reading,
    scaling: Scaling,
    metric_value: str,
    pods: PodCounts,
    *,
    paused: bool,
) -> list[ConditionUpdate]:
    """The conditions a scaling evaluation decides (between evaluations they keep their value)."""
    return [
        metrics_available(decision, metric, scaling, metric_value),
        capacity_available(decision, pods),
        scaling_active(decision, paused=paused, dry_run=scaling.enforcement == "DryRun"),
    ]


def mode_event(previous: str, mode: ModeDecision) -> Event | None:
    """One event per change of mode (it also tells Degraded's change: see told_elsewhere)."""
    if previous == mode.mode:
        return None
    return Event(
        "Warning" if mode.mode in ("Degraded", "Suspended") else "Normal",
        kinds.mode_reason(mode.mode),
        mode.reason or f"back to {mode.mode} mode",
    )


def scaling_event(decision: ScalingDecision, *, dry_run: bool, current: int, desired: int) -> Event:
    """The event of a reported scaling decision (policy/scaling.reported_change says when)."""
    if not dry_run:
        change = f"{current} -> {desired} replicas"
    elif desired != current:
        change = f"would scale {current} -> {desired} replicas (DryRun)"
    else:
        change = f"would keep the {current} replicas (DryRun)"
    return Event(
        "Warning" if decision.reason in WARNING_DECISIONS else "Normal",
        decision.reason,
        f"{change}: {decision.message}",
    )
