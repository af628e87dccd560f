"""Metrics as vLLM and a LiteLLM-style gateway publish them, in Prometheus text format.

Names, help texts and bucket boundaries follow vLLM's V1 ``PrometheusStatLogger``
(``vllm/v1/metrics/loggers.py``) and LiteLLM's ``PrometheusLogger``
(``litellm/integrations/prometheus.py``, ``litellm/types/integrations/prometheus.py``).

Per pod (self-hosted), every series carries ``model_name`` and ``engine="0"`` as vLLM does,
plus ``namespace``, ``pod`` and ``service`` (the InferenceService name), which in a real
cluster Prometheus would add from service discovery:

* ``vllm:num_requests_running``, ``vllm:num_requests_waiting``, ``vllm:kv_cache_usage_perc``
  (gauges; KV usage is a fraction, 1 = full)
* ``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total`` (counters)
* ``vllm:request_success_total{finished_reason=...}`` (counter). vLLM has no failure
  counter: it counts every finished request here, labelled with its FinishReason
  (``stop``, ``length``, ``abort``, ``error``, ``repetition``); failures are
  ``finished_reason="error"`` (internal error, HTTP 500) and ``"abort"``.
* ``vllm:time_to_first_token_seconds``, ``vllm:e2e_request_latency_seconds``,
  ``vllm:request_queue_time_seconds`` (histograms, vLLM's buckets)

Per API-backed service (gateway), labelled ``namespace``, ``service``, ``model``:

* ``litellm_proxy_total_requests_metric_total`` (all requests, failed ones included)
* ``litellm_proxy_failed_requests_metric_total``
* ``litellm_input_tokens_metric_total``, ``litellm_output_tokens_metric_total`` (successes)
* ``litellm_request_total_latency_metric`` (histogram of successful requests, LiteLLM's
  ``LATENCY_BUCKETS``)

LiteLLM's own label sets (api key, team, user, ...) are left out: the simulator has no keys.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from aipolicy.sim.model import FINISH_REASONS, ServiceId

__all__ = [
    "CONTENT_TYPE",
    "E2E_LATENCY_BUCKETS",
    "LITELLM_LATENCY_BUCKETS",
    "TTFT_BUCKETS",
    "ApiMetrics",
    "Histogram",
    "HistogramSnapshot",
    "PodMetrics",
    "render_api_metrics",
    "render_pod_metrics",
]

# The classic text format (what vLLM serves); Prometheus 2.x parses it whatever version.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# vllm:time_to_first_token_seconds buckets (vLLM V1 loggers.py).
TTFT_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
# request_latency_buckets in vLLM V1: e2e, queue, inference, prefill and decode times.
E2E_LATENCY_BUCKETS: tuple[float, ...] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
    40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
# LiteLLM LATENCY_BUCKETS (its +Inf is implicit here).
LITELLM_LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.00625, 0.0125, 0.025, 0.05, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0,
    4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 15.0, 20.0, 25.0,
    30.0, 60.0, 120.0, 180.0, 240.0, 300.0,
)  # fmt: skip


def _le(bound: float) -> str:
    # Bucket bounds as Prometheus clients print them ("0.001", "1.0", "+Inf").
    return "+Inf" if math.isinf(bound) else repr(float(bound))


@dataclass(frozen=True)
class HistogramSnapshot:
    """Upper bounds (without +Inf), per-bucket (not cumulative) counts incl. +Inf, sum."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, cumulative count)`` pairs as Prometheus exposes them, ending with +Inf."""
        out: list[tuple[str, float]] = []
        acc = 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            acc += n
            out.append((_le(bound), float(acc)))
        return out


class Histogram:
    """A Prometheus-style histogram accumulator with fixed bucket upper bounds."""

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)) or not all(math.isfinite(b) for b in bounds):
            raise ValueError("bucket bounds must be finite and strictly increasing")
        self.bounds = tuple(bounds)
        self._counts = [0] * (len(self.bounds) + 1)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        # Prometheus buckets are "less than or equal": bisect_left puts value == bound in it.
        self._counts[bisect.bisect_left(self.bounds, value)] += 1
        self._sum += value

    def snapshot(self) -> HistogramSnapshot:
        return HistogramSnapshot(self.bounds, tuple(self._counts), self._sum)


