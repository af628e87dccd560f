"""Each dollar counted once, and shown in cents (issue 13, items 1 and 9).

One budget over a self-hosted GPU service and an API-backed service. The GPU service also
carries token prices, which are for comparison: it pays for its GPUs by the hour, so its tokens
must not be added. Its traffic is made heavy enough that adding them would put the budget far
outside the tolerance, so this test fails on a double charge.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from tests.e2e.cluster import Cluster, Prometheus, Simulator, wait_until
from tests.e2e.conftest import OperatorFactory
from tests.e2e.test_budget import (
    TRACE_TRAFFIC,
    GatewayPin,
    _api_backend,
    _api_service,
    _assert_close,
    _budget,
    _gpu_service,
    _gpu_spend,
    _query_at,
    _range,
    _settled,
    _status,
    _timestamp,
    _token_spend,
    _wait_status,
    gateway_pin,  # noqa: F401 (a fixture, used by name)
)

GPU_HOUR = "36"  # one GPU: a cent every second
# What the same tokens would cost at an API provider: the comparison, never charged.
COMPARISON_INPUT, COMPARISON_OUTPUT = Decimal("3"), Decimal("15")
# ~5 requests/s of 200 prompt and 60 generated tokens: ~$0.0075/s at the comparison prices,
# three quarters of the GPU's $0.01/s, so a double charge is far outside the 1 % tolerance.
SELF_HOSTED_TRAFFIC = {
    "kind": "constant",
    "rate": 5,
    "duration": 900,
    "promptTokens": 200,
    "outputTokens": 60,
}
CAPACITY = {
    "capacity": {"prefillTokensPerSecond": 20000, "decodeTokensPerSecond": 3000, "maxConcurrentSequences": 16}
}


def _self_hosted_token_value(prometheus: Prometheus, namespace: str, status: dict[str, Any]) -> Decimal:
    """The self-hosted service's tokens over [periodStart, lastEvaluated] at the comparison
    prices: what a double charge would add."""
    start, end = _timestamp(status["periodStart"]), _timestamp(status["lastEvaluated"])
    _, window = _range(status)
    value = Decimal(0)
    for metric, price in (
        ("vllm:prompt_tokens_total", COMPARISON_INPUT),
        ("vllm:generation_tokens_total", COMPARISON_OUTPUT),
    ):
        counted = f'sum(last_over_time({metric}{{namespace="{namespace}",service="llama"}}[{window}]))'
        tokens = _query_at(prometheus, counted, end) - _query_at(prometheus, counted, start)
        value += Decimal(repr(tokens)) * price / Decimal(1_000_000)
    return value


def _columns(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, str]:
    """One row of `kubectl get`, keyed by its headers (columns are two or more spaces apart)."""
    header, row = cluster.kubectl("get", kind, name, "-n", namespace).stdout.splitlines()[:2]
    return dict(zip(re.split(r"\s{2,}", header.strip()), re.split(r"\s{2,}", row.strip()), strict=True))


def test_a_budget_over_a_gpu_and_an_api_service_counts_each_dollar_once_and_shows_cents(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    simulator: Simulator,
    gateway_pin: GatewayPin,  # noqa: F811
    operator_process: OperatorFactory,
) -> None:
    _api_backend(simulator, prometheus, gateway_pin, namespace, "gpt")
    simulator.configure(namespace, "llama", CAPACITY)
    operator_process(namespace)
    llama = _gpu_service("llama", GPU_HOUR, replicas=1, degraded_replicas=1)
    llama["spec"]["pricing"].update(
        inputPerMillionTokens=str(COMPARISON_INPUT), outputPerMillionTokens=str(COMPARISON_OUTPUT)
    )
    cluster.apply(llama, namespace)
    cluster.apply(_api_service("gpt"), namespace)
    cluster.apply(_budget("both", "1000", [(100, "Notify")]), namespace)
    wait_until(
        "llama's replica ready",
        lambda: _status(cluster, "inferenceservice", "llama", namespace).get("readyReplicas") == 1,
        timeout=90,
    )
    simulator.traffic(namespace, "llama", SELF_HOSTED_TRAFFIC)
    simulator.traffic(namespace, "gpt", TRACE_TRAFFIC)
    try:
        _wait_status(
            cluster,
            namespace,
            "both",
            "a dollar of spend",
            lambda s: Decimal(s.get("spent", "0")) > 1 and s.get("forecast"),
            timeout=150,
        )
        status = _settled(cluster, namespace, "both")
    finally:
        simulator.stop_traffic(namespace, "llama")
        simulator.stop_traffic(namespace, "gpt")

    gpu = _gpu_spend(prometheus, namespace, status, GPU_HOUR)
    tokens = _token_spend(prometheus, namespace, status)
    comparison = _self_hosted_token_value(prometheus, namespace, status)
    # the traffic really was heavy enough that a double charge would show
    assert comparison > gpu / 4, f"comparison {comparison} vs GPU {gpu}: the test could not fail"
    breakdown = {s["name"]: s["spent"] for s in status["breakdown"]}
    _assert_close(breakdown["llama"], gpu, "the GPU service: GPU-hours only")
    _assert_close(breakdown["gpt"], tokens, "the API service: tokens only")
    _assert_close(status["spent"], gpu + tokens, "the budget: each dollar once")

    # Item 9: status keeps 6 places for machines; kubectl shows cents.
    status = _status(cluster, "aibudget", "both", namespace)
    row = _columns(cluster, namespace, "aib", "both")
    assert re.fullmatch(r"\d+\.\d{2}", row["SPENT"]), row
    assert re.fullmatch(r"\d+\.\d{2}", row["FORECAST"]), row
    assert row["SPENT"] == status["spentDisplay"]
    assert Decimal(row["SPENT"]) == Decimal(status["spent"]).quantize(Decimal("0.01"))
    assert Decimal(row["FORECAST"]) == Decimal(status["forecast"]).quantize(Decimal("0.01"))
    assert len(status["spent"].partition(".")[2]) > 2, status["spent"]  # the exact amount is kept
    cost_per_hour = _columns(cluster, namespace, "aisvc", "llama")["COST/H"]
    assert cost_per_hour == "36.00", cost_per_hour
