"""``aipolicy simulate -f <manifests>... --trace <csv>``: the operator's scaling on a trace, offline.

AIBudgets and a FallbackPolicy in the manifests act on the service they govern in the
operator's row (:mod:`aipolicy.whatif.governance`): the budget and fallback state machines,
the mode, and the gateway's routing of every request.

For each self-hosted InferenceService in the manifests it replays the trace through the
calibrated serving model (docs/serving-model.md) and prints one table: the spec's own scaling
(the operator's decide_replicas) and, side by side under the same serving model and SLO,
static provisioning (the smallest count meeting the SLO, by search), an HPA and KEDA. With
``--sweep`` each family is swept for its cheapest configuration meeting the SLO, and
aipolicy's SLO policy is added. ``--output json`` and ``--plot file.png`` for the rest.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

from aipolicy.api.common import parse_duration
from aipolicy.api.inferenceservice import InferenceService, Scaling, ScalingMetric
from aipolicy.api.slo import ServingSlo, SloOverflow
from aipolicy.policy.serving import PROFILES, LoadShape, ServingProfile, profile_for, sustainable_rate
from aipolicy.whatif import report
from aipolicy.whatif.baselines import Hpa, Keda
from aipolicy.whatif.governance import Governance
from aipolicy.whatif.manifests import ManifestError, Manifests, load_manifests
from aipolicy.whatif.prometheus import fetch_trace
from aipolicy.whatif.run import ApiPrices, Autoscaler, HpaScaler, OperatorScaler, RunResult, StaticScaler, run
from aipolicy.whatif.traces import Trace, TraceError, load

__all__ = ["Case", "build_parser", "hpa_scaler", "initial_replicas", "main", "static_search", "sweep"]

HPA_GRID: tuple[tuple[str, float], ...] = (
    ("RequestsInFlight", 4), ("RequestsInFlight", 8), ("RequestsInFlight", 16), ("RequestsInFlight", 24),
    ("RequestsInFlight", 32),
    ("RequestsInFlight", 48), ("RequestsInFlight", 64), ("RequestsInFlight", 96),
    ("QueueDepth", 1), ("QueueDepth", 2), ("QueueDepth", 4), ("QueueDepth", 8),
)  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One service to simulate: its spec, serving profile and everything a run needs."""

    isvc: InferenceService
    profile: ServingProfile
    trace: Trace
    costs: report.Costs
    ttft_slo_s: float
    cold_start_s: float
    timeout_s: float
    seed: int
    initial: int
    overflow: tuple[InferenceService, ApiPrices] | None
    note: str = ""
    manifests: Manifests | None = None
    """For the budgets and fallback policy governing the service (whatif.governance)."""
    gpu_capacity: int | None = None
    """GPUs the cluster has for the service (--gpus); replicas beyond stay Pending."""

    @property
    def gpus(self) -> int:
        serving = self.isvc.spec.serving
        return serving.gpu.count if serving is not None and serving.gpu.count > 0 else 1

    def run(
        self,
        scaler: Autoscaler,
        *,
        first_decision_s: float = 0.0,
        slo: ServingSlo | None = None,
        initial: int | None = None,
        governance: Governance | None = None,
    ) -> RunResult:
        return run(
            self.trace,
            self.profile,
            scaler,
            initial=self.initial if initial is None else initial,
            cold_start_median_s=self.cold_start_s,
            timeout_s=self.timeout_s,
            gpus_per_replica=self.gpus,
            seed=self.seed,
            first_decision_s=first_decision_s,
            overflow_to=(slo, self.overflow[1]) if slo is not None and self.overflow else None,
            governance=governance,
            gpu_capacity=self.gpu_capacity,
        )

    def summary(self, result: RunResult) -> report.Summary:
        return report.summarize(result, self.costs, self.ttft_slo_s)

    def operator(self, isvc: InferenceService) -> tuple[RunResult, report.Summary]:
        scaler = OperatorScaler(isvc, self.profile, self.trace.start, self.initial)
        slo = isvc.spec.scaling.slo
        use_overflow = isvc.spec.scaling.metric.type == "SLO" and slo is not None and slo.overflow is not None
        result = self.run(
            scaler,
            first_decision_s=scaler.first_decision(),
            slo=slo if use_overflow else None,
            governance=self.governance(isvc),
        )
        return result, self.summary(result)

    def governance(self, isvc: InferenceService) -> Governance | None:
        """The AIBudgets and FallbackPolicy of the manifests acting on the service (the
        operator's rows only: an HPA or a static count has none)."""
        if self.manifests is None:
            return None
        governed = Governance(isvc, self.manifests, self.trace.start, gpus_per_replica=self.gpus)
        return governed if governed.active else None


