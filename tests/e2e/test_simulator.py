"""The simulator against the real cluster and a real Prometheus: metrics follow the pods, the
queueing model answers to replicas, counters add up to the trace, faults show and clear."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from aipolicy.sim.traffic import load_trace
from tests.e2e.builders import deployment, ready_after
from tests.e2e.cluster import Cluster, Prometheus, Simulator, wait_until

SERVICE_LABEL = "aipolicy.dev/service"


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    """A model server as the operator would make it (labels tie pods to the service)."""
    server = {
        "name": "server",
        "image": "vllm/vllm-openai:v0.6.3",
        "resources": {"limits": {"nvidia.com/gpu": "1"}},
    }
    return deployment(
        name,
        server,
        labels={SERVICE_LABEL: name},
        pod_labels={"aipolicy.dev/model": "llama-3-1-8b"},
        annotations=ready_after("1s"),
        replicas=replicas,
    )


def _ready(cluster: Cluster, namespace: str, name: str, replicas: int) -> None:
    wait_until(
        f"{replicas} ready replicas of {name}",
        lambda: (
            (cluster.get("deployment", name, namespace) or {}).get("status", {}).get("readyReplicas")
            == replicas
        ),
        timeout=60,
    )


def _series_count(prometheus: Prometheus, query: str) -> int:
    return len(prometheus.query(query))


def test_more_replicas_lower_queue_depth_and_latency(
    cluster: Cluster, namespace: str, prometheus: Prometheus, simulator: Simulator
) -> None:
    # a replica decodes 16 sequences at 40 tokens/s each: ~10 requests/s of 60 output tokens;
    # 20/s overloads one replica and not three
    simulator.configure(
        namespace,
        "chat",
        {
            "capacity": {
                "prefillTokensPerSecond": 20000,
                "decodeTokensPerSecond": 3000,
                "maxConcurrentSequences": 16,
            }
        },
    )
    cluster.apply(_deployment("chat", 1), namespace)
    _ready(cluster, namespace, "chat", 1)
    simulator.traffic(
        namespace,
        "chat",
        {"kind": "constant", "rate": 20, "duration": 600, "promptTokens": 200, "outputTokens": 60},
    )
    waiting = f'sum(vllm:num_requests_waiting{{namespace="{namespace}",service="chat"}})'
    latency = (
        "histogram_quantile(0.95, sum by (le) (rate("
        f'vllm:e2e_request_latency_seconds_bucket{{namespace="{namespace}",service="chat"}}[20s])))'
    )
    queued = wait_until(
        "a queue on one replica", lambda: (prometheus.value(waiting) or 0) > 20 or None, timeout=60
    )
    assert queued
    slow = wait_until("latency on one replica", lambda: prometheus.value(latency), timeout=30)

    cluster.kubectl("-n", namespace, "scale", "deployment/chat", "--replicas=3")
    _ready(cluster, namespace, "chat", 3)
    wait_until(
        "three pods scraped",
        lambda: _series_count(prometheus, waiting.replace("sum(", "(")) == 3 or None,
        timeout=30,
    )
    wait_until(
        "the queue drained on three replicas",
        lambda: (prometheus.value(waiting) or 0) < 2 or None,
        timeout=90,
    )
    fast = wait_until(
        "latency to fall on three replicas",
        lambda: (v := prometheus.value(latency)) is not None and v < slow * 0.7 and v,
        timeout=90,
    )
    assert fast < slow
    simulator.stop_traffic(namespace, "chat")


def test_token_counters_over_a_replay_equal_the_trace_totals(
    cluster: Cluster, namespace: str, prometheus: Prometheus, simulator: Simulator
) -> None:
    trace = load_trace()
    # the whole hour replayed 600x faster (6 s) onto servers large enough to finish every request
    simulator.configure(
        namespace,
        "replay",
        {
            "capacity": {
                "prefillTokensPerSecond": 1e9,
                "decodeTokensPerSecond": 1e9,
                "maxConcurrentSequences": 100000,
                "perSequenceDecodeTokensPerSecond": 1e9,
            }
        },
    )
    cluster.apply(_deployment("replay", 2), namespace)
    _ready(cluster, namespace, "replay", 2)
    wait_until(
        "both pods scraped",
        lambda: (
            _series_count(prometheus, f'vllm:prompt_tokens_total{{namespace="{namespace}"}}') == 2 or None
        ),
        timeout=30,
    )
    simulator.traffic(namespace, "replay", {"kind": "trace", "speedup": 600, "scale": 1})
    prompt = f'sum(vllm:prompt_tokens_total{{namespace="{namespace}",service="replay"}})'
    output = f'sum(vllm:generation_tokens_total{{namespace="{namespace}",service="replay"}})'
    requests = f'sum(vllm:request_success_total{{namespace="{namespace}",service="replay"}})'

    def settled() -> bool | None:
        return prometheus.value(requests) == len(trace.requests) or None

    wait_until("every request of the trace finished and scraped", settled, timeout=120)
    assert prometheus.value(prompt) == trace.total_prompt_tokens
    assert prometheus.value(output) == trace.total_output_tokens


def test_an_injected_fault_shows_in_error_rate_and_latency_and_clears(
    cluster: Cluster, namespace: str, prometheus: Prometheus, simulator: Simulator
) -> None:
    cluster.apply(_deployment("flaky", 1), namespace)
    _ready(cluster, namespace, "flaky", 1)
    simulator.traffic(
        namespace,
        "flaky",
        {"kind": "constant", "rate": 5, "duration": 600, "promptTokens": 100, "outputTokens": 20},
    )
    selector = f'namespace="{namespace}",service="flaky"'
    error_rate = (
        f'(sum(rate(vllm:request_success_total{{{selector},finished_reason="error"}}[10s])) or vector(0))'
        f" / sum(rate(vllm:request_success_total{{{selector}}}[10s]))"
    )
    buckets = f"vllm:e2e_request_latency_seconds_bucket{{{selector}}}"
    latency = f"histogram_quantile(0.5, sum by (le) (rate({buckets}[10s])))"
    wait_until("healthy traffic in Prometheus", lambda: prometheus.value(error_rate) == 0 or None, timeout=60)
    healthy_latency = wait_until("a latency", lambda: prometheus.value(latency), timeout=30)

    simulator.fault(namespace, "flaky", errorRate=0.5, latencyMultiplier=8)
    wait_until(
        "the error rate to rise", lambda: (prometheus.value(error_rate) or 0) > 0.3 or None, timeout=60
    )
    wait_until(
        "the latency to rise",
        lambda: (prometheus.value(latency) or 0) > healthy_latency * 3 or None,
        timeout=60,
    )

    simulator.clear_fault(namespace, "flaky")
    wait_until("the error rate to clear", lambda: prometheus.value(error_rate) == 0 or None, timeout=60)
    wait_until(
        "the latency to recover",
        lambda: (prometheus.value(latency) or 1e9) < healthy_latency * 2 or None,
        timeout=60,
    )
    simulator.stop_traffic(namespace, "flaky")


def test_a_deleted_service_loses_its_targets_and_the_rest_go_on(
    cluster: Cluster, namespace: str, prometheus: Prometheus, simulator: Simulator
) -> None:
    cluster.apply(_deployment("stays", 1), namespace)
    cluster.apply(_deployment("goes", 1), namespace)
    _ready(cluster, namespace, "stays", 1)
    _ready(cluster, namespace, "goes", 1)

    def targets(service: str) -> list[dict[str, Any]]:
        """The service's pod targets (its front-door target belongs to the simulator's own
        configuration of the service, which outlives its pods: a service at zero has one)."""
        with urllib.request.urlopen(f"{prometheus.url}/api/v1/targets?state=active", timeout=10) as response:
            active = json.load(response)["data"]["activeTargets"]
        return [
            t
            for t in active
            if t["labels"].get("namespace") == namespace
            and t["labels"].get("service") == service
            and "pod" in t["labels"]
            and t["health"] == "up"
        ]

    wait_until("both services scraped", lambda: targets("stays") and targets("goes"), timeout=60)
    for target in targets("stays") + targets("goes"):
        assert target["scrapeUrl"].startswith("http://127.0.0.1:")
    cluster.kubectl("-n", namespace, "delete", "deployment", "goes", "--wait=true", "--timeout=60s")
    try:
        wait_until("the deleted service's targets gone", lambda: not targets("goes"), timeout=90)
    except AssertionError as error:
        pods = cluster.kubectl("-n", namespace, "get", "pods", "-o", "wide").stdout
        raise AssertionError(f"{error}\npods:\n{pods}\nsimulator: {simulator.state()}") from None
    time.sleep(3)
    assert targets("stays"), "the other service's targets went too"
