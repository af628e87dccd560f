"""One what-if run: a trace, a serving model, an autoscaler, on a virtual clock.

The autoscalers:

* :class:`OperatorScaler` is the operator itself: every ``scaling.evaluationInterval``, at the
  same clock-aligned instants as the controller, it builds the :class:`ScalingObservation` the
  controller builds from Prometheus (here: from the simulated scrapes), calls
  :func:`aipolicy.policy.scaling.decide_replicas`, and writes the decision into an
  ``InferenceServiceStatus`` exactly as the controller does; the next decision's memory is read
  back from that status with the controller's own ``_scaling_memory``.
* :class:`HpaScaler` is an HPA (and KEDA on top) on a per-pod vLLM metric.
* :class:`StaticScaler` keeps a fixed count.

:func:`run` replays the trace: Prometheus scrapes every ``scrape_interval_s``, the autoscaler
decides at its interval, the Deployment follows, requests are routed as they arrive.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal, Protocol

from aipolicy.api.common import parse_duration
from aipolicy.api.inferenceservice import (
    InferenceService,
    InferenceServiceStatus,
    Recommendation,
    ScalingDecisionRecord,
)
from aipolicy.api.slo import ServingSlo, SloStatus
from aipolicy.policy.observations import Reading, Unavailable, Value
from aipolicy.policy.scaling import ScalingMemory, ScalingObservation, decide_replicas
from aipolicy.policy.serving import ServingProfile, serving_profile
from aipolicy.policy.slo import ReplicaLoad, ServiceLoad, SloMemory, route
from aipolicy.whatif.baselines import Hpa, Keda
from aipolicy.whatif.engine import Cluster, Replica, Request, Scrape
from aipolicy.whatif.governance import Governance, GovernanceReport
from aipolicy.whatif.traces import Trace

__all__ = [
    "ApiPrices",
    "Autoscaler",
    "HpaScaler",
    "OperatorScaler",
    "RunResult",
    "StaticScaler",
    "run",
]

DECISIONS_KEPT = 5  # as the controller keeps in status
SCRAPE_INTERVAL_S = 15.0


class Autoscaler(Protocol):
    @property
    def label(self) -> str: ...

    @property
    def interval_s(self) -> float: ...

    def decide(self, cluster: Cluster, now: float, current: int) -> int: ...


def _scaling_memory(status: InferenceServiceStatus) -> ScalingMemory:
    # The controller's own reading of its memory from status (imported lazily: the controller
    # module pulls in kopf), plus the SLO forecast kept in status.slo.
    from aipolicy.controllers.inferenceservice import _scaling_memory as controller_memory

    memory: ScalingMemory = controller_memory(status)
    if status.slo is not None:
        memory = replace(memory, slo=SloMemory(tuple(status.slo.seasonal), status.slo.last_bin))
    return memory


def _sum_metric(scrape: Scrape | None, value: float) -> Reading:
    # A sum over the pods: with no pod scraped the query answers with no series, which the
    # controller reads as 0 (reading_or_zero_when_answered).
    return Value(0.0) if scrape is None or scrape.pods == 0 else Value(value)


def observe_load(cluster: Cluster, at: float, window_s: float) -> ServiceLoad | Unavailable:
    """Request rate (front door, including what overflowed) and mean token sizes."""
    last = cluster.last_scrape(at)
    if last is None:
        return Unavailable("NoData", "nothing scraped yet")
    arrivals = cluster.rate(at, window_s, lambda s: s.arrived)
    if arrivals is None:
        return Unavailable("NoData", "fewer than two scrapes in the window")
    w = cluster.window(at, window_s)
    assert w is not None
    first, end = w
    firsts = end.first_tokens - first.first_tokens
    done = end.succeeded - first.succeeded
    if firsts > 0 and done > 0:
        prompt = (end.prompt_tokens - first.prompt_tokens) / firsts
        output = (end.generation_tokens - first.generation_tokens) / done
    elif last.first_tokens > 0 and last.succeeded > 0:  # quiet window: the sizes seen so far
        prompt = last.prompt_tokens / last.first_tokens
        output = last.generation_tokens / last.succeeded
    else:
        prompt, output = 1000.0, 200.0  # nothing served yet: a typical chat request
    return ServiceLoad(arrivals, prompt, output, float(last.waiting + last.frontdoor_waiting))


class OperatorScaler:
    """decide_replicas, with its memory carried in an InferenceServiceStatus."""

    def __init__(
        self, isvc: InferenceService, profile: ServingProfile, start: datetime, initial: int
    ) -> None:
        self.isvc = isvc
        self.scaling = isvc.spec.scaling
        self.profile = profile
        self.start = start
        self.interval_s = parse_duration(self.scaling.evaluation_interval).total_seconds()
        self.label = f"aipolicy ({self.scaling.metric.type})"
        # degraded mode or a suspending budget (whatif.governance), as the controller's decide_mode
        self.max_replicas_cap: int | None = None
        # The run starts with the service already running at `initial` (as every autoscaler
        # here does): its status holds that decision, as the HPA seeds its window.
        self.status = InferenceServiceStatus(
            desired_replicas=initial, recommendations=[Recommendation(time=start, replicas=initial)]
        )
        self.window_s = parse_duration(self.scaling.metric.window).total_seconds()

    def first_decision(self) -> float:
        """Seconds from the trace start to the first clock-aligned evaluation."""
        t0 = self.start.timestamp()
        return math.ceil(t0 / self.interval_s) * self.interval_s - t0

    def _metric(self, cluster: Cluster, at: float) -> Reading:
        metric = self.scaling.metric
        last = cluster.last_scrape(at)
        if metric.type == "QueueDepth":
            return _sum_metric(last, last.waiting if last else 0)
        if metric.type == "RequestsInFlight":
            return _sum_metric(last, last.running if last else 0)
        window = parse_duration(metric.window).total_seconds()
        if metric.type == "TokensPerSecond":
            rate = cluster.rate(at, window, lambda s: s.generation_tokens)
            return _sum_metric(last, rate) if rate is not None else _sum_metric(last, 0.0)
        if metric.type == "Latency":
            if last is None or last.pods == 0:
                return Unavailable("NoData", "the query returned no series for this service")
            q = cluster.quantile(at, window, metric.percentile, which="e2e")
            return Value(q) if q is not None else Unavailable("NotANumber", "the query returned nan")
        return Unavailable("NoData", "not simulated")  # SLO reads obs.load instead

    def decide(self, cluster: Cluster, now: float, current: int) -> int:
        at = self.start + timedelta(seconds=now)
        last = cluster.last_scrape(now)
        demand = Value(float(last.frontdoor_waiting if last else 0))
        activity: Reading | None = None
        if self.scaling.scale_to_zero_after is not None:
            served = cluster.rate(now, 30.0, lambda s: s.succeeded + s.failed)
            if last is None or last.pods == 0 or served is None:
                activity = Unavailable("NoData", "no pod scraped")
            else:
                activity = Value(served * 30.0 + last.running + last.waiting)
        obs = ScalingObservation(
            now=at,
            current_replicas=current,
            ready_replicas=len(cluster.ready(now)),
            starting_replicas=len(cluster.starting(now)),
            unschedulable_replicas=len(cluster.pending),
            metric=self._metric(cluster, now),
            demand=demand,
            activity=activity,
            load=observe_load(cluster, now, self.window_s) if self.scaling.metric.type == "SLO" else None,
        )
        # the policy sizes for the spec's profile, as the controller does; the serving model
        # may run another (aipolicy simulate --profile)
        policy_profile = serving_profile(self.isvc) or self.profile
        decision = decide_replicas(
            self.scaling,
            obs,
            _scaling_memory(self.status),
            max_replicas_cap=self.max_replicas_cap,
            profile=policy_profile,
        )
        # what the controller writes to status (controllers/inferenceservice.py _reconcile_serving)
        status = self.status
        status.recommendations = [
            Recommendation(time=t, replicas=r) for t, r in decision.memory.recommendations
        ]
        status.idle_since = decision.memory.idle_since
        status.active_prewarm = decision.active_prewarm or ""
        if self.scaling.metric.type == "SLO":
            status.slo = SloStatus(
                seasonal=list(decision.memory.slo.seasonal), last_bin=decision.memory.slo.last_bin
            )
        if decision.desired != current:
            status.last_scale_time = decision.memory.last_scale_time or at
            record = ScalingDecisionRecord(
                time=at,
                from_replicas=current,
                to_replicas=decision.desired,
                reason=decision.reason,
                message=decision.message,
            )
            status.decisions = [*status.decisions, record][-DECISIONS_KEPT:]
        status.desired_replicas = decision.desired
        return decision.desired


@dataclass
class HpaScaler:
    """An HPA on a per-pod vLLM metric (summed over pods, AverageValue), KEDA optionally on top."""

    hpa: Hpa
    metric: Literal["RequestsInFlight", "QueueDepth"]
    keda: Keda | None = None
    interval_s: float = 15.0
    _next_poll: float = 0.0

    @property
    def label(self) -> str:
        kind = "KEDA" if self.keda else "HPA"
        return f"{kind} ({self.metric} {self.hpa.target:g}/pod)"

    def _value(self, scrape: Scrape | None) -> float | None:
        if scrape is None or scrape.pods == 0:
            return None if self.keda is None else 0.0  # KEDA: ignoreNullValues -> 0
        return float(scrape.running if self.metric == "RequestsInFlight" else scrape.waiting)

    def decide(self, cluster: Cluster, now: float, current: int) -> int:
        last = cluster.last_scrape(now)
        value = self._value(last)
        if self.keda is not None and now >= self._next_poll:
            self._next_poll = now + self.keda.polling_interval_s
            waiting = last.frontdoor_waiting if last else 0
            after = self.keda.poll(now, current, value, waiting)
            if after != current:
                return after
        return self.hpa.decide(now, current, value)


@dataclass
class StaticScaler:
    replicas: int
    interval_s: float = 15.0

    @property
    def label(self) -> str:
        return f"static ({self.replicas})"

    def decide(self, cluster: Cluster, now: float, current: int) -> int:
        del cluster, now, current
        return self.replicas


@dataclass(frozen=True)
class ApiPrices:
    """The overflow provider: per-million-token prices and its latency (assumed, see docs)."""

    input_per_million: Decimal
    output_per_million: Decimal
    base_latency_s: float = 0.4
    input_tokens_per_s: float = 20_000.0
    output_tokens_per_s: float = 80.0


@dataclass
class RunResult:
    """What a run produced: requests, replicas over time, GPU time, API use."""

    label: str
    requests: list[Request]
    gpu_seconds: float
    gpus_per_replica: int
    replica_changes: int
    timeline: list[tuple[float, int, int]]
    """(time, replicas billed, replicas Ready) at every scrape."""
    end: float
    start: datetime
    arrived: int
    """Requests in the trace; those not in ``requests`` never finished (counted as failed)."""
    governance: GovernanceReport | None = None
    """Modes, budgets and fallback switches, when budgets or a fallback policy governed the run."""


def _overflow_callback(
    slo: ServingSlo, profile: ServingProfile, prices: ApiPrices
) -> Callable[[Cluster, Request], Replica | bool | None]:
    """The SLO gateway (policy.slo.route): the replica predicted fastest, or the provider."""

    def decide(cluster: Cluster, req: Request) -> Replica | bool | None:
        ready = cluster.ready(req.arrival)
        loads = []
        for r in ready:
            r.advance(req.arrival)
            queued = r.prefill_backlog + r.waiting_prompt
            loads.append(ReplicaLoad(queued, len(r.decoding), r.kv_used() / r.p.kv_tokens))
        choice = route(slo, profile, loads, req.prompt)
        if choice is not None:
            return ready[choice]
        ttft = prices.base_latency_s + req.prompt / prices.input_tokens_per_s
        req.first_token_at = req.arrival + ttft
        req.done_at = req.first_token_at + req.output / prices.output_tokens_per_s
        cluster.done.append(req)
        return True

    return decide


def run(
    trace: Trace,
    profile: ServingProfile,
    scaler: Autoscaler,
    *,
    initial: int,
    cold_start_median_s: float,
    cold_start_cv: float = 0.3,
    timeout_s: float = 60.0,
    gpus_per_replica: int = 1,
    seed: int = 0,
    first_decision_s: float = 0.0,
    overflow_to: tuple[ServingSlo, ApiPrices] | None = None,
    drain_limit_s: float = 3600.0,
    horizon_s: float | None = None,
    governance: Governance | None = None,
    gpu_capacity: int | None = None,
) -> RunResult:
    """Replay ``trace`` against ``scaler`` (see the module docstring); ``initial`` replicas are
    Ready at the start; with ``horizon_s`` the run goes on (idle) until then. With
    ``governance`` (budgets, a fallback policy) every request goes through the gateway's
    routing and the operator's budget and fallback decisions run at their intervals."""
    callback = _overflow_callback(overflow_to[0], profile, overflow_to[1]) if overflow_to else None
    if governance is not None:  # the gateway's own routing, SLO overflow included
        callback = governance.router()
    cluster = Cluster(
        profile,
        cold_start_median_s=cold_start_median_s,
        cold_start_cv=cold_start_cv,
        timeout_s=timeout_s,
        seed=seed,
        overflow=callback,
    )
    if gpu_capacity is not None:  # replicas beyond it stay Pending (GPUShortage)
        cluster.gpu_slots = gpu_capacity // max(gpus_per_replica, 1)
    for _ in range(initial):
        cluster.add_replica(0.0, warm=True)
    desired = initial
    changes = 0
    timeline: list[tuple[float, int, int]] = []
    next_scrape, next_decision = 0.0, first_decision_s

    def govern(t: float) -> None:
        assert governance is not None
        cluster.advance(t)
        decisions = scaler.status.decisions if isinstance(scaler, OperatorScaler) else []
        governance.evaluate(cluster, t, desired, decisions)
        if isinstance(scaler, OperatorScaler):
            scaler.max_replicas_cap = governance.cap

    def tick(until: float) -> None:
        nonlocal next_scrape, next_decision, desired, changes
        while min(next_scrape, next_decision) <= until:
            # at the same instant the budget and fallback controllers write their status first;
            # the scaling evaluation then reads the mode they give
            if governance is not None and governance.next_due() <= min(next_scrape, next_decision):
                govern(governance.next_due())
                continue
            if next_scrape <= next_decision:
                t = next_scrape
                cluster.scrape(t)
                cluster.retire(t)
                cluster.dispatch(t)
                timeline.append((t, len(cluster.live) - len(cluster.pending), len(cluster.ready(t))))
                next_scrape += SCRAPE_INTERVAL_S
            else:
                t = next_decision
                cluster.advance(t)
                wanted = max(0, scaler.decide(cluster, t, desired))
                if wanted != desired:
                    changes += 1
                    desired = wanted
                    cluster.scale_to(desired, t)
                    cluster.dispatch(t)
                next_decision += scaler.interval_s

    arrivals, prompts, outputs = trace.arrivals, trace.prompt_tokens, trace.output_tokens
    for i in range(len(arrivals)):
        a = arrivals[i]
        tick(a)
        cluster.arrive(a, prompts[i], outputs[i])
    end = trace.duration
    while end < trace.duration + drain_limit_s:
        end = min(next_scrape, next_decision)
        tick(end)
        if not cluster.frontdoor and all(r.outstanding == 0 for r in cluster.live):
            break
    last_done = max((r.done_at for r in cluster.done if r.done_at is not None), default=end)
    end = max(trace.duration, min(end, last_done))
    if horizon_s is not None and horizon_s > end:  # keep deciding on an idle service
        tick(horizon_s)
        end = horizon_s
    gpu_seconds = sum(
        (r.removed if r.removed is not None else end) - r.created for r in cluster.replicas if not r.pending
    )
    return RunResult(
        scaler.label, cluster.done, gpu_seconds, gpus_per_replica, changes, timeline, end, trace.start,
        cluster.counters.arrived, governance.finish(end) if governance is not None else None,
    )  # fmt: skip
