"""Budgets, fallback and the gateway's routing on a simulated service: the operator's own functions.

A :class:`Governance` sits beside one simulated self-hosted InferenceService and does, on the
virtual clock, what three controllers and the gateway do live, each through its pure core:

* every AIBudget selecting a service of the namespace is evaluated at its
  ``evaluationInterval`` (clock-aligned, as the budget controller does): the interval queried is
  :func:`aipolicy.policy.budget.query_interval`'s, each service's cost over it is
  :func:`aipolicy.policy.spend.service_cost` of its :func:`~aipolicy.policy.spend.billed_pricing`
  (the simulated service's GPU-hours from its pods' lifetimes, an API-backed service's tokens
  from the requests the gateway sent it), the burn rate is the same costs over
  ``forecast.window``, and :func:`~aipolicy.policy.budget.evaluate_budget` and
  :func:`~aipolicy.policy.budget.updated_status` give the next status, which is all the memory
  there is (spend so far, checkpoint, hysteresis, thresholds notified);
* the FallbackPolicy targeting the service is evaluated every ``evaluationInterval`` by
  :func:`aipolicy.policy.fallback.decide_fallback`, fed the observations the fallback
  controller makes (error rate and latency from the simulated scrapes over the trigger's
  window, ready replicas, the budget's simulated state), its status carried from one decision
  to the next (trigger timers, recovery hold, last switch);
* the service's mode and replica cap come from the operator's own ``policy.mode.decide_mode`` on those
  statuses, and the cap reaches the Deployment through ``decide_replicas`` at the next scaling
  evaluation, as live;
* every request is routed by :func:`aipolicy.gateway.routing.route` on a snapshot of the
  objects as the gateway would see them: 429 while Suspended (a miss), 503 in degraded mode
  with no replica, the active chain step, the cold-start bridge, ``frontDoor`` overflow.

What is not simulated is said, never invented: chain steps and budget members that are
self-hosted services other than the one simulated (counted as not Ready, and as spending 0),
PromQL triggers and cost sources (unavailable). GPU shortage is simulated when the run has a
GPU capacity (``aipolicy simulate --gpus``): replicas beyond it stay Pending.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from aipolicy.api.aibudget import AIBudget, AIBudgetStatus
from aipolicy.api.common import parse_duration
from aipolicy.api.fallbackpolicy import FallbackPolicy, FallbackPolicyStatus, Trigger
from aipolicy.api.inferenceservice import InferenceService, InferenceServiceStatus, ScalingDecisionRecord
from aipolicy.gateway.routing import Endpoint, Forward, Hold, ProviderTarget, Refuse, Snapshot, route
from aipolicy.policy.budget import evaluate_budget, query_interval, updated_status
from aipolicy.policy.fallback import BackendHealth, TriggerObservation, decide_fallback, service_step_health
from aipolicy.policy.mode import decide_mode, read_budget, read_policy
from aipolicy.policy.observations import Reading, Unavailable, Value
from aipolicy.policy.slo import ReplicaLoad
from aipolicy.policy.spend import ServiceCost, ServiceUsage, billed_pricing, service_cost
from aipolicy.whatif.engine import Cluster, Replica, Request
from aipolicy.whatif.manifests import Manifests

__all__ = ["ApiLatency", "Governance", "GovernanceReport"]

MODES = ("Normal", "Degraded", "Fallback", "Suspended")


@dataclass(frozen=True)
class ApiLatency:
    """How fast an API provider answers (assumed, docs/serving-model.md)."""

    base_latency_s: float = 0.4
    input_tokens_per_s: float = 20_000.0
    output_tokens_per_s: float = 80.0


@dataclass(frozen=True)
class GovernanceReport:
    """What the report shows of a governed run."""

    mode_seconds: Mapping[str, float]
    budgets: tuple[tuple[str, Decimal, Decimal, str, str], ...]
    """(name, spent, limit, currency, final state) per budget."""
    fallback_switches: int
    fallback_history: tuple[tuple[float, str, str], ...]
    """(seconds into the run, the backend switched to, the reason) per switch."""
    fallback_seconds: float
    """Time the policy had a chain step serving (also while the mode says Degraded or Suspended)."""
    refused: Mapping[int, int]
    """Requests refused by the gateway, by HTTP status (429 suspended, 503 degraded to 0)."""
    notes: tuple[str, ...] = ()


def _body(obj: InferenceService | AIBudget | FallbackPolicy) -> dict[str, Any]:
    """The object as stored in the API (camelCase JSON), what decide_mode and the gateway read."""
    return obj.model_dump(by_alias=True, mode="json", exclude_none=True)


def _overlap(replica: Replica, lo: float, hi: float, end: float) -> float:
    """Seconds of (lo, hi] the replica's pod existed (a pod holds its GPUs from creation)."""
    gone = replica.removed if replica.removed is not None else end
    return max(0.0, min(gone, hi) - max(replica.created, lo))


