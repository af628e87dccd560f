"""Where one request goes: a pure function of the namespace's objects as stored in the API.

The gateway never decides a mode itself: it reads what the operator wrote (budgets'
``status.activeAction``, fallback policies' ``status.activeStep``) and the pods' readiness,
and turns it into one of:

* :class:`Forward` to a :class:`PodsTarget` (a service's Ready pods) or a
  :class:`ProviderTarget` (a base URL, the provider's model name, the Secret of its key);
* :class:`Hold`: no Ready replica yet; the activator queues the request and asks again on
  every change (scale from zero);
* :class:`Refuse`: an OpenAI-shaped error (429 for a suspended budget, naming it).

Modes, on the request (as ``policy.mode.decide_mode`` decides them):

* Suspended (an enforcing budget selecting the service has activeAction Suspend): 429 with
  the budget, its spend, limit and reset time, and Retry-After; no backend sees it.
* Fallback (the service's policy has an active step): that step serves: another
  InferenceService (its own backend, its model name) or a provider.
* Degraded (a budget's Degrade, or a policy's ``degraded`` step): the service's own pods,
  which the operator caps at ``spec.degraded.maxReplicas``; at 0 the request gets 503.

Besides the modes: with no Ready replica and ``coldStartBridge``, the chain serves at once;
with ``frontDoor.overflow: Fallback``, requests above ``maxInFlightPerReplica`` per Ready
replica go to the chain. With ``scaling.metric.type: SLO`` and ``scaling.slo.overflow``, each
request goes to the Ready pod :func:`aipolicy.policy.slo.route` predicts fastest for it, or to
the overflow InferenceService when none would answer within the SLO's budget (given the pods'
loads as the gateway sees them, :mod:`aipolicy.gateway.podload`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aipolicy.api.common import LabelSelector, parse_duration
from aipolicy.api.fallbackpolicy import FallbackPolicySpec, FallbackPolicyStatus, FallbackStep
from aipolicy.api.inferenceservice import FrontDoor, InferenceServiceSpec
from aipolicy.policy import backends
from aipolicy.policy.serving import spec_serving_profile
from aipolicy.policy.slo import ReplicaLoad
from aipolicy.policy.slo import route as slo_route

__all__ = [
    "Decision",
    "Endpoint",
    "Forward",
    "Hold",
    "PodsTarget",
    "Prices",
    "ProviderTarget",
    "Refuse",
    "Snapshot",
    "find_service",
    "known_models",
    "route",
]


@dataclass(frozen=True)
class Endpoint:
    """A Ready pod of a service."""

    pod: str
    ip: str


@dataclass(frozen=True)
class Snapshot:
    """One namespace as the gateway's watches last saw it (objects as stored in the API)."""

    namespace: str
    services: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    policies: tuple[Mapping[str, Any], ...] = ()
    budgets: tuple[Mapping[str, Any], ...] = ()
    ready: Mapping[str, tuple[Endpoint, ...]] = field(default_factory=dict)
    #: Parsed specs by object identity: a snapshot is never changed after it is made (the store
    #: makes a new one on every event), so each object is validated once, not per request.
    parsed: dict[tuple[str, int], Any] = field(default_factory=dict, compare=False, repr=False)

    def memo(self, what: str, obj: Mapping[str, Any], parse: Any) -> Any:
        key = (what, id(obj))
        if key not in self.parsed:
            try:
                self.parsed[key] = parse(obj)
            except ValueError:
                self.parsed[key] = None
        return self.parsed[key]


@dataclass(frozen=True)
class Prices:
    """Per million tokens, in ``currency``; zero when the backend has no token price."""

    input_per_million: Decimal = Decimal(0)
    output_per_million: Decimal = Decimal(0)
    currency: str = "USD"

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        return (
            prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million
        ) / 1_000_000


@dataclass(frozen=True)
class PodsTarget:
    service: str
    model: str
    port: int
    endpoints: tuple[Endpoint, ...]
    prices: Prices

    @property
    def label(self) -> str:
        return backends.service_label(self.service)


@dataclass(frozen=True)
class ProviderTarget:
    """An OpenAI-compatible API: requests go to ``base_url`` + the path after /v1."""

    base_url: str
    model: str
    secret: str | None
    prices: Prices
    service: str | None = None  # an API-backed InferenceService, when it is one

    @property
    def label(self) -> str:
        if self.service is not None:
            return backends.service_label(self.service)
        return backends.provider_label(str(backends.provider_host(self.base_url)))


