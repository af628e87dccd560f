"""What-if benchmark: static vs the best HPA/KEDA vs aipolicy, at one SLO, on two traces.

    python -m bench.whatif            # prints the BENCHMARKS.md section

SLO: p95 TTFT <= 2 s in every minute and no failed request (timeout 60 s without a first token).
Service: manifests/samples' llama-8b (Llama-3.1-8B on an A100-40GB at $2.21/GPU-hour, cold start
180 s median) without its pre-warm and scale-to-zero (minReplicas 1, maxReplicas 16), with
gpt-4o-mini ($0.15/$0.60 per million tokens) as the API provider. Every policy starts with the
same Ready replicas. Traces: the shared Azure conversation trace (1 h) and a synthetic one
(6 h: diurnal with a 3 h period, x1.8 at peak, plus one-second bursts at 25x the mean rate every
10 minutes on average, sizes drawn from the Azure trace). aipolicy's configuration is the SLO
metric with its defaults, the forecast's period set to the traffic's period (24 h for the Azure
hour, 3 h for the synthetic traffic), and overflow to gpt-4o-mini.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from aipolicy.api.inferenceservice import InferenceService, ScalingMetric
from aipolicy.api.slo import ServingSlo, SloForecast, SloOverflow
from aipolicy.policy.serving import profile_for
from aipolicy.whatif import report
from aipolicy.whatif.cli import HPA_GRID, Case, hpa_scaler, initial_replicas, static_search, sweep
from aipolicy.whatif.manifests import load_manifests
from aipolicy.whatif.run import ApiPrices
from aipolicy.whatif.traces import Trace, load, synthetic

REPO = Path(__file__).resolve().parents[1]
SHARED = Path("/work/shared/data/azure-llm-trace-2023/AzureLLMInferenceTrace_conv.csv")
SLO_S = 2.0


@dataclass(frozen=True)
class Outcome:
    trace: str
    requests: int
    api_request_cost: Decimal
    """What one average request of the trace costs at the provider's prices."""
    gpu_hour: Decimal
    operator_before: report.Summary
    rows: list[report.Summary]
    aipolicy: report.Summary
    static: report.Summary | None
    best_autoscaler: report.Summary
    sim_hours_per_wall_minute: float


def _azure() -> Trace:
    if SHARED.exists():
        return load(SHARED)
    from aipolicy.sim.traffic import default_trace

    packaged = default_trace()
    return Trace(
        tuple(r.arrival for r in packaged.requests),
        tuple(r.prompt_tokens for r in packaged.requests),
        tuple(r.output_tokens for r in packaged.requests),
        datetime(2023, 11, 16, 18, 15, tzinfo=UTC),
        packaged.source,
    )


def _service() -> tuple[InferenceService, InferenceService]:
    manifests = load_manifests([REPO / "manifests" / "samples"])
    isvc = manifests.find("team-a", "llama-8b")
    api = manifests.find("team-a", "gpt-4o-mini")
    assert isvc is not None and api is not None
    scaling = isvc.spec.scaling.model_copy(
        update={"min_replicas": 1, "max_replicas": 16, "scale_to_zero_after": None, "prewarm": []}
    )
    return isvc.model_copy(update={"spec": isvc.spec.model_copy(update={"scaling": scaling})}), api


def _case(trace: Trace, isvc: InferenceService, api: InferenceService) -> Case:
    assert isvc.spec.serving is not None and api.spec.provider is not None
    profile, _ = profile_for(isvc.spec.model, isvc.spec.serving.gpu.product, isvc.spec.serving.gpu.count)
    prices = ApiPrices(
        Decimal(api.spec.pricing.input_per_million_tokens or "0"),
        Decimal(api.spec.pricing.output_per_million_tokens or "0"),
    )
    return Case(
        isvc=isvc,
        profile=profile,
        trace=trace,
        costs=report.Costs(
            Decimal(isvc.spec.pricing.gpu_hour or "0"), prices.input_per_million, prices.output_per_million
        ),
        ttft_slo_s=SLO_S,
        cold_start_s=float(isvc.spec.scaling.cold_start_seconds),
        timeout_s=60.0,
        seed=0,
        initial=initial_replicas(profile, trace, isvc.spec.scaling, SLO_S),
        overflow=(api, prices),
    )