def _with_scaling(isvc: InferenceService, **changes: object) -> InferenceService:
    scaling = isvc.spec.scaling.model_copy(update=changes)
    return isvc.model_copy(update={"spec": isvc.spec.model_copy(update={"scaling": scaling})})


def slo_variant(case: Case, provider: str | None) -> InferenceService:
    """The spec with metric type SLO at the case's target, overflowing to ``provider``."""
    current = case.isvc.spec.scaling.slo
    slo = current or ServingSlo(ttft_p95=case.ttft_slo_s)
    if provider is not None and slo.overflow is None:
        slo = slo.model_copy(update={"overflow": SloOverflow(inference_service=provider)})
    return _with_scaling(case.isvc, metric=ScalingMetric(type="SLO"), slo=slo)


def static_search(case: Case, limit: int) -> tuple[RunResult, report.Summary] | None:
    """The smallest fixed count meeting the SLO: doubling, then bisection (cost grows with the
    count, and so does the chance of meeting the SLO)."""
    tried: dict[int, tuple[RunResult, report.Summary]] = {}

    def attempt(n: int) -> bool:
        if n not in tried:
            result = case.run(StaticScaler(n), initial=n)  # provisioned: all n are up from the start
            tried[n] = (result, case.summary(result))
        return tried[n][1].meets_slo

    hi = max(1, case.initial)
    while not attempt(hi):
        if hi >= limit:
            return None
        hi = min(hi * 2, limit)
    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mid >= 1 and attempt(mid):
            hi = mid
        else:
            lo = mid
    return tried[hi]


def hpa_scaler(case: Case, metric: str, target: float, keda: bool) -> HpaScaler:
    scaling = case.isvc.spec.scaling
    low = max(scaling.min_replicas, 1)
    hpa = Hpa(min_replicas=low, max_replicas=scaling.max_replicas, target=target)
    kind: Literal["RequestsInFlight", "QueueDepth"] = (
        "RequestsInFlight" if metric == "RequestsInFlight" else "QueueDepth"
    )
    # the runs start warm, with traffic flowing: KEDA's lastActiveTime is the start
    scaled = Keda(hpa, min_replica_count=scaling.min_replicas, last_active=0.0) if keda else None
    return HpaScaler(hpa, kind, scaled)


def sweep(
    case: Case, make: Callable[[str, float], Autoscaler], grid: Sequence[tuple[str, float]]
) -> tuple[RunResult, report.Summary]:
    """The cheapest configuration meeting the SLO; if none does, the one with the fewest
    violating minutes (then failures, then cost)."""
    best: tuple[RunResult, report.Summary] | None = None
    for metric, target in grid:
        result = case.run(make(metric, target))
        s = case.summary(result)
        key = (not s.meets_slo, s.slo_violating_minutes, s.failed, s.total_cost)
        if best is None or key < (not best[1].meets_slo, best[1].slo_violating_minutes, best[1].failed,
                                  best[1].total_cost):  # fmt: skip
            best = (result, s)
    assert best is not None
    return best


