"""Unit economics of an InferenceService: cost per request and per token, each dollar once;
latency, errors, idle GPUs; self-host or API. Nothing measured means no number, never 0."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from aipolicy.api.economics import GPU_PROFILES, GpuAlternative
from aipolicy.api.inferenceservice import InferenceServiceSpec
from aipolicy.policy.economics import EconomicsReadings, gpu_alternative_sizing, unit_economics
from aipolicy.policy.observations import Reading, Unavailable, Value
from aipolicy.policy.serving import PROFILES, LoadShape, sustainable_rate

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


# ---- GPUs or API: an API-backed service's GPU alternative ------------------------------------
def _api_with_gpus(profile: str, gpu_hour: str = "2.00", ttft: float = 2.0) -> InferenceServiceSpec:
    spec = API.model_dump(by_alias=True, exclude_none=True)
    spec["provider"]["gpuAlternative"] = {"profile": profile, "gpuHour": gpu_hour, "ttftP95": ttft}
    return InferenceServiceSpec.model_validate(spec)


def _replicas_by_hand(profile: str, rate: float, prompt: float, output: float, ttft: float) -> int:
    """What `aipolicy simulate` sizes with: one replica's sustainable rate at the SLO x 0.9."""
    per_replica = sustainable_rate(PROFILES[profile], LoadShape(round(prompt), round(output)), ttft) * 0.9
    return max(math.ceil(rate / per_replica), 1)


@pytest.mark.parametrize(
    ("profile", "requests", "ttft"),
    [("H100/8B", 3600, 2.0), ("L4/8B", 36_000, 2.0), ("L4/8B", 360_000, 1.0), ("H100/70B-TP4", 360_000, 2.0)],
    ids=["one-replica-is-plenty", "l4-needs-several", "tight-slo-needs-more", "tp4-replicas-hold-4-gpus"],
)
def test_an_api_service_shows_what_its_traffic_would_cost_on_gpus_at_its_slo(
    profile: str, requests: int, ttft: float
) -> None:
    # tokens scale with requests: ~556 prompt and ~278 generated tokens per request
    tokens_in, tokens_out = requests * 2_000_000 / 3600, requests * 1_000_000 / 3600
    readings = _readings(
        requests=Value(requests), input_tokens=Value(tokens_in), output_tokens=Value(tokens_out)
    )
    economics = unit_economics(
        _api_with_gpus(profile, ttft=ttft), readings, window=HOUR, period_start=MONTH_START
    )

    replicas = _replicas_by_hand(profile, requests / 3600, tokens_in / requests, tokens_out / requests, ttft)
    gpus = PROFILES[profile].tensor_parallel
    assert economics.gpu_alternative_replicas == replicas
    gpu_cost_per_hour = replicas * gpus * 2.00
    assert float(economics.gpu_cost_per_thousand_requests or "nan") == pytest.approx(
        gpu_cost_per_hour / requests * 1000, rel=1e-6
    )
    api_per_request = (tokens_in * 0.15 + tokens_out * 0.60) / 1e6 / requests
    assert economics.break_even_requests_per_day == pytest.approx(gpu_cost_per_hour * 24 / api_per_request)
    # the API's own cost per request is still what it is billed: tokens only
    assert float(economics.cost_per_thousand_requests or "nan") == pytest.approx(
        api_per_request * 1000, rel=1e-6
    )


def test_the_sizing_grows_with_the_load_and_never_drops_below_one_replica() -> None:
    alternative = GpuAlternative(profile="L4/8B", gpu_hour="0.80")
    counts = [gpu_alternative_sizing(alternative, rate, 2000, 100) for rate in (0.0, 0.01, 0.2, 1.0)]
    replicas = [c.replicas if c else None for c in counts]
    assert replicas[0] == 1 and replicas == sorted(replicas) and (replicas[-1] or 0) > 10  # type: ignore[type-var]


def test_no_gpu_alternative_without_traffic_or_without_a_profile() -> None:
    idle = unit_economics(
        _api_with_gpus("H100/8B"), _readings(requests=Value(0)), window=HOUR, period_start=MONTH_START
    )
    assert idle.gpu_alternative_replicas is None and idle.gpu_cost_per_thousand_requests is None
    plain = unit_economics(API, _readings(), window=HOUR, period_start=MONTH_START)
    assert plain.gpu_alternative_replicas is None and plain.break_even_requests_per_day is None


def test_a_slo_no_replica_meets_is_said_not_priced() -> None:
    # 2,000-token prompts on an L4 take longer than 0.3 s to prefill alone
    readings = _readings(requests=Value(3600), input_tokens=Value(7_200_000), output_tokens=Value(360_000))
    economics = unit_economics(
        _api_with_gpus("L4/8B", ttft=0.3), readings, window=HOUR, period_start=MONTH_START
    )
    assert economics.gpu_alternative_replicas is None and economics.gpu_cost_per_thousand_requests is None
    assert economics.no_data == ["GPU alternative: one request alone misses p95 TTFT 0.3s on L4/8B"]


def test_the_api_lists_exactly_the_serving_models_profiles() -> None:
    assert sorted(GPU_PROFILES) == sorted(PROFILES)


def test_an_unknown_profile_is_refused_naming_the_profiles() -> None:
    with pytest.raises(
        ValidationError, match="must be a profile of the calibrated serving model: one of H100/8B"
    ):
        _api_with_gpus("H100/7B")


def test_the_crd_refuses_an_unknown_profile_with_cel_on_the_field() -> None:
    crd = yaml.safe_load(
        (Path(__file__).parents[2] / "crds" / "aipolicy.dev_inferenceservices.yaml").read_text()
    )
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    profile = spec["properties"]["provider"]["properties"]["gpuAlternative"]["properties"]["profile"]
    (rule,) = profile["x-kubernetes-validations"]
    assert all(f"'{name}'" in rule["rule"] for name in PROFILES)
    assert "H100/7B" not in rule["rule"]
    assert spec["properties"]["provider"]["properties"]["gpuAlternative"]["required"] == [
        "profile",
        "gpuHour",
    ]


def test_measured_numbers_are_shown_rounded_and_money_is_not() -> None:
    readings = _readings(
        requests=Value(437.6163), ttft_p95=Value(64.6311293060071), period_idle_gpu_hours=Value(25.123456)
    )
    economics = unit_economics(SELF_HOSTED, readings, window=HOUR, period_start=MONTH_START)
    assert economics.requests_per_second == 0.1216  # 437.6163 / 3600 = 0.12156...
    assert economics.ttft_p95_seconds == 64.63
    assert economics.idle_gpu_hours_this_period == 25.123
    assert economics.idle_cost_this_period == "50.246912"  # from the unrounded 25.123456 x 2.00
