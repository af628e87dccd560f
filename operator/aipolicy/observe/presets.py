"""The PromQL aipolicy asks, one query per metric family for all services at once.

Every query is grouped `by (namespace, service)`: the simulator (and, in a real cluster, the
PodMonitor in manifests/) labels model-server series with the InferenceService's name as
`service`. Metric names come in presets per model server (vLLM renames them between versions):
an InferenceService picks one with spec.metrics.preset, the operator's --metrics-preset is the
default and what budgets and fallback policies read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from aipolicy.api.common import parse_duration
from aipolicy.api.inferenceservice import ScalingMetric
from aipolicy.policy.backends import PROVIDER_PREFIX, SERVICE_LABEL_REGEX, SERVICE_PREFIX

BY = "namespace, service"


@dataclass(frozen=True)
class MetricNames:
    """Metric names of the model servers, the gateway and kube-state-metrics.

    The defaults are current vLLM's; :data:`PRESETS` holds the other servers'. A name that a
    server does not export is None: a query that needs it is refused with the reason, never
    answered with zero.
    """

    preset: str = "vllm"
    waiting: str = "vllm:num_requests_waiting"
    running: str = "vllm:num_requests_running"
    #: the used fraction of the KV cache, per pod (0..1)
    kv_cache_usage: str | None = "vllm:kv_cache_usage_perc"
    prompt_tokens: str = "vllm:prompt_tokens_total"
    generation_tokens: str = "vllm:generation_tokens_total"
    #: a counter of finished requests, whatever their outcome
    requests_finished: str = "vllm:request_success_total"
    #: a selector of the failed ones among them (vLLM counts them by finished_reason)
    requests_failed: str = 'vllm:request_success_total{finished_reason=~"error|abort"}'
    e2e_latency: str = "vllm:e2e_request_latency_seconds"
    ttft: str | None = "vllm:time_to_first_token_seconds"
    frontdoor_waiting: str = "aipolicy_frontdoor_requests_waiting"
    gateway_requests: str = "litellm_proxy_total_requests_metric_total"
    gateway_failures: str = "litellm_proxy_failed_requests_metric_total"
    gateway_input_tokens: str = "litellm_input_tokens_metric_total"
    gateway_output_tokens: str = "litellm_output_tokens_metric_total"
    gateway_latency: str = "litellm_request_total_latency_metric"
    #: aipolicy gateway's own counter, labelled code and backend (service/<name> or provider/<host>)
    gateway_answers: str = "aipolicy_gateway_requests_total"
    #: aipolicy gateway's token counters and latency histograms, labelled like gateway_answers
    gateway_prompt_tokens: str = "aipolicy_gateway_prompt_tokens_total"
    gateway_completion_tokens: str = "aipolicy_gateway_completion_tokens_total"
    gateway_ttft: str = "aipolicy_gateway_time_to_first_token_seconds"
    gateway_e2e_latency: str = "aipolicy_gateway_request_duration_seconds"
    #: money at the serving backend's token prices, labelled currency too
    gateway_spend: str = "aipolicy_gateway_spend_total"


# The names each server exports, as its own documentation and source give them:
# - vLLM (current): https://docs.vllm.ai/en/stable/usage/metrics/ . vllm-project/vllm#18354
#   (May 2025) added vllm:kv_cache_usage_perc and deprecated vllm:gpu_cache_usage_perc, and
#   #29330 (November 2025) removed the old name: queries of it silently found nothing, which
#   is what broke autoscalers that read it.
# - vllm-legacy: vLLM from before that change, https://docs.vllm.ai/en/v0.5.3/serving/metrics.html
#   (vllm:gpu_cache_usage_perc; the request, token and latency names are the same).
# - SGLang (--enable-metrics): https://docs.sglang.io/references/production_metrics.html and
#   python/sglang/srt/metrics/collector.py: sglang:num_queue_reqs, sglang:num_running_reqs,
#   sglang:token_usage, sglang:prompt_tokens_total, sglang:generation_tokens_total,
#   sglang:num_requests_total, sglang:num_aborted_requests_total,
#   sglang:e2e_request_latency_seconds, sglang:time_to_first_token_seconds.
# - TGI: https://huggingface.co/docs/text-generation-inference/reference/metrics : tgi_queue_size,
#   tgi_batch_current_size, tgi_request_count, tgi_request_failure, tgi_request_duration,
#   and the histograms tgi_request_input_length and tgi_request_generated_tokens (their _sum
#   counts tokens). TGI has no KV-cache-usage gauge and no time-to-first-token histogram.
VLLM = MetricNames()
PRESETS: dict[str, MetricNames] = {
    "vllm": VLLM,
    "vllm-legacy": replace(VLLM, preset="vllm-legacy", kv_cache_usage="vllm:gpu_cache_usage_perc"),
    "sglang": replace(
        VLLM,
        preset="sglang",
        waiting="sglang:num_queue_reqs",
        running="sglang:num_running_reqs",
        kv_cache_usage="sglang:token_usage",
        prompt_tokens="sglang:prompt_tokens_total",
        generation_tokens="sglang:generation_tokens_total",
        requests_finished="sglang:num_requests_total",
        requests_failed="sglang:num_aborted_requests_total",
        e2e_latency="sglang:e2e_request_latency_seconds",
        ttft="sglang:time_to_first_token_seconds",
    ),
    "tgi": replace(
        VLLM,
        preset="tgi",
        waiting="tgi_queue_size",
        running="tgi_batch_current_size",
        kv_cache_usage=None,
        prompt_tokens="tgi_request_input_length_sum",
        generation_tokens="tgi_request_generated_tokens_sum",
        requests_finished="tgi_request_count",
        requests_failed="tgi_request_failure",
        e2e_latency="tgi_request_duration",
        ttft=None,
    ),
}
DEFAULT_PRESET = "vllm"


class MissingMetricError(ValueError):
    """The preset has no metric for what was asked (TGI has no KV cache gauge)."""


def metric_names(preset: str | None, default: MetricNames = VLLM) -> MetricNames:
    """The names of a service's preset, or the operator's default when it names none."""
    return default if preset is None else PRESETS[preset]


def scaling_series(metric: ScalingMetric, names: MetricNames) -> str | None:
    """The series a scaling metric reads, to tell an absent metric from an idle one (None for
    PromQL: the user's query is theirs to check)."""
    if metric.type == "PromQL":
        return None
    if metric.type == "QueueDepth":
        return names.waiting
    if metric.type == "RequestsInFlight":
        return names.running
    if metric.type == "TokensPerSecond":
        return names.generation_tokens
    if metric.type == "KVCacheUsage":
        if names.kv_cache_usage is None:
            raise MissingMetricError(
                f"the {names.preset} preset has no KV cache usage metric; choose another type"
            )
        return names.kv_cache_usage
    return f"{names.e2e_latency}_bucket"


def presence(series: str) -> str:
    """How many series of a metric each service's pods export now (absent: no row)."""
    return f"count by ({BY}) ({series})"


def scaling_metric(metric: ScalingMetric, names: MetricNames) -> str:
    """The query of a scaling metric, summed per service (Latency: a service-wide quantile).

    Raises MissingMetricError when the preset has no such metric."""
    if metric.type == "PromQL":
        assert metric.query is not None
        return metric.query
    if metric.type == "QueueDepth":
        return f"sum by ({BY}) ({names.waiting})"
    if metric.type == "RequestsInFlight":
        return f"sum by ({BY}) ({names.running})"
    if metric.type == "TokensPerSecond":
        return f"sum by ({BY}) (rate({names.generation_tokens}[{metric.window}]))"
    if metric.type == "KVCacheUsage":
        # the sum of the pods' used fractions: 2.4 is "2.4 replicas' worth of cache in use",
        # so ceil(sum / target) is the replicas that would each sit at the target
        return f"sum by ({BY}) ({scaling_series(metric, names)})"
    return latency_quantile(names.e2e_latency, metric.percentile, metric.window)


def latency_quantile(histogram: str, quantile: float, window: str) -> str:
    return f"histogram_quantile({quantile}, sum by ({BY}, le) (rate({histogram}_bucket[{window}])))"


def demand(names: MetricNames) -> str:
    """Requests waiting at front doors whose service has no ready replica (scale from zero)."""
    return f"sum by ({BY}) ({names.frontdoor_waiting})"


def activity(names: MetricNames, window: str = "30s") -> str:
    """Requests finished in the window plus those running or waiting now: zero means idle."""
    return (
        f"sum by ({BY}) (increase({names.requests_finished}[{window}]))"
        f" + sum by ({BY}) ({names.running}) + sum by ({BY}) ({names.waiting})"
    )


def first_counter(function: str, window: str, *counters: str) -> str:
    """`function` (rate, increase) of the first of `counters` that each service has, summed by
    service: PromQL's `or` keeps, per service, the series of the left-most counter that has one
    (the model servers' own before the gateways')."""
    return " or ".join(f"sum by ({BY}) ({function}({counter}[{window}]))" for counter in counters)


def served_by(series: str, *also: str) -> str:
    """Series of the aipolicy gateway keyed by the InferenceService that served them: the
    `backend` label (service/<name>) becomes `service`, so a fallback's requests, tokens and
    latency count for the service that served them (the small model, or the API-backed service
    whose prices apply), not for the one the client named. Steps that are bare providers
    (provider/<host>) have no service and drop out."""
    # summed by backend first: the same backend serves its own clients and other services'
    # (in their fallback), and relabelled apart they would clash as one label set
    keep = ", ".join(("namespace", "backend", *also))
    return f'label_replace(sum by ({keep}) ({series}), "service", "$1", "backend", "{SERVICE_LABEL_REGEX}")'


def _served_selector(metric: str, extra: str = "") -> str:
    return f'{metric}{{backend=~"{SERVICE_PREFIX}.+"{extra}}}'


def _gateway_answers_by_backend(names: MetricNames, window: str, code: str | None) -> str:
    """The aipolicy gateway's answers per serving InferenceService (:func:`served_by`), so a
    fallback's errors count against the service that served them."""
    selector = _served_selector(names.gateway_answers, f', code=~"{code}"' if code else "")
    return f"sum by ({BY}) ({served_by(f'rate({selector}[{window}])')})"


def latency_buckets(names: MetricNames, which: str, window: str) -> list[str]:
    """The buckets of a latency histogram per service (`which`: ttft or e2e), grown over the
    window: the model servers' own, then the aipolicy gateway's (see service_latency_quantile)."""
    own = names.ttft if which == "ttft" else names.e2e_latency
    gateway = names.gateway_ttft if which == "ttft" else names.gateway_e2e_latency
    through_gateway = served_by(f"increase({_served_selector(gateway + '_bucket')}[{window}])", "le")
    queries = [f"sum by ({BY}, le) (increase({own}_bucket[{window}]))"] if own is not None else []
    return [*queries, f"sum by ({BY}, le) ({through_gateway})"]


def service_latency_quantile(names: MetricNames, which: str, quantile: float, window: str) -> str:
    """A latency quantile per service over the window (`which`: ttft or e2e): the model
    servers' own histogram, else the aipolicy gateway's for the requests it sent to the service
    (for an API-backed service the only latency there is; for TGI, which has no TTFT histogram,
    the gateway's is the only TTFT)."""
    return " or ".join(f"histogram_quantile({quantile}, {q})" for q in latency_buckets(names, which, window))


def error_rate(names: MetricNames, window: str) -> str:
    """The failing share of finished requests.

    A service served through the aipolicy gateway is read from the gateway's own counter
    first (5xx answers, 502 for a backend refusing connections included: the model server's
    counters never see a request that did not reach it); `or` keeps the model server's (and
    the LiteLLM preset's) ratio for services the gateway does not serve.
    """
    gateway_total = _gateway_answers_by_backend(names, window, None)
    # no 5xx series yet is a zero error rate, not an absent one
    gateway_failed = f"({_gateway_answers_by_backend(names, window, '5..')} or {gateway_total} * 0)"
    failed = first_counter("rate", window, names.requests_failed, names.gateway_failures)
    total = first_counter("rate", window, names.requests_finished, names.gateway_requests)
    # `> 0`: a service the gateway no longer sends to (its traffic is on a fallback) would give
    # 0/0 = NaN, which would hide its pods' own counters from the recovery probe
    return f"({gateway_failed} / ({gateway_total} > 0)) or (({failed}) / ({total}))"


def _token_counters(names: MetricNames, which: str) -> tuple[str, str, str]:
    """The model servers', the aipolicy gateway's (by serving service) and LiteLLM's."""
    if which == "input":
        return names.prompt_tokens, names.gateway_prompt_tokens, names.gateway_input_tokens
    return names.generation_tokens, names.gateway_completion_tokens, names.gateway_output_tokens


def token_increase(names: MetricNames, which: str, window: str, function: str = "increase") -> str:
    """Tokens processed in the window (`function`: increase, or rate for tokens per second): the
    model servers' own count for self-hosted services, else the aipolicy gateway's for what it
    sent to each service (an API-backed one's provider), else LiteLLM's. Per service the
    left-most that has series counts, so nothing counts twice."""
    own, served, litellm = _token_counters(names, which)
    through_gateway = f"sum by ({BY}) ({served_by(f'{function}({_served_selector(served)}[{window}])')})"
    return (
        f"sum by ({BY}) ({function}({own}[{window}]))"
        f" or {through_gateway}"
        f" or sum by ({BY}) ({function}({litellm}[{window}]))"
    )


def counter_growth(metric: str, window: str, lookback: str, per_series: Callable[[str], str] = str) -> str:
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
    return f"sum by ({BY}) ({per_series(f'(({now} - {then}) >= 0) or increase({metric}[{window}])')})"


def token_growth(names: MetricNames, which: str, window: str, lookback: str) -> str:
    """Tokens processed in the window, for accounting: exact across windows (counter_growth),
    from the same counters in the same order as :func:`token_increase`."""
    own, served, litellm = _token_counters(names, which)
    return " or ".join(
        (
            counter_growth(own, window, lookback),
            counter_growth(_served_selector(served), window, lookback, served_by),
            counter_growth(litellm, window, lookback),
        )
    )


def fallback_provider_spend(
    names: MetricNames, currency: str, window: str, lookback: str | None = None
) -> str:
    """Money the aipolicy gateway spent at providers that are fallback chain steps, per service
    whose clients they served, in `currency` (the gateway prices each request at the step's
    prices and labels it with their currency). With `lookback`, exact across windows for
    accounting (:func:`counter_growth`); else increase()."""
    selector = f'{names.gateway_spend}{{backend=~"{PROVIDER_PREFIX}.+", currency="{currency}"}}'
    if lookback is not None:
        return counter_growth(selector, window, lookback)
    return f"sum by ({BY}) (increase({selector}[{window}]))"


def ksm_resource(resource_name: str) -> str:
    """A resource name as kube-state-metrics labels it: every character outside [a-zA-Z0-9_]
    becomes `_` (Prometheus label-value sanitising), so amd.com/gpu is amd_com_gpu."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", resource_name)


def gpus_held(resource_name: str = "nvidia.com/gpu") -> str:
    """GPUs requested by running pods, per service (kube-state-metrics, as in a real cluster).

    ``resource_name`` is the services' serving.gpu.resourceName (nvidia.com/gpu, amd.com/gpu,
    gpu.intel.com/i915...): one query per resource in use, each service reading its own.
    """
    resource = ksm_resource(resource_name)
    return (
        f"sum by ({BY}) (label_replace("
        f'kube_pod_container_resource_requests{{resource="{resource}"}}'
        ' * on (namespace, pod) group_left() (kube_pod_status_phase{phase="Running"} == 1)'
        " * on (namespace, pod) group_left(label_aipolicy_dev_service)"
        ' kube_pod_labels{label_aipolicy_dev_service!=""},'
        ' "service", "$1", "label_aipolicy_dev_service", "(.+)"))'
    )


def gpu_hours(window: str, step_seconds: int = 5, resource_name: str = "nvidia.com/gpu") -> str:
    """GPU-hours held in the window: GPUs held, sampled every step, times the step's hours.

    A sum rather than an average, so a pod that ran half the window counts half. Subquery steps
    sit on multiples of the step, and Prometheus 2 ranges include their left end: a window of
    5s at a step-aligned time holds two steps, so back-to-back windows would count every
    boundary step twice (a budget evaluated every 5s doubled its GPU spend). One millisecond
    off the window makes it (t - window, t] on every Prometheus version.
    """
    open_left = max(round(parse_duration(window).total_seconds() * 1000) - 1, 1)
    held = gpus_held(resource_name)
    return f"sum_over_time(({held})[{open_left}ms:{step_seconds}s]) * {step_seconds / 3600:.9f}"


def arriving(counter: str, window: str) -> str:
    """Per second over the window, what arrived at the aipolicy gateway for each service: every
    request (or token) of its own clients, whichever backend served it or none (an overflow to
    an API provider, a fallback, a refusal), plus what other services' clients sent to its own
    pods (their fallback or overflow to it, which its replicas carry).

    A request counts once for a service, never twice: the one its clients sent to its own pods
    (service=S, backend=service/S) is among its clients' and is taken out of the served ones.
    """
    clients = f"sum by ({BY}) (rate({counter}[{window}]))"
    by_backend = f"sum by ({BY}, backend) (rate({_served_selector(counter)}[{window}]))"
    # each client service's own backend label, to take its own pods' share out of the served
    # ones (PromQL cannot compare two labels of a series; matching on a built one can)
    own = f'label_replace({clients}, "backend", "{SERVICE_PREFIX}$1", "service", "(.+)")'
    for_others = f"sum by ({BY}) ({served_by(f'{by_backend} unless on ({BY}, backend) {own}')})"
    # added up per service where either has a series: told apart by a label, `or` keeps both
    parts = (
        f'label_replace({q}, "part", "{part}", "", "")'
        for q, part in ((clients, "clients"), (for_others, "served"))
    )
    return f"sum by ({BY}) ({' or '.join(parts)})"


def slo_load(names: MetricNames, window: str) -> tuple[str, str, str, str]:
    """For scaling.metric.type SLO, per service: the demand (requests per second, prompt and
    generated tokens per second over the window) and requests waiting in the model servers.

    The demand is what arrived at the aipolicy gateway for the service (:func:`arriving`),
    overflowed and refused requests included: the model servers count only what their pods
    finished, so sized from them a service that overflows a burst would never see it. A service
    the gateway has no series of keeps its model servers' finished requests and tokens (`or`,
    per service: one source or the other, never both added).
    """

    def demand(through_gateway: str, finished: str) -> str:
        return f"{arriving(through_gateway, window)} or sum by ({BY}) (rate({finished}[{window}]))"

    return (
        demand(names.gateway_answers, names.requests_finished),
        demand(names.gateway_prompt_tokens, names.prompt_tokens),
        demand(names.gateway_completion_tokens, names.generation_tokens),
        f"sum by ({BY}) ({names.waiting})",
    )


def idle_gpu_hours(
    names: MetricNames, window: str, step_seconds: int = 15, resource_name: str = "nvidia.com/gpu"
) -> str:
    """GPU-hours held while nothing ran or waited in the service's model servers, over the window."""
    busy = f"(sum by ({BY}) ({names.running}) + sum by ({BY}) ({names.waiting})) > 0"
    idle = f"({gpus_held(resource_name)}) unless on ({BY}) ({busy})"
    return f"sum_over_time(({idle})[{window}:{step_seconds}s]) * {step_seconds / 3600:.9f}"


def requests_finished(names: MetricNames, window: str, function: str = "increase") -> str:
    """Requests finished in the window (`function`: increase, or rate for requests per second):
    the model servers', else the aipolicy gateway's (API-backed), else LiteLLM's."""
    return first_counter(
        function, window, names.requests_finished, names.gateway_answers, names.gateway_requests
    )


def requests_failed(names: MetricNames, window: str) -> str:
    """Requests that failed in the window, counted where requests_finished counts them."""
    return first_counter(
        "increase",
        window,
        names.requests_failed,
        'aipolicy_gateway_requests_total{code=~"5.."}',
        names.gateway_failures,
    )


def secret_problems(reason: str) -> str:
    """The Secrets the gateway of each namespace reports with `reason`, as (namespace, service)
    series whose `service` is the Secret's name (so the grouped reader keys them)."""
    return (
        f"max by ({BY}) (label_replace("
        f'aipolicy_gateway_secret_problem{{reason="{reason}"}} == 1, "service", "$1", "secret", "(.+)"))'
    )
