"""`aipolicy report`'s pure parts: the window, each row's numbers, and what is rendered."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from aipolicy.api.inferenceservice import Pricing
from aipolicy.policy.observations import Reading, Unavailable, Value
from aipolicy.report import render
from aipolicy.report.model import (
    BudgetFacts,
    Charts,
    Report,
    ServiceFacts,
    ServiceReadings,
    bucket_counts,
    budget_line,
    cost_per_1k_series,
    model_line,
)
from aipolicy.report.window import ReportWindow, WindowError, resolve_window

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GPU = ServiceFacts(
    "team-a", "llama-70b", "meta-llama/Llama-3.1-70B", "self-hosted", Pricing(gpu_hour="2.50"), "Normal"
)
API = ServiceFacts(
    "team-a",
    "gpt",
    "gpt-4o-mini",
    "api",
    Pricing(input_per_million_tokens="0.15", output_per_million_tokens="0.60"),
    "Normal",
)
NO_DATA = Unavailable("NoData", "no series")


def readings(**given: Reading) -> ServiceReadings:
    base: dict[str, Reading] = dict(
        requests=Value(2000),
        failed_requests=Value(20),
        input_tokens=Value(1_000_000),
        output_tokens=Value(500_000),
        gpu_hours=Value(4),
        idle_gpu_hours=Value(1),
        ttft_p50=Value(0.2),
        ttft_p95=Value(0.9),
        ttft_p99=Value(1.5),
        e2e_p95=Value(6.0),
        seconds_in_fallback=Value(600),
        seconds_degraded=Value(0),
    )
    return ServiceReadings(**(base | given))


# ---- the window ----


def test_since_counts_back_from_now() -> None:
    window = resolve_window(since="6h", start=None, end=None, now=NOW)
    assert (window.start, window.end) == (NOW - timedelta(hours=6), NOW)
    assert window.promql_range == "21600s"


def test_the_default_window_is_the_last_day() -> None:
    assert resolve_window(since=None, start=None, end=None, now=NOW).seconds == 86400


@pytest.mark.parametrize(
    ("since", "start", "end", "message"),
    [
        (None, None, NOW + timedelta(hours=1), "in the future"),
        (None, NOW + timedelta(hours=1), None, "not before its end"),
        ("1h", NOW - timedelta(hours=2), None, "not both"),
        ("yesterday", None, None, "is not a duration"),
        ("30s", None, None, "at least one minute"),
    ],
    ids=[
        "a window ending in the future is refused",
        "a window starting in the future is refused",
        "since and from together are refused",
        "a since that is no duration is refused",
        "a window under a minute is refused",
    ],
)
def test_bad_windows_are_refused_saying_what_to_change(
    since: str | None, start: datetime | None, end: datetime | None, message: str
) -> None:
    with pytest.raises(WindowError, match=message):
        resolve_window(since=since, start=start, end=end, now=NOW)


# ---- a model's row ----


def test_a_self_hosted_model_costs_its_gpu_hours_spread_over_its_requests() -> None:
    line = model_line(GPU, readings())
    assert line.cost is not None and line.cost.gpu == Decimal("10")
    assert line.cost_per_1k_requests == Decimal("5")  # 10 over 2,000 requests
    assert line.error_rate == pytest.approx(0.01)
    assert line.idle_gpu_hours == 1 and line.idle_cost == Decimal("2.5")


def test_an_api_model_costs_its_tokens_and_has_no_idle_gpus() -> None:
    line = model_line(API, readings(gpu_hours=Value(0), idle_gpu_hours=Value(0)))
    assert line.cost is not None and line.cost.total == Decimal("0.45")  # 0.15 + 0.30
    assert line.cost_per_1k_requests == Decimal("0.225")
    assert line.idle_gpu_hours is None and line.idle_cost is None


def test_no_requests_means_no_cost_per_request_not_zero_and_not_infinity() -> None:
    line = model_line(GPU, readings(requests=Value(0), failed_requests=Value(0)))
    assert line.cost_per_1k_requests is None and line.error_rate is None


def test_unmeasured_numbers_stay_unknown() -> None:
    line = model_line(GPU, readings(requests=NO_DATA, ttft_p95=NO_DATA, gpu_hours=NO_DATA))
    assert line.requests is None and line.ttft_p95 is None
    assert line.cost is None and "GPU-hours" in line.why_no_cost


def test_a_budget_groups_its_breakdown_by_source() -> None:
    facts = BudgetFacts(
        "team-a", "monthly", "USD", Decimal(100), Decimal(42), Decimal(90), "Ok",
        {"llama-70b": Decimal(30), "gpt": Decimal(10), "vector-db": Decimal(2)}, None,
    )  # fmt: skip
    line = budget_line(facts, {"llama-70b": "self-hosted", "gpt": "api"})
    assert line.by_source == {"GPU-hours": Decimal(30), "API tokens": Decimal(10), "vector-db": Decimal(2)}
    assert line.percent_used == pytest.approx(42)


def test_a_budget_never_evaluated_has_no_percent() -> None:
    facts = BudgetFacts("team-a", "monthly", "USD", Decimal(100), None, None, "Unknown", {}, None)
    assert budget_line(facts, {}).percent_used is None


# ---- the charts' series ----


def test_cost_per_1k_requests_over_time_counts_gpus_for_self_hosted_only() -> None:
    series = dict(
        gpus=[(0.0, 2.0), (15.0, 2.0)],
        input_rate=[(0.0, 100.0), (15.0, 100.0)],
        output_rate=[(0.0, 10.0), (15.0, 10.0)],
        request_rate=[(0.0, 1.0), (15.0, 0.0)],
    )
    # 2 GPUs * 2.50/h = 1/720 per second, at 1 request/s: 1.3889 per 1,000; tokens not counted
    assert cost_per_1k_series(GPU, **series) == [(0.0, pytest.approx(1000 * 5 / 3600))]
    api = replace(API, pricing=API.pricing)
    expected = (100 * 0.15 + 10 * 0.60) / 1e6 * 1000
    assert cost_per_1k_series(api, **series) == [(0.0, pytest.approx(expected))]


def test_histogram_buckets_become_counts_per_bucket() -> None:
    assert bucket_counts({0.5: 10, 0.1: 4, 1.0: 10}) == [(0.1, 4), (0.5, 6), (1.0, 0)]


# ---- rendering ----


def _report(**charts: object) -> Report:
    window = ReportWindow(NOW - timedelta(hours=1), NOW)
    budget = budget_line(
        BudgetFacts("team-a", "monthly", "USD", Decimal(100), Decimal("42.123456"), None, "Ok", {}, None), {}
    )
    lines = [model_line(GPU, readings()), model_line(API, readings(requests=NO_DATA, ttft_p95=NO_DATA))]
    return Report("namespace team-a", window, [budget], lines, Charts(**charts))  # type: ignore[arg-type]


def test_the_table_says_no_data_where_nothing_was_measured_and_money_in_cents() -> None:
    text = render.table(_report())
    assert "42.12" in text and "42.123456" not in text
    api_row = next(line for line in text.splitlines() if line.startswith("team-a/gpt"))
    assert "no data" in api_row
    gpu_row = next(line for line in text.splitlines() if line.startswith("team-a/llama-70b"))
    assert "no data" not in gpu_row and "5.00" in gpu_row


def test_json_keeps_exact_amounts_and_null_for_no_data() -> None:
    data = json.loads(render.as_json(_report()))
    assert data["budgets"][0]["spent"] == "42.123456"
    assert data["models"][1]["requests"] is None


def test_the_html_page_draws_every_series_it_has_and_says_no_data_for_the_rest() -> None:
    page = render.as_html(
        _report(
            spend={
                "team-a/monthly": {"spent": [(0.0, 1.0), (60.0, 2.0)], "limit": [(0.0, 100.0), (60.0, 100.0)]}
            },
            cost_per_1k_requests={},
            ttft_histogram={"team-a/llama-70b": [(0.1, 3.0), (0.5, 9.0)]},
        )
    )
    assert page.count('class="series"') == 2 and page.count('class="bar"') == 2
    assert "Cost per 1,000 requests over time" in page and "no data" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")
