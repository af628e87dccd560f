"""The budget state machine: accumulation, periods, states, hysteresis, notifications, outages.

Every multi-step test goes through the status the way the controller does: it asks
:func:`query_interval` what to query, prices the counters' increase over that interval, evaluates,
writes :func:`updated_status`, and reads the status back from its JSON form (as from etcd). So
each step is also what a freshly restarted operator would decide from the stored status alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipolicy.api.aibudget import (
    Action,
    AIBudgetSpec,
    AIBudgetStatus,
    BudgetState,
    CostSource,
    Period,
    Spender,
    Threshold,
)
from aipolicy.api.common import LabelSelector, json_dict
from aipolicy.api.inferenceservice import Pricing
from aipolicy.policy.budget import (
    BudgetEvaluation,
    describe_selector,
    evaluate_budget,
    forecast_spend,
    pricing_condition,
    query_interval,
    ready_condition,
    updated_status,
)
from aipolicy.policy.observations import Unavailable, Value
from aipolicy.policy.periods import PeriodWindow
from aipolicy.policy.spend import (
    ServiceCost,
    ServiceUsage,
    cost_source_cost,
    format_money,
    service_cost,
)

D = Decimal
MICRO = D("0.000001")
H = timedelta(hours=1)
QUERY_ERROR = Unavailable("QueryError", "Prometheus timed out")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


MARCH = PeriodWindow(utc("2026-03-01T00:00"), utc("2026-04-01T00:00"))
MID_MARCH = utc("2026-03-15T12:00")


def th(percent: int, action: Action, on_forecast: bool = False) -> Threshold:
    return Threshold(percent=percent, action=action, on_forecast=on_forecast)


TIERS = [th(50, "Notify"), th(80, "Degrade"), th(100, "Suspend")]


def make_spec(
    limit: str = "100",
    thresholds: Sequence[Threshold] = TIERS,
    period: Period | None = None,
    hysteresis: int = 5,
    policy: str = "HoldLastKnown",
) -> AIBudgetSpec:
    return AIBudgetSpec.model_validate(
        {
            "limit": limit,
            "thresholds": list(thresholds),
            "period": period or Period(),
            "hysteresisPercent": hysteresis,
            "onMetricsUnavailable": policy,
        }
    )


def rolling(window: str = "24h") -> Period:
    return Period(type="Rolling", window=window)


def cost(name: str, amount: str | Decimal) -> ServiceCost:
    return ServiceCost(name, D(0), D(0), D(amount), D(amount))


def costs(**amounts: str | Decimal) -> dict[str, ServiceCost | Unavailable]:
    return {name: cost(name, amount) for name, amount in amounts.items()}


def step(
    spec: AIBudgetSpec,
    status: AIBudgetStatus,
    now: datetime,
    service_costs: Mapping[str, ServiceCost | Unavailable],
    extra: Mapping[str, Decimal | Unavailable] | None = None,
    burn: Decimal | None = None,
) -> tuple[BudgetEvaluation, AIBudgetStatus]:
    """One controller cycle: evaluate, write the status, read it back as stored."""
    evaluation = evaluate_budget(spec, status, service_costs, extra or {}, now, burn)
    written = updated_status(status, evaluation, spec, generation=1)
    return evaluation, AIBudgetStatus.model_validate(json_dict(written))


def spend_sequence(
    spec: AIBudgetSpec, amounts: Iterable[str | Decimal], start: datetime = MID_MARCH
) -> list[BudgetEvaluation]:
    """Evaluations a minute apart; for Rolling, each amount is the spend in the window."""
    status = AIBudgetStatus()
    evaluations = []
    for i, amount in enumerate(amounts):
        evaluation, status = step(spec, status, start + i * timedelta(minutes=1), costs(a=amount))
        evaluations.append(evaluation)
    return evaluations


def changes(evaluations: Sequence[BudgetEvaluation]) -> int:
    return sum(a.state != b.state for a, b in itertools.pairwise(evaluations))


# ------------------------------------------------------------------------------------------
# Accumulation: many small intervals add up to one computation over their union.
@dataclass
class Counters:
    """Counters of usage per service and of one cost source, as events at instants.

    The increase over (a, b] is what Prometheus' increase() reports once resets are corrected.
    GPU-hours and money are multiples of 1/64 so that float sums are exact and any difference
    comes from the code under test, not from the fixture.
    """

    events: list[tuple[datetime, str, int, int, float]] = field(default_factory=list)
    litellm: list[tuple[datetime, float]] = field(default_factory=list)

    def usage(self, service: str, start: datetime, end: datetime) -> ServiceUsage:
        inside = [e for e in self.events if e[1] == service and start < e[0] <= end]
        return ServiceUsage(
            service,
            input_tokens=Value(float(sum(e[2] for e in inside))),
            output_tokens=Value(float(sum(e[3] for e in inside))),
            gpu_hours=Value(sum(e[4] for e in inside)),
        )

    def money(self, start: datetime, end: datetime) -> Value:
        return Value(sum(amount for t, amount in self.litellm if start < t <= end))


PRICING = {
    "llama": Pricing(gpu_hour="2.21"),
    "gpt": Pricing(input_per_million_tokens="2.50", output_per_million_tokens="10"),
    "mixed": Pricing(gpu_hour="1.1", input_per_million_tokens="0.123457", output_per_million_tokens="0.3"),
}
LITELLM = CostSource(name="litellm", query="sum(litellm_spend_metric_total)")
PARIS_MONTH = Period(type="Monthly", time_zone="Europe/Paris")
# March 2026 in Paris: 28 February 23:00 UTC to 31 March 22:00 UTC.
PARIS_MARCH = PeriodWindow(utc("2026-02-28T23:00"), utc("2026-03-31T22:00"))
SECONDS = int(PARIS_MARCH.length.total_seconds())


def controller_cycle(
    spec: AIBudgetSpec, status: AIBudgetStatus, counters: Counters, now: datetime
) -> tuple[BudgetEvaluation, AIBudgetStatus]:
    start, end = query_interval(spec, status, now)
    priced = {name: service_cost(p, counters.usage(name, start, end)) for name, p in PRICING.items()}
    extra = {"litellm": cost_source_cost(LITELLM, counters.money(start, end))}
    return step(spec, status, now, priced, extra)


offsets = st.integers(min_value=1, max_value=SECONDS - 1)
events = st.lists(
    st.tuples(
        offsets,
        st.sampled_from(sorted(PRICING)),
        st.integers(0, 5_000_000),
        st.integers(0, 2_000_000),
        st.integers(0, 64 * 8).map(lambda n: n / 64),
    ),
    max_size=60,
)
money_events = st.lists(st.tuples(offsets, st.integers(0, 64 * 50).map(lambda n: n / 64)))


@settings(max_examples=60, deadline=None)
@given(
    usage_events=events,
    spend_events=money_events,
    splits=st.lists(offsets, min_size=1, max_size=40, unique=True),
    limit_factor=st.decimals(min_value=D("0.3"), max_value=D("3"), places=2),
)
def test_many_small_intervals_add_up_to_one_computation_of_the_whole(
    usage_events: list[tuple[int, str, int, int, float]],
    spend_events: list[tuple[int, float]],
    splits: list[int],
    limit_factor: Decimal,
) -> None:
    at = [PARIS_MARCH.start + timedelta(seconds=s) for s in sorted(splits)]
    counters = Counters(
        [
            (PARIS_MARCH.start + timedelta(seconds=s), name, inp, out, gpu)
            for s, name, inp, out, gpu in usage_events
        ],
        [(PARIS_MARCH.start + timedelta(seconds=s), amount) for s, amount in spend_events],
    )
    end = PARIS_MARCH.end - timedelta(seconds=1)
    whole, _ = controller_cycle(make_spec(period=PARIS_MONTH), AIBudgetStatus(), counters, end)
    limit = format_money(max(whole.spent * limit_factor, D(1)))
    spec = make_spec(limit=limit, period=PARIS_MONTH)

    status = AIBudgetStatus()
    announced: list[int] = []
    previous_time = PARIS_MARCH.start
    for now in [*at, end]:
        assert query_interval(spec, status, now) == (previous_time, now)  # only the new part
        evaluation, status = controller_cycle(spec, status, counters, now)
        assert evaluation.spent == sum(evaluation.breakdown.values())  # exact, not approximately
        announced += [t.percent for t in evaluation.new_notifications]
        previous_time = now

    # Rounding is per part per interval: 3 parts per service and 1 per cost source, 0.5e-6 each.
    steps = len(at) + 1
    tolerance = steps * (3 * len(PRICING) + 1) * MICRO / 2
    assert abs(evaluation.spent - whole.spent) <= tolerance
    for name, amount in whole.breakdown.items():
        assert abs(evaluation.breakdown[name] - amount) <= steps * 3 * MICRO / 2
    # Each threshold announced at most once, and every threshold reached announced.
    assert len(announced) == len(set(announced))
    limit_d = D(limit)
    clear = all(abs(evaluation.spent * 100 - t.percent * limit_d) > tolerance * 100 for t in TIERS)
    if clear:  # not within rounding of a threshold: the decisions must agree too
        reached = {t.percent for t in TIERS if evaluation.spent * 100 >= t.percent * limit_d}
        assert set(announced) == reached
        single = evaluate_budget(spec, AIBudgetStatus(), {}, {}, end, None)
        assert single.state == "Ok"  # sanity: nothing spent without costs
        whole_again, _ = controller_cycle(spec, AIBudgetStatus(), counters, end)
        assert evaluation.state == whole_again.state
        assert evaluation.active_action == whole_again.active_action


def test_accumulation_adds_the_interval_to_the_previous_spend() -> None:
    spec = make_spec(limit="1000")
    _, status = step(spec, AIBudgetStatus(), utc("2026-03-02T00:00"), costs(a="10.5", b="1"))
    evaluation, status = step(spec, status, utc("2026-03-02T00:01"), costs(a="0.000001", c="2"))
    assert evaluation.spent == D("13.500001")
    assert evaluation.breakdown == {"a": D("10.500001"), "b": D("1"), "c": D("2")}
    assert status.spent == "13.500001"  # stored with all 6 places: it is the checkpoint
    assert status.last_evaluated == utc("2026-03-02T00:01")


def test_amounts_beyond_28_digits_add_exactly() -> None:
    # The default decimal context keeps 28 digits; a sum must not drop the last micro-dollar.
    big = "123456789012345678901234.123456"
    status = stored(spent=big, breakdown=[{"name": "a", "spent": big}])
    evaluation = evaluate_budget(make_spec(), status, costs(a="0.000001"), {}, MID_MARCH, None)
    assert evaluation.spent == D("123456789012345678901234.123457")
    assert evaluation.breakdown == {"a": D("123456789012345678901234.123457")}


def test_a_cost_source_and_services_add_to_one_spend() -> None:
    spec = make_spec(limit="1000")
    evaluation, _ = step(spec, AIBudgetStatus(), MID_MARCH, costs(a="10"), extra={"litellm": D("2.25")})
    assert evaluation.spent == D("12.25")
    assert evaluation.breakdown == {"a": D("10"), "litellm": D("2.25")}


def test_a_month_of_evaluations_queries_only_since_the_last_one() -> None:
    # Day 30 of the month, last evaluated 30 s ago: the query covers 30 s, not 30 days.
    spec = make_spec()
    _, status = step(spec, AIBudgetStatus(), utc("2026-03-30T11:59:30"), costs(a="1"))
    start, end = query_interval(spec, status, utc("2026-03-30T12:00"))
    assert end - start == timedelta(seconds=30)


# ------------------------------------------------------------------------------------------
# query_interval: the interval to query, and the spend it is added to, always agree.
def stored(**fields: object) -> AIBudgetStatus:
    base: dict[str, object] = {
        "state": "Ok",
        "spent": "10",
        "periodStart": "2026-03-01T00:00:00Z",
        "periodEnd": "2026-04-01T00:00:00Z",
        "lastEvaluated": "2026-03-15T11:00:00Z",
        "breakdown": [{"name": "a", "spent": "10"}],
    }
    return AIBudgetStatus.model_validate(base | fields)


@pytest.mark.parametrize(
    ("spec", "status", "expected_start", "expected_spent"),
    [
        pytest.param(make_spec(), stored(), "2026-03-15T11:00", "11", id="same period: from the checkpoint"),
        pytest.param(
            make_spec(), AIBudgetStatus(), "2026-03-01T00:00", "1", id="never evaluated: the whole period"
        ),
        pytest.param(
            make_spec(),
            stored(
                periodStart="2026-02-01T00:00:00Z",
                periodEnd="2026-03-01T00:00:00Z",
                lastEvaluated="2026-02-28T23:59:00Z",
            ),
            "2026-03-01T00:00",
            "1",
            id="new period: from its start, old spend dropped",
        ),
        pytest.param(
            make_spec(period=Period(time_zone="Europe/Paris")),
            stored(),
            "2026-02-28T23:00",
            "1",
            id="period spec changed (time zone): counted afresh",
        ),
        pytest.param(
            make_spec(), stored(spent="ten"), "2026-03-01T00:00", "1", id="unreadable spend: recounted"
        ),
        pytest.param(
            make_spec(),
            stored(breakdown=[{"name": "a", "spent": "-3"}]),
            "2026-03-01T00:00",
            "1",
            id="unreadable breakdown: recounted",
        ),
        pytest.param(
            make_spec(), stored(lastEvaluated=None), "2026-03-01T00:00", "1", id="no checkpoint: recounted"
        ),
        pytest.param(
            make_spec(period=rolling("24h")),
            stored(),
            "2026-03-14T12:00",
            "1",
            id="rolling: the whole window, every time",
        ),
    ],
)
def test_query_interval_and_carried_spend_agree(
    spec: AIBudgetSpec, status: AIBudgetStatus, expected_start: str, expected_spent: str
) -> None:
    assert query_interval(spec, status, MID_MARCH) == (utc(expected_start), MID_MARCH)
    evaluation = evaluate_budget(spec, status, costs(a="1"), {}, MID_MARCH, None)
    assert evaluation.spent == D(expected_spent)


def test_a_clock_that_went_back_does_not_move_the_checkpoint_back() -> None:
    status = stored(lastEvaluated="2026-03-15T12:05:00Z")
    assert query_interval(make_spec(), status, MID_MARCH) == (MID_MARCH, MID_MARCH)
    evaluation = evaluate_budget(make_spec(), status, {}, {}, MID_MARCH, None)
    assert evaluation.last_evaluated == utc("2026-03-15T12:05")
    assert evaluation.spent == D("10")


def test_evaluation_does_not_change_the_previous_status() -> None:
    status = stored(notifiedPercents=[50])
    before = status.model_dump()
    evaluate_budget(make_spec(), status, costs(a="90"), {}, MID_MARCH, D("3"))
    assert status.model_dump() == before


# ------------------------------------------------------------------------------------------
# States from one evaluation (limit 100, fresh status, March).
@pytest.mark.parametrize(
    ("thresholds", "spent", "state", "action", "reason", "percent"),
    [
        pytest.param(
            TIERS, "49.999999", "Ok", None, "WithinBudget", 49, id="just below the first threshold is Ok"
        ),
        pytest.param(
            TIERS,
            "50",
            "Warning",
            "Notify",
            "NotifyThresholdReached",
            50,
            id="Notify threshold reached: Warning",
        ),
        pytest.param(
            TIERS,
            "80.9",
            "Degraded",
            "Degrade",
            "DegradeThresholdReached",
            80,
            id="Degrade threshold reached: Degraded",
        ),
        pytest.param(
            TIERS,
            "100",
            "Exceeded",
            "Suspend",
            "SuspendThresholdReached",
            100,
            id="Suspend threshold reached: Exceeded",
        ),
        pytest.param(
            TIERS, "250", "Exceeded", "Suspend", "SuspendThresholdReached", 250, id="far over the limit"
        ),
        pytest.param(
            [th(80, "Notify"), th(100, "Notify")],
            "100",
            "Exceeded",
            "Notify",
            "LimitReached",
            100,
            id="no Suspend threshold: 100% is Exceeded, the action stays Notify",
        ),
        pytest.param(
            [th(80, "Notify"), th(100, "Notify")],
            "99.999999",
            "Warning",
            "Notify",
            "NotifyThresholdReached",
            99,
            id="no Suspend threshold: just under 100% is not Exceeded",
        ),
        pytest.param(
            [th(90, "Degrade"), th(120, "Suspend")],
            "110",
            "Degraded",
            "Degrade",
            "DegradeThresholdReached",
            110,
            id="a Suspend threshold above 100%: over the limit is not Exceeded yet",
        ),
        pytest.param(
            [], "150", "Exceeded", None, "LimitReached", 150, id="no thresholds: Exceeded at 100%, no action"
        ),
        pytest.param([], "0", "Ok", None, "WithinBudget", 0, id="no thresholds, nothing spent"),
        pytest.param(
            [th(100, "Suspend"), th(50, "Notify")],
            "60",
            "Warning",
            "Notify",
            "NotifyThresholdReached",
            60,
            id="thresholds out of order are sorted",
        ),
        pytest.param(
            [th(50, "Suspend"), th(80, "Notify")],
            "85",
            "Exceeded",
            "Suspend",
            "SuspendThresholdReached",
            85,
            id="the highest action wins, not the highest percent",
        ),
    ],
)
def test_state_from_spend(
    thresholds: list[Threshold],
    spent: str,
    state: BudgetState,
    action: Action | None,
    reason: str,
    percent: int,
) -> None:
    evaluation, _ = step(make_spec(thresholds=thresholds), AIBudgetStatus(), MID_MARCH, costs(a=spent))
    assert (evaluation.state, evaluation.active_action, evaluation.reason) == (state, action, reason)
    assert evaluation.percent_used == percent
    assert evaluation.metrics_available


def test_thresholds_compare_exactly_not_on_rounded_percent() -> None:
    # 1/3 of the limit is 33.33...%; a threshold at 34% must not fire on a rounded 34.
    spec = make_spec(limit="3", thresholds=[th(34, "Notify")])
    evaluation, _ = step(spec, AIBudgetStatus(), MID_MARCH, costs(a="1.019999"))
    assert evaluation.state == "Ok"
    evaluation, _ = step(spec, AIBudgetStatus(), MID_MARCH, costs(a="1.02"))
    assert evaluation.state == "Warning"


# ------------------------------------------------------------------------------------------
# Forecast.
@pytest.mark.parametrize(
    ("spent", "rate", "now", "expected"),
    [
        pytest.param("10", "2", "2026-03-31T19:00", "20", id="5 hours left at 2/h"),
        pytest.param("10", "2", "2026-04-01T00:00", "10", id="at the end nothing is added"),
        pytest.param("10", "2", "2026-04-02T00:00", "10", id="after the end nothing is added"),
        pytest.param("0", "1", "2026-03-01T00:00", "744", id="a whole 31-day month at 1/h"),
        pytest.param(
            "1", "0.333333", "2026-03-31T22:30", "1.5", id="1.5 h at 0.333333/h: 0.4999995, half to even"
        ),
        pytest.param("1", "0.333332", "2026-03-31T22:30", "1.499998", id="fractions of an hour"),
        pytest.param("10", "-5", "2026-03-31T19:00", "10", id="a negative rate adds nothing"),
    ],
)
def test_forecast_spend(spent: str, rate: str, now: str, expected: str) -> None:
    assert forecast_spend(D(spent), D(rate), utc(now), MARCH) == D(expected)


@pytest.mark.parametrize(
    ("period", "burn", "expected"),
    [
        pytest.param(None, D("1.5"), D("10") + D("1.5") * (16 * 24 + 12), id="calendar: to the period's end"),
        pytest.param(rolling("24h"), D("1.5"), D("36"), id="rolling: a whole window at the rate"),
        pytest.param(None, None, None, id="no burn rate: no forecast"),
        pytest.param(None, D("NaN"), None, id="a NaN burn rate: no forecast"),
        pytest.param(None, D("-1"), None, id="a negative burn rate: no forecast"),
    ],
)
def test_forecast_in_evaluation(
    period: Period | None, burn: Decimal | None, expected: Decimal | None
) -> None:
    spec = make_spec(period=period, limit="100000")
    evaluation = evaluate_budget(spec, AIBudgetStatus(), costs(a="10"), {}, MID_MARCH, burn)
    assert evaluation.forecast == expected
    if expected is not None:
        assert evaluation.burn_rate_per_hour == burn


def test_a_forecast_threshold_acts_before_the_money_is_spent() -> None:
    on_forecast = make_spec(thresholds=[th(50, "Notify"), th(100, "Suspend", on_forecast=True)])
    # 16.5 days left at 0.2/h: 40 + 79.2 = 119.2 forecast.
    evaluation, _ = step(on_forecast, AIBudgetStatus(), MID_MARCH, costs(a="40"), burn=D("0.2"))
    assert (evaluation.state, evaluation.active_action) == ("Exceeded", "Suspend")
    assert evaluation.reason == "ForecastSuspendThresholdReached"
    assert [t.percent for t in evaluation.new_notifications] == [100]
    # The same threshold without onForecast waits for the money.
    plain = make_spec(thresholds=[th(50, "Notify"), th(100, "Suspend")])
    evaluation, _ = step(plain, AIBudgetStatus(), MID_MARCH, costs(a="40"), burn=D("0.2"))
    assert (evaluation.state, evaluation.active_action) == ("Ok", None)


# ------------------------------------------------------------------------------------------
# Hysteresis.
@pytest.mark.parametrize(
    ("amounts", "states"),
    [
        pytest.param(
            ["100", "97", "94", "76", "74", "46", "44"],
            ["Exceeded", "Exceeded", "Degraded", "Degraded", "Warning", "Warning", "Ok"],
            id="falling spend leaves each state only below threshold minus 5%",
        ),
        pytest.param(
            ["79", "80", "76", "75", "74.999999", "79.999999", "80"],
            ["Warning", "Degraded", "Degraded", "Degraded", "Warning", "Warning", "Degraded"],
            id="the band is inclusive: exactly threshold minus 5% still holds",
        ),
        pytest.param(
            ["97", "99", "96"],
            ["Degraded", "Degraded", "Degraded"],
            id="a band alone never enters a state: it only keeps one",
        ),
        pytest.param(
            ["120", "30", "120"],
            ["Exceeded", "Ok", "Exceeded"],
            id="a big drop leaves at once, and re-enters at once",
        ),
    ],
)
def test_hysteresis_on_a_rolling_window(amounts: list[str], states: list[BudgetState]) -> None:
    evaluations = spend_sequence(make_spec(period=rolling()), amounts)
    assert [e.state for e in evaluations] == states


@pytest.mark.parametrize(
    ("hysteresis", "expected_changes"),
    [
        pytest.param(5, 0, id="hysteresis 5%: entered once, then it holds"),
        pytest.param(0, 199, id="hysteresis 0%: flaps on every evaluation"),
    ],
)
def test_spend_oscillating_around_a_threshold(hysteresis: int, expected_changes: int) -> None:
    spec = make_spec(period=rolling(), thresholds=[th(90, "Degrade")], hysteresis=hysteresis)
    evaluations = spend_sequence(spec, ["91", "86"] * 100)
    assert changes(evaluations) == expected_changes


def test_forecast_oscillating_around_a_threshold_changes_state_once() -> None:
    spec = make_spec(thresholds=[th(100, "Suspend", on_forecast=True)], limit="1000")
    status = AIBudgetStatus()
    evaluations = []
    # Forecasts alternate about 1010 and 960 (spend 10, 396 hours left at 2.525 or 2.4 per hour).
    for i in range(100):
        now = MID_MARCH + i * timedelta(seconds=30)
        burn = D("2.525") if i % 2 == 0 else D("2.4")
        evaluation, status = step(spec, status, now, costs(a="10" if i == 0 else "0"), burn=burn)
        evaluations.append(evaluation)
    assert evaluations[0].state == "Exceeded"
    assert changes(evaluations) == 0
    # Once the forecast falls out of the band it leaves.
    evaluation, _ = step(spec, status, MID_MARCH + H, costs(a="0"), burn=D("2"))
    assert evaluation.state == "Ok"


@settings(max_examples=200, deadline=None)
@given(
    # Below 100%: without a Suspend threshold 100% would be Exceeded, another rule.
    st.lists(st.integers(min_value=0, max_value=199).map(lambda n: D(n) / 2), max_size=40),
    st.integers(min_value=0, max_value=20),
)
def test_a_single_threshold_behaves_as_a_schmitt_trigger(amounts: list[Decimal], hysteresis: int) -> None:
    spec = make_spec(period=rolling(), thresholds=[th(60, "Degrade")], hysteresis=hysteresis)
    evaluations = spend_sequence(spec, amounts)
    in_force = False
    for amount, evaluation in zip(amounts, evaluations, strict=True):
        in_force = amount >= 60 or (in_force and amount >= 60 - hysteresis)
        assert evaluation.state == ("Degraded" if in_force else "Ok")
    # Bounded: every change but the first needs a swing across the whole band.
    swings = sum(1 for a, b in itertools.pairwise(amounts) if abs(a - b) >= hysteresis)
    assert changes(evaluations) <= swings + 1


def test_raising_the_limit_releases_a_suspend_only_below_the_band() -> None:
    spent = costs(a="100")
    status = AIBudgetStatus()
    evaluation, status = step(make_spec(period=rolling(), limit="100"), status, MID_MARCH, spent)
    assert evaluation.active_action == "Suspend"
    later = MID_MARCH + timedelta(minutes=1)
    evaluation, status = step(make_spec(period=rolling(), limit="103"), status, later, spent)
    assert evaluation.active_action == "Suspend"  # 97%: still within 5% of 100
    evaluation, status = step(make_spec(period=rolling(), limit="110"), status, later, spent)
    assert (evaluation.state, evaluation.active_action) == ("Degraded", "Degrade")  # 90.9%


def test_without_a_suspend_threshold_exceeded_has_hysteresis_too() -> None:
    spec = make_spec(period=rolling(), thresholds=[th(80, "Notify")])
    states = [e.state for e in spend_sequence(spec, ["100", "96", "94.9", "99"])]
    assert states == ["Exceeded", "Exceeded", "Warning", "Warning"]


# ------------------------------------------------------------------------------------------
# Notifications.
def test_each_threshold_is_announced_once_per_period_and_again_in_the_next() -> None:
    spec = make_spec()
    status = AIBudgetStatus()
    announced = []
    for now, amount in [
        ("2026-03-10T00:00", "30"),
        ("2026-03-11T00:00", "25"),  # 55%: 50 reached
        ("2026-03-12T00:00", "10"),  # 65%
        ("2026-03-13T00:00", "40"),  # 105%: 80 and 100 at once
        ("2026-03-14T00:00", "1"),
        ("2026-04-01T00:00", "60"),  # new period: 60%
        ("2026-04-02T00:00", "1"),
    ]:
        evaluation, status = step(spec, status, utc(now), costs(a=amount))
        announced.append([t.percent for t in evaluation.new_notifications])
    assert announced == [[], [50], [], [80, 100], [], [50], []]
    assert status.notified_percents == [50]


def test_announcements_survive_a_restart() -> None:
    spec = make_spec()
    _, status = step(spec, AIBudgetStatus(), MID_MARCH, costs(a="60"))
    # A new operator process knows only the stored status.
    restarted = AIBudgetStatus.model_validate_json(status.model_dump_json(by_alias=True))
    evaluation, _ = step(spec, restarted, MID_MARCH + H, costs(a="1"))
    assert evaluation.new_notifications == ()
    assert evaluation.notified_percents == (50,)


def test_a_rolling_window_announces_again_after_leaving_the_band() -> None:
    spec = make_spec(period=rolling(), thresholds=[th(80, "Notify")])
    evaluations = spend_sequence(spec, ["85", "76", "85", "74", "85"])
    assert [[t.percent for t in e.new_notifications] for e in evaluations] == [[80], [], [], [], [80]]


def test_a_threshold_crossed_during_an_outage_is_announced_after_it() -> None:
    spec = make_spec()
    _, status = step(spec, AIBudgetStatus(), utc("2026-03-10T00:00"), costs(a="40"))
    evaluation, status = step(spec, status, utc("2026-03-10T01:00"), {"a": QUERY_ERROR})
    assert evaluation.new_notifications == ()
    evaluation, _ = step(spec, status, utc("2026-03-10T02:00"), costs(a="20"))
    assert [t.percent for t in evaluation.new_notifications] == [50]


# ------------------------------------------------------------------------------------------
# New periods.
def test_a_new_period_starts_over() -> None:
    spec = make_spec()
    february = stored(
        state="Exceeded",
        spent="130",
        periodStart="2026-02-01T00:00:00Z",
        periodEnd="2026-03-01T00:00:00Z",
        lastEvaluated="2026-02-28T23:59:45Z",
        activeAction="Suspend",
        notifiedPercents=[50, 80, 100],
        breakdown=[{"name": "a", "spent": "130"}],
    )
    now = utc("2026-03-01T00:00:15")
    assert query_interval(spec, february, now) == (MARCH.start, now)
    evaluation, status = step(spec, february, now, costs(b="0.2"))
    assert (evaluation.state, evaluation.active_action, evaluation.spent) == ("Ok", None, D("0.2"))
    assert evaluation.breakdown == {"b": D("0.2")}
    assert evaluation.notified_percents == ()
    assert evaluation.period == MARCH
    assert (status.period_start, status.period_end) == (MARCH.start, MARCH.end)


def test_the_end_instant_already_belongs_to_the_next_period() -> None:
    spec = make_spec(period=Period(type="Daily"))
    _, status = step(spec, AIBudgetStatus(), utc("2026-03-10T23:59:59"), costs(a="60"))
    evaluation, _ = step(spec, status, utc("2026-03-11T00:00"), costs(a="1"))
    assert evaluation.spent == D("1")
    assert evaluation.new_notifications == ()


# ------------------------------------------------------------------------------------------
# Missing metrics.
@dataclass(frozen=True)
class Outage:
    policy: str
    state: BudgetState
    action: Action | None
    reason: str


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param(
            Outage("HoldLastKnown", "Degraded", "Degrade", "MetricsUnavailableHoldLastKnown"),
            id="HoldLastKnown keeps the last state and action",
        ),
        pytest.param(
            Outage("FailOpen", "Ok", None, "MetricsUnavailableFailOpen"),
            id="FailOpen reports Ok, no action",
        ),
        pytest.param(
            Outage("FailClosed", "Exceeded", "Suspend", "MetricsUnavailableFailClosed"),
            id="FailClosed reports Exceeded, Suspend in force",
        ),
    ],
)
def test_an_outage_holds_the_checkpoint_and_catches_up(outage: Outage) -> None:
    spec = make_spec(policy=outage.policy)
    t0 = utc("2026-03-10T00:00")
    _, status = step(spec, AIBudgetStatus(), t0, costs(a="85"))
    for hour in (1, 2, 3):
        evaluation, status = step(spec, status, t0 + hour * H, {"a": QUERY_ERROR})
        assert (evaluation.state, evaluation.active_action) == (outage.state, outage.action)
        assert evaluation.reason == outage.reason
        assert not evaluation.metrics_available
        assert evaluation.metrics_reason == "QueryError"
        assert "a: Prometheus timed out" in evaluation.metrics_message
        assert evaluation.spent == D("85")  # the last known spend
        assert evaluation.last_evaluated == t0  # not advanced: the gap is still to count
        assert evaluation.new_notifications == ()
        assert status.conditions[0].status == "False"
    # Back: the whole gap is queried from the counters, once.
    assert query_interval(spec, status, t0 + 4 * H) == (t0, t0 + 4 * H)
    evaluation, status = step(spec, status, t0 + 4 * H, costs(a="5"))
    assert (evaluation.state, evaluation.spent, evaluation.metrics_available) == (
        "Degraded",
        D("90"),
        True,
    )
    assert evaluation.last_evaluated == t0 + 4 * H


@pytest.mark.parametrize(
    ("policy", "state", "action", "reason"),
    [
        pytest.param("HoldLastKnown", "Unknown", None, "AwaitingMetrics", id="HoldLastKnown: Unknown"),
        pytest.param("FailOpen", "Ok", None, "MetricsUnavailableFailOpen", id="FailOpen: Ok"),
        pytest.param(
            "FailClosed", "Exceeded", "Suspend", "MetricsUnavailableFailClosed", id="FailClosed: Exceeded"
        ),
    ],
)
def test_no_data_yet(policy: str, state: BudgetState, action: Action | None, reason: str) -> None:
    evaluation, status = step(make_spec(policy=policy), AIBudgetStatus(), MID_MARCH, {"a": QUERY_ERROR})
    assert (evaluation.state, evaluation.active_action, evaluation.reason) == (state, action, reason)
    assert evaluation.spent == 0
    assert evaluation.last_evaluated == MARCH.start  # nothing accounted yet
    assert query_interval(make_spec(policy=policy), status, MID_MARCH + H) == (MARCH.start, MID_MARCH + H)


def test_an_outage_at_a_new_period_holds_nothing_of_the_old_one() -> None:
    spec = make_spec()
    february = stored(
        state="Exceeded",
        spent="130",
        periodStart="2026-02-01T00:00:00Z",
        periodEnd="2026-03-01T00:00:00Z",
        lastEvaluated="2026-02-28T23:59:45Z",
        activeAction="Suspend",
        notifiedPercents=[50, 80, 100],
    )
    evaluation, status = step(spec, february, utc("2026-03-01T00:00:15"), {"a": QUERY_ERROR})
    assert (evaluation.state, evaluation.active_action, evaluation.spent) == ("Unknown", None, D(0))
    assert evaluation.notified_percents == ()
    assert evaluation.period == MARCH
    evaluation, _ = step(spec, status, utc("2026-03-01T01:00"), costs(a="3"))
    assert (evaluation.state, evaluation.spent) == ("Ok", D("3"))


@pytest.mark.parametrize(
    ("service_costs", "extra", "reason"),
    [
        pytest.param(
            {"a": cost("a", "5"), "b": Unavailable("NoData")},
            {},
            "NoData",
            id="one service of two: nothing is added, not even the other's",
        ),
        pytest.param(costs(a="5"), {"litellm": QUERY_ERROR}, "QueryError", id="a cost source"),
        pytest.param(costs(a="5"), {"litellm": D("-1")}, "Negative", id="a negative amount"),
        pytest.param(
            {"a": Unavailable("NoData"), "b": Unavailable("QueryError")},
            {},
            "QueryError",
            id="the most actionable reason is named",
        ),
    ],
)
def test_any_missing_reading_commits_nothing(
    service_costs: Mapping[str, ServiceCost | Unavailable],
    extra: Mapping[str, Decimal | Unavailable],
    reason: str,
) -> None:
    evaluation = evaluate_budget(make_spec(), stored(), service_costs, extra, MID_MARCH, None)
    assert not evaluation.metrics_available
    assert evaluation.metrics_reason == reason
    assert evaluation.spent == D("10")
    assert evaluation.last_evaluated == utc("2026-03-15T11:00")


def test_after_fail_closed_the_suspend_is_not_held_by_hysteresis() -> None:
    # The Suspend came from FailClosed, not from spend: at 97% it must not be kept.
    spec = make_spec(policy="FailClosed")
    _, status = step(spec, AIBudgetStatus(), MID_MARCH, costs(a="90"))
    _, status = step(spec, status, MID_MARCH + H, {"a": QUERY_ERROR})
    assert status.active_action == "Suspend"
    evaluation, _ = step(spec, status, MID_MARCH + 2 * H, costs(a="7"))
    assert (evaluation.state, evaluation.active_action) == ("Degraded", "Degrade")


def test_hold_last_known_keeps_a_suspend_held_by_hysteresis_through_an_outage() -> None:
    spec = make_spec(period=rolling())
    evaluations = []
    status = AIBudgetStatus()
    readings: list[dict[str, ServiceCost | Unavailable]] = [
        costs(a="101"),
        {"a": QUERY_ERROR},
        costs(a="97"),
    ]
    for minute, service_costs in enumerate(readings):
        evaluation, status = step(spec, status, MID_MARCH + minute * timedelta(minutes=1), service_costs)
        evaluations.append(evaluation)
    assert [e.active_action for e in evaluations] == ["Suspend", "Suspend", "Suspend"]
    assert evaluations[1].spent == D("101")


# ------------------------------------------------------------------------------------------
# The status written back.
def test_updated_status_stores_the_checkpoint_and_the_top_spenders() -> None:
    spec = make_spec(limit="1000")
    evaluation, status = step(
        spec,
        AIBudgetStatus(),
        MID_MARCH,
        costs(a="1.000001", b="300", c="20", d="0"),
        extra={"litellm": D("20")},
        burn=D("1.25"),
    )
    assert status.spent == "341.000001"
    assert status.limit == "1000"
    assert status.percent_used == 34
    assert status.breakdown == [
        Spender(name="b", spent="300"),
        Spender(name="c", spent="20"),
        Spender(name="litellm", spent="20"),
        Spender(name="a", spent="1.000001"),
        Spender(name="d", spent="0"),
    ]
    assert [s.name for s in status.top_spenders] == ["b", "c", "litellm"]
    assert status.forecast == format_money(evaluation.forecast or D(0))
    assert status.burn_rate_per_hour == "1.25"
    assert status.active_action == ""
    assert status.state == "Ok"
    assert [(c.type, c.status, c.reason) for c in status.conditions] == [
        ("MetricsAvailable", "True", "Available")
    ]


def test_the_message_says_what_is_spent_and_what_is_in_force() -> None:
    evaluation, _ = step(make_spec(), AIBudgetStatus(), MID_MARCH, costs(a="85"), burn=D("0"))
    assert evaluation.message == (
        "Spent 85.00 of 100.00 USD (85%), forecast 85.00 USD; Degrade in force (80%)."
    )


# ---- bad input: a selector matching nothing, services priced at zero, unusable cost sources ----


def spec_with(**fields: object) -> AIBudgetSpec:
    """make_spec() with other spec fields, as the API would give them (camelCase)."""
    return AIBudgetSpec.model_validate(json_dict(make_spec()) | fields)


LITELLM_SOURCE = {"name": "litellm", "query": "sum(increase(litellm_spend_metric_total[$window]))"}
TEAM_TYPO = {"matchLabels": {"team": "typo"}}


@pytest.mark.parametrize(
    ("selector", "text"),
    [
        pytest.param({}, "", id="empty"),
        pytest.param({"matchLabels": {"team": "a", "app": "chat"}}, "app=chat,team=a", id="labels, sorted"),
        pytest.param(
            {
                "matchLabels": {"team": "a"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["gold", "silver"]},
                    {"key": "env", "operator": "NotIn", "values": ["dev"]},
                    {"key": "owner", "operator": "Exists"},
                    {"key": "legacy", "operator": "DoesNotExist"},
                ],
            },
            "team=a,tier in (gold,silver),env notin (dev),owner,!legacy",
            id="expressions as kubectl writes them",
        ),
    ],
)
def test_describe_selector(selector: dict[str, object], text: str) -> None:
    assert describe_selector(LabelSelector.model_validate(selector)) == text


def _evaluated(
    spec: AIBudgetSpec, extra: Mapping[str, Decimal | Unavailable] | None = None
) -> BudgetEvaluation:
    return evaluate_budget(spec, AIBudgetStatus(), {}, extra or {}, MID_MARCH, None)


@dataclass(frozen=True)
class Readiness:
    spec: AIBudgetSpec
    selected: tuple[str, ...]
    status: str
    reason: str
    words: tuple[str, ...] = ()
    extra: Mapping[str, Decimal | Unavailable] = field(default_factory=dict)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            Readiness(
                spec_with(selector=TEAM_TYPO),
                (),
                "False",
                "NoServicesSelected",
                ("spec.selector team=typo", "namespace team-a", "Fix spec.selector", "label the"),
            ),
            id="a selector matching nothing",
        ),
        pytest.param(
            Readiness(
                spec_with(selector=TEAM_TYPO, costSources=[LITELLM_SOURCE]),
                (),
                "False",
                "NoServicesSelected",
                ("team=typo", "its 1 cost source(s) still are"),
                {"litellm": D("2")},
            ),
            id="cost sources do not excuse a selector that names services and finds none",
        ),
        pytest.param(
            Readiness(
                spec_with(selector=TEAM_TYPO, enforcement="DryRun"),
                (),
                "False",
                "NoServicesSelected",
                ("team=typo",),
            ),
            id="a problem outranks DryRun",
        ),
        pytest.param(
            Readiness(
                spec_with(),
                (),
                "False",
                "NoServicesSelected",
                ("spec.selector is empty", "namespace team-a has none", "add spec.costSources"),
            ),
            id="an empty selector in an empty namespace and no cost source: nothing to count",
        ),
        pytest.param(
            Readiness(
                spec_with(costSources=[LITELLM_SOURCE]),
                (),
                "True",
                "Evaluated",
                ("no InferenceService", "1 cost source(s)"),
                {"litellm": D("2")},
            ),
            id="a budget of cost sources only",
        ),
        pytest.param(
            Readiness(
                spec_with(selector=TEAM_TYPO), ("a", "b"), "True", "Evaluated", ("2 service(s) selected",)
            ),
            id="services selected",
        ),
        pytest.param(
            Readiness(
                spec_with(enforcement="DryRun"), ("a",), "True", "DryRun", ("services are not touched",)
            ),
            id="DryRun",
        ),
        pytest.param(
            Readiness(
                spec_with(costSources=[LITELLM_SOURCE]),
                ("a",),
                "False",
                "NoData",
                ("metrics unavailable",),
                {"litellm": QUERY_ERROR},
            ),
            id="nothing known of this period yet",
        ),
    ],
)
def test_ready_condition(case: Readiness) -> None:
    evaluation = _evaluated(case.spec, case.extra)
    ready = ready_condition(case.spec, "team-a", case.selected, evaluation)
    assert (ready.type, ready.status, ready.reason) == ("Ready", case.status, case.reason)
    for words in case.words:
        assert words in ready.message


def test_a_selector_matching_nothing_counts_real_zero_and_the_cost_sources() -> None:
    """No services is not missing data: their spend is 0, the state is decided, nothing held."""
    nothing = _evaluated(spec_with(selector=TEAM_TYPO))
    assert (nothing.state, nothing.spent, nothing.metrics_available) == ("Ok", D(0), True)
    assert nothing.last_evaluated == MID_MARCH
    with_sources = _evaluated(
        spec_with(selector=TEAM_TYPO, costSources=[LITELLM_SOURCE]), {"litellm": D("60")}
    )
    assert (with_sources.state, with_sources.spent, with_sources.breakdown) == (
        "Warning",
        D("60"),
        {"litellm": D("60")},
    )


@pytest.mark.parametrize(
    ("pricing", "status", "reason", "message"),
    [
        pytest.param({}, "True", "AllServicesPriced", "No service selected.", id="no service"),
        pytest.param(
            {"gpt": Pricing(input_per_million_tokens="0.15", output_per_million_tokens="0.6")},
            "True",
            "AllServicesPriced",
            "All 1 selected service(s) have a price.",
            id="priced",
        ),
        pytest.param(
            {
                "gpt": Pricing(input_per_million_tokens="0.15", output_per_million_tokens="0"),
                "free": Pricing(input_per_million_tokens="0", output_per_million_tokens="0.000"),
            },
            "False",
            "ZeroPrice",
            "free has no price above zero in spec.pricing, so its usage counts as 0 in this budget. "
            "Set spec.pricing (gpuHour, inputPerMillionTokens, outputPerMillionTokens) on that "
            "InferenceService unless it is free.",
            id="one service priced at zero, named",
        ),
        pytest.param(
            {"llama": Pricing(gpu_hour="0"), "byo": Pricing()},
            "False",
            "ZeroPrice",
            "byo, llama have no price above zero in spec.pricing, so their usage counts as 0 in this "
            "budget. Set spec.pricing (gpuHour, inputPerMillionTokens, outputPerMillionTokens) on "
            "those InferenceServices unless they are free.",
            id="several, sorted",
        ),
    ],
)
def test_pricing_condition(pricing: dict[str, Pricing], status: str, reason: str, message: str) -> None:
    condition = pricing_condition(pricing)
    assert (condition.type, condition.status, condition.reason, condition.message) == (
        "PricingComplete",
        status,
        reason,
        message,
    )


def test_pricing_condition_names_ten_services_and_counts_the_rest() -> None:
    condition = pricing_condition({f"svc-{i:02d}": Pricing() for i in range(12)})
    assert condition.message.startswith("svc-00, svc-01, svc-02, svc-03, svc-04, svc-05, svc-06, ")
    assert "svc-09 and 2 more have no price" in condition.message
    assert "svc-10" not in condition.message


def test_missing_readings_name_the_service_or_the_cost_source() -> None:
    """A service and a cost source may share a name; the message says which one to fix."""
    spec = spec_with(costSources=[{**LITELLM_SOURCE, "name": "a"}])
    evaluation = evaluate_budget(
        spec,
        stored(),
        {"a": Unavailable("NoData", "no series")},
        {"a": Unavailable("Ambiguous", "the query returned 2 series; wrap it in sum(...)")},
        MID_MARCH,
        None,
    )
    assert evaluation.metrics_reason == "Ambiguous"
    assert evaluation.metrics_message == (
        "service a: no series; cost source a: the query returned 2 series; wrap it in sum(...)"
    )
    assert evaluation.spent == D("10")  # held, nothing added


@pytest.mark.parametrize(
    ("reading", "reason"),
    [
        pytest.param(Value(-1.0), "Negative", id="negative"),
        pytest.param(Value(float("nan")), "NotANumber", id="NaN"),
        pytest.param(
            Unavailable("Ambiguous", "the query returned 2 series"), "Ambiguous", id="several series"
        ),
        pytest.param(Unavailable("QueryError", "parse error"), "QueryError", id="an error"),
    ],
)
@pytest.mark.parametrize("policy", ["HoldLastKnown", "FailOpen", "FailClosed"])
def test_an_unusable_cost_source_never_moves_spend(
    reading: Value | Unavailable, reason: str, policy: str
) -> None:
    """Whatever the policy, spend and the checkpoint stay the last known; the policy only picks
    the state and action."""
    spec = spec_with(onMetricsUnavailable=policy, costSources=[LITELLM_SOURCE])
    extra = {"litellm": cost_source_cost(spec.cost_sources[0], reading)}
    evaluation, status = step(spec, stored(), MID_MARCH, costs(a="40"), extra)
    assert (evaluation.spent, evaluation.last_evaluated) == (D("10"), utc("2026-03-15T11:00"))
    assert evaluation.metrics_reason == reason
    assert evaluation.metrics_message.startswith("cost source litellm: ")
    assert status.conditions[0].type == "MetricsAvailable" and status.conditions[0].status == "False"
    assert status.spent == "10"