Target = PodsTarget | ProviderTarget


@dataclass(frozen=True)
class Forward:
    service: str  # the InferenceService asked for
    target: Target
    mode: str  # Normal, Degraded, Fallback; or Overflow / ColdStartBridge for those routes


@dataclass(frozen=True)
class Hold:
    """No Ready replica of ``waiting_for``: queue (bounded) and route again on a change."""

    service: str
    waiting_for: str
    queue_size: int
    timeout_s: float


@dataclass(frozen=True)
class Refuse:
    status: int
    message: str
    kind: str
    code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": None, "code": self.code}}


Decision = Forward | Hold | Refuse


def _spec(snapshot: Snapshot, obj: Mapping[str, Any]) -> InferenceServiceSpec | None:
    spec: InferenceServiceSpec | None = snapshot.memo(
        "isvc", obj, lambda o: InferenceServiceSpec.model_validate(o.get("spec") or {})
    )
    return spec


def _selector(snapshot: Snapshot, budget: Mapping[str, Any]) -> LabelSelector | None:
    selector: LabelSelector | None = snapshot.memo(
        "selector",
        budget,
        lambda b: LabelSelector.model_validate((b.get("spec") or {}).get("selector") or {}),
    )
    return selector


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def known_models(snapshot: Snapshot) -> list[str]:
    """The model names a client may ask for: each service's spec.model and its name."""
    names: set[str] = set()
    for name, obj in snapshot.services.items():
        names.add(name)
        model = (obj.get("spec") or {}).get("model")
        if isinstance(model, str):
            names.add(model)
    return sorted(names)


def find_service(snapshot: Snapshot, model: str) -> str | None:
    """The InferenceService a request's ``model`` names: by spec.model, else by name.

    Two services of one model: the first by name wins (a model is normally served once per
    namespace; the other is still reachable by its own name).
    """
    for name in sorted(snapshot.services):
        if (snapshot.services[name].get("spec") or {}).get("model") == model:
            return name
    return model if model in snapshot.services else None


def _money(text: str | None) -> Decimal:
    try:
        return Decimal(text) if text else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _own_target(snapshot: Snapshot, name: str, spec: InferenceServiceSpec) -> Target:
    p = spec.pricing
    prices = Prices(_money(p.input_per_million_tokens), _money(p.output_per_million_tokens), p.currency)
    if spec.provider is not None:
        return ProviderTarget(
            base_url=spec.provider.url,
            model=spec.provider.model or spec.model,
            secret=spec.provider.api_key_secret,
            prices=prices,
            service=name,
        )
    assert spec.serving is not None
    return PodsTarget(name, spec.model, spec.serving.port, snapshot.ready.get(name, ()), prices)


def _suspending_budget(snapshot: Snapshot, name: str) -> Mapping[str, Any] | None:
    return next(iter(_budgets_acting(snapshot, name, "Suspend")), None)


def _degrading(snapshot: Snapshot, name: str) -> bool:
    return bool(_budgets_acting(snapshot, name, "Degrade"))


def _budgets_acting(snapshot: Snapshot, name: str, action: str) -> list[Mapping[str, Any]]:
    """The enforced budgets that select the service and whose active action is `action`, by
    name."""
    labels = _labels(snapshot.services[name])
    acting = []
    for budget in sorted(snapshot.budgets, key=lambda b: b["metadata"]["name"]):
        spec = budget.get("spec") or {}
        if spec.get("enforcement", "Enforce") != "Enforce":
            continue
        selector = _selector(snapshot, budget)
        if selector is None:
            continue
        if selector.matches(labels) and (budget.get("status") or {}).get("activeAction") == action:
            acting.append(budget)
    return acting


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _suspended(budget: Mapping[str, Any], service: str, now: datetime) -> Refuse:
    name = budget["metadata"]["name"]
    spec, status = budget.get("spec") or {}, budget.get("status") or {}
    currency = spec.get("currency", "USD")
    spent, limit = status.get("spent", "?"), spec.get("limit", "?")
    end = _parse_time(status.get("periodEnd"))
    if end is not None:
        retry = max(1, math.ceil((end - now).total_seconds()))
        resets = f"; the period resets at {end.isoformat().replace('+00:00', 'Z')}"
    else:  # a rolling period frees up as old spend leaves the window: ask again soon
        retry = 60
        resets = "; it is a rolling period, spend leaves the window over time"
    return Refuse(
        429,
        f"AIBudget {name} is exceeded: spent {spent} of {limit} {currency} this period{resets}. "
        f"InferenceService {service} is suspended until then.",
        "insufficient_quota",
        "budget_exceeded",
        {"Retry-After": str(retry)},
    )


