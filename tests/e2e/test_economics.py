"""Unit economics in an InferenceService's status on a real cluster: cost per 1,000 requests
against PromQL this file asks itself, idle GPU-hours that grow without traffic and stop under
load, and the self-host or API comparison against an offline computation of the same window,
both ways (a self-hosted service against API prices, an API-backed one against a GPU profile)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any

import pytest

from aipolicy.api.economics import GpuAlternative
from aipolicy.policy.economics import gpu_alternative_sizing
from tests.e2e.builders import GROUP_VERSION, steady_gpu_service
from tests.e2e.cluster import Cluster, Prometheus, Simulator, wait_until
from tests.e2e.conftest import OperatorFactory

GPU_HOUR, INPUT_PER_M, OUTPUT_PER_M = 2.00, 0.50, 1.50
# economics refresh (and sample the period's GPU-hours) every 20 s instead of every minute: the
# same arithmetic, and five refreshes in under two minutes instead of five
REFRESH_SECONDS = 20
# token prices on a self-hosted service are an API's, for the comparison only
PRICING = {
    "gpuHour": f"{GPU_HOUR:.2f}",
    "inputPerMillionTokens": f"{INPUT_PER_M:.2f}",
    "outputPerMillionTokens": f"{OUTPUT_PER_M:.2f}",
}


def _economics(cluster: Cluster, namespace: str, name: str = "chat") -> dict[str, Any]:
    status = (cluster.get("inferenceservice", name, namespace) or {}).get("status") or {}
    return dict(status.get("economics") or {})


def _next_economics(
    cluster: Cluster, namespace: str, after: str | None, name: str = "chat"
) -> dict[str, Any]:
    """The first economics evaluated after ``after`` (they refresh every REFRESH_SECONDS here)."""
    found: list[dict[str, Any]] = []

    def newer() -> bool:
        economics = _economics(cluster, namespace, name)
        if economics.get("evaluatedAt") and economics.get("evaluatedAt") != after:
            found[:] = [economics]
            return True
        return False

    wait_until("the next refresh's economics", newer, timeout=150, interval=2)
    return found[0]


def _at(prometheus: Prometheus, promql: str, moment: str) -> float:
    when = datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()
    qs = urllib.parse.urlencode({"query": promql, "time": when})
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/query?{qs}", timeout=10) as response:
        result = json.load(response)["data"]["result"]
    assert len(result) == 1, (promql, result)
    return float(result[0]["value"][1])


def test_status_tells_what_a_request_costs_and_what_idle_gpus_cost(
    cluster: Cluster,
    namespace: str,
    simulator: Simulator,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
) -> None:
    operator_process(namespace, extra_env={"AIPOLICY_ECONOMICS_REFRESH_SECONDS": str(REFRESH_SECONDS)})
    cluster.apply(steady_gpu_service("chat", pricing=PRICING), namespace)
    wait_until(
        "the pod Ready",
        lambda: ((cluster.get("inferenceservice", "chat", namespace) or {}).get("status") or {}).get(
            "readyReplicas"
        ),
        timeout=90,
    )
    # No traffic: the GPU is held for nothing, and the idle GPU-hours say so. The first numbers
    # taken are the first that count the GPU held (a refresh at an instant before the pod ran,
    # or before kube-state-metrics was scraped with it, rightly counts none).
    first = _next_economics(cluster, namespace, None)
    for _ in range(5):
        if first.get("gpuHoursThisPeriod"):
            break
        first = _next_economics(cluster, namespace, first["evaluatedAt"])
    assert first.get("gpuHoursThisPeriod"), f"a GPU held for minutes counts no GPU-hours: {first}"
    second = _next_economics(cluster, namespace, first["evaluatedAt"])
    assert second["idleGpuHoursThisPeriod"] > first.get("idleGpuHoursThisPeriod", 0)
    assert "costPerThousandRequests" not in second, "no requests: no cost per request, not 0"

    # Under load the idle hours stop growing while the held hours go on.
    simulator.traffic(
        namespace,
        "chat",
        {"kind": "constant", "rate": 4, "duration": 400, "promptTokens": 300, "outputTokens": 60},
    )
    try:
        loaded = _next_economics(cluster, namespace, second["evaluatedAt"])
        before = _next_economics(cluster, namespace, loaded["evaluatedAt"])
        after = _next_economics(cluster, namespace, before["evaluatedAt"])
    finally:
        simulator.stop_traffic(namespace, "chat")
    assert after["gpuHoursThisPeriod"] > before["gpuHoursThisPeriod"]
    assert after["idleGpuHoursThisPeriod"] == pytest.approx(before["idleGpuHoursThisPeriod"], abs=1e-9)

    assert "costPerThousandRequests" in after, after
    # Cost per 1,000 requests: the hour's GPU cost over the hour's requests, asked here apart.
    at = after["evaluatedAt"]
    selector = f'namespace="{namespace}"'
    requests = _at(prometheus, f"sum(increase(vllm:request_success_total{{{selector}}}[3600s]))", at)
    gpu_hours = _at(
        prometheus,
        f'sum_over_time(sum(kube_pod_container_resource_requests{{{selector},resource="nvidia_com_gpu"}})'
        "[3599999ms:15s]) * 15 / 3600",
        at,
    )
    assert float(after["costPerThousandRequests"]) == pytest.approx(
        gpu_hours * GPU_HOUR / requests * 1000, rel=0.01
    )
    assert after["requestsPerSecond"] == pytest.approx(requests / 3600, rel=0.01)
    assert after["errorRate"] == pytest.approx(0, abs=1e-9)
    assert after["ttftP95Seconds"] > 0

    # Self-host or API: the same tokens at the API's prices, and the break-even, computed here.
    tokens_in = _at(prometheus, f"sum(increase(vllm:prompt_tokens_total{{{selector}}}[3600s]))", at)
    tokens_out = _at(prometheus, f"sum(increase(vllm:generation_tokens_total{{{selector}}}[3600s]))", at)
    api_cost = (tokens_in * INPUT_PER_M + tokens_out * OUTPUT_PER_M) / 1e6
    assert float(after["apiCostPerThousandRequests"]) == pytest.approx(api_cost / requests * 1000, rel=0.01)
    gpu_per_day = gpu_hours * GPU_HOUR * 24  # the hour's GPU cost, 24 times
    assert after["breakEvenRequestsPerDay"] == pytest.approx(gpu_per_day / (api_cost / requests), rel=0.01)

    # the main numbers are columns of kubectl get aisvc -o wide
    wide = cluster.kubectl("get", "aisvc", "chat", "-n", namespace, "-o", "wide").stdout
    header, row = wide.splitlines()[:2]
    columns = dict(zip(header.split(), row.split(), strict=True))
    assert float(columns["COST/1K"]) > 0 and float(columns["IDLE-GPU-H"]) > 0
    assert float(columns["REQ/S"]) > 0 and float(columns["TTFT-P95"]) > 0


# An API-backed service naming a GPU alternative: L4s serving 2,000-token prompts hold few
# requests per second at a 2 s p95 TTFT, so the hour's traffic needs several replicas.
ALTERNATIVE = {"profile": "L4/8B", "gpuHour": "0.80", "ttftP95": 2}
API_INPUT_PER_M, API_OUTPUT_PER_M = 0.15, 0.60


def _api_isvc(name: str, alternative: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "model": "gpt-4o-mini",
            "provider": {"url": "https://api.openai.com/v1", "gpuAlternative": alternative},
            "pricing": {
                "inputPerMillionTokens": f"{API_INPUT_PER_M:.2f}",
                "outputPerMillionTokens": f"{API_OUTPUT_PER_M:.2f}",
            },
        },
    }


def test_an_api_service_shows_what_its_traffic_would_cost_on_gpus(
    cluster: Cluster,
    namespace: str,
    simulator: Simulator,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
) -> None:
    simulator.configure(
        namespace,
        "gpt",
        {
            "backend": "api",
            "modelName": "gpt-4o-mini",
            "apiCapacity": {"baseLatencySeconds": 0.2, "outputTokensPerSecond": 400},
        },
    )
    # economics once a minute (not the shorter refresh above): the sizing below needs an hour
    # window with a minute or more of the traffic in it
    operator_process(namespace)
    cluster.apply(_api_isvc("gpt", ALTERNATIVE), namespace)
    simulator.traffic(
        namespace,
        "gpt",
        {"kind": "constant", "rate": 4, "duration": 400, "promptTokens": 2000, "outputTokens": 100},
    )
    try:
        found: list[dict[str, Any]] = []

        def sized() -> bool:
            economics = _economics(cluster, namespace, "gpt")
            found[:] = [economics]
            return "gpuAlternativeReplicas" in economics

        wait_until("the GPU alternative in status", sized, timeout=180, interval=2)
        economics = _next_economics(cluster, namespace, found[0]["evaluatedAt"], "gpt")
    finally:
        simulator.stop_traffic(namespace, "gpt")

    # Offline: the gateway's counters of the same hour, asked here, through the same sizing.
    at = economics["evaluatedAt"]
    selector = f'namespace="{namespace}",service="gpt"'
    requests = _at(
        prometheus, f"sum(increase(litellm_proxy_total_requests_metric_total{{{selector}}}[3600s]))", at
    )
    tokens_in = _at(prometheus, f"sum(increase(litellm_input_tokens_metric_total{{{selector}}}[3600s]))", at)
    tokens_out = _at(
        prometheus, f"sum(increase(litellm_output_tokens_metric_total{{{selector}}}[3600s]))", at
    )
    sizing = gpu_alternative_sizing(
        GpuAlternative.model_validate(ALTERNATIVE),
        requests / 3600,
        tokens_in / requests,
        tokens_out / requests,
    )
    assert sizing is not None
    assert economics["gpuAlternativeReplicas"] == sizing.replicas
    assert sizing.replicas >= 2, "the traffic should need more than the one-replica floor"
    gpu_cost_per_hour = sizing.replicas * sizing.gpus_per_replica * 0.80
    assert float(economics["gpuCostPerThousandRequests"]) == pytest.approx(
        gpu_cost_per_hour / requests * 1000, rel=0.01
    )
    api_per_request = (tokens_in * API_INPUT_PER_M + tokens_out * API_OUTPUT_PER_M) / 1e6 / requests
    assert float(economics["costPerThousandRequests"]) == pytest.approx(api_per_request * 1000, rel=0.01)
    assert economics["breakEvenRequestsPerDay"] == pytest.approx(
        gpu_cost_per_hour * 24 / api_per_request, rel=0.01
    )
    assert "gpuHoursThisPeriod" not in economics, "an API-backed service holds no GPUs"


@pytest.mark.usefixtures("crds_installed")
def test_an_unknown_gpu_profile_is_refused_at_apply_time_naming_the_field(
    cluster: Cluster, namespace: str
) -> None:
    result = cluster.apply(_api_isvc("gpt", {**ALTERNATIVE, "profile": "RTX4090/8B"}), namespace, check=False)
    assert result.returncode != 0, "an unknown profile was accepted"
    assert "spec.provider.gpuAlternative.profile" in result.stderr, result.stderr
    assert "must be a profile of the calibrated serving model" in result.stderr, result.stderr
    explained = cluster.kubectl("explain", "inferenceservice.spec.provider.gpuAlternative").stdout
    assert "what serving this service's traffic on GPUs would cost" in " ".join(explained.split())
    assert "ttftP95" in explained and "gpuHour" in explained
