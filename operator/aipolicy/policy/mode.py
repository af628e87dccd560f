"""Pure: an InferenceService's mode, replica cap and backend, from what governs it.

Two kinds of object govern a service's mode, and their status is the state:

1. every AIBudget of its namespace that selects it and enforces: its status.activeAction
   (Degrade or Suspend) caps the replicas;
2. the FallbackPolicy that governs it (policy/conflicts.py): its status.activeStep, a chain
   step that sends the traffic elsewhere or degrades the service in place.

Both are read into the small typed views below (:func:`read_budget`, :func:`read_policy`).
One that cannot be read is not dropped in silence: it becomes :class:`Unreadable`, is left out
of the decision (an unreadable object cannot say what it asks), and the decision carries it so
that the service reports it (its PoliciesValid condition, one event per change).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from aipolicy.api.common import LabelSelector
from aipolicy.api.fallbackpolicy import FallbackPolicySpec, FallbackPolicyStatus, FallbackStep
from aipolicy.api.inferenceservice import InferenceService, Mode
from aipolicy.api.reading import describe
from aipolicy.policy.backends import Backend


@dataclass(frozen=True)
class BudgetView:
    """What of an AIBudget the mode depends on."""

    name: str
    enforced: bool
    selector: LabelSelector
    active_action: str  # "", Notify, Degrade or Suspend


@dataclass(frozen=True)
class PolicyView:
    """What of a FallbackPolicy the mode, the front door and the Secrets depend on."""

    name: str
    enforced: bool
    chain: tuple[FallbackStep, ...]
    #: The step in force; None while the target serves.
    active_step: FallbackStep | None


@dataclass(frozen=True)
class Unreadable:
    """An AIBudget or FallbackPolicy whose fields the mode needs do not parse."""

    kind: Literal["AIBudget", "FallbackPolicy"]
    name: str
    message: str

    def describe(self) -> str:
        return f"{self.kind} {self.name} is ignored: {self.message}"


def _name(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("name", ""))


def read_budget(body: Mapping[str, Any]) -> BudgetView | Unreadable:
    """Only the fields the mode reads are parsed: a budget whose other fields are wrong (its
    own controller reports those) still caps the services it selects."""
    spec = body.get("spec") or {}
    try:
        selector = LabelSelector.model_validate(spec.get("selector") or {})
    except ValidationError as error:
        return Unreadable("AIBudget", _name(body), f"spec.selector: {describe(error)}")
    return BudgetView(
        name=_name(body),
        enforced=spec.get("enforcement", "Enforce") == "Enforce",
        selector=selector,
        active_action=str((body.get("status") or {}).get("activeAction") or ""),
    )


def read_policy(body: Mapping[str, Any]) -> PolicyView | Unreadable:
    """A status that does not parse (an older operator's) reads as inactive, as api/reading.py
    reads any status: the policy's own controller rewrites it on its next evaluation."""
    try:
        spec = FallbackPolicySpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        return Unreadable("FallbackPolicy", _name(body), describe(error))
    try:
        status = FallbackPolicyStatus.model_validate(body.get("status") or {})
    except ValidationError:
        status = FallbackPolicyStatus()
    in_range = 0 <= status.active_step < len(spec.chain)
    return PolicyView(
        name=_name(body),
        enforced=spec.enforcement == "Enforce",
        chain=tuple(spec.chain),
        active_step=spec.chain[status.active_step] if status.active and in_range else None,
    )


def policy_chain(policy: PolicyView | Unreadable | None) -> list[FallbackStep]:
    """The governing policy's chain; none for no policy or an unreadable one."""
    return list(policy.chain) if isinstance(policy, PolicyView) else []


@dataclass(frozen=True)
class ModeDecision:
    mode: Mode
    reason: str
    cap: int | None
    backend: Backend
    #: Governing objects left out because they cannot be read.
    unreadable: tuple[Unreadable, ...] = ()


def own_backend(isvc: InferenceService) -> Backend:
    if isvc.spec.provider is not None:
        return Backend.provider(isvc.spec.provider.url)
    return Backend(service=isvc.metadata.name)


def serving_backend(isvc: InferenceService, backend: Backend) -> str:
    """status.backend: "self" while the service's own pods (or provider) take its traffic,
    else the fallback that does. The mode alone cannot say it: Degraded by a budget and switched
    by a FallbackPolicy at once shows as Degraded."""
    return "self" if backend == own_backend(isvc) else backend.describe()


def _budget_actions(isvc: InferenceService, budgets: Sequence[BudgetView]) -> tuple[str | None, str | None]:
    """(the budget that suspends the service, the first that degrades it), if any."""
    suspend_by = degrade_by = None
    for budget in budgets:
        if not budget.enforced or not budget.selector.matches(isvc.metadata.labels):
            continue
        if budget.active_action == "Suspend":
            suspend_by = budget.name
        elif budget.active_action == "Degrade":
            degrade_by = degrade_by or budget.name
    return suspend_by, degrade_by


def _fallback(policy: PolicyView | None) -> tuple[Backend | None, str | None]:
    """(the backend the policy sends traffic to, or None to degrade in place; why), or
    (None, None) when no enforced policy acts."""
    if policy is None or not policy.enforced or policy.active_step is None:
        return None, None
    backend = Backend.of_step(policy.active_step)
    if backend is None:
        return None, f"FallbackPolicy {policy.name} chose degraded mode"
    target = policy.active_step.inference_service or backend.describe()
    return backend, f"FallbackPolicy {policy.name} sent traffic to {target}"


def decide_mode(
    isvc: InferenceService,
    budgets: Sequence[BudgetView | Unreadable],
    policy: PolicyView | Unreadable | None,
) -> ModeDecision:
    """Mode and replica cap from the budgets selecting this service and its fallback policy.

    Suspend by any budget wins, then Degrade (by a budget or a degraded chain step), then a
    switch to another backend; the backend a policy chose holds in every mode.
    """
    unreadable = tuple(b for b in [*budgets, policy] if isinstance(b, Unreadable))
    readable_policy = policy if isinstance(policy, PolicyView) else None
    suspend_by, degrade_by = _budget_actions(isvc, [b for b in budgets if isinstance(b, BudgetView)])
    own = own_backend(isvc)
    switched_to, fallback_reason = _fallback(readable_policy)
    backend = switched_to or own
    if suspend_by:
        return ModeDecision("Suspended", f"AIBudget {suspend_by} is exceeded", 0, backend, unreadable)
    if degrade_by or (fallback_reason and switched_to is None):
        why = f"AIBudget {degrade_by} asks for degraded mode" if degrade_by else str(fallback_reason)
        return ModeDecision("Degraded", why, isvc.spec.degraded.max_replicas, backend, unreadable)
    if fallback_reason:
        return ModeDecision("Fallback", fallback_reason, None, backend, unreadable)
    return ModeDecision("Normal", "", None, own, unreadable)
