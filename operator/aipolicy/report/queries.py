"""The PromQL a report asks, evaluated at the window's end over the whole window.

One query per metric family for every service at once, grouped ``by (namespace, service)`` like
the operator's; the same presets, so the report and the budget read the same series.
"""

from __future__ import annotations

from aipolicy.observe import presets
from aipolicy.observe.presets import BY, MetricNames

_STEP = "15s"


def idle_gpu_hours(names: MetricNames, window: str) -> str:
    """GPU-hours held while nothing ran or waited, sampled every 15 s over the window."""
    return presets.idle_gpu_hours(names, window, 15)


def seconds_in_mode(mode: str, window: str) -> str:
    """Seconds the operator reported the service in a mode (its aipolicy_service_mode gauge)."""
    return (
        f'sum by ({BY}) (sum_over_time((aipolicy_service_mode{{mode="{mode}"}} == 1)[{window}:{_STEP}])) * 15'
    )


def ttft_buckets(names: MetricNames, window: str) -> str:
    """TTFT buckets per service: the model servers' own, else the aipolicy gateway's. Their
    bucket bounds differ, so `or` alone (which matches on `le` too) would mix both into one
    histogram: the gateway's count only for services with none of their own."""
    *own, gateway = presets.latency_buckets(names, "ttft", window)
    if not own:
        return gateway
    return f"{own[0]} or ({gateway} unless on ({BY}) {own[0]})"


# Range queries for the charts (evaluated at each step of the window).
def gpus_now() -> str:
    return presets.gpus_held()


def request_rate(names: MetricNames) -> str:
    return presets.requests_finished(names, "2m", "rate")


def token_rate(names: MetricNames, which: str) -> str:
    return presets.token_increase(names, which, "2m", "rate")