def initial_replicas(profile: ServingProfile, trace: Trace, scaling: Scaling, slo_s: float) -> int:
    """Replicas Ready at the start, for every autoscaler alike: what the model says the busiest
    15 s of the first two minutes needs at the SLO, within [max(minReplicas, 1), maxReplicas]."""
    first = [i for i, a in enumerate(trace.arrivals) if a < 120.0]
    if not first:
        return max(scaling.min_replicas, 1)
    prompt = sum(trace.prompt_tokens[i] for i in first) / len(first)
    output = sum(trace.output_tokens[i] for i in first) / len(first)
    per_window: dict[int, int] = {}
    for i in first:
        per_window[int(trace.arrivals[i] // 15)] = per_window.get(int(trace.arrivals[i] // 15), 0) + 1
    busiest = max(per_window.values()) / 15.0
    per_replica = sustainable_rate(profile, LoadShape(prompt, output), slo_s) * 0.9
    need = math.ceil(busiest / per_replica) if per_replica > 0 else scaling.max_replicas
    return min(max(need, scaling.min_replicas, 1), scaling.max_replicas)


def _case(isvc: InferenceService, manifests: Manifests, trace: Trace, args: argparse.Namespace) -> Case:
    serving = isvc.spec.serving
    assert serving is not None
    slo = isvc.spec.scaling.slo
    note = ""
    if args.profile:
        profile = PROFILES[args.profile]
    elif slo is not None and slo.profile:
        profile = PROFILES[slo.profile]
    else:
        profile, note = profile_for(isvc.spec.model, serving.gpu.product, serving.gpu.count)
    ttft = args.ttft_slo if args.ttft_slo is not None else (slo.ttft_p95 if slo else 2.0)
    prices = isvc.spec.pricing
    overflow = None
    provider_name = args.overflow_to or (slo.overflow.inference_service if slo and slo.overflow else None)
    if provider_name is None and args.sweep:
        # the SLO policy of the sweep overflows to the namespace's API-backed service, if any
        providers = [
            s for s in manifests.services
            if s.spec.provider is not None and s.metadata.namespace == isvc.metadata.namespace
        ]  # fmt: skip
        provider_name = providers[0].metadata.name if providers else None
    api_in = api_out = Decimal(0)
    if provider_name:
        provider = manifests.find(isvc.metadata.namespace, provider_name)
        if provider is None or provider.spec.provider is None:
            raise ManifestError(
                f"{isvc.metadata.namespace}/{isvc.metadata.name}: overflow target {provider_name!r} is "
                "not an API-backed InferenceService in the manifests (same namespace, spec.provider set)"
            )
        p = provider.spec.pricing
        api_in = Decimal(p.input_per_million_tokens or "0")
        api_out = Decimal(p.output_per_million_tokens or "0")
        overflow = (provider, ApiPrices(api_in, api_out))
    # unset coldStartSeconds: the live operator measures it; offline, the profile's median
    spec_cold = isvc.spec.scaling.cold_start_seconds
    cold = float(spec_cold) if spec_cold else profile.cold_start_median_s
    return Case(
        isvc=isvc,
        profile=profile,
        trace=trace,
        costs=report.Costs(Decimal(prices.gpu_hour or "0"), api_in, api_out),
        ttft_slo_s=ttft,
        cold_start_s=cold,
        timeout_s=args.timeout,
        seed=args.seed,
        initial=args.initial
        if args.initial is not None
        else initial_replicas(profile, trace, isvc.spec.scaling, ttft),
        overflow=overflow,
        note=note,
        manifests=manifests,
        gpu_capacity=args.gpus,
    )


def compare(case: Case, *, baselines: bool, do_sweep: bool) -> list[tuple[RunResult, report.Summary]]:
    """The spec's own scaling, then the baselines (and with sweep, aipolicy's SLO policy)."""
    rows = [case.operator(case.isvc)]
    limit = max(case.isvc.spec.scaling.max_replicas, 1) * 4
    if baselines:
        static = static_search(case, limit)
        if static is not None:
            rows.append(static)
        metric = case.isvc.spec.scaling.metric
        if do_sweep:
            rows.append(sweep(case, lambda m, t: hpa_scaler(case, m, t, keda=False), HPA_GRID))
            rows.append(sweep(case, lambda m, t: hpa_scaler(case, m, t, keda=True), HPA_GRID))
        else:
            same = metric.type in ("QueueDepth", "RequestsInFlight")
            kind, target = (metric.type, metric.target) if same else ("RequestsInFlight", 32.0)
            for keda in (False, True):
                result = case.run(hpa_scaler(case, kind, target, keda))
                rows.append((result, case.summary(result)))
    if do_sweep and case.isvc.spec.scaling.metric.type != "SLO":
        provider = case.overflow[0].metadata.name if case.overflow else None
        rows.append(case.operator(slo_variant(case, provider)))
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aipolicy simulate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="PATH",
        help="manifest file or directory (repeatable), as for kubectl apply -f",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--trace",
        type=Path,
        help="trace CSV: Azure (TIMESTAMP,ContextTokens,GeneratedTokens) or generic "
        "(timestamp,prompt_tokens,output_tokens); .gz ok",
    )
    source.add_argument(
        "--from-prometheus",
        metavar="URL",
        help="rebuild the trace from the service's recorded metrics (needs --service)",
    )
    parser.add_argument("--since", default="24h", help="with --from-prometheus: how far back")
    parser.add_argument("--service", help="simulate only NAMESPACE/NAME")
    parser.add_argument("--sweep", action="store_true", help="sweep each family for its cheapest config")
    parser.add_argument("--no-baselines", dest="baselines", action="store_false")
    parser.add_argument("--output", choices=("table", "json"), default="table")
    parser.add_argument("--plot", type=Path, help="write a PNG of replicas, load and latency")
    parser.add_argument("--ttft-slo", type=float, help="seconds (default: spec slo.ttftP95, else 2)")
    parser.add_argument("--timeout", type=float, default=60.0, help="client gives up without a first token")
    parser.add_argument("--initial", type=int, help="replicas Ready at the start (default: sized)")
    parser.add_argument("--profile", choices=sorted(PROFILES), help="override the serving profile")
    parser.add_argument("--overflow-to", help="API-backed InferenceService for the SLO policy's overflow")
    parser.add_argument("--gpus", type=int, help="GPUs the cluster has for the service (default: no limit)")
    parser.add_argument("--seed", type=int, default=0)
    return parser  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        manifests = load_manifests(args.filename)
        if args.from_prometheus:
            if not args.service:
                raise ManifestError("--from-prometheus needs --service NAMESPACE/NAME")
            trace = fetch_trace(args.from_prometheus, args.service, parse_duration(args.since))
        else:
            trace = load(args.trace)
        services = [s for s in manifests.services if s.spec.serving is not None]
        if args.service:
            services = [s for s in services if f"{s.metadata.namespace}/{s.metadata.name}" == args.service]
            if not services:
                raise ManifestError(f"no self-hosted InferenceService {args.service} in the manifests")
    except (ManifestError, TraceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cases: list[Case] = []
    skipped: list[str] = []
    for isvc in services:
        try:
            cases.append(_case(isvc, manifests, trace, args))
        except (ManifestError, ValueError) as exc:
            if args.service:  # the one service asked for: an error
                print(f"error: {exc}", file=sys.stderr)
                return 2
            skipped.append(f"{isvc.metadata.namespace}/{isvc.metadata.name}: {exc}")
    out: list[dict[str, object]] = []
    all_results: list[RunResult] = []
    for case in cases:
        rows = compare(case, baselines=args.baselines, do_sweep=args.sweep)
        all_results += [r for r, _ in rows]
        name = f"{case.isvc.metadata.namespace}/{case.isvc.metadata.name}"
        head = (
            f"{name}: {case.isvc.spec.model} on {case.profile.name} x{case.gpus} GPU, "
            f"{len(trace)} requests over {trace.duration / 3600:.2f} h from {trace.source}; "
            f"SLO p95 TTFT <= {case.ttft_slo_s:g}s every minute, no failed request"
        )
        if args.output == "json":
            notes = list(rows[0][0].governance.notes) if rows[0][0].governance else []
            out.append({"service": name, "profile": case.profile.name, "note": case.note, "notes": notes,
                        "results": [report.to_json_obj(s) for _, s in rows]})  # fmt: skip
        else:
            print(head)
            if case.note:
                print(f"note: {case.note}")
            print(report.table([s for _, s in rows]))
            for r, _ in rows[:1]:
                for line in r.governance.notes if r.governance else ():
                    print(f"note: {line}")
            print()
    if args.output == "json":
        import json

        print(json.dumps({"services": out, "ignored": list(manifests.others), "skipped": skipped}, indent=2))
    else:
        for line in skipped:
            print(f"skipped {line}")
        if manifests.others:
            print(f"not simulated: {', '.join(manifests.others)}")
    if args.plot and all_results:
        report.plot(all_results, args.plot, cases[0].ttft_slo_s)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
