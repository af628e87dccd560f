"""The PromQL a report asks, evaluated at the window's end over the whole window.

One query per metric family for every service at once, grouped ``by (namespace, service)`` like
the operator's; the same presets, so the report and the budget read the same series.
"""

from __future__ import annotations

from aipolicy.observe import presets
from aipolicy.observe.presets import BY, MetricNames

_STEP = "15s"


def requests(names: MetricNames, window: str) -> str:
    return presets.first_counter("increase", window, names.requests_finished, names.gateway_requests)


def failed_requests(names: MetricNames, window: str) -> str:
    return presets.first_counter("increase", window, names.requests_failed, names.gateway_failures)


def latency_quantile(histogram: str | None, quantile: float, window: str) -> str | None:
    """None when the model server has no such histogram (TGI has no TTFT): no data, not 0."""
    if histogram is None:
        return None
    return f"histogram_quantile({quantile}, sum by ({BY}, le) (increase({histogram}_bucket[{window}])))"


def idle_gpu_hours(names: MetricNames, window: str) -> str:
    """GPU-hours held while nothing ran or waited, sampled every 15 s over the window."""
    return presets.idle_gpu_hours(names, window, 15)


def seconds_in_mode(mode: str, window: str) -> str:
    """Seconds the operator reported the service in a mode (its aipolicy_service_mode gauge)."""
    return (
        f'sum by ({BY}) (sum_over_time((aipolicy_service_mode{{mode="{mode}"}} == 1)[{window}:{_STEP}])) * 15'
    )


def ttft_buckets(names: MetricNames, window: str) -> str | None:
    if names.ttft is None:
        return None
    return f"sum by ({BY}, le) (increase({names.ttft}_bucket[{window}]))"


# Range queries for the charts (evaluated at each step of the window).
def gpus_now() -> str:
    return presets.gpus_held()


def request_rate(names: MetricNames) -> str:
    return (
        f"sum by ({BY}) (rate({names.requests_finished}[2m]))"
        f" or sum by ({BY}) (rate({names.gateway_requests}[2m]))"
    )


def token_rate(names: MetricNames, which: str) -> str:
    own = names.prompt_tokens if which == "input" else names.generation_tokens
    gateway = names.gateway_input_tokens if which == "input" else names.gateway_output_tokens
    return f"sum by ({BY}) (rate({own}[2m])) or sum by ({BY}) (rate({gateway}[2m]))"
