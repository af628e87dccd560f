"""Unit economics: the pure arithmetic behind an InferenceService's `status.economics`.

1. Cost in the window is what a budget would count (`policy.spend.service_cost`): GPU-hours for a
   self-hosted service, tokens for an API-backed one, each dollar once.
2. Per 1,000 requests and per million tokens divide that cost by what was served; nothing
   served means no number, not 0 and not infinity.
3. Idle GPU-hours (held with nothing running or waiting) are priced at the service's gpuHour.
4. Self-host or API: a self-hosted service's token prices are an API alternative's; the same
   tokens at those prices give the API's cost per 1,000 requests, and the GPUs' cost per day over
   the API's cost per request gives the break-even in requests per day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from aipolicy.api.economics import UnitEconomics
from aipolicy.api.inferenceservice import InferenceServiceSpec, Pricing
from aipolicy.policy.observations import Reading, Unavailable, Value
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
        economics.requests_per_second = requests / window.total_seconds()
        if requests > 0 and failed is not None:
            economics.error_rate = min(failed / requests, 1.0)
        if requests > 0 and total is not None:
            economics.cost_per_thousand_requests = format_money(total * 1000 / _decimal(requests))
    if tokens_in is not None and tokens_out is not None and tokens_in + tokens_out > 0 and total is not None:
        economics.cost_per_million_tokens = format_money(total * 1_000_000 / _decimal(tokens_in + tokens_out))
    economics.ttft_p95_seconds = _value(readings.ttft_p95, "TTFT p95", missing)
    economics.e2e_p95_seconds = _value(readings.e2e_p95, "end-to-end p95", missing)
    if self_hosted:
        _gpu_period(spec.pricing, readings, economics, missing)
        _self_host_or_api(spec.pricing, requests, tokens_in, tokens_out, total, window, economics)
    economics.no_data = missing
    return economics


def _gpu_period(
    pricing: Pricing, readings: EconomicsReadings, economics: UnitEconomics, missing: list[str]
) -> None:
    economics.gpu_hours_this_period = _value(readings.period_gpu_hours, "GPU-hours this period", missing)
    idle = _value(readings.period_idle_gpu_hours, "idle GPU-hours this period", missing)
    economics.idle_gpu_hours_this_period = idle
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