@dataclass
class _Budget:
    budget: AIBudget
    status: AIBudgetStatus = field(default_factory=AIBudgetStatus)
    next_at: float = 0.0


class Governance:
    """Budgets, fallback, mode and routing for the simulated service ``isvc`` (module docstring)."""

    def __init__(
        self,
        isvc: InferenceService,
        manifests: Manifests,
        start: datetime,
        *,
        gpus_per_replica: int = 1,
        api: ApiLatency = ApiLatency(),
    ) -> None:
        self.isvc = isvc
        self.name = isvc.metadata.name
        self.namespace = isvc.metadata.namespace
        self.start = start
        self.gpus_per_replica = gpus_per_replica
        self.api = api
        self.services = {s.metadata.name: s for s in manifests.in_namespace(self.namespace)}
        self.services[self.name] = isvc  # the spec simulated (it may be a variant of the manifest's)
        self._service_bodies = {n: _body(s) for n, s in self.services.items()}
        self.budgets = [_Budget(b) for b in manifests.budgets if b.metadata.namespace == self.namespace]
        self.policy = manifests.policy_for(isvc)
        self.policy_status = FallbackPolicyStatus()
        self._policy_body = _body(self.policy) if self.policy is not None else None
        self.next_fallback = 0.0
        for b in self.budgets:
            b.next_at = self._aligned_after(0.0, parse_duration(b.budget.spec.evaluation_interval))
        if self.policy is not None:
            self.next_fallback = self._aligned_after(
                0.0, parse_duration(self.policy.spec.evaluation_interval)
            )
        # the target's status as the other controllers read it
        self.isvc_status = InferenceServiceStatus()
        self.mode = "Normal"
        self.cap: int | None = None
        self.mode_seconds: dict[str, float] = dict.fromkeys(MODES, 0.0)
        self._mode_from = 0.0
        # tokens the gateway sent to each API-backed InferenceService: (answered at, in, out)
        self.api_usage: dict[str, list[tuple[float, int, int]]] = {}
        self.refused: dict[int, int] = {}
        self.switches: list[tuple[float, str, str]] = []
        self.fallback_seconds = 0.0
        self._fallback_from: float | None = None
        self._snapshot: Snapshot | None = None
        self._snapshot_key: tuple[Any, ...] | None = None
        self.notes = self._not_simulated()
        self._update_mode(0.0)

    @property
    def active(self) -> bool:
        """Whether anything governs the service (else runs skip the gateway, as before)."""
        return bool(self.policy is not None or any(self._selects(b.budget, self.isvc) for b in self.budgets))

    def _not_simulated(self) -> tuple[str, ...]:
        notes = []
        for b in self.budgets:
            others = [
                n for n, s in self.services.items()
                if n != self.name and s.spec.serving is not None and self._selects(b.budget, s)
            ]  # fmt: skip
            if others:
                notes.append(
                    f"AIBudget {b.budget.metadata.name} also selects {', '.join(sorted(others))}: "
                    "not simulated, counted as spending 0"
                )
            if b.budget.spec.cost_sources:
                notes.append(
                    f"AIBudget {b.budget.metadata.name}: costSources are not simulated (counted as 0)"
                )
        if self.policy is not None:
            for step in self.policy.spec.chain:
                other = self.services.get(step.inference_service or "")
                if other is not None and other.spec.serving is not None:
                    notes.append(
                        f"FallbackPolicy {self.policy.metadata.name}: chain step {step.inference_service} is "
                        "self-hosted and not simulated (counted as not Ready)"
                    )
            for t in self.policy.spec.triggers:
                if t.type == "PromQL":
                    notes.append(f"FallbackPolicy {self.policy.metadata.name}: PromQL trigger unavailable")
        return tuple(notes)

    @staticmethod
    def _selects(budget: AIBudget, isvc: InferenceService) -> bool:
        return budget.spec.selector.matches(isvc.metadata.labels)

    def _at(self, t: float) -> datetime:
        return self.start + timedelta(seconds=t)

    def _aligned_after(self, t: float, interval: timedelta) -> float:
        """The next clock-aligned instant at or after ``t`` (controllers evaluate at multiples)."""
        step = interval.total_seconds()
        absolute = self._at(t).timestamp()
        return math.ceil(absolute / step - 1e-9) * step - self.start.timestamp()

    def next_due(self) -> float:
        due = [b.next_at for b in self.budgets]
        if self.policy is not None:
            due.append(self.next_fallback)
        return min(due, default=math.inf)

    # -- the controllers ----------------------------------------------------------------------
    def evaluate(
        self, cluster: Cluster, t: float, desired: int, decisions: list[ScalingDecisionRecord]
    ) -> None:
        """Run every evaluation due at ``t``: budgets, then the policy, then the mode."""
        ready = len(cluster.ready(t))
        self.isvc_status.desired_replicas = desired
        self.isvc_status.ready_replicas = ready
        self.isvc_status.decisions = decisions
        for b in self.budgets:
            if b.next_at <= t + 1e-9:
                self._evaluate_budget(b, cluster, t)
                b.next_at = t + parse_duration(b.budget.spec.evaluation_interval).total_seconds()
        if self.policy is not None and self.next_fallback <= t + 1e-9:
            self._evaluate_policy(self.policy, cluster, t)
            self.next_fallback = t + parse_duration(self.policy.spec.evaluation_interval).total_seconds()
        self._update_mode(t)

    def _usage(self, isvc: InferenceService, cluster: Cluster, lo: float, hi: float) -> ServiceUsage:
        name = isvc.metadata.name
        if name == self.name:
            # GPU-hours as the budget's query integrates them: GPUs of the pods that exist.
            # A self-hosted service's tokens are not billed (billed_pricing), so 0 is exact.
            seconds = sum(_overlap(r, lo, hi, hi) for r in cluster.replicas if not r.pending)
            gpu_hours: Reading = Value(seconds * self.gpus_per_replica / 3600)
            return ServiceUsage(name, Value(0.0), Value(0.0), gpu_hours)
        used = [(i, o) for at, i, o in self.api_usage.get(name, []) if lo < at <= hi]
        return ServiceUsage(
            name, Value(float(sum(i for i, _ in used))), Value(float(sum(o for _, o in used))), Value(0.0)
        )

    def _costs(
        self, b: _Budget, cluster: Cluster, lo: float, hi: float
    ) -> dict[str, ServiceCost | Unavailable]:
        costs: dict[str, ServiceCost | Unavailable] = {}
        spec = b.budget.spec
        for name, isvc in self.services.items():
            if not self._selects(b.budget, isvc):
                continue
            if isvc.spec.pricing.currency != spec.currency:  # as the budget controller refuses it
                costs[name] = Unavailable(
                    "Ambiguous",
                    f"{name} is priced in {isvc.spec.pricing.currency}, the budget in {spec.currency}",
                )
                continue
            if isvc.spec.serving is not None and name != self.name:
                costs[name] = ServiceCost(
                    name, Decimal(0), Decimal(0), Decimal(0), Decimal(0)
                )  # not simulated
                continue
            costs[name] = service_cost(billed_pricing(isvc.spec), self._usage(isvc, cluster, lo, hi))
        return costs

    def _evaluate_budget(self, b: _Budget, cluster: Cluster, t: float) -> None:
        spec = b.budget.spec
        at = self._at(t)
        frm, to = query_interval(spec, b.status, at)
        lo, hi = (frm - self.start).total_seconds(), (to - self.start).total_seconds()
        costs = self._costs(b, cluster, lo, hi) if hi > lo else {}
        window = parse_duration(spec.forecast.window).total_seconds()
        burn: Decimal | None = None
        rate_costs = self._costs(b, cluster, hi - window, hi)
        if all(isinstance(c, ServiceCost) for c in rate_costs.values()):
            total = sum((c.total for c in rate_costs.values() if isinstance(c, ServiceCost)), Decimal(0))
            burn = total / Decimal(str(window / 3600))
        evaluation = evaluate_budget(spec, b.status, costs, {}, to, burn)
        b.status = updated_status(b.status, evaluation, spec, 1)

    def _request_reading(self, value: float | None, out_of_rotation: bool) -> Reading:
        # the fallback controller's _request_reading: out of rotation, no series reads as 0
        # (the recovery probe); in rotation, no requests is missing data
        if value is not None and not math.isnan(value):
            return Value(value)
        return Value(0.0) if out_of_rotation else Unavailable("NoData", "no requests in the window")

    def _observe(self, trigger: Trigger, cluster: Cluster, t: float) -> TriggerObservation:
        out_of_rotation = self.policy_status.active
        if trigger.type == "Budget":
            found = next((b for b in self.budgets if b.budget.metadata.name == trigger.budget), None)
            if found is None:
                return TriggerObservation(Value(0.0), budget_state=None)
            return TriggerObservation(Value(0.0), budget_state=found.status.state or "Unknown")
        if trigger.type == "GPUShortage":  # replicas Pending for lack of GPUs (simulate --gpus)
            return TriggerObservation(Value(float(len(cluster.pending))))
        if trigger.type == "Unavailable":
            if self.mode == "Suspended":
                return TriggerObservation(Value(0.0))
            wanted = self.isvc_status.desired_replicas > 0
            return TriggerObservation(Value(float(self.isvc_status.ready_replicas if wanted else 1)))
        window = parse_duration(trigger.window).total_seconds()
        if trigger.type == "ErrorRate":
            w = cluster.window(t, window)
            rate: float | None = None
            if w is not None:
                first, last = w
                failed = last.failed - first.failed
                finished = failed + last.succeeded - first.succeeded
                rate = failed / finished if finished > 0 else None
            return TriggerObservation(self._request_reading(rate, out_of_rotation))
        if trigger.type == "Latency":
            which = "ttft" if trigger.latency == "TimeToFirstToken" else "e2e"
            q = cluster.quantile(t, window, trigger.percentile, which=which)
            return TriggerObservation(self._request_reading(q, out_of_rotation))
        return TriggerObservation(Unavailable("NoData", "PromQL triggers are not simulated"))

    def _health(self, policy: FallbackPolicy) -> list[BackendHealth]:
        """The fallback controller's rule (policy.fallback.service_step_health), on the services
        as the manifests give them: an API-backed step is usable; a self-hosted one other than
        the simulated service has no pods here, so it reads as not Ready."""
        health = []
        for step in policy.spec.chain:
            if step.inference_service is None:
                health.append(BackendHealth(exists=True, healthy=True))
            else:
                body = self._service_bodies.get(step.inference_service)
                health.append(service_step_health({**body, "status": {}} if body is not None else None))
        return health

    def _evaluate_policy(self, policy: FallbackPolicy, cluster: Cluster, t: float) -> None:
        triggers = [self._observe(trigger, cluster, t) for trigger in policy.spec.triggers]
        decisions = self.isvc_status.decisions
        warming = (
            self.isvc_status.desired_replicas > 0
            and self.isvc_status.ready_replicas == 0
            and bool(decisions)
            and decisions[-1].from_replicas == 0
        )
        decision = decide_fallback(
            policy.spec,
            self.policy_status,
            triggers,
            self._health(policy),
            self._at(t),
            target_scaled_to_zero_warming=policy.spec.cold_start_bridge and warming,
        )
        self.policy_status = decision.status
        if decision.switched:
            self.switches.append((t, decision.status.active_backend, decision.reason))
            if decision.active:
                self._fallback_from = t
            elif self._fallback_from is not None:
                self.fallback_seconds += t - self._fallback_from
                self._fallback_from = None

    def _budget_bodies(self) -> list[dict[str, Any]]:
        return [
            {**_body(b.budget), "status": b.status.model_dump(by_alias=True, mode="json")}
            for b in self.budgets
        ]

    def _policy_with_status(self) -> dict[str, Any] | None:
        if self._policy_body is None:
            return None
        return {**self._policy_body, "status": self.policy_status.model_dump(by_alias=True, mode="json")}

    def _update_mode(self, t: float) -> None:
        policy = self._policy_with_status()
        decision = decide_mode(
            self.isvc,
            [read_budget(b) for b in self._budget_bodies()],
            read_policy(policy) if policy is not None else None,
        )
        self.mode_seconds[self.mode] += max(0.0, t - self._mode_from)
        self._mode_from = max(t, self._mode_from)
        self.mode = decision.mode
        self.isvc_status.mode = decision.mode
        self.cap = decision.cap

    def finish(self, end: float) -> GovernanceReport:
        self.mode_seconds[self.mode] += max(0.0, end - self._mode_from)
        self._mode_from = end
        if self._fallback_from is not None:
            self.fallback_seconds += end - self._fallback_from
            self._fallback_from = end
        budgets = tuple(
            (
                b.budget.metadata.name,
                Decimal(b.status.spent or "0"),
                Decimal(b.budget.spec.limit),
                b.budget.spec.currency,
                b.status.state,
            )
            for b in self.budgets
            if self._selects(b.budget, self.isvc)
        )
        return GovernanceReport(
            dict(self.mode_seconds),
            budgets,
            self.policy_status.transitions,
            tuple(self.switches),
            self.fallback_seconds,
            dict(self.refused),
            self.notes,
        )

    # -- the gateway ----------------------------------------------------------------------------
    def _snapshot_for(self, ready: list[Replica]) -> Snapshot:
        actions = tuple(b.status.active_action for b in self.budgets)
        names = tuple(r.name for r in ready)
        key = (actions, self.policy_status.active, self.policy_status.active_step, names)
        if self._snapshot is None or key != self._snapshot_key:
            endpoints = tuple(Endpoint(name, "") for name in names)  # never dialled
            policy = self._policy_with_status()
            self._snapshot = Snapshot(
                namespace=self.namespace,
                services=self._service_bodies,
                policies=(policy,) if policy is not None else (),
                budgets=tuple(self._budget_bodies()),
                ready={self.name: endpoints},
            )
            self._snapshot_key = key
        return self._snapshot

    def router(self) -> Callable[[Cluster, Request], Replica | bool | None]:
        """The cluster's per-request hook: the gateway's route (modes, fallback, overflow of
        both kinds) on the snapshot, with the Ready replicas' loads for SLO overflow.

        The replicas' loads are exact here (prompt tokens queued, sequences decoding, KV in use);
        the live gateway estimates them from what it sent (gateway/podload.py)."""
        scaling = self.isvc.spec.scaling
        slo_overflow = (
            scaling.metric.type == "SLO" and scaling.slo is not None and scaling.slo.overflow is not None
        )

        def decide(cluster: Cluster, req: Request) -> Replica | bool | None:
            ready = cluster.ready(req.arrival)
            in_flight = None
            if self.isvc.spec.front_door.overflow == "Fallback":
                in_flight = {self.name: sum(r.outstanding for r in ready)}
            pod_loads: dict[str, ReplicaLoad] | None = None
            if slo_overflow:
                pod_loads = {}
                for r in ready:
                    r.advance(req.arrival)
                    queued = r.prefill_backlog + r.waiting_prompt
                    pod_loads[r.name] = ReplicaLoad(queued, len(r.decoding), r.kv_used() / r.p.kv_tokens)
            decision = route(
                self._snapshot_for(ready),
                self.name,
                self._at(req.arrival),
                in_flight,
                pod_loads=pod_loads,
                prompt_tokens=req.prompt,
            )
            if isinstance(decision, Refuse):
                self.refused[decision.status] = self.refused.get(decision.status, 0) + 1
                req.failed = True
                req.done_at = req.arrival
                req.backend = f"refused {decision.status}"
                if decision.status >= 500:  # the gateway's 5xx count in the error rate, 429 not
                    cluster.counters.failed += 1
                cluster.done.append(req)
                return False
            if isinstance(decision, Hold):
                return None  # the front door holds it until a replica is Ready (or it times out)
            assert isinstance(decision, Forward)
            target = decision.target
            if isinstance(target, ProviderTarget):
                self._to_provider(cluster, req, target)
                return True
            if target.service != self.name:  # another self-hosted service: not simulated
                return None
            if pod_loads is not None and len(target.endpoints) == 1:  # the pod SLO routing chose
                chosen = target.endpoints[0].pod
                return next((r for r in ready if r.name == chosen), None)
            return None  # the front door spreads it over the Ready replicas

        return decide

    def _to_provider(self, cluster: Cluster, req: Request, target: ProviderTarget) -> None:
        api = self.api
        req.first_token_at = req.arrival + api.base_latency_s + req.prompt / api.input_tokens_per_s
        req.done_at = req.first_token_at + req.output / api.output_tokens_per_s
        req.price = (target.prices.input_per_million, target.prices.output_per_million)
        req.via = target.label
        if target.service is not None:
            self.api_usage.setdefault(target.service, []).append((req.done_at, req.prompt, req.output))
        cluster.done.append(req)
