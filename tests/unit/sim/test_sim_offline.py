"""Offline runs: GPU-hours and cost known answers, policies, SLO minutes, bounded runs."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from aipolicy.sim.model import RequestOutcome, ServiceId
from aipolicy.sim.offline import (
    Observation,
    _violation_minutes,
    fixed_replicas,
    percentile,
    simulate,
)
from aipolicy.sim.traffic import ConstantRate, TraceReplay, default_trace


def obs(**kw: float) -> Observation:
    base = dict(now=0.0, ready_replicas=2, starting_replicas=0, draining_replicas=0,
                queue_length=0, running=0, arrivals_per_s=1.0, p95_ttft_s=None,
                kv_cache_usage=0.0, slots_per_replica=10)  # fmt: skip
    base.update(kw)
    return Observation(**base)  # type: ignore[arg-type]


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 0.95) == 95.0
    assert percentile([5.0], 0.99) == 5.0


def test_fixed_replicas_gpu_hours_and_cost_known_answer() -> None:
    traffic = ConstantRate(1.0, duration=3600.0, prompt_tokens=100, output_tokens=10)
    r = simulate(traffic, policy=fixed_replicas(2), initial_replicas=2,
                 gpus_per_replica=2, gpu_hour_rate=Decimal("2.50"))  # fmt: skip
    # Last arrival at 3599.5 s, done within a second: 2 replicas x 2 GPUs x ~1 h.
    assert 3599.5 < r.duration_s <= 3601.0
    assert r.gpu_hours == (Decimal(4 * r.duration_s) / 3600).quantize(Decimal("0.000001"))
    assert r.cost == (r.gpu_hours * Decimal("2.50")).quantize(Decimal("0.01"))
    assert r.cost == Decimal("10.00")
    assert isinstance(r.cost, Decimal)
    assert (r.requests, r.succeeded, r.failed) == (3600, 3600, 0)
    assert r.queue_wait_p95_s == 0.0
    # Each request runs alone: 100 prompt tokens at 6000 tok/s, 9 more tokens at 40 tok/s.
    assert r.ttft_p95_s == pytest.approx(100 / 6000)
    assert r.e2e_p95_s == pytest.approx(100 / 6000 + 9 / 40)
    assert r.peak_replicas == 2
    assert r.mean_replicas == pytest.approx(2.0)


def test_more_replicas_lower_queue_wait_and_slo_minutes() -> None:
    traffic = TraceReplay(default_trace().window(0, 900))
    one = simulate(traffic, policy=fixed_replicas(1), initial_replicas=1, ttft_slo_s=2.0)
    three = simulate(traffic, policy=fixed_replicas(3), initial_replicas=3, ttft_slo_s=2.0)
    assert one.queue_wait_p95_s is not None
    assert three.queue_wait_p95_s is not None
    assert three.queue_wait_p95_s < one.queue_wait_p95_s
    assert three.slo_violation_minutes < one.slo_violation_minutes
    assert three.gpu_hours > one.gpu_hours


def test_violation_minutes_by_arrival_minute_failed_counts_as_inf() -> None:
    sid = ServiceId("a", "b")

    def o(arrival: float, ttft: float | None, reason: str = "stop") -> RequestOutcome:
        return RequestOutcome(sid, "p", arrival, arrival + 1, 1, 1, reason, 0.0, ttft)  # type: ignore[arg-type]

    outcomes = [o(1, 0.1), o(2, 0.2), o(61, 5.0), o(62, 0.1), o(125, None, "error"), o(200, 1.0)]
    assert _violation_minutes(outcomes, 2.0) == 2  # minute 1 (p95 = 5 s) and minute 2 (error)
    assert _violation_minutes(outcomes, 10.0) == 1


def test_runs_are_bounded_without_capacity() -> None:
    traffic = ConstantRate(1.0, duration=60.0)
    r = simulate(traffic, policy=fixed_replicas(0), initial_replicas=0, drain_timeout_s=100.0)
    assert r.duration_s == pytest.approx(160.0)
    assert r.succeeded == 0
    assert r.gpu_hours == 0
    timed = simulate(traffic, policy=fixed_replicas(0), initial_replicas=0,
                     queue_timeout_s=10.0, drain_timeout_s=100.0)  # fmt: skip
    assert timed.failed == 60
    assert timed.slo_violation_minutes == 1
    assert math.isclose(timed.duration_s, 70.0, abs_tol=1.0)


def test_report_table_mentions_every_figure() -> None:
    r = simulate(ConstantRate(2.0, duration=120.0), policy=fixed_replicas(1))
    text = r.table()
    for word in ("GPU-hours", "cost @ 2.50/GPU-hour", "TTFT p50 / p95", "queue wait p50 / p95",
                 "SLO-violation minutes", str(r.cost)):  # fmt: skip
        assert word in text
