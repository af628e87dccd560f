"""SLO-targeted sizing (policy/slo.py) and its place in decide_replicas (metric type SLO)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aipolicy.api.inferenceservice import Scaling, ScalingMetric
from aipolicy.api.slo import ServingSlo, SloForecast, SloOverflow
from aipolicy.policy.observations import Unavailable, Value
from aipolicy.policy.scaling import ScalingMemory, ScalingObservation, decide_replicas
from aipolicy.policy.serving import PROFILES, LoadShape, predicted_ttft_p95, sustainable_rate
from aipolicy.policy.slo import ReplicaLoad, ServiceLoad, SloMemory, overflow, slo_replicas, slo_requirement

H100 = PROFILES["H100/8B"]
A100 = PROFILES["A100-80GB/8B"]
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
CHAT = ServiceLoad(requests_per_s=0.0, prompt_tokens=1000, output_tokens=200)


def _load(rate: float, waiting: float = 0.0) -> ServiceLoad:
    return ServiceLoad(rate, 1000, 200, waiting)


def test_predicted_ttft_grows_with_load_and_saturates() -> None:
    shape = LoadShape(1000, 200)
    values = [predicted_ttft_p95(A100, r, shape) for r in (0.0, 1.0, 3.0, 6.0, 100.0)]
    assert values == sorted(values)
    assert values[-1] == float("inf")


def test_capacity_is_higher_on_a_faster_gpu_and_looser_slo() -> None:
    shape = LoadShape(1000, 200)
    assert sustainable_rate(H100, shape, 2.0) > sustainable_rate(A100, shape, 2.0) > 0
    assert sustainable_rate(A100, shape, 4.0) >= sustainable_rate(A100, shape, 1.0)


def test_replicas_follow_the_rate() -> None:
    slo = ServingSlo(ttft_p95=2.0)
    one = slo_requirement(slo, A100, _load(1.0), SloMemory(), T0, 0)
    ten = slo_requirement(slo, A100, _load(10.0), SloMemory(), T0, 0)
    assert ten.required == 10 * one.required
    # a backlog is planned to clear within a minute
    backlog = slo_requirement(slo, A100, _load(1.0, waiting=60), SloMemory(), T0, 0)
    assert backlog.plan_rate == 2.0


def test_hysteresis_does_not_see_saw() -> None:
    assert slo_replicas(2.3, 2, 0.1) == 3  # up as soon as the ceiling is above
    assert slo_replicas(1.95, 3, 0.1) == 3  # 2 replicas would run at 97.5 %: hold
    assert slo_replicas(1.7, 3, 0.1) == 2  # 85 %: down
    # a load wobbling around 2.0 never moves a count of 3
    assert {slo_replicas(x, 3, 0.1) for x in (1.85, 1.95, 2.05, 2.4)} == {3}


def test_forecast_scales_ahead_of_a_recurring_peak() -> None:
    slo = ServingSlo(forecast=SloForecast(period="24h", bins=96))
    memory = SloMemory()
    day = timedelta(days=1)
    peak = T0 + timedelta(minutes=30)
    # day 1: quiet at noon, busy at 12:30
    memory = slo_requirement(slo, A100, _load(1.0), memory, T0, 0).memory
    memory = slo_requirement(slo, A100, _load(20.0), memory, peak, 0).memory
    # day 2 at noon, with 35 minutes of cold start ahead: the 12:30 peak is planned for
    ahead = slo_requirement(slo, A100, _load(1.0), memory, T0 + day, lead_s=35 * 60)
    now_only = slo_requirement(slo, A100, _load(1.0), memory, T0 + day, lead_s=0)
    assert ahead.plan_rate == 20.0
    assert now_only.plan_rate == 1.0
    # a peak that does not come back fades: halved each period
    memory = ahead.memory
    memory = slo_requirement(slo, A100, _load(1.0), memory, peak + day, 0).memory
    later = slo_requirement(slo, A100, _load(1.0), memory, T0 + 2 * day, lead_s=35 * 60)
    assert later.plan_rate == 10.0


def test_overflow_when_no_replica_is_ready_or_the_queue_is_long() -> None:
    slo = ServingSlo(ttft_p95=2.0, overflow=SloOverflow(inference_service="api"))
    assert overflow(slo, A100, [], 1000)
    assert not overflow(slo, A100, [ReplicaLoad(0, 10)], 1000)
    assert overflow(slo, A100, [ReplicaLoad(200_000, 100)], 1000)
    # the least-loaded replica decides
    assert not overflow(slo, A100, [ReplicaLoad(200_000, 100), ReplicaLoad(0, 0)], 1000)
    assert not overflow(ServingSlo(), A100, [], 1000)  # no overflow configured


def _scaling(**kw: object) -> Scaling:
    return Scaling(min_replicas=1, max_replicas=20, metric=ScalingMetric(type="SLO"), slo=ServingSlo(), **kw)


def _obs(now: datetime, current: int, load: ServiceLoad | Unavailable | None) -> ScalingObservation:
    return ScalingObservation(
        now=now,
        current_replicas=current,
        ready_replicas=current,
        starting_replicas=0,
        unschedulable_replicas=0,
        metric=Value(0),
        demand=Value(0),
        load=load,
    )


def test_decide_replicas_sizes_for_the_slo() -> None:
    scaling = _scaling()
    per_replica = sustainable_rate(A100, LoadShape(1000, 200), 2.0) * 0.9
    d = decide_replicas(scaling, _obs(T0, 1, _load(per_replica * 4.5)), ScalingMemory(), profile=A100)
    assert d.desired == 5  # +4 at most per decision, from 1
    assert d.reason == "ScaleUp"
    assert "req/s per replica at p95 TTFT 2s on A100-80GB/8B" in d.message
    assert d.memory.slo.last_bin >= 0  # the forecast remembers


def test_decide_replicas_scales_down_only_after_the_window() -> None:
    scaling = _scaling()
    per_replica = sustainable_rate(A100, LoadShape(1000, 200), 2.0) * 0.9
    memory = ScalingMemory()
    d = decide_replicas(scaling, _obs(T0, 4, _load(per_replica * 3.9)), memory, profile=A100)
    assert d.desired == 4
    memory = d.memory
    desired = []
    for k in range(1, 25):
        now = T0 + timedelta(seconds=15 * k)
        d = decide_replicas(scaling, _obs(now, 4, _load(per_replica * 1.5)), memory, profile=A100)
        memory = d.memory
        desired.append(d.desired)
    assert desired[:19] == [4] * 19  # scaleDownStabilization 5m holds
    assert 3 in desired[19:]


def test_missing_load_or_profile_is_an_unavailable_metric() -> None:
    scaling = _scaling()
    d = decide_replicas(scaling, _obs(T0, 3, None), ScalingMemory(), profile=A100)
    assert (d.desired, d.reason, d.metrics_available) == (3, "MetricsUnavailable", False)
    d = decide_replicas(scaling, _obs(T0, 3, _load(5.0)), ScalingMemory(), profile=None)
    assert not d.metrics_available


def test_a_saturated_kv_cache_overflows() -> None:
    slo = ServingSlo(ttft_p95=2.0, overflow=SloOverflow(inference_service="api"))
    assert overflow(slo, A100, [ReplicaLoad(0, 10, kv_usage=0.85)], 1000)
    assert not overflow(slo, A100, [ReplicaLoad(0, 10, kv_usage=0.85), ReplicaLoad(0, 10, 0.5)], 1000)


def test_the_kv_cache_bounds_the_sustainable_rate() -> None:
    shape = LoadShape(4000, 1000)
    roomy = sustainable_rate(A100, shape, 30.0)
    from dataclasses import replace

    cramped = sustainable_rate(replace(A100, kv_tokens=40_000), shape, 30.0)
    assert 0 < cramped < roomy


def test_the_gateway_routes_to_the_replica_predicted_fastest() -> None:
    from aipolicy.policy.slo import route

    slo = ServingSlo(ttft_p95=2.0, overflow=SloOverflow(inference_service="api"))
    loads = [ReplicaLoad(8000, 50), ReplicaLoad(500, 80), ReplicaLoad(0, 10, kv_usage=0.9)]
    assert route(slo, A100, loads, 1000) == 1  # the saturated one is skipped
    assert route(slo, A100, [ReplicaLoad(200_000, 100)], 1000) is None  # over budget: overflow
    assert route(ServingSlo(), A100, [ReplicaLoad(200_000, 100)], 1000) == 0  # nowhere else to go
