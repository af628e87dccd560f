"""first_counter: the one spelling of "this counter, else that one", per service.

The expected strings are the queries as written out by hand before first_counter existed: the
operator and the report must keep asking Prometheus exactly that.
"""

from __future__ import annotations

from aipolicy.observe.presets import PRESETS, first_counter, requests_failed, requests_finished
from aipolicy.report import queries

BY = "sum by (namespace, service)"


def test_each_service_reads_the_left_most_counter_it_has() -> None:
    assert first_counter("rate", "5m", "own_total", "gateway_total") == (
        f"{BY} (rate(own_total[5m])) or {BY} (rate(gateway_total[5m]))"
    )


def test_the_operator_reads_the_aipolicy_gateway_between_the_model_server_and_litellm() -> None:
    names = PRESETS["vllm"]
    assert requests_finished(names, "1h") == (
        f"{BY} (increase(vllm:request_success_total[1h]))"
        f" or {BY} (increase(aipolicy_gateway_requests_total[1h]))"
        f" or {BY} (increase(litellm_proxy_total_requests_metric_total[1h]))"
    )
    assert requests_failed(names, "1h") == (
        f'{BY} (increase(vllm:request_success_total{{finished_reason=~"error|abort"}}[1h]))'
        f' or {BY} (increase(aipolicy_gateway_requests_total{{code=~"5.."}}[1h]))'
        f" or {BY} (increase(litellm_proxy_failed_requests_metric_total[1h]))"
    )


def test_the_report_charts_requests_per_second_from_the_operators_counters() -> None:
    names = PRESETS["vllm"]
    assert queries.request_rate(names) == (
        f"{BY} (rate(vllm:request_success_total[2m]))"
        f" or {BY} (rate(aipolicy_gateway_requests_total[2m]))"
        f" or {BY} (rate(litellm_proxy_total_requests_metric_total[2m]))"
    )