def compare(trace: Trace, period: str) -> Outcome:
    isvc, api = _service()
    case = _case(trace, isvc, api)
    rows: list[report.Summary] = []
    static = static_search(case, 32)
    if static is not None:
        rows.append(static[1])
    hpa = sweep(case, lambda m, t: hpa_scaler(case, m, t, keda=False), HPA_GRID)[1]
    keda = sweep(case, lambda m, t: hpa_scaler(case, m, t, keda=True), HPA_GRID)[1]
    rows += [hpa, keda]
    before = case.operator(isvc)[1]  # the spec as shipped (QueueDepth 4)
    rows.append(before)
    slo = ServingSlo(
        ttft_p95=SLO_S,
        forecast=SloForecast(period=period),
        overflow=SloOverflow(inference_service=api.metadata.name),
    )
    scaling = isvc.spec.scaling.model_copy(update={"metric": ScalingMetric(type="SLO"), "slo": slo})
    tuned = isvc.model_copy(update={"spec": isvc.spec.model_copy(update={"scaling": scaling})})
    started = time.perf_counter()
    result, ours = case.operator(tuned)
    wall = time.perf_counter() - started
    rows.append(ours)
    candidates = [s for s in (hpa, keda) if s.meets_slo] or [hpa, keda]
    best = min(candidates, key=lambda s: s.total_cost)
    n = len(trace)
    mean_in = Decimal(sum(trace.prompt_tokens)) / n
    mean_out = Decimal(sum(trace.output_tokens)) / n
    costs = case.costs
    per_request = (mean_in * costs.api_input_per_million + mean_out * costs.api_output_per_million) / 10**6
    return Outcome(
        trace=trace.source,
        requests=n,
        api_request_cost=per_request,
        gpu_hour=costs.gpu_hour,
        operator_before=before,
        rows=rows,
        aipolicy=ours,
        static=static[1] if static else None,
        best_autoscaler=best,
        sim_hours_per_wall_minute=result.end / 3600 / (wall / 60),
    )


def _ratio(a: Decimal, b: Decimal) -> str:
    return f"{a / b:.2f}" if b > 0 else "-"


def section(outcomes: list[Outcome]) -> str:
    lines = [
        "## What-if: aipolicy's SLO policy against static, HPA and KEDA",
        "",
        "Command: `.venv/bin/python -m bench.whatif` (bench/whatif.py; part of `make bench`). Each row is",
        "`aipolicy simulate`'s serving model (docs/serving-model.md) under one policy; HPA and KEDA are",
        "the cheapest of a 12-configuration sweep (`--sweep`) meeting the SLO, static is the smallest",
        "count meeting it. SLO: p95 TTFT <= 2 s in every minute, no failed request. Service: the",
        "llama-8b sample (Llama-3.1-8B, A100-40GB, $2.21/GPU-hour, 180 s cold start), overflow to the",
        "gpt-4o-mini sample. aipolicy's constants are its defaults (utilization 0.9, overflow budget",
        "0.5 of the SLO); its forecast period is the traffic's period. Nothing was tuned to a trace.",
        "",
    ]
    for o in outcomes:
        lines += [f"### {o.trace}", "", report.table(o.rows), ""]
        ours = o.aipolicy.total_cost
        vs_best = _ratio(ours, o.best_autoscaler.total_cost)
        vs_static = _ratio(ours, o.static.total_cost) if o.static else "-"
        met = "" if o.best_autoscaler.meets_slo else ", which missed the SLO: none of the sweep met it"
        lines += [
            f"aipolicy (SLO) total cost / best HPA-KEDA ({o.best_autoscaler.label}{met}): **{vs_best}**"
            f" (goal <= 0.85); / static: **{vs_static}** (goal <= 0.60). SLO met by aipolicy: "
            f"{'yes' if o.aipolicy.meets_slo else 'NO'}. Simulator speed on this run: "
            f"{o.sim_hours_per_wall_minute:.0f} simulated hours per wall minute (goal >= 50).",
            "",
        ]
    lines += _analysis(outcomes)
    return "\n".join(lines).rstrip()


