"""The report as data: pure functions from API facts and Prometheus readings to what is shown.

Every number is ``None`` when what it is made of was not measured ("no data" to people), never
0: a model with no requests has no cost per request, and a window Prometheus knows nothing about
has no latency. Money uses the same functions as budgets (``policy.spend``), so a dollar is
counted the way the budget counts it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from aipolicy.api.inferenceservice import Pricing
from aipolicy.policy.observations import Reading, Unavailable, Value
from aipolicy.policy.spend import ServiceCost, ServiceUsage, parse_money, quantize_money, service_cost
from aipolicy.report.window import ReportWindow

Hosting = Literal["self-hosted", "api"]
TimeSeries = Sequence[tuple[float, float]]  # (unix seconds, value)


@dataclass(frozen=True)
class ServiceFacts:
    """What the API says of one InferenceService."""

    namespace: str
    name: str
    model: str
    hosting: Hosting
    pricing: Pricing
    mode: str


@dataclass(frozen=True)
class BudgetFacts:
    """What the API says of one AIBudget (its own status: the operator's accounting)."""

    namespace: str
    name: str
    currency: str
    limit: Decimal
    spent: Decimal | None
    forecast: Decimal | None
    state: str
    breakdown: Mapping[str, Decimal]
    period_end: datetime | None


@dataclass(frozen=True)
class ServiceReadings:
    """Prometheus' answers for one service over the window (increases, quantiles, seconds)."""

    requests: Reading
    failed_requests: Reading
    input_tokens: Reading
    output_tokens: Reading
    gpu_hours: Reading
    idle_gpu_hours: Reading
    ttft_p50: Reading
    ttft_p95: Reading
    ttft_p99: Reading
    e2e_p95: Reading
    seconds_in_fallback: Reading
    seconds_degraded: Reading


@dataclass(frozen=True)
class ModelLine:
    """One model's row of the report."""

    namespace: str
    service: str
    model: str
    hosting: Hosting
    currency: str
    requests: float | None
    cost: ServiceCost | None
    cost_per_1k_requests: Decimal | None
    ttft_p50: float | None
    ttft_p95: float | None
    ttft_p99: float | None
    e2e_p95: float | None
    error_rate: float | None
    idle_gpu_hours: float | None
    idle_cost: Decimal | None
    seconds_in_fallback: float | None
    seconds_degraded: float | None
    why_no_cost: str = ""


@dataclass(frozen=True)
class BudgetLine:
    """One budget's row: spend against the limit, by source."""

    namespace: str
    name: str
    currency: str
    spent: Decimal | None
    limit: Decimal
    forecast: Decimal | None
    state: str
    percent_used: float | None
    by_source: Mapping[str, Decimal]
    period_end: datetime | None


@dataclass(frozen=True)
class Charts:
    """Time series for the HTML page: spend (and limit, forecast) per budget, cost per 1,000
    requests per service, and each service's TTFT histogram over the window."""

    spend: Mapping[str, Mapping[str, TimeSeries]] = field(default_factory=dict)
    cost_per_1k_requests: Mapping[str, TimeSeries] = field(default_factory=dict)
    ttft_histogram: Mapping[str, Sequence[tuple[float, float]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    scope: str
    window: ReportWindow
    budgets: Sequence[BudgetLine]
    models: Sequence[ModelLine]
    charts: Charts = field(default_factory=Charts)


def _value(reading: Reading) -> float | None:
    return reading.value if isinstance(reading, Value) else None


def model_line(facts: ServiceFacts, readings: ServiceReadings) -> ModelLine:
    """A service's row: cost as its budget would count it, per request, latency, errors, idle."""
    usage = ServiceUsage(facts.name, readings.input_tokens, readings.output_tokens, readings.gpu_hours)
    cost = service_cost(facts.pricing, usage)
    why_no_cost = cost.message if isinstance(cost, Unavailable) else ""
    known_cost = None if isinstance(cost, Unavailable) else cost
    requests = _value(readings.requests)
    failed = _value(readings.failed_requests)
    per_1k = None
    if known_cost is not None and requests is not None and requests > 0:
        per_1k = quantize_money(known_cost.total * 1000 / Decimal(repr(requests)))
    error_rate = None
    if requests is not None and requests > 0 and failed is not None:
        error_rate = min(failed / requests, 1.0)
    idle_hours = _value(readings.idle_gpu_hours)
    rate = parse_money(facts.pricing.gpu_hour) if facts.pricing.gpu_hour is not None else None
    idle_cost = None
    if idle_hours is not None and rate is not None:
        idle_cost = quantize_money(Decimal(repr(idle_hours)) * rate)
    return ModelLine(
        namespace=facts.namespace,
        service=facts.name,
        model=facts.model,
        hosting=facts.hosting,
        currency=facts.pricing.currency,
        requests=requests,
        cost=known_cost,
        cost_per_1k_requests=per_1k,
        ttft_p50=_value(readings.ttft_p50),
        ttft_p95=_value(readings.ttft_p95),
        ttft_p99=_value(readings.ttft_p99),
        e2e_p95=_value(readings.e2e_p95),
        error_rate=error_rate,
        idle_gpu_hours=idle_hours if facts.hosting == "self-hosted" else None,
        idle_cost=idle_cost if facts.hosting == "self-hosted" else None,
        seconds_in_fallback=_value(readings.seconds_in_fallback),
        seconds_degraded=_value(readings.seconds_degraded),
        why_no_cost=why_no_cost,
    )


def budget_line(facts: BudgetFacts, hosting: Mapping[str, Hosting]) -> BudgetLine:
    """A budget's row; its breakdown grouped by source: GPU-hours (self-hosted services), API
    tokens (API-backed services) and each extra cost source by name."""
    by_source: dict[str, Decimal] = {}
    for name, amount in facts.breakdown.items():
        kind = hosting.get(name)
        source = "GPU-hours" if kind == "self-hosted" else "API tokens" if kind == "api" else name
        by_source[source] = by_source.get(source, Decimal(0)) + amount
    percent = None
    if facts.spent is not None and facts.limit > 0:
        percent = float(facts.spent * 100 / facts.limit)
    return BudgetLine(
        namespace=facts.namespace,
        name=facts.name,
        currency=facts.currency,
        spent=facts.spent,
        limit=facts.limit,
        forecast=facts.forecast,
        state=facts.state,
        percent_used=percent,
        by_source=by_source,
        period_end=facts.period_end,
    )


def cost_per_1k_series(
    facts: ServiceFacts,
    *,
    gpus: TimeSeries,
    input_rate: TimeSeries,
    output_rate: TimeSeries,
    request_rate: TimeSeries,
) -> list[tuple[float, float]]:
    """Cost per 1,000 requests at each instant: money per second over requests per second.

    Rates are per second at each step; an instant without requests has no point (not 0, not
    infinity). A self-hosted service pays for its GPUs and an API-backed one for its tokens, as
    budgets count them (a self-hosted service's token prices are for comparison only).
    """
    pricing = facts.pricing
    self_hosted = facts.hosting == "self-hosted"
    gpu_hour = _price(pricing.gpu_hour) if self_hosted else 0.0
    price_in = 0.0 if self_hosted else _price(pricing.input_per_million_tokens)
    price_out = 0.0 if self_hosted else _price(pricing.output_per_million_tokens)
    gpus_at, in_at, out_at = dict(gpus), dict(input_rate), dict(output_rate)
    points = []
    for moment, requests_per_second in request_rate:
        if requests_per_second <= 0:
            continue
        money_per_second = (
            gpus_at.get(moment, 0.0) * gpu_hour / 3600
            + in_at.get(moment, 0.0) * price_in / 1e6
            + out_at.get(moment, 0.0) * price_out / 1e6
        )
        points.append((moment, money_per_second / requests_per_second * 1000))
    return points


def _price(text: str | None) -> float:
    amount = parse_money(text) if text is not None else None
    return float(amount) if amount is not None else 0.0


def bucket_counts(cumulative: Mapping[float, float]) -> list[tuple[float, float]]:
    """A Prometheus histogram's cumulative buckets (le -> count) as counts per bucket, by le."""
    counts, below = [], 0.0
    for le in sorted(cumulative):
        counts.append((le, max(cumulative[le] - below, 0.0)))
        below = max(cumulative[le], below)
    return counts
