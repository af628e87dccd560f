"""Unit economics: the pure arithmetic behind an InferenceService's `status.economics`.

1. Cost in the window is what a budget would count (`policy.spend.service_cost`): GPU-hours for a
   self-hosted service, tokens for an API-backed one, each dollar once.
2. Per 1,000 requests and per million tokens divide that cost by what was served; nothing
   served means no number, not 0 and not infinity.
3. Idle GPU-hours (held with nothing running or waiting) are priced at the service's gpuHour.
4. Self-host or API: a self-hosted service's token prices are an API alternative's; the same
   tokens at those prices give the API's cost per 1,000 requests, and the GPUs' cost per day over
   the API's cost per request gives the break-even in requests per day.
5. GPUs or API, the other way: an API-backed service's provider.gpuAlternative names a profile
   of the calibrated serving model and a GPU-hour price. The window's request rate and mean
   token lengths size replicas at the alternative's ttftP95 with the SLO policy's own
   slo_requirement (what `aipolicy simulate` and scaling.metric.type SLO size with); those
   replicas' GPUs for the window, per 1,000 requests, and their cost per day over the API's
   cost per request give the break-even. It is priced at the replicas today's rate needs: when
   it lies beyond what they serve, more replicas would be needed there, so it is a lower bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aipolicy.api.economics import GpuAlternative, UnitEconomics
from aipolicy.api.inferenceservice import InferenceServiceSpec, Pricing
from aipolicy.api.slo import ServingSlo
from aipolicy.policy.observations import Reading, Unavailable, Value
from aipolicy.policy.serving import PROFILES
from aipolicy.policy.slo import ServiceLoad, SloMemory, slo_requirement
from aipolicy.policy.spend import (
    ServiceUsage,
    billed_pricing,
    format_money,
    parse_money,
    quantize_money,
    service_cost,
)

ECONOMICS_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class EconomicsReadings:
    """Increases over the window (requests, tokens, GPU-hours), quantiles, and the period's
    GPU-hours held and idle."""

    requests: Reading
    failed_requests: Reading
    input_tokens: Reading
    output_tokens: Reading
    gpu_hours: Reading
    ttft_p95: Reading
    e2e_p95: Reading
    period_gpu_hours: Reading
    period_idle_gpu_hours: Reading


def _value(reading: Reading, what: str, missing: list[str]) -> float | None:
    if isinstance(reading, Value):
        return reading.value
    missing.append(f"{what}: {reading.message or reading.reason}")
    return None


#: Measured rates, ratios and latencies are shown to 4 significant digits (kubectl prints a
#: number column's float as is, 0.12156012781289557); GPU-hours to 3 decimals (3.6 s), so a
#: month's total still moves minute by minute. Money is computed from the unrounded values.
SIGNIFICANT_DIGITS = 4
GPU_HOUR_DECIMALS = 3


def _shown(value: float | None) -> float | None:
    if value is None or value == 0 or not math.isfinite(value):
        return value
    return round(value, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))


def _decimal(value: float) -> Decimal:
    return Decimal(repr(value))


def _window_text(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds}s"


def unit_economics(
    spec: InferenceServiceSpec, readings: EconomicsReadings, *, window: timedelta, period_start: datetime
) -> UnitEconomics:
    missing: list[str] = []
    requests = _value(readings.requests, "requests", missing)
    failed = _value(readings.failed_requests, "failed requests", missing)
    tokens_in = _value(readings.input_tokens, "prompt tokens", missing)
    tokens_out = _value(readings.output_tokens, "generated tokens", missing)
    self_hosted = spec.serving is not None
    usage = ServiceUsage("", readings.input_tokens, readings.output_tokens, readings.gpu_hours)
    cost = service_cost(billed_pricing(spec), usage)  # as budgets count it: each dollar once
    total = None if isinstance(cost, Unavailable) else cost.total
    if isinstance(cost, Unavailable):
        missing.append(f"cost: {cost.message}")

    economics = UnitEconomics(window=_window_text(window), period_start=period_start)
    if requests is not None:
        economics.requests_per_second = _shown(requests / window.total_seconds())
        if requests > 0 and failed is not None:
            economics.error_rate = _shown(min(failed / requests, 1.0))
        if requests > 0 and total is not None:
            economics.cost_per_thousand_requests = format_money(total * 1000 / _decimal(requests))
    if tokens_in is not None and tokens_out is not None and tokens_in + tokens_out > 0 and total is not None:
        economics.cost_per_million_tokens = format_money(total * 1_000_000 / _decimal(tokens_in + tokens_out))
    economics.ttft_p95_seconds = _shown(_value(readings.ttft_p95, "TTFT p95", missing))
    economics.e2e_p95_seconds = _shown(_value(readings.e2e_p95, "end-to-end p95", missing))
    if self_hosted:
        _gpu_period(spec.pricing, readings, economics, missing)
        _self_host_or_api(spec.pricing, requests, tokens_in, tokens_out, total, window, economics)
    elif spec.provider is not None and spec.provider.gpu_alternative is not None:
        _api_or_gpus(
            spec.provider.gpu_alternative, requests, tokens_in, tokens_out, total, window, economics, missing
        )
    economics.no_data = missing
    return economics


def _gpu_period(
    pricing: Pricing, readings: EconomicsReadings, economics: UnitEconomics, missing: list[str]
) -> None:
    held = _value(readings.period_gpu_hours, "GPU-hours this period", missing)
    economics.gpu_hours_this_period = None if held is None else round(held, GPU_HOUR_DECIMALS)
    idle = _value(readings.period_idle_gpu_hours, "idle GPU-hours this period", missing)
    economics.idle_gpu_hours_this_period = None if idle is None else round(idle, GPU_HOUR_DECIMALS)
    rate = parse_money(pricing.gpu_hour) if pricing.gpu_hour is not None else None
    if idle is not None and rate is not None:
        economics.idle_cost_this_period = format_money(quantize_money(_decimal(idle) * rate))


def _self_host_or_api(
    pricing: Pricing,
    requests: float | None,
    tokens_in: float | None,
    tokens_out: float | None,
    gpu_cost: Decimal | None,
    window: timedelta,
    economics: UnitEconomics,
) -> None:
    price_in = parse_money(pricing.input_per_million_tokens) if pricing.input_per_million_tokens else None
    price_out = parse_money(pricing.output_per_million_tokens) if pricing.output_per_million_tokens else None
    if None in (price_in, price_out, requests, tokens_in, tokens_out, gpu_cost) or not requests:
        return  # no API prices to compare with, or nothing served to compare
    assert price_in is not None and price_out is not None and gpu_cost is not None
    assert tokens_in is not None and tokens_out is not None
    api_cost = (_decimal(tokens_in) * price_in + _decimal(tokens_out) * price_out) / 1_000_000
    api_per_request = api_cost / _decimal(requests)
    economics.api_cost_per_thousand_requests = format_money(api_per_request * 1000)
    if api_per_request > 0:
        gpu_per_day = gpu_cost * Decimal(86400) / _decimal(window.total_seconds())
        economics.break_even_requests_per_day = float(gpu_per_day / api_per_request)


@dataclass(frozen=True)
class GpuSizing:
    """What the GPU alternative needs for a load: replicas, and what one replica serves."""

    replicas: int
    per_replica_requests_per_second: float
    gpus_per_replica: int
    summary: str


def gpu_alternative_sizing(
    alternative: GpuAlternative, requests_per_second: float, prompt_tokens: float, output_tokens: float
) -> GpuSizing | None:
    """Replicas of the alternative's profile for a steady load at its ttftP95 (at least one).

    The SLO policy's slo_requirement with no forecast memory and no backlog: the load itself
    over one replica's sustainable rate at the SLO times utilization. None when even one
    request alone misses the SLO on that profile (no count of replicas meets it).
    """
    profile = PROFILES[alternative.profile]
    slo = ServingSlo(ttft_p95=alternative.ttft_p95, utilization=alternative.utilization)
    load = ServiceLoad(requests_per_second, prompt_tokens, output_tokens)
    # the forecast slot is irrelevant with empty memory: any instant gives the same answer
    need = slo_requirement(slo, profile, load, SloMemory(), _ANY_INSTANT, lead_s=0.0)
    if need.per_replica <= 0:
        return None
    replicas = max(math.ceil(round(need.required, 9)), 1)
    return GpuSizing(replicas, need.per_replica, profile.tensor_parallel, need.summary)


_ANY_INSTANT = datetime(2026, 1, 1, tzinfo=UTC)


def _api_or_gpus(
    alternative: GpuAlternative,
    requests: float | None,
    tokens_in: float | None,
    tokens_out: float | None,
    api_cost: Decimal | None,
    window: timedelta,
    economics: UnitEconomics,
    missing: list[str],
) -> None:
    if requests is None or tokens_in is None or tokens_out is None or not requests:
        return  # nothing served (or not measured) to size GPUs for
    sizing = gpu_alternative_sizing(
        alternative, requests / window.total_seconds(), tokens_in / requests, tokens_out / requests
    )
    if sizing is None:
        slo = f"p95 TTFT {alternative.ttft_p95:g}s"
        missing.append(f"GPU alternative: one request alone misses {slo} on {alternative.profile}")
        return
    gpu_hours = _decimal(sizing.replicas * sizing.gpus_per_replica * window.total_seconds() / 3600)
    gpu_cost = gpu_hours * Decimal(alternative.gpu_hour)  # Money: a decimal string
    economics.gpu_alternative_replicas = sizing.replicas
    economics.gpu_cost_per_thousand_requests = format_money(gpu_cost * 1000 / _decimal(requests))
    if api_cost is not None and api_cost > 0:
        gpu_per_day = gpu_cost * Decimal(86400) / _decimal(window.total_seconds())
        economics.break_even_requests_per_day = float(gpu_per_day / (api_cost / _decimal(requests)))
