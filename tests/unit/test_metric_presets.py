"""Metrics presets: each server's names reach the queries, and an absent metric is no zero."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aipolicy.api.inferenceservice import InferenceServiceSpec, ScalingMetric
from aipolicy.observe import presets
from aipolicy.observe.absence import ABSENT_AFTER, absent_or
from aipolicy.policy.observations import Unavailable, Value
from aipolicy.policy.scaling import decide_replicas
from tests.unit.test_scaling import EMPTY, make_scaling, observe

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
LONG_READY = NOW - ABSENT_AFTER - timedelta(seconds=1)


@pytest.mark.parametrize(
    ("preset", "kind", "name"),
    [
        ("vllm", "KVCacheUsage", "vllm:kv_cache_usage_perc"),
        ("vllm-legacy", "KVCacheUsage", "vllm:gpu_cache_usage_perc"),
        ("sglang", "KVCacheUsage", "sglang:token_usage"),
        ("vllm", "QueueDepth", "vllm:num_requests_waiting"),
        ("sglang", "QueueDepth", "sglang:num_queue_reqs"),
        ("tgi", "QueueDepth", "tgi_queue_size"),
        ("sglang", "RequestsInFlight", "sglang:num_running_reqs"),
        ("tgi", "RequestsInFlight", "tgi_batch_current_size"),
        ("tgi", "TokensPerSecond", "tgi_request_generated_tokens_sum"),
        ("sglang", "Latency", "sglang:e2e_request_latency_seconds_bucket"),
        ("tgi", "Latency", "tgi_request_duration_bucket"),
    ],
)
def test_each_preset_queries_its_servers_names(preset: str, kind: str, name: str) -> None:
    names = presets.PRESETS[preset]
    metric = ScalingMetric.model_validate({"type": kind, "target": 1})
    assert presets.scaling_series(metric, names) == name
    assert name.removesuffix("_bucket") in presets.scaling_metric(metric, names)
    assert presets.presence(name) == f"count by (namespace, service) ({name})"
    # no other server's names leak into a preset's queries
    own = next(prefix for prefix in ("vllm:", "sglang:", "tgi_") if name.startswith(prefix))
    query = presets.scaling_metric(metric, names) + presets.activity(names)
    assert not any(prefix in query for prefix in {"vllm:", "sglang:", "tgi_"} - {own}), query


def test_the_preset_of_a_service_wins_over_the_operators_default() -> None:
    spec = InferenceServiceSpec.model_validate(
        {"model": "m", "serving": {"image": "i"}, "pricing": {"gpuHour": "1"}, "metrics": {"preset": "tgi"}}
    )
    assert presets.metric_names(spec.metrics.preset, presets.PRESETS["sglang"]).preset == "tgi"
    assert presets.metric_names(None, presets.PRESETS["sglang"]).preset == "sglang"
    assert presets.metric_names(None).preset == "vllm"


def test_tgi_has_no_kv_cache_gauge_and_says_so() -> None:
    metric = ScalingMetric(type="KVCacheUsage", target=0.8)
    with pytest.raises(presets.MissingMetricError, match="tgi"):
        presets.scaling_metric(metric, presets.PRESETS["tgi"])


def test_error_rate_uses_each_servers_failure_counter() -> None:
    assert 'vllm:request_success_total{finished_reason=~"error|abort"}' in presets.error_rate(
        presets.VLLM, "1m"
    )
    assert "sglang:num_aborted_requests_total" in presets.error_rate(presets.PRESETS["sglang"], "1m")
    assert "tgi_request_failure" in presets.error_rate(presets.PRESETS["tgi"], "1m")


def test_an_absent_series_names_the_metric_once_a_pod_has_been_ready_long_enough() -> None:
    zero = Value(0.0)
    absent = absent_or(zero, Unavailable("NoData"), "sglang:num_queue_reqs", "sglang", LONG_READY, NOW)
    assert isinstance(absent, Unavailable) and absent.reason == "Absent"
    assert "sglang:num_queue_reqs" in absent.message and "sglang" in absent.message


@pytest.mark.parametrize(
    ("present", "ready_since"),
    [
        (Value(2.0), LONG_READY),  # the metric is there: the sum of zero is a real zero
        (Unavailable("NoData"), None),  # no pod Ready: none could export anything
        (Unavailable("NoData"), NOW - timedelta(seconds=5)),  # Ready just now: not scraped yet
        (Unavailable("QueryError", "down"), LONG_READY),  # the presence query failed: no verdict
    ],
)
def test_no_verdict_of_absence_without_evidence(
    present: Value | Unavailable, ready_since: datetime | None
) -> None:
    assert absent_or(Value(0.0), present, "m", "vllm", ready_since, NOW) == Value(0.0)


def test_an_absent_metric_holds_the_replicas_and_reports_absent() -> None:
    absent = Unavailable("Absent", "metric sglang:num_queue_reqs is absent")
    decision = decide_replicas(make_scaling(), observe(3, absent), EMPTY)
    assert (decision.desired, decision.reason) == (3, "MetricsUnavailable")
    assert (decision.metrics_available, decision.metrics_reason) == (False, "Absent")


def test_kv_cache_usage_scales_on_the_pods_summed_fractions() -> None:
    # three pods at 0.9 of their cache each, target 0.6: 2.7 / 0.6 = 4.5, so 5 replicas
    scaling = make_scaling(metric=ScalingMetric(type="KVCacheUsage", target=0.6))
    decision = decide_replicas(scaling, observe(3, 2.7), EMPTY)
    assert (decision.desired, decision.reason) == (5, "ScaleUp")
    assert "KV cache usage" in decision.message


def test_the_operator_flag_names_a_preset() -> None:
    from aipolicy.cli import build_parser

    assert build_parser().parse_args(["run"]).metrics_preset == "vllm"
    assert build_parser().parse_args(["run", "--metrics-preset", "tgi"]).metrics_preset == "tgi"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--metrics-preset", "triton"])
    assert set(presets.PRESETS) == {"vllm", "vllm-legacy", "sglang", "tgi"}


def test_error_rate_reads_the_gateways_5xx_per_serving_backend_before_the_model_servers() -> None:
    query = presets.error_rate(presets.VLLM, "1m")
    gateway, _, model_server = query.partition(" or ((")
    assert 'aipolicy_gateway_requests_total{backend=~"service/.+", code=~"5.."}[1m]' in gateway
    # the serving backend's name becomes `service`: a fallback's 502s count against it
    # (summed by backend first, or a backend serving two services' clients would clash; the
    # values are checked by Prometheus's engine in test_served_by_queries.py)
    assert (
        "label_replace(sum by (namespace, backend) "
        '(rate(aipolicy_gateway_requests_total{backend=~"service/.+"}[1m])), "service"' in gateway
    )
    assert "> 0" in gateway  # no traffic through the gateway falls back to the pods' counters
    assert "vllm:request_success_total" in model_server and "vllm" not in gateway
