"""Held-out check of the SLO policy on traffic bench/whatif.py does not use.

    .venv/bin/python -m bench.whatif_heldout [name-substring...]

Same service, SLO and defaults as bench/whatif.py (maxReplicas 40); prints, per case, whether
aipolicy's SLO policy met the SLO and its total cost against the smallest static count.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime

from aipolicy.api.inferenceservice import ScalingMetric
from aipolicy.api.slo import ServingSlo, SloForecast, SloOverflow
from aipolicy.policy.serving import PROFILES
from aipolicy.whatif.cli import static_search
from aipolicy.whatif.traces import Trace
from bench.whatif import _azure, _case, _service, synthetic


def _faster(trace: Trace, k: float) -> Trace:
    return Trace(
        tuple(a / k for a in trace.arrivals), trace.prompt_tokens, trace.output_tokens, trace.start, f"x{k:g}"
    )


def main(only: list[str]) -> int:
    for line in run_cases(only):
        print(line, flush=True)
    return 0


def run_cases(only: list[str] | None = None) -> list[str]:
    """One line per held-out case: SLO met, cost, and cost against the smallest static count."""
    lines: list[str] = []
    azure = _azure()
    start = datetime(2026, 1, 7, tzinfo=UTC)
    seed2 = synthetic(hours=3, mean_rate=8.0, period_s=5400, amplitude=0.5, burst_every_s=300,
                      burst_factor=25, sizes=azure, seed=2, start=start)  # fmt: skip
    seed3 = synthetic(hours=3, mean_rate=2.0, period_s=5400, amplitude=0.9, burst_every_s=900,
                      burst_factor=25, sizes=azure, seed=3, start=start)  # fmt: skip
    cases = [
        ("azure x3", _faster(azure, 3), "24h", None),
        ("azure H100", azure, "24h", "H100/8B"),
        ("azure L4", azure, "24h", "L4/8B"),
        ("synthetic seed 2", seed2, "90m", None),
        ("synthetic seed 3", seed3, "90m", None),
    ]
    for name, trace, period, profile in cases:
        if only and not any(o in name for o in only):
            continue
        isvc, api = _service()
        case = _case(trace, isvc, api)
        if profile:  # the GPU changes: the engine runs its profile and the spec names it
            case = replace(case, profile=PROFILES[profile])
        slo = ServingSlo(
            ttft_p95=2.0,
            profile=profile,
            forecast=SloForecast(period=period),
            overflow=SloOverflow(inference_service=api.metadata.name),
        )
        scaling = isvc.spec.scaling.model_copy(
            update={"metric": ScalingMetric(type="SLO"), "slo": slo, "max_replicas": 40}
        )
        tuned = isvc.model_copy(update={"spec": isvc.spec.model_copy(update={"scaling": scaling})})
        _, ours = case.operator(tuned)
        static = static_search(case, 40)
        versus = f"{static[1].label} ${static[1].total_cost}" if static else "none met the SLO"
        ratio = f"{ours.total_cost / static[1].total_cost:.2f}" if static else "-"
        lines.append(
            f"{name}: SLO met {'yes' if ours.meets_slo else 'NO'} ({ours.slo_violating_minutes} violating "
            f"minutes, {ours.failed} failed), ${ours.total_cost} ({ours.api_requests} requests to the API); "
            f"static: {versus}; ratio to static {ratio}"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