def _policy_of(snapshot: Snapshot, name: str) -> tuple[FallbackPolicySpec, FallbackPolicyStatus] | None:
    for policy in sorted(snapshot.policies, key=lambda p: p["metadata"]["name"]):
        if (policy.get("spec") or {}).get("target") != name:
            continue
        parsed = snapshot.memo(
            "policy",
            policy,
            lambda p: (
                FallbackPolicySpec.model_validate(p.get("spec") or {}),
                FallbackPolicyStatus.model_validate(p.get("status") or {}),
            ),
        )
        if parsed is not None and parsed[0].enforcement == "Enforce":
            result: tuple[FallbackPolicySpec, FallbackPolicyStatus] = parsed
            return result
    return None


def _step_target(snapshot: Snapshot, step: FallbackStep, currency: str) -> Target | None:
    """The backend of a chain step (None for ``degraded``, or a service that is gone)."""
    if step.inference_service is not None:
        obj = snapshot.services.get(step.inference_service)
        spec = _spec(snapshot, obj) if obj is not None else None
        return None if spec is None else _own_target(snapshot, step.inference_service, spec)
    if step.provider is not None:
        p = step.provider
        prices = Prices(_money(p.input_per_million_tokens), _money(p.output_per_million_tokens), currency)
        return ProviderTarget(p.url, p.model or "", p.api_key_secret, prices)
    return None


def _usable(snapshot: Snapshot, target: Target) -> bool:
    """Could this backend take a request now (Ready pods, or an API that is not suspended)?"""
    service = target.service
    if (
        service is not None
        and service in snapshot.services
        and _suspending_budget(snapshot, service) is not None
    ):
        return False
    return isinstance(target, ProviderTarget) or bool(target.endpoints)


def _first_usable_step(snapshot: Snapshot, spec: FallbackPolicySpec, currency: str) -> Target | None:
    for step in spec.chain:
        target = _step_target(snapshot, step, currency)
        if target is not None and _usable(snapshot, target):
            return target
    return None


def _with_model(target: Target, requested_model: str) -> Target:
    """A provider step without a model name keeps the one the client asked for."""
    if isinstance(target, ProviderTarget) and not target.model:
        return ProviderTarget(target.base_url, requested_model, target.secret, target.prices, target.service)
    return target


def known_backends(snapshot: Snapshot) -> set[tuple[str, str, str]]:
    """(service, backend label, currency) of every backend a request for a service could be
    metered at now: its own, and each step of its policy's chain.

    The gateway exports these at zero before any request, as Prometheus asks of counters: a
    series first seen with its first request already counted loses that request to
    ``increase()``, and a budget would never count a fallback's first minutes of spend.
    """
    known: set[tuple[str, str, str]] = set()
    for name, obj in snapshot.services.items():
        spec = _spec(snapshot, obj)
        if spec is None:
            continue
        currency = spec.pricing.currency
        targets = [_own_target(snapshot, name, spec)]
        policy = _policy_of(snapshot, name)
        if policy is not None:
            targets += [t for step in policy[0].chain if (t := _step_target(snapshot, step, currency))]
        known |= {(name, target.label, currency) for target in targets}
    return known