def _analysis(outcomes: list[Outcome]) -> list[str]:
    """What the numbers say against the issue's goals, computed from them."""
    lines = ["What the numbers say:", ""]
    for o in outcomes:
        ours = o.aipolicy
        name = o.trace.split("/")[-1]
        vs_best = _ratio(ours.total_cost, o.best_autoscaler.total_cost)
        goal = (
            "goal met" if ours.total_cost <= o.best_autoscaler.total_cost * Decimal("0.85") else "goal missed"
        )
        closest = (
            ""
            if o.best_autoscaler.meets_slo
            else "; no HPA/KEDA configuration of the sweep met the SLO, so this compares with the one "
            "that came closest: one-second bursts arrive faster than a reactive scaler (15 s sync plus "
            "the cold start) can add capacity"
        )
        flat = ""
        if o.static is not None and goal == "goal missed" and o.best_autoscaler.meets_slo:
            above = o.best_autoscaler.total_cost / o.static.total_cost - 1
            flat = (
                f"; the best HPA/KEDA costs only {above:.0%} more than static here: on flat traffic "
                "there is little to save by scaling, and the granularity limit below applies to it too"
            )
        lines.append(
            f"- **{name}**: SLO {'met' if ours.meets_slo else 'MISSED'} by aipolicy at {vs_best}x the best "
            f"HPA/KEDA ({goal}{closest}{flat}); {ours.api_requests / o.requests:.1%} of requests "
            "overflowed to the API."
        )
        if o.static is not None:
            target = o.static.total_cost * Decimal("0.60")
            ratio = _ratio(ours.total_cost, o.static.total_cost)
            if ours.total_cost <= target:
                lines.append(f"  Against static: {ratio}x (goal <= 0.60 met).")
            else:
                hours = target / o.gpu_hour if o.gpu_hour > 0 else Decimal(0)
                per_gpu_hour = o.gpu_hour / o.api_request_cost if o.api_request_cost > 0 else Decimal(0)
                lines.append(
                    f"  Against static: {ratio}x, goal 0.60 **missed**. 0.60x static is ${target:.2f}, "
                    f"{hours:.2f} GPU-hours with nothing sent to the API, against {o.static.label} for the "
                    f"trace, which the search found to be the fewest meeting the SLO; an average request "
                    f"costs ${o.api_request_cost:.5f} at the provider ({per_gpu_hour:,.0f} requests per "
                    "GPU-hour's price), so overflow cannot stand in for a busy replica much more cheaply. "
                    "On flat traffic the gap is the granularity of whole GPUs; closing it needs a smaller "
                    "unit of capacity (a cheaper GPU for part of the load, a mixed fleet), not faster "
                    "scaling."
                )  # fmt: skip
        b = o.operator_before
        lines.append(
            f"  The operator before this work (the sample's QueueDepth 4, same decide_replicas): "
            f"{b.replica_changes} replica changes, SLO {'met' if b.meets_slo else 'missed'} "
            f"({b.slo_violating_minutes} violating minutes, {b.failed} failed)."
        )
    speeds = ", ".join(f"{o.sim_hours_per_wall_minute:.0f}" for o in outcomes)
    lines += [
        f"- **Simulator speed**: {speeds} simulated hours per wall minute for one service (goal 50), on "
        "this shared machine.",
        "- **Caveats.** The synthetic traffic is ours (bench/whatif.py states its shape); the forecast's "
        "period is set to the traffic's period, as a user states theirs. The serving model's error "
        "against the cited measurements is up to 10 % (docs/serving-model.md); L4, A100-40GB and TP8 "
        "profiles are derived, not measured. KEDA equals HPA here: minReplicas is 1 and the traffic "
        "never stops, and KEDA only adds the 0 <-> 1 step. Requests are routed least-request over two "
        "random choices: a configuration at the margin of the SLO can pass or fail with the draw.",
        "",
        "Held-out check (`.venv/bin/python -m bench.whatif_heldout`): the same defaults on traffic not "
        "used above.",
        "",
    ]
    from bench.whatif_heldout import run_cases

    lines += [f"- {line}" for line in run_cases()]
    return lines


def run_all() -> list[Outcome]:
    azure = _azure()
    bursty = synthetic(
        hours=6,
        mean_rate=5.0,
        period_s=3 * 3600,
        amplitude=0.8,
        burst_every_s=600,
        burst_factor=25,
        sizes=azure,
        seed=11,
        start=datetime(2026, 1, 7, 0, 0, tzinfo=UTC),
    )
    return [compare(azure, "24h"), compare(bursty, "3h")]


def main() -> int:
    print(section(run_all()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
