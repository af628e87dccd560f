"""Benchmarks of the pure core: how long one decision takes, and the memory it needs.

These bound the operator's CPU per object per evaluation: the controllers call each function
once per object per interval.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aipolicy.api.aibudget import AIBudgetSpec, AIBudgetStatus
from aipolicy.api.fallbackpolicy import FallbackPolicySpec, FallbackPolicyStatus
from aipolicy.api.inferenceservice import Pricing, Scaling
from aipolicy.policy.budget import evaluate_budget
from aipolicy.policy.fallback import BackendHealth, TriggerObservation, decide_fallback
from aipolicy.policy.observations import Value
from aipolicy.policy.scaling import ScalingMemory, ScalingObservation, decide_replicas
from aipolicy.policy.spend import ServiceUsage, service_cost
from aipolicy.sim.offline import fixed_replicas, simulate
from aipolicy.sim.traffic import TraceReplay, load_trace

NOW = datetime(2026, 11, 16, 18, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Result:
    name: str
    calls: int
    per_call_us: float
    peak_kib: float


def measure(name: str, fn: Callable[[], object], calls: int) -> Result:
    fn()  # warm up imports and caches
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - start
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return Result(name, calls, elapsed / calls * 1e6, peak / 1024)


def scaling_decision() -> Callable[[], object]:
    scaling = Scaling(
        min_replicas=0,
        max_replicas=16,
        scale_to_zero_after="10m",
        prewarm=[
            {
                "name": "am",
                "schedule": "0 8 * * 1-5",
                "time_zone": "Europe/Paris",
                "duration": "10h",
                "min_replicas": 2,
            }
        ],
    )
    history = tuple((NOW - timedelta(seconds=15 * i), 3 + i % 3) for i in range(20))
    memory = ScalingMemory(recommendations=history, last_scale_time=NOW - timedelta(minutes=3))
    obs = ScalingObservation(NOW, 4, 3, 1, 0, Value(23.0), Value(0.0))
    return lambda: decide_replicas(scaling, obs, memory)


def budget_evaluation(services: int) -> Callable[[], object]:
    spec = AIBudgetSpec.model_validate(
        {
            "limit": "5000",
            "thresholds": [
                {"percent": 50, "action": "Notify"},
                {"percent": 80, "action": "Degrade"},
                {"percent": 100, "action": "Suspend"},
            ],
        }
    )
    pricing = Pricing(gpu_hour="2.21", input_per_million_tokens="0.15", output_per_million_tokens="0.60")
    usage = ServiceUsage("svc", Value(120000.0), Value(40000.0), Value(0.5))
    previous = AIBudgetStatus()

    def run() -> object:
        costs = {f"svc-{i}": service_cost(pricing, usage) for i in range(services)}
        return evaluate_budget(spec, previous, costs, {}, NOW, Decimal("12.5"))

    return run


def fallback_decision() -> Callable[[], object]:
    spec = FallbackPolicySpec.model_validate(
        {
            "target": "big",
            "triggers": [{"type": "ErrorRate", "threshold": 0.05}, {"type": "Unavailable"}],
            "chain": [{"inferenceService": "small"}, {"provider": {"url": "https://api.example.com/v1"}}],
        }
    )
    triggers = [TriggerObservation(Value(0.2)), TriggerObservation(Value(2.0))]
    chain = [BackendHealth(True, True), BackendHealth(True, True)]
    return lambda: decide_fallback(spec, FallbackPolicyStatus(), triggers, chain, NOW)


def run_core() -> list[Result]:
    return [
        measure(
            "scaling decision (20 recommendations of history, a pre-warm schedule)", scaling_decision(), 5000
        ),
        measure("budget evaluation, 1 service", budget_evaluation(1), 5000),
        measure("budget evaluation, 100 services", budget_evaluation(100), 200),
        measure("fallback decision (2 triggers, 2-step chain)", fallback_decision(), 5000),
    ]


def run_simulator() -> tuple[float, int, str]:
    """Seconds to replay the whole trace through the fleet model at 3 fixed replicas."""
    trace = load_trace()
    start = time.perf_counter()
    report = simulate(
        TraceReplay(trace, speedup=1.0, scale=1.0, seed=0),
        policy=fixed_replicas(3),
        initial_replicas=3,
        gpu_hour_rate=Decimal("2.50"),
    )
    return time.perf_counter() - start, len(trace.requests), f"{report.gpu_hours:.3f} GPU-hours"
