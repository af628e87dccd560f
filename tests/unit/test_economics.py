"""Unit economics of an InferenceService: cost per request and per token, each dollar once;
latency, errors, idle GPUs; self-host or API. Nothing measured means no number, never 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from aipolicy.api.inferenceservice import InferenceServiceSpec
from aipolicy.policy.economics import EconomicsReadings, unit_economics
from aipolicy.policy.observations import Reading, Unavailable, Value

HOUR = timedelta(hours=1)
MONTH_START = datetime(2026, 12, 1, tzinfo=UTC)
NO_DATA = Unavailable("NoData", "the query returned no series for this service")

SELF_HOSTED = InferenceServiceSpec.model_validate(
    {
        "model": "llama",
        "serving": {"image": "vllm/vllm-openai:v0.6.3", "gpu": {"count": 1}},
        # the token prices of a self-hosted service are an API's, for comparison only
        "pricing": {"gpuHour": "2.00", "inputPerMillionTokens": "0.50", "outputPerMillionTokens": "1.50"},
    }
)
API = InferenceServiceSpec.model_validate(
    {
        "model": "gpt-4o-mini",
        "provider": {"url": "https://api.openai.com/v1", "model": "gpt-4o-mini"},
        "pricing": {"inputPerMillionTokens": "0.15", "outputPerMillionTokens": "0.60"},
    }
)


def _readings(**given: Reading) -> EconomicsReadings:
    base: dict[str, Any] = {
        "requests": Value(3600),
        "failed_requests": Value(36),
        "input_tokens": Value(2_000_000),
        "output_tokens": Value(1_000_000),
        "gpu_hours": Value(2),
        "ttft_p95": Value(0.8),
        "e2e_p95": Value(5.0),
        "period_gpu_hours": Value(100),
        "period_idle_gpu_hours": Value(25),
    }
    return EconomicsReadings(**(base | given))


def test_a_self_hosted_service_costs_its_gpu_hours_only_spread_over_its_requests() -> None:
    economics = unit_economics(SELF_HOSTED, _readings(), window=HOUR, period_start=MONTH_START)
    assert economics.requests_per_second == 1
    assert economics.cost_per_thousand_requests == "1.111111"  # 4.00 over 3,600 requests
    assert economics.cost_per_million_tokens == "1.333333"  # 4.00 over 3M tokens
    assert economics.error_rate == pytest.approx(0.01)
    assert (economics.ttft_p95_seconds, economics.e2e_p95_seconds) == (0.8, 5.0)


def test_an_api_service_costs_its_tokens() -> None:
    economics = unit_economics(API, _readings(gpu_hours=Value(0)), window=HOUR, period_start=MONTH_START)
    # 2M * 0.15 + 1M * 0.60 = 0.90 over 3,600 requests
    assert economics.cost_per_thousand_requests == "0.25"
    assert economics.gpu_hours_this_period is None and economics.break_even_requests_per_day is None


def test_idle_gpu_hours_are_priced_at_the_gpu_hour_rate() -> None:
    economics = unit_economics(SELF_HOSTED, _readings(), window=HOUR, period_start=MONTH_START)
    assert (economics.gpu_hours_this_period, economics.idle_gpu_hours_this_period) == (100, 25)
    assert economics.idle_cost_this_period == "50"


def test_a_self_hosted_service_shows_what_its_tokens_would_cost_at_the_api_and_the_break_even() -> None:
    economics = unit_economics(SELF_HOSTED, _readings(), window=HOUR, period_start=MONTH_START)
    # API: 2M * 0.50 + 1M * 1.50 = 2.50 for 3,600 requests; GPUs: 4.00/h = 96/day
    assert economics.api_cost_per_thousand_requests == "0.694444"
    assert economics.break_even_requests_per_day == pytest.approx(96 / (2.5 / 3600))


@pytest.mark.parametrize(
    ("given", "absent"),
    [
        ({"requests": Value(0), "failed_requests": Value(0)}, ["cost_per_thousand_requests", "error_rate"]),
        ({"requests": NO_DATA}, ["requests_per_second", "cost_per_thousand_requests", "error_rate"]),
        ({"gpu_hours": NO_DATA}, ["cost_per_thousand_requests", "cost_per_million_tokens"]),
        ({"ttft_p95": NO_DATA}, ["ttft_p95_seconds"]),
        ({"period_idle_gpu_hours": NO_DATA}, ["idle_gpu_hours_this_period", "idle_cost_this_period"]),
    ],
    ids=[
        "no requests gives no cost per request and no error rate, not zero",
        "requests that were not measured give no rate",
        "GPU-hours that were not measured give no cost",
        "a latency that was not measured is absent",
        "idle hours that were not measured cost nothing known",
    ],
)
def test_what_was_not_measured_stays_absent(given: dict[str, Reading], absent: list[str]) -> None:
    economics = unit_economics(SELF_HOSTED, _readings(**given), window=HOUR, period_start=MONTH_START)
    for field in absent:
        assert getattr(economics, field) is None, field


def test_no_data_says_what_was_missing_and_why() -> None:
    economics = unit_economics(
        SELF_HOSTED, _readings(ttft_p95=NO_DATA), window=HOUR, period_start=MONTH_START
    )
    assert economics.no_data == ["TTFT p95: the query returned no series for this service"]


def test_money_is_exact_decimal_text() -> None:
    economics = unit_economics(SELF_HOSTED, _readings(), window=HOUR, period_start=MONTH_START)
    assert Decimal(economics.cost_per_thousand_requests or "x") * 3600 / 1000 == pytest.approx(4, rel=1e-6)
