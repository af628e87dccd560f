"""The PromQL aipolicy asks, one query per metric family for all services at once.

Every query is grouped `by (namespace, service)`: the simulator (and, in a real cluster, the
PodMonitor in manifests/) labels model-server series with the InferenceService's name as
`service`. Metric names are configurable because vLLM renames them between versions.
"""

from __future__ import annotations

from dataclasses import dataclass

from aipolicy.api.common import parse_duration
from aipolicy.api.inferenceservice import ScalingMetric

BY = "namespace, service"


@dataclass(frozen=True)
class MetricNames:
    """Metric names of the model servers, the gateway and kube-state-metrics."""

    waiting: str = "vllm:num_requests_waiting"
    running: str = "vllm:num_requests_running"
    prompt_tokens: str = "vllm:prompt_tokens_total"
    generation_tokens: str = "vllm:generation_tokens_total"
    request_success: str = "vllm:request_success_total"
    #: vLLM counts failures in request_success with these finished_reason values
    failure_reasons: str = "error|abort"
    e2e_latency: str = "vllm:e2e_request_latency_seconds"
    ttft: str = "vllm:time_to_first_token_seconds"
    frontdoor_waiting: str = "aipolicy_frontdoor_requests_waiting"
    gateway_requests: str = "litellm_proxy_total_requests_metric_total"
    gateway_failures: str = "litellm_proxy_failed_requests_metric_total"
    gateway_input_tokens: str = "litellm_input_tokens_metric_total"
    gateway_output_tokens: str = "litellm_output_tokens_metric_total"
    gateway_latency: str = "litellm_request_total_latency_metric"


def scaling_metric(metric: ScalingMetric, names: MetricNames) -> str:
    """The query of a scaling metric, summed per service (Latency: a service-wide quantile)."""
    if metric.type == "PromQL":
        assert metric.query is not None
        return metric.query
    if metric.type == "QueueDepth":
        return f"sum by ({BY}) ({names.waiting})"
    if metric.type == "RequestsInFlight":
        return f"sum by ({BY}) ({names.running})"
    if metric.type == "TokensPerSecond":
        return f"sum by ({BY}) (rate({names.generation_tokens}[{metric.window}]))"
    return latency_quantile(names.e2e_latency, metric.percentile, metric.window)


def latency_quantile(histogram: str, quantile: float, window: str) -> str:
    return f"histogram_quantile({quantile}, sum by ({BY}, le) (rate({histogram}_bucket[{window}])))"


def demand(names: MetricNames) -> str:
    """Requests waiting at front doors whose service has no ready replica (scale from zero)."""
    return f"sum by ({BY}) ({names.frontdoor_waiting})"


def activity(names: MetricNames, window: str = "30s") -> str:
    """Requests finished in the window plus those running or waiting now: zero means idle."""
    return (
        f"sum by ({BY}) (increase({names.request_success}[{window}]))"
        f" + sum by ({BY}) ({names.running}) + sum by ({BY}) ({names.waiting})"
    )


def error_rate(names: MetricNames, window: str) -> str:
    """The failing share of finished requests, self-hosted and gateway alike."""
    failed = (
        f"sum by ({BY}) (rate({names.request_success}"
        f'{{finished_reason=~"{names.failure_reasons}"}}[{window}]))'
        f" or sum by ({BY}) (rate({names.gateway_failures}[{window}]))"
    )
    total = (
        f"sum by ({BY}) (rate({names.request_success}[{window}]))"
        f" or sum by ({BY}) (rate({names.gateway_requests}[{window}]))"
    )
    return f"({failed}) / ({total})"


def token_increase(names: MetricNames, which: str, window: str) -> str:
    """Tokens processed in the window, self-hosted or through the gateway."""
    own = names.prompt_tokens if which == "input" else names.generation_tokens
    gateway = names.gateway_input_tokens if which == "input" else names.gateway_output_tokens
    return f"sum by ({BY}) (increase({own}[{window}])) or sum by ({BY}) (increase({gateway}[{window}]))"


def counter_growth(metric: str, window: str, lookback: str) -> str:
    """How much a counter grew over (t - window, t], per service, added up exactly across windows.

    Each series' last sample at t minus its last sample at t - window: back-to-back windows
    telescope to the counter's whole growth, with no extrapolation, and a scrape gap shorter
    than ``lookback`` is counted when the samples resume (``increase()`` over short windows
    loses a gap's growth, and its extrapolation under-counts about 1 %). A series that reset in
    the window, or is new in it, falls back to ``increase()``, which handles resets and never
    counts an old counter's whole history at once.
    """
    now, then = (
        f"last_over_time({metric}[{lookback}])",
        f"last_over_time({metric}[{lookback}] offset {window})",
    )
    return f"sum by ({BY}) ((({now} - {then}) >= 0) or increase({metric}[{window}]))"


def token_growth(names: MetricNames, which: str, window: str, lookback: str) -> str:
    """Tokens processed in the window, for accounting: exact across windows (counter_growth)."""
    own = names.prompt_tokens if which == "input" else names.generation_tokens
    gateway = names.gateway_input_tokens if which == "input" else names.gateway_output_tokens
    return f"{counter_growth(own, window, lookback)} or {counter_growth(gateway, window, lookback)}"


def gpus_held() -> str:
    """GPUs requested by running pods, per service (kube-state-metrics, as in a real cluster)."""
    return (
        f"sum by ({BY}) (label_replace("
        'kube_pod_container_resource_requests{resource="nvidia_com_gpu"}'
        ' * on (namespace, pod) group_left() (kube_pod_status_phase{phase="Running"} == 1)'
        " * on (namespace, pod) group_left(label_aipolicy_dev_service)"
        ' kube_pod_labels{label_aipolicy_dev_service!=""},'
        ' "service", "$1", "label_aipolicy_dev_service", "(.+)"))'
    )


def gpu_hours(window: str, step_seconds: int = 5) -> str:
    """GPU-hours held in the window: GPUs held, sampled every step, times the step's hours.

    A sum rather than an average, so a pod that ran half the window counts half. Subquery steps
    sit on multiples of the step, and Prometheus 2 ranges include their left end: a window of
    5s at a step-aligned time holds two steps, so back-to-back windows would count every
    boundary step twice (a budget evaluated every 5s doubled its GPU spend). One millisecond
    off the window makes it (t - window, t] on every Prometheus version.
    """
    open_left = max(round(parse_duration(window).total_seconds() * 1000) - 1, 1)
    return f"sum_over_time(({gpus_held()})[{open_left}ms:{step_seconds}s]) * {step_seconds / 3600:.9f}"


def slo_load(names: MetricNames, window: str) -> tuple[str, str, str, str]:
    """For scaling.metric.type SLO, per service: requests finished per second, prompt and
    generated tokens per second over the window, and requests waiting in the model servers."""
    return (
        f"sum by ({BY}) (rate({names.request_success}[{window}]))",
        f"sum by ({BY}) (rate({names.prompt_tokens}[{window}]))",
        f"sum by ({BY}) (rate({names.generation_tokens}[{window}]))",
        f"sum by ({BY}) ({names.waiting})",
    )
