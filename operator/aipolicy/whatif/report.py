"""Reports of what-if runs: cost, latency with misses, SLO minutes; a table, JSON, a PNG.

Latency percentiles are nearest-rank over every request of the trace, a failed or timed-out
request (or one that never finished) counting as a miss (an infinite latency): a policy cannot
look faster by dropping requests. The SLO is "p95 TTFT <= ttftP95 in every minute (by arrival)
and no failed request"; a minute whose p95, misses included, is over the target violates it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from aipolicy.whatif.run import RunResult

__all__ = ["Costs", "Summary", "plot", "summarize", "table", "to_json", "to_json_obj"]

CENTS = Decimal("0.01")


@dataclass(frozen=True)
class Costs:
    gpu_hour: Decimal
    api_input_per_million: Decimal = Decimal(0)
    api_output_per_million: Decimal = Decimal(0)


@dataclass(frozen=True)
class Summary:
    label: str
    requests: int
    failed: int
    api_requests: int
    gpu_hours: float
    gpu_cost: Decimal
    api_input_tokens: int
    api_output_tokens: int
    api_cost: Decimal
    total_cost: Decimal
    ttft_p50: float
    ttft_p95: float
    ttft_p99: float
    e2e_p50: float
    e2e_p95: float
    e2e_p99: float
    slo_violating_minutes: int
    replica_changes: int
    peak_replicas: int
    mean_replicas: float
    meets_slo: bool
    mode_minutes: dict[str, float] | None = None
    """Minutes in each mode (Normal, Degraded, Fallback, Suspended) when budgets or a fallback
    policy governed the run; None otherwise."""
    budgets: list[dict[str, str]] | None = None
    """Per budget selecting the service: name, spent, limit, currency, state at the end."""
    fallback_switches: int | None = None
    fallback_minutes: float | None = None
    """Minutes a fallback chain step served (whatever the mode)."""


def _pct(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def summarize(result: RunResult, costs: Costs, ttft_slo_s: float) -> Summary:
    done = result.requests
    never = result.arrived - len(done)
    ttft: list[float] = []
    e2e: list[float] = []
    minutes: dict[int, list[float]] = {}
    failed = never
    api_in = api_out = api_n = 0
    priced = Decimal(0)  # requests whose backend carries its own prices (the gateway's routes)
    for r in done:
        ok = not r.failed and r.first_token_at is not None and r.done_at is not None
        t = (r.first_token_at - r.arrival) if ok and r.first_token_at is not None else math.inf
        e = (r.done_at - r.arrival) if ok and r.done_at is not None else math.inf
        failed += 0 if ok else 1
        ttft.append(t)
        e2e.append(e)
        minutes.setdefault(int(r.arrival // 60), []).append(t)
        if r.backend == "api":
            api_n += 1
            if r.price is not None:
                priced += (r.prompt * r.price[0] + r.output * r.price[1]) / 1_000_000
            else:
                api_in += r.prompt
                api_out += r.output
    ttft += [math.inf] * never
    e2e += [math.inf] * never
    ttft.sort()
    e2e.sort()
    violating = sum(1 for v in minutes.values() if _pct(sorted(v), 0.95) > ttft_slo_s)
    gpu_hours = result.gpu_seconds * result.gpus_per_replica / 3600
    gpu_cost = (Decimal(repr(gpu_hours)) * costs.gpu_hour).quantize(CENTS, ROUND_HALF_UP)
    api_cost = (
        Decimal(api_in) * costs.api_input_per_million / 1_000_000
        + Decimal(api_out) * costs.api_output_per_million / 1_000_000
        + priced
    ).quantize(CENTS, ROUND_HALF_UP)
    api_in += sum(r.prompt for r in done if r.backend == "api" and r.price is not None)
    api_out += sum(r.output for r in done if r.backend == "api" and r.price is not None)
    billed = [n for _, n, _ in result.timeline]
    gov = result.governance
    return Summary(
        label=result.label,
        requests=result.arrived,
        failed=failed,
        api_requests=api_n,
        gpu_hours=round(gpu_hours, 3),
        gpu_cost=gpu_cost,
        api_input_tokens=api_in,
        api_output_tokens=api_out,
        api_cost=api_cost,
        total_cost=gpu_cost + api_cost,
        ttft_p50=_pct(ttft, 0.5),
        ttft_p95=_pct(ttft, 0.95),
        ttft_p99=_pct(ttft, 0.99),
        e2e_p50=_pct(e2e, 0.5),
        e2e_p95=_pct(e2e, 0.95),
        e2e_p99=_pct(e2e, 0.99),
        slo_violating_minutes=violating,
        replica_changes=result.replica_changes,
        peak_replicas=max(billed, default=0),
        mean_replicas=sum(billed) / len(billed) if billed else 0.0,
        meets_slo=violating == 0 and failed == 0,
        mode_minutes=None if gov is None else {m: round(v / 60, 2) for m, v in gov.mode_seconds.items()},
        budgets=None
        if gov is None
        else [
            {"name": n, "spent": str(spent), "limit": str(limit), "currency": cur, "state": state}
            for n, spent, limit, cur, state in gov.budgets
        ],
        fallback_switches=None if gov is None else gov.fallback_switches,
        fallback_minutes=None if gov is None else round(gov.fallback_seconds / 60, 2),
    )


def _modes(s: Summary) -> str:
    if s.mode_minutes is None:
        return "-"
    shown = [f"{m[0]} {v:.0f}" for m, v in s.mode_minutes.items() if v > 0]
    return " ".join(shown) or "-"


def _fallback(s: Summary) -> str:
    if s.fallback_switches is None:
        return "-"
    return f"{s.fallback_switches} ({s.fallback_minutes or 0:.0f})"


def _budgets(s: Summary) -> str:
    if not s.budgets:
        return "-"
    return " ".join(
        f"{Decimal(b['spent']).quantize(CENTS, ROUND_HALF_UP)}/{b['limit']} {b['state']}" for b in s.budgets
    )


def _s(v: float) -> str:
    return "miss" if math.isinf(v) else ("-" if math.isnan(v) else f"{v:.2f}")


COLUMNS = (
    ("policy", lambda s: s.label),
    ("GPU-h", lambda s: f"{s.gpu_hours:.2f}"),
    ("GPU $", lambda s: str(s.gpu_cost)),
    ("API req", lambda s: str(s.api_requests)),
    ("API tok in/out", lambda s: f"{s.api_input_tokens}/{s.api_output_tokens}"),
    ("API $", lambda s: str(s.api_cost)),
    ("total $", lambda s: str(s.total_cost)),
    ("TTFT p50/p95/p99 s", lambda s: f"{_s(s.ttft_p50)}/{_s(s.ttft_p95)}/{_s(s.ttft_p99)}"),
    ("e2e p50/p95/p99 s", lambda s: f"{_s(s.e2e_p50)}/{_s(s.e2e_p95)}/{_s(s.e2e_p99)}"),
    ("SLO-viol min", lambda s: str(s.slo_violating_minutes)),
    ("failed", lambda s: str(s.failed)),
    ("changes", lambda s: str(s.replica_changes)),
    ("peak/mean repl", lambda s: f"{s.peak_replicas}/{s.mean_replicas:.2f}"),
    ("mode min N/D/F/S", _modes),
    ("budget spent/limit", _budgets),
    ("fallback sw (min)", _fallback),
    ("SLO met", lambda s: "yes" if s.meets_slo else "NO"),
)


def table(rows: Sequence[Summary]) -> str:
    """One table, a row per policy, aligned for a terminal or a Markdown file."""
    cells = [[name for name, _ in COLUMNS]] + [[f(s) for _, f in COLUMNS] for s in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else "miss"
    return v


def to_json_obj(summary: Summary) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in asdict(summary).items()}


def to_json(rows: Sequence[Summary], extra: dict[str, Any] | None = None) -> str:
    return json.dumps({**(extra or {}), "results": [to_json_obj(s) for s in rows]}, indent=2)


def plot(results: Sequence[RunResult], path: Path, ttft_slo_s: float) -> None:
    """Replicas, load and p95 TTFT per minute for each run (needs the `plot` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("--plot needs matplotlib: pip install 'aipolicy[plot]'") from exc
    fig, (ax_r, ax_l, ax_t) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    for res in results:
        ax_r.step([t / 60 for t, _, _ in res.timeline], [n for _, n, _ in res.timeline], where="post",
                  label=res.label)  # fmt: skip
    first = results[0]
    per_min: dict[int, int] = {}
    for r in first.requests:
        per_min[int(r.arrival // 60)] = per_min.get(int(r.arrival // 60), 0) + 1
    ax_l.bar(list(per_min), [n / 60 for n in per_min.values()], width=0.9, color="grey")
    for res in results:
        minutes: dict[int, list[float]] = {}
        for r in res.requests:
            t = r.ttft if (r.ttft is not None and not r.failed) else math.inf
            minutes.setdefault(int(r.arrival // 60), []).append(t)
        xs = sorted(minutes)
        ys = [min(_pct(sorted(minutes[m]), 0.95), 60.0) for m in xs]
        ax_t.plot(xs, ys, label=res.label)
    ax_t.axhline(ttft_slo_s, color="red", linestyle="--", label="SLO")
    ax_r.set_ylabel("replicas")
    ax_l.set_ylabel("requests/s")
    ax_t.set_ylabel("p95 TTFT per minute (s)")
    ax_t.set_yscale("log")
    ax_t.set_xlabel("minutes")
    ax_r.legend(fontsize=7)
    ax_t.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
