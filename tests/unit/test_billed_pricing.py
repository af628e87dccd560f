"""Each dollar counted once: a self-hosted service pays for GPU-hours, an API-backed one for
tokens; token prices on a self-hosted service are for comparison and never added."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aipolicy.api.inferenceservice import InferenceServiceSpec
from aipolicy.policy.budget import pricing_condition
from aipolicy.policy.observations import Value
from aipolicy.policy.spend import ServiceCost, ServiceUsage, billed_pricing, service_cost

D = Decimal
SERVING: dict[str, Any] = {"image": "vllm/vllm-openai:v0.6.3"}


def _spec(**fields: Any) -> InferenceServiceSpec:
    return InferenceServiceSpec.model_validate({"model": "m", **fields})


# 2 GPU-hours and 3M prompt + 1M generated tokens over the interval
USAGE = ServiceUsage("llama", Value(3_000_000), Value(1_000_000), Value(2))


def test_a_self_hosted_service_is_charged_its_gpu_hours_only() -> None:
    spec = _spec(
        serving=SERVING,
        pricing={"gpuHour": "2.50", "inputPerMillionTokens": "3", "outputPerMillionTokens": "15"},
    )
    # before: 5 (GPUs) + 9 (input) + 15 (output) = 29, the tokens paid a second time
    assert service_cost(billed_pricing(spec), USAGE) == ServiceCost("llama", D(0), D(0), D("5"), D("5"))


def test_an_api_backed_service_is_charged_its_tokens_only() -> None:
    spec = _spec(
        provider={"url": "https://api.openai.com/v1"},
        pricing={"gpuHour": "2.50", "inputPerMillionTokens": "3", "outputPerMillionTokens": "15"},
    )
    assert service_cost(billed_pricing(spec), USAGE) == ServiceCost("llama", D(9), D(15), D(0), D(24))


def test_billed_pricing_keeps_the_currency() -> None:
    spec = _spec(serving=SERVING, pricing={"currency": "EUR", "gpuHour": "1"})
    assert billed_pricing(spec).currency == "EUR"


def test_token_prices_do_not_make_a_free_gpu_service_priced() -> None:
    """A self-hosted service at gpuHour 0 costs nothing whatever its comparison prices: the
    budget must warn (ZeroPrice) rather than look priced and never move."""
    spec = _spec(serving=SERVING, pricing={"gpuHour": "0", "inputPerMillionTokens": "3"})
    condition = pricing_condition({"llama": billed_pricing(spec)})
    assert (condition.status, condition.reason) == ("False", "ZeroPrice")
