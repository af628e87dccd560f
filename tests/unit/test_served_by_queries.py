"""The queries that read the aipolicy gateway's own series, evaluated by Prometheus's engine
(`promtool test rules`) on series shaped as the gateway and the model servers export them.

Through the gateway, tokens and latency count for the InferenceService that served them (its
`backend` label), only where the model server has no count of its own, and never twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aipolicy.observe.presets import (
    PRESETS,
    error_rate,
    fallback_provider_spend,
    service_latency_quantile,
    token_growth,
    token_increase,
)
from aipolicy.report import queries
from tests.unit.promtool import expect_samples

NAMES = PRESETS["vllm"]
TOKENS = "aipolicy_gateway_completion_tokens_total"
TTFT = "aipolicy_gateway_time_to_first_token_seconds_bucket"
ANSWERS = "aipolicy_gateway_requests_total"
SPEND = "aipolicy_gateway_spend_total"
SERIES: list[dict[str, str]] = [
    # a self-hosted service, also reached through the gateway: its pods' count is the one
    {"series": 'vllm:generation_tokens_total{namespace="ns",service="llama",pod="p"}', "values": "0+100x10"},
    {"series": f'{TOKENS}{{namespace="ns",service="llama",backend="service/llama"}}', "values": "0+100x10"},
    # an API-backed service serving its own clients, and another service's clients in fallback
    {"series": f'{TOKENS}{{namespace="ns",service="gpt",backend="service/gpt"}}', "values": "0+50x10"},
    {"series": f'{TOKENS}{{namespace="ns",service="llama2",backend="service/gpt"}}', "values": "0+10x10"},
    # a chain step that is a bare provider: no InferenceService to count it for
    {
        "series": f'{TOKENS}{{namespace="ns",service="x",backend="provider/api.example.com"}}',
        "values": "0+7x10",
    },
    # a service behind LiteLLM only
    {"series": 'litellm_output_tokens_metric_total{namespace="ns",service="claude"}', "values": "0+20x10"},
    # answers: gpt answers its own clients and llama2's (in fallback), one in ten of those fails
    {
        "series": f'{ANSWERS}{{namespace="ns",service="gpt",backend="service/gpt",code="200"}}',
        "values": "0+9x10",
    },
    {
        "series": f'{ANSWERS}{{namespace="ns",service="llama2",backend="service/gpt",code="200"}}',
        "values": "0+9x10",
    },
    {
        "series": f'{ANSWERS}{{namespace="ns",service="llama2",backend="service/gpt",code="502"}}',
        "values": "0+2x10",
    },
    # money at provider chain steps for llama2's clients, in two currencies, and at a service step
    {
        "series": f'{SPEND}{{namespace="ns",service="llama2",backend="provider/openai.com",currency="USD"}}',
        "values": "0+0.1x10",
    },
    {
        "series": f'{SPEND}{{namespace="ns",service="llama2",backend="provider/mistral.ai",currency="EUR"}}',
        "values": "0+1x10",
    },
    {
        "series": f'{SPEND}{{namespace="ns",service="llama2",backend="service/gpt",currency="USD"}}',
        "values": "0+5x10",
    },
    # TTFT: the model server's buckets for llama, the gateway's for llama and gpt (other bounds)
    {
        "series": 'vllm:time_to_first_token_seconds_bucket{namespace="ns",service="llama",le="0.1"}',
        "values": "0+10x10",
    },
    {
        "series": 'vllm:time_to_first_token_seconds_bucket{namespace="ns",service="llama",le="+Inf"}',
        "values": "0+10x10",
    },
    {
        "series": f'{TTFT}{{namespace="ns",service="llama",backend="service/llama",le="0.5"}}',
        "values": "0+10x10",
    },
    {
        "series": f'{TTFT}{{namespace="ns",service="llama",backend="service/llama",le="+Inf"}}',
        "values": "0+10x10",
    },
    {"series": f'{TTFT}{{namespace="ns",service="gpt",backend="service/gpt",le="0.5"}}', "values": "0+0x10"},
    {"series": f'{TTFT}{{namespace="ns",service="gpt",backend="service/gpt",le="1"}}', "values": "0+10x10"},
    {
        "series": f'{TTFT}{{namespace="ns",service="gpt",backend="service/gpt",le="+Inf"}}',
        "values": "0+10x10",
    },
]


def _sample(service: str, value: float, **labels: str) -> dict[str, Any]:
    extra = "".join(f',{k}="{v}"' for k, v in labels.items())
    return {"labels": f'{{namespace="ns",service="{service}"{extra}}}', "value": value}


def _evaluate(tmp_path: Path, cases: list[tuple[str, list[dict[str, Any]]]]) -> None:
    expect_samples(tmp_path, SERIES, cases)


def test_tokens_count_for_the_service_that_served_them_once(tmp_path: Path) -> None:
    # 5 minutes: llama 500 from its pods (not 1,000), gpt 250 of its own + 50 served in
    # llama2's fallback, claude 100 from LiteLLM; the bare provider's 35 belong to no service
    expected = [_sample("claude", 100), _sample("gpt", 300), _sample("llama", 500)]
    _evaluate(
        tmp_path,
        [
            (token_increase(NAMES, "output", "5m"), expected),
            (token_growth(NAMES, "output", "5m", "2m"), expected),
        ],
    )


def test_latency_is_the_model_servers_else_the_gateways_for_the_service(tmp_path: Path) -> None:
    _evaluate(
        tmp_path,
        [
            # llama: every request under 0.1 s by its own histogram; gpt: all between 0.5 and 1 s
            (
                service_latency_quantile(NAMES, "ttft", 0.5, "5m"),
                [_sample("gpt", 0.75), _sample("llama", 0.05)],
            ),
            # the report's heatmap: llama's own bounds only, never mixed with the gateway's
            (
                queries.ttft_buckets(NAMES, "5m"),
                [
                    _sample("gpt", 0, le="0.5"),
                    _sample("gpt", 50, le="1"),
                    _sample("gpt", 50, le="+Inf"),
                    _sample("llama", 50, le="0.1"),
                    _sample("llama", 50, le="+Inf"),
                ],
            ),
        ],
    )


def test_errors_count_for_the_service_that_served_them_whoever_the_client_named(tmp_path: Path) -> None:
    # gpt served 20 requests a minute, its own and llama2's, and 2 of them failed
    _evaluate(tmp_path, [(f"round({error_rate(NAMES, '5m')}, 0.001)", [_sample("gpt", 0.1)])])


def test_money_at_fallback_providers_counts_for_the_service_whose_clients_it_served(tmp_path: Path) -> None:
    # in the budget's currency only; a service step's tokens are that service's (priced there)
    expected = [_sample("llama2", 0.5)]
    _evaluate(
        tmp_path,
        [
            (f"round({fallback_provider_spend(NAMES, 'USD', '5m')}, 0.001)", expected),
            (f"round({fallback_provider_spend(NAMES, 'USD', '5m', '2m')}, 0.001)", expected),
        ],
    )
