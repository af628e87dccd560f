"""Offline what-if runs: a trace against a scaling policy, with no cluster, on a virtual clock.

:func:`simulate` drives one self-hosted service of the fleet model. Every
``decision_interval_s`` it shows the policy an :class:`Observation` (the signals an
autoscaler reads from Prometheus) and applies the replica count it returns:

* a new replica costs GPU time from the moment it is created but serves only after
  ``cold_start_s`` (it is a pod that is not Ready yet);
* scaling down first cancels replicas still starting, then drains Ready ones (fewest
  running first): a draining replica takes no new work, finishes what it runs, and is
  billed until it is removed (checked every ``tick_s``).

Scaling policies are not implemented here: ``aipolicy simulate`` (:mod:`aipolicy.whatif`)
runs the operator's own ``decide_replicas`` on the calibrated serving model; this module keeps
fixed replica counts for the fleet model's own tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from aipolicy.sim.fleet import Fleet, PodInfo, ServiceSettings
from aipolicy.sim.model import PodCapacity, RequestOutcome, ServiceId
from aipolicy.sim.pods import PodService
from aipolicy.sim.traffic import TrafficSource

__all__ = [
    "Observation",
    "ScalingPolicy",
    "SimulationReport",
    "fixed_replicas",
    "format_report",
    "percentile",
    "simulate",
]


@dataclass(frozen=True)
class Observation:
    """What a scaling policy sees at a decision point."""

    now: float
    ready_replicas: int
    starting_replicas: int  # created, cold start not over yet
    draining_replicas: int
    queue_length: int  # sum of vllm:num_requests_waiting
    running: int  # sum of vllm:num_requests_running
    arrivals_per_s: float  # over the last decision interval
    p95_ttft_s: float | None  # first tokens in the last decision interval
    kv_cache_usage: float  # mean over Ready replicas
    slots_per_replica: int  # max concurrent sequences of one replica


ScalingPolicy = Callable[[Observation], int]


def fixed_replicas(n: int) -> ScalingPolicy:
    """Always ``n`` replicas."""
    if n < 0:
        raise ValueError("replica count must be >= 0")

    def policy(obs: Observation) -> int:
        del obs
        return n

    return policy


@dataclass(frozen=True)
class SimulationReport:
    """The result of one offline run. Percentiles are nearest-rank over requests."""

    duration_s: float
    requests: int
    succeeded: int
    failed: int
    gpu_hours: Decimal
    cost: Decimal
    gpu_hour_rate: Decimal
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    queue_wait_p50_s: float | None
    queue_wait_p95_s: float | None
    e2e_p95_s: float | None
    slo_violation_minutes: int
    ttft_slo_s: float
    peak_replicas: int
    mean_replicas: float
    traffic: dict[str, object]
    timeline: tuple[tuple[float, int], ...] = ()  # (time, live replicas) at every change

    def table(self) -> str:
        return format_report(self)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in (0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _fmt_s(v: float | None) -> str:
    return "-" if v is None else ("inf" if math.isinf(v) else f"{v:.3f} s")


def format_report(r: SimulationReport) -> str:
    rows = [
        ("duration", f"{r.duration_s:,.0f} s"),
        ("requests (ok / failed)", f"{r.requests} ({r.succeeded} / {r.failed})"),
        ("GPU-hours", f"{r.gpu_hours}"),
        (f"cost @ {r.gpu_hour_rate}/GPU-hour", f"{r.cost}"),
        ("TTFT p50 / p95", f"{_fmt_s(r.ttft_p50_s)} / {_fmt_s(r.ttft_p95_s)}"),
        ("queue wait p50 / p95", f"{_fmt_s(r.queue_wait_p50_s)} / {_fmt_s(r.queue_wait_p95_s)}"),
        ("e2e latency p95", _fmt_s(r.e2e_p95_s)),
        (f"SLO-violation minutes (p95 TTFT > {r.ttft_slo_s:g} s)", str(r.slo_violation_minutes)),
        ("replicas peak / mean", f"{r.peak_replicas} / {r.mean_replicas:.2f}"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{'metric'.ljust(width)}  value", f"{'-' * width}  {'-' * 20}"]
    lines += [f"{k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines)


@dataclass
class _Replica:
    name: str
    created: float
    ready_at: float
    ready: bool = False
    draining: bool = False
    removed: float | None = None


def _violation_minutes(outcomes: Sequence[RequestOutcome], slo: float) -> int:
    """Minutes (by arrival) whose p95 TTFT exceeds the SLO; a failed request counts as inf."""
    by_minute: dict[int, list[float]] = {}
    for o in outcomes:
        value = o.ttft if (o.ok and o.ttft is not None) else math.inf
        by_minute.setdefault(int(o.arrival // 60), []).append(value)
    return sum(1 for v in by_minute.values() if (percentile(v, 0.95) or 0.0) > slo)


class _Run:
    """Mutable state of one :func:`simulate` call (kept out of the public function)."""

    def __init__(self, fleet: Fleet, sid: ServiceId, cold_start_s: float) -> None:
        self.fleet = fleet
        self.sid = sid
        self.cold_start_s = cold_start_s
        self.replicas: list[_Replica] = []
        self._serial = 0

    @property
    def live(self) -> list[_Replica]:
        return [r for r in self.replicas if r.removed is None]

    def _pod(self, r: _Replica, ready: bool) -> None:
        self.fleet.upsert_pod(PodInfo(self.sid.namespace, r.name, self.sid.name, None, ready))

    def add(self, now: float, cold_start_s: float) -> None:
        r = _Replica(f"replica-{self._serial:04d}", now, now + cold_start_s)
        self._serial += 1
        self.replicas.append(r)
        r.ready = cold_start_s <= 0
        self._pod(r, r.ready)

    def remove(self, r: _Replica, now: float) -> None:
        r.removed = now
        self.fleet.remove_pod(self.sid.namespace, r.name)

    def bring_up(self, now: float) -> None:
        for r in self.live:
            if not r.ready and not r.draining and r.ready_at <= now:
                r.ready = True
                self._pod(r, True)

    def retire_drained(self, now: float, svc: PodService) -> None:
        for r in self.live:
            if r.draining:
                st = svc.pod_state(r.name)
                if st is None or st[2] == 0:
                    self.remove(r, now)

    def reconcile(self, desired: int, now: float) -> None:
        serving = [r for r in self.live if not r.draining]
        if desired > len(serving):
            need = desired - len(serving)
            for r in [r for r in self.live if r.draining][:need]:  # warm ones come back first
                r.draining = False
                self._pod(r, r.ready)
                need -= 1
            for _ in range(need):
                self.add(now, self.cold_start_s)
        elif desired < len(serving):
            excess = len(serving) - desired
            for r in sorted((r for r in serving if not r.ready), key=lambda r: -r.created):
                if excess == 0:
                    break
                self.remove(r, now)
                excess -= 1
            svc = self.fleet.service(self.sid)
            assert isinstance(svc, PodService)

            def load(r: _Replica) -> tuple[int, float]:
                st = svc.pod_state(r.name)
                return (st[2] if st else 0, -r.created)

            for r in sorted((r for r in serving if r.ready), key=load)[:excess]:
                r.draining = True
                self._pod(r, False)

    def next_ready_at(self, now: float) -> float:
        pending = [r.ready_at for r in self.live if not r.ready and r.ready_at > now]
        return min(pending, default=math.inf)

    def gpu_seconds(self, end: float) -> float:
        return sum((r.removed if r.removed is not None else end) - r.created for r in self.replicas)


def simulate(
    traffic: TrafficSource,
    *,
    policy: ScalingPolicy,
    capacity: PodCapacity | None = None,
    initial_replicas: int = 1,
    cold_start_s: float = 60.0,
    decision_interval_s: float = 15.0,
    gpus_per_replica: int = 1,
    gpu_hour_rate: Decimal = Decimal("2.50"),
    ttft_slo_s: float = 2.0,
    queue_timeout_s: float | None = None,
    drain_timeout_s: float = 3600.0,
    tick_s: float = 1.0,
    seed: int = 0,
) -> SimulationReport:
    """Run ``traffic`` against ``policy`` on a virtual clock and report cost and latency.

    ``initial_replicas`` are Ready at t=0. The run ends when the traffic is over and every
    request has finished, or ``drain_timeout_s`` after the traffic's end, whichever is first
    (so it always stops). Cost is ``GPU-hours x gpu_hour_rate`` in Decimal, rounded to cents.
    """
    if decision_interval_s <= 0 or tick_s <= 0 or cold_start_s < 0 or gpus_per_replica < 1:
        raise ValueError("need decision_interval_s > 0, tick_s > 0, cold_start_s >= 0, gpus >= 1")
    cap = capacity or PodCapacity()
    outcomes: list[RequestOutcome] = []
    fleet = Fleet(seed=seed, on_outcome=outcomes.append)
    sid = ServiceId("offline", "service")
    fleet.configure(sid, ServiceSettings(capacity=cap, queue_timeout_s=queue_timeout_s))
    fleet.set_traffic(sid, traffic, start=0.0)
    svc = fleet.service(sid)
    assert isinstance(svc, PodService)
    run = _Run(fleet, sid, cold_start_s)
    for _ in range(initial_replicas):
        run.add(0.0, 0.0)

    horizon = traffic.duration + drain_timeout_s
    t, next_decision = 0.0, 0.0
    last_arrived, seen = 0, 0
    replica_seconds, peak = 0.0, len(run.live)
    timeline: list[tuple[float, int]] = [(0.0, len(run.live))]
    while True:
        run.bring_up(t)
        if t >= next_decision:
            window = [o for o in outcomes[seen:] if o.ttft is not None]
            seen = len(outcomes)
            ready = [r for r in run.live if r.ready and not r.draining]
            kv = [m.kv_cache_usage for r in ready if (m := svc.pod_metrics(r.name)) is not None]
            obs = Observation(
                now=t,
                ready_replicas=len(ready),
                starting_replicas=sum(1 for r in run.live if not r.ready and not r.draining),
                draining_replicas=sum(1 for r in run.live if r.draining),
                queue_length=svc.queue_length,
                running=svc.running,
                arrivals_per_s=(svc.totals.arrived - last_arrived) / decision_interval_s,
                p95_ttft_s=percentile([o.ttft for o in window if o.ttft is not None], 0.95),
                kv_cache_usage=sum(kv) / len(kv) if kv else 0.0,
                slots_per_replica=cap.max_concurrent_sequences,
            )
            last_arrived = svc.totals.arrived
            run.reconcile(max(0, int(policy(obs))), t)
            run.bring_up(t)
            next_decision += decision_interval_s
        run.retire_drained(t, svc)
        peak = max(peak, len(run.live))
        if len(run.live) != timeline[-1][1]:
            timeline.append((t, len(run.live)))
        if (t >= traffic.duration and svc.idle) or t >= horizon:
            break
        t_next = min(next_decision, t + tick_s, run.next_ready_at(t), horizon)
        replica_seconds += len(run.live) * (t_next - t)
        fleet.step(t_next)
        t = t_next
    for r in run.live:
        run.remove(r, t)

    gpu_seconds = run.gpu_seconds(t) * gpus_per_replica
    gpu_hours = (Decimal(gpu_seconds) / Decimal(3600)).quantize(Decimal("0.000001"))
    cost = (gpu_hours * gpu_hour_rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    ok = [o for o in outcomes if o.ok]
    return SimulationReport(
        duration_s=t,
        requests=len(outcomes),
        succeeded=len(ok),
        failed=len(outcomes) - len(ok),
        gpu_hours=gpu_hours,
        cost=cost,
        gpu_hour_rate=gpu_hour_rate,
        ttft_p50_s=percentile([o.ttft for o in ok if o.ttft is not None], 0.50),
        ttft_p95_s=percentile([o.ttft for o in ok if o.ttft is not None], 0.95),
        queue_wait_p50_s=percentile([o.queue_wait for o in ok if o.queue_wait is not None], 0.5),
        queue_wait_p95_s=percentile([o.queue_wait for o in ok if o.queue_wait is not None], 0.95),
        e2e_p95_s=percentile([o.e2e for o in ok], 0.95),
        slo_violation_minutes=_violation_minutes(outcomes, ttft_slo_s),
        ttft_slo_s=ttft_slo_s,
        peak_replicas=peak,
        mean_replicas=replica_seconds / t if t > 0 else float(len(run.replicas)),
        traffic=traffic.describe(),
        timeline=tuple(timeline),
    )