@dataclass(frozen=True)
class PodMetrics:
    """What one vLLM pod publishes at one instant."""

    namespace: str
    pod: str
    service: str
    model_name: str
    running: int
    waiting: int
    kv_cache_usage: float
    prompt_tokens: float
    generation_tokens: float
    finished: Mapping[str, int]
    ttft: HistogramSnapshot
    e2e_latency: HistogramSnapshot
    queue_time: HistogramSnapshot


@dataclass(frozen=True)
class ApiMetrics:
    """What the gateway publishes for one API-backed service at one instant."""

    namespace: str
    service: str
    model: str
    requests: int
    failed: int
    input_tokens: int
    output_tokens: int
    latency: HistogramSnapshot


class _Families(Collector):
    """Hands prebuilt metric families to prometheus_client's exposition code."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _render(families: Iterable[Metric]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry).decode("utf-8")


def _pod_families(m: PodMetrics) -> Iterator[Metric]:
    names = ["engine", "model_name", "namespace", "pod", "service"]
    values = ["0", m.model_name, m.namespace, m.pod, m.service]

    def gauge(name: str, doc: str, value: float) -> Metric:
        g = GaugeMetricFamily(name, doc, labels=names)
        g.add_metric(values, value)
        return g

    def counter(name: str, doc: str, value: float) -> Metric:
        c = CounterMetricFamily(name, doc, labels=names)
        c.add_metric(values, value)
        return c

    def histogram(name: str, doc: str, h: HistogramSnapshot) -> Metric:
        f = HistogramMetricFamily(name, doc, labels=names)
        f.add_metric(values, buckets=h.cumulative(), sum_value=h.total)
        return f

    yield gauge("vllm:num_requests_running", "Number of requests in model execution batches.", m.running)
    yield gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", m.waiting)
    yield gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", m.kv_cache_usage)
    yield counter("vllm:prompt_tokens", "Number of prefill tokens processed.", m.prompt_tokens)
    yield counter("vllm:generation_tokens", "Number of generation tokens processed.", m.generation_tokens)
    success = CounterMetricFamily(
        "vllm:request_success",
        "Count of successfully processed requests.",
        labels=[*names, "finished_reason"],
    )
    for reason in FINISH_REASONS:  # vLLM creates every reason's series up front, at zero
        success.add_metric([*values, reason], float(m.finished.get(reason, 0)))
    yield success
    yield histogram(
        "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", m.ttft
    )
    yield histogram(
        "vllm:e2e_request_latency_seconds",
        "Histogram of e2e request latency in seconds.",
        m.e2e_latency,
    )
    yield histogram(
        "vllm:request_queue_time_seconds",
        "Histogram of time spent in WAITING phase for request.",
        m.queue_time,
    )


def render_pod_metrics(m: PodMetrics) -> str:
    """One pod's ``/metrics`` body."""
    return _render(_pod_families(m))


def _api_families(m: ApiMetrics) -> Iterator[Metric]:
    names = ["model", "namespace", "service"]
    values = [m.model, m.namespace, m.service]
    for name, doc, value in (
        (
            "litellm_proxy_total_requests_metric",
            "Total number of requests made to the proxy server - track number of client side requests",
            m.requests,
        ),
        (
            "litellm_proxy_failed_requests_metric",
            "Total number of failed responses from proxy - the client did not get a success "
            "response from litellm proxy",
            m.failed,
        ),
        (
            "litellm_input_tokens_metric",
            "Total number of input tokens from LLM requests",
            m.input_tokens,
        ),
        (
            "litellm_output_tokens_metric",
            "Total number of output tokens from LLM requests",
            m.output_tokens,
        ),
    ):
        c = CounterMetricFamily(name, doc, labels=names)
        c.add_metric(values, float(value))
        yield c
    h = HistogramMetricFamily(
        "litellm_request_total_latency_metric",
        "Total latency (seconds) for a request to LiteLLM",
        labels=names,
    )
    h.add_metric(values, buckets=m.latency.cumulative(), sum_value=m.latency.total)
    yield h


def render_api_metrics(m: ApiMetrics) -> str:
    """One API-backed service's gateway ``/metrics`` body."""
    return _render(_api_families(m))


def render_frontdoor_metrics(service: ServiceId, waiting: int) -> str:
    """The front door of a self-hosted service: requests waiting for any pod to take them."""
    family = GaugeMetricFamily(
        "aipolicy_frontdoor_requests_waiting",
        "Requests waiting at the service's front door for a pod (the demand signal at zero replicas).",
        labels=["namespace", "service"],
    )
    family.add_metric([service.namespace, service.name], waiting)
    return _render([family])
