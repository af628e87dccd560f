"""Exposition: vLLM and LiteLLM names, labels and buckets, parsed back by Prometheus' parser."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sim_helpers import SID, Recorder

from aipolicy.sim.metrics import (
    E2E_LATENCY_BUCKETS,
    LITELLM_LATENCY_BUCKETS,
    TTFT_BUCKETS,
    ApiMetrics,
    Histogram,
    render_api_metrics,
    render_pod_metrics,
)

POD_SERIES = {
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:prompt_tokens": "counter",
    "vllm:generation_tokens": "counter",
    "vllm:request_success": "counter",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
}


def _pod_text() -> str:
    r = Recorder()
    r.send((0.0, 500, 11), (0.0, 200, 5))
    r.fleet.step(10.0)
    m = r.fleet.pod_metrics(SID.namespace, "pod-0")
    assert m is not None
    return render_pod_metrics(m)


def test_pod_exposition_names_types_and_labels() -> None:
    text = _pod_text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {n: f.type for n, f in families.items()} == POD_SERIES
    for f in families.values():
        for s in f.samples:
            assert {k: s.labels[k] for k in ("namespace", "pod", "service", "model_name")} == {
                "namespace": "team-a",
                "pod": "pod-0",
                "service": "chat",
                "model_name": "chat",
            }
            assert s.labels["engine"] == "0"
    # Exact sample names, as a PromQL query would use them.
    assert "vllm:prompt_tokens_total{" in text
    assert "vllm:generation_tokens_total{" in text
    assert 'vllm:request_success_total{engine="0",finished_reason="stop"' in text
    samples = {
        (s.name, s.labels.get("finished_reason")): s.value for f in families.values() for s in f.samples
    }
    assert samples[("vllm:prompt_tokens_total", None)] == 700
    assert samples[("vllm:generation_tokens_total", None)] == 16
    assert samples[("vllm:request_success_total", "stop")] == 2
    assert samples[("vllm:request_success_total", "error")] == 0


def test_histograms_use_vllm_buckets() -> None:
    families = {f.name: f for f in text_string_to_metric_families(_pod_text())}

    def bounds(name: str) -> list[float]:
        return [float(s.labels["le"]) for s in families[name].samples if s.name.endswith("_bucket")]

    assert bounds("vllm:time_to_first_token_seconds") == [*TTFT_BUCKETS, math.inf]
    assert bounds("vllm:e2e_request_latency_seconds") == [*E2E_LATENCY_BUCKETS, math.inf]
    assert TTFT_BUCKETS[:3] == (0.001, 0.005, 0.01)
    assert TTFT_BUCKETS[-1] == 2560.0
    assert E2E_LATENCY_BUCKETS[0] == 0.3
    assert E2E_LATENCY_BUCKETS[-1] == 7680.0
    ttft = {s.labels.get("le"): s.value for s in families["vllm:time_to_first_token_seconds"].samples}
    # Both prefill together at 500 tok/s each: the 200-token prompt is done at 0.4 s; the
    # other's remaining 300 tokens then run alone at 1000 tok/s, done at 0.7 s.
    assert (ttft["0.25"], ttft["0.5"], ttft["0.75"], ttft["+Inf"]) == (0, 1, 2, 2)


def test_histogram_bucket_edges_are_inclusive() -> None:
    h = Histogram([1.0, 2.0])
    for v in (0.5, 1.0, 1.5, 2.0, 9.0):
        h.observe(v)
    snap = h.snapshot()
    assert snap.counts == (2, 2, 1)
    assert snap.cumulative() == [("1.0", 2.0), ("2.0", 4.0), ("+Inf", 5.0)]
    assert snap.total == pytest.approx(14.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        Histogram([2.0, 1.0])


def test_api_exposition_litellm_style() -> None:
    h = Histogram(LITELLM_LATENCY_BUCKETS)
    h.observe(1.45)
    text = render_api_metrics(ApiMetrics("team-b", "gpt", "gpt-x", 3, 1, 2000, 160, h.snapshot()))
    samples = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["litellm_proxy_total_requests_metric_total"].value == 3
    assert samples["litellm_proxy_failed_requests_metric_total"].value == 1
    assert samples["litellm_input_tokens_metric_total"].value == 2000
    assert samples["litellm_output_tokens_metric_total"].value == 160
    assert samples["litellm_request_total_latency_metric_count"].value == 1
    for s in samples.values():
        assert {k: s.labels[k] for k in ("namespace", "service", "model")} == {
            "namespace": "team-b",
            "service": "gpt",
            "model": "gpt-x",
        }