def route(
    snapshot: Snapshot,
    name: str,
    now: datetime,
    in_flight: Mapping[str, int] | None = None,
    *,
    pod_loads: Mapping[str, ReplicaLoad] | None = None,
    prompt_tokens: int = 0,
) -> Decision:
    """Where a request for InferenceService ``name`` goes now.

    ``in_flight``: requests the gateway has at each service's pods now (for overflow).
    ``pod_loads`` (per pod name; a pod not listed is idle) and ``prompt_tokens`` (the request's):
    for SLO overflow; without them a service's own pods serve as before.
    """
    obj = snapshot.services.get(name)
    spec = _spec(snapshot, obj) if obj is not None else None
    if obj is None or spec is None:
        return Refuse(
            404, f"InferenceService {name} is gone or invalid", "invalid_request_error", "model_not_found"
        )
    budget = _suspending_budget(snapshot, name)
    if budget is not None:
        return _suspended(budget, name, now)
    own = _own_target(snapshot, name, spec)
    currency = spec.pricing.currency
    policy = _policy_of(snapshot, name)
    mode = "Degraded" if _degrading(snapshot, name) else "Normal"
    if policy is not None:
        pspec, pstatus = policy
        if pstatus.active and 0 <= pstatus.active_step < len(pspec.chain):
            step = pspec.chain[pstatus.active_step]
            if step.degraded:
                mode = "Degraded"
            else:
                target = _step_target(snapshot, step, currency)
                if target is not None:
                    return _serve(snapshot, name, _with_model(target, spec.model), "Fallback")
    if mode == "Degraded" and spec.degraded.max_replicas == 0 and isinstance(own, PodsTarget):
        return Refuse(
            503,
            f"InferenceService {name} is in degraded mode with no replicas (spec.degraded.maxReplicas: 0)",
            "service_unavailable",
            "degraded",
        )
    if isinstance(own, PodsTarget) and policy is not None:
        pspec, _ = policy
        if not own.endpoints and pspec.cold_start_bridge:
            bridge = _first_usable_step(snapshot, pspec, currency)
            if bridge is not None:
                return Forward(name, _with_model(bridge, spec.model), "ColdStartBridge")
        if own.endpoints and _over_bound(spec.front_door, own, (in_flight or {}).get(name, 0)):
            spill = _first_usable_step(snapshot, pspec, currency)
            if spill is not None:
                return Forward(name, _with_model(spill, spec.model), "Overflow")
    if isinstance(own, PodsTarget) and own.endpoints and pod_loads is not None:
        chosen = _slo_route(snapshot, name, spec, own, mode, pod_loads, prompt_tokens)
        if chosen is not None:
            return chosen
    return _serve(snapshot, name, own, mode)


def _slo_route(
    snapshot: Snapshot,
    name: str,
    spec: InferenceServiceSpec,
    own: PodsTarget,
    mode: str,
    pod_loads: Mapping[str, ReplicaLoad],
    prompt_tokens: int,
) -> Forward | None:
    """SLO overflow: the pod policy.slo.route picks, or the overflow service; None when the
    service has no SLO overflow (or no profile, or its overflow service cannot serve now)."""
    slo = spec.scaling.slo
    if spec.scaling.metric.type != "SLO" or slo is None or slo.overflow is None:
        return None
    profile = snapshot.memo("profile", snapshot.services[name], lambda _: spec_serving_profile(spec))
    if profile is None:
        return None
    idle = ReplicaLoad(0.0, 0)
    loads = [pod_loads.get(e.pod, idle) for e in own.endpoints]
    choice = slo_route(slo, profile, loads, prompt_tokens)
    if choice is not None:
        return Forward(name, replace(own, endpoints=(own.endpoints[choice],)), mode)
    target_name = slo.overflow.inference_service
    obj = snapshot.services.get(target_name)
    target_spec = _spec(snapshot, obj) if obj is not None else None
    if target_spec is None or target_spec.provider is None:
        return None  # the CRD's doc asks for an API-backed service; anything else: own pods
    target = _own_target(snapshot, target_name, target_spec)
    return Forward(name, target, "Overflow") if _usable(snapshot, target) else None


def _over_bound(front_door: FrontDoor, own: PodsTarget, in_flight: int) -> bool:
    bound = front_door.max_in_flight_per_replica
    return front_door.overflow == "Fallback" and bound is not None and in_flight >= bound * len(own.endpoints)


def _serve(snapshot: Snapshot, name: str, target: Target, mode: str) -> Decision:
    if isinstance(target, PodsTarget) and not target.endpoints:
        waiting_obj = snapshot.services.get(target.service)
        waiting_spec = _spec(snapshot, waiting_obj) if waiting_obj is not None else None
        fd = waiting_spec.front_door if waiting_spec is not None else FrontDoor()
        return Hold(name, target.service, fd.queue_size, parse_duration(fd.queue_timeout).total_seconds())
    return Forward(name, target, mode)
