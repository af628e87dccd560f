"""Every condition and event an AIBudget evaluation writes (policy/budget_outcome.py), when it
is due, and which interval it accounts: tables whose ids are sentences, with plain data."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from aipolicy.api.aibudget import AIBudget
from aipolicy.api.conditions import METRICS_AVAILABLE
from aipolicy.api.inferenceservice import Pricing
from aipolicy.policy.budget_outcome import (
    MAX_CATCH_UP,
    SETTLE,
    BudgetInputs,
    budget_due,
    budget_outcome,
    spend_window,
)
from aipolicy.policy.observations import Unavailable
from aipolicy.policy.outcome import ConditionUpdate, Event
from aipolicy.policy.spend import ServiceCost

NOW = datetime(2026, 3, 15, 12, 0, 7, tzinfo=UTC)
AT = datetime(2026, 3, 15, 12, 0, 0, tzinfo=UTC)  # the 30 s multiple before NOW - SETTLE
PRICED = Pricing(gpu_hour="1.00")
FREE = Pricing()
TIERS = [
    {"percent": 50, "action": "Notify"},
    {"percent": 80, "action": "Degrade"},
    {"percent": 100, "action": "Suspend"},
]


def budget(status: Mapping[str, Any] | None = None, **spec: Any) -> AIBudget:
    return AIBudget.model_validate(
        {
            "metadata": {"name": "team", "namespace": "team-a", "generation": 1},
            "spec": {"limit": "100", "thresholds": TIERS, **spec},
            "status": dict(status or {}),
        }
    )


def spent(amount: str, *, pricing: Mapping[str, Pricing] | None = None) -> BudgetInputs:
    """One service `chat` that cost `amount` this interval (from a period that starts empty)."""
    prices = dict(pricing if pricing is not None else {"chat": PRICED})
    costs: dict[str, ServiceCost | Unavailable] = {
        name: ServiceCost(name, Decimal(0), Decimal(0), Decimal(amount), Decimal(amount)) for name in prices
    }
    return BudgetInputs(prices, costs, {}, None, AT)


MISSING = BudgetInputs(
    {"chat": PRICED}, {"chat": Unavailable("QueryError", "Prometheus timed out")}, {}, None, AT
)


def conditions(b: AIBudget, inputs: BudgetInputs) -> dict[str, ConditionUpdate]:
    return {c.type: c for c in budget_outcome(b, inputs, generation=1, now=NOW).outcome.conditions}


def said(update: ConditionUpdate) -> tuple[str, str]:
    return update.status, update.reason


CONDITIONS = [
    pytest.param(
        budget(),
        spent("10"),
        "MetricsAvailable",
        ("True", "Available"),
        id="metrics are available when every spend query answers",
    ),
    pytest.param(
        budget(),
        MISSING,
        "MetricsAvailable",
        ("False", "QueryError"),
        id="metrics are unavailable with the missing reading's reason",
    ),
    pytest.param(
        budget(),
        spent("10"),
        "ThresholdReached",
        ("False", "WithinBudget"),
        id="no threshold is reached below the first one",
    ),
    pytest.param(
        budget(),
        spent("55"),
        "ThresholdReached",
        ("True", "NotifyThresholdReached"),
        id="a Notify threshold reached is in force",
    ),
    pytest.param(
        budget(),
        spent("85"),
        "ThresholdReached",
        ("True", "DegradeThresholdReached"),
        id="the highest threshold reached wins",
    ),
    pytest.param(
        budget(),
        MISSING,
        "ThresholdReached",
        ("False", "AwaitingMetrics"),
        id="nothing known of the period yet awaits metrics",
    ),
    pytest.param(
        budget(onMetricsUnavailable="FailClosed"),
        MISSING,
        "ThresholdReached",
        ("True", "MetricsUnavailableFailClosed"),
        id="failing closed without metrics puts Suspend in force",
    ),
    pytest.param(
        budget(),
        spent("85"),
        "Degraded",
        ("True", "BudgetDegraded"),
        id="a budget in the Degrade band is degraded",
    ),
    pytest.param(
        budget(),
        spent("55"),
        "Degraded",
        ("False", "NotDegraded"),
        id="a budget below the Degrade band is not degraded",
    ),
    pytest.param(
        budget(),
        spent("100"),
        "Exceeded",
        ("True", "BudgetExceeded"),
        id="a budget at its Suspend threshold is exceeded",
    ),
    pytest.param(
        budget(),
        spent("85"),
        "Exceeded",
        ("False", "WithinLimit"),
        id="a budget below its Suspend threshold is within its limit",
    ),
    pytest.param(
        budget(),
        spent("10"),
        "PricingComplete",
        ("True", "AllServicesPriced"),
        id="pricing is complete when every service has a price",
    ),
    pytest.param(
        budget(),
        spent("0", pricing={"chat": PRICED, "free": FREE}),
        "PricingComplete",
        ("False", "ZeroPrice"),
        id="a service without a price makes pricing incomplete",
    ),
    pytest.param(budget(), spent("10"), "Ready", ("True", "Evaluated"), id="a budget with services is ready"),
    pytest.param(
        budget(selector={"matchLabels": {"team": "b"}}),
        spent("0", pricing={}),
        "Ready",
        ("False", "NoServicesSelected"),
        id="a selector that matches nothing is not ready",
    ),
    pytest.param(
        budget(costSources=[{"name": "vector-db", "query": "sum(cost)"}]),
        BudgetInputs({}, {}, {"vector-db": Decimal(1)}, None, AT),
        "Ready",
        ("True", "Evaluated"),
        id="a budget of cost sources only is ready",
    ),
    pytest.param(
        budget(enforcement="DryRun"),
        spent("10"),
        "Ready",
        ("True", "DryRun"),
        id="a DryRun budget says so in Ready",
    ),
    pytest.param(
        budget(),
        MISSING,
        "Ready",
        ("False", "NoData"),
        id="a budget that knows nothing of its period yet is not ready",
    ),
]


@pytest.mark.parametrize(("b", "inputs", "type_", "expected"), CONDITIONS)
def test_budget_condition(b: AIBudget, inputs: BudgetInputs, type_: str, expected: tuple[str, str]) -> None:
    assert said(conditions(b, inputs)[type_]) == expected


def test_every_condition_is_set_once_in_a_fixed_order() -> None:
    assert list(conditions(budget(), spent("10"))) == [
        "MetricsAvailable",
        "ThresholdReached",
        "Degraded",
        "Exceeded",
        "PricingComplete",
        "Ready",
    ]


def test_metrics_available_is_decided_once_for_the_status_and_for_its_event() -> None:
    """updated_status stores MetricsAvailable (the next evaluation reads it back) and the outcome
    sets it (a change posts its event): one decision, the same words in both."""
    result = budget_outcome(budget(), MISSING, generation=1, now=NOW)
    stored = [c for c in result.outcome.status.conditions if c.type == METRICS_AVAILABLE]
    assert stored == []  # the outcome's status carries the previous conditions, set over by the shell
    update = conditions(budget(), MISSING)[METRICS_AVAILABLE]
    assert update.message == "service chat: Prometheus timed out"


EVENTS = [
    pytest.param(budget(), spent("10"), [], id="no event below every threshold"),
    pytest.param(
        budget(),
        spent("55"),
        [("Normal", "ThresholdNotify", "notify")],
        id="a Notify threshold reached posts a Normal event",
    ),
    pytest.param(
        budget(),
        spent("85"),
        [
            ("Normal", "ThresholdNotify", "notify"),
            ("Warning", "ThresholdDegrade", "will degrade its services"),
        ],
        id="each threshold reached at once posts its own event, lowest first",
    ),
    pytest.param(
        budget(enforcement="DryRun"),
        spent("100"),
        [
            ("Normal", "ThresholdNotify", "notify"),
            ("Warning", "ThresholdDegrade", "would degrade its services"),
            ("Warning", "ThresholdSuspend", "would suspend its services"),
        ],
        id="a DryRun budget says what it would do",
    ),
    pytest.param(
        budget(
            {
                "notifiedPercents": [50],
                "periodStart": "2026-03-01T00:00:00Z",
                "periodEnd": "2026-04-01T00:00:00Z",
                "lastEvaluated": "2026-03-15T11:59:30Z",
                "spent": "55",
            }
        ),
        spent("0"),
        [],
        id="a threshold already announced this period posts nothing",
    ),
    pytest.param(budget(), MISSING, [], id="missing metrics announce nothing"),
]


@pytest.mark.parametrize(("b", "inputs", "expected"), EVENTS)
def test_threshold_events(b: AIBudget, inputs: BudgetInputs, expected: list[tuple[str, str, str]]) -> None:
    events = budget_outcome(b, inputs, generation=1, now=NOW).outcome.events
    assert [(e.type, e.reason) for e in events] == [(t, r) for t, r, _ in expected]
    for event, (_, _, text) in zip(events, expected, strict=True):
        assert text in event.message


def test_a_threshold_event_says_how_much_was_spent() -> None:
    (event,) = budget_outcome(budget(), spent("55"), generation=1, now=NOW).outcome.events
    assert event == Event("Normal", "ThresholdNotify", "spent 55.00 USD of 100 (55%): reached 50%, notify")


EVALUATED_AT_AT = {"lastEvaluated": AT.isoformat(), "observedGeneration": 1}
DUE = [
    pytest.param({}, 1, True, id="a budget never evaluated is due"),
    pytest.param(EVALUATED_AT_AT, 1, False, id="a budget evaluated at the latest multiple is not due"),
    pytest.param(
        {**EVALUATED_AT_AT, "observedGeneration": 0}, 1, True, id="a changed spec makes it due at once"
    ),
    pytest.param(
        {"lastEvaluated": (AT - timedelta(seconds=30)).isoformat(), "observedGeneration": 1},
        1,
        True,
        id="a budget last evaluated at the multiple before is due",
    ),
]


@pytest.mark.parametrize(("status", "generation", "due"), DUE)
def test_budget_due(status: dict[str, Any], generation: int, due: bool) -> None:
    result = budget_due(budget(status), generation, NOW)
    assert (result.due, result.at) == (due, AT)


def test_an_instant_is_read_only_a_settle_after_it() -> None:
    assert budget_due(budget(), 1, AT + SETTLE / 2).at == AT - timedelta(seconds=30)


WINDOWS = [
    pytest.param(
        {},
        {
            "lastEvaluated": "2026-03-15T11:59:30Z",
            "periodStart": "2026-03-01T00:00:00Z",
            "periodEnd": "2026-04-01T00:00:00Z",
        },
        AT,
        "30000ms",
        id="a budget evaluated an interval ago accounts that interval",
    ),
    pytest.param(
        {},
        {},
        AT,
        f"{round(MAX_CATCH_UP.total_seconds() * 1000)}ms",
        id="a budget new this month catches up in steps of at most MAX_CATCH_UP",
    ),
    pytest.param(
        {"period": {"type": "Rolling", "window": "24h"}},
        {},
        AT,
        "86400000ms",
        id="a rolling window is counted whole, never in steps",
    ),
    pytest.param(
        {},
        {
            "lastEvaluated": AT.isoformat(),
            "periodStart": "2026-03-01T00:00:00Z",
            "periodEnd": "2026-04-01T00:00:00Z",
        },
        AT,
        None,
        id="an interval already accounted is empty",
    ),
]


@pytest.mark.parametrize(("spec", "status", "at", "window"), WINDOWS)
def test_spend_window(spec: dict[str, Any], status: dict[str, Any], at: datetime, window: str | None) -> None:
    b = budget(status, **spec)
    assert spend_window(b.spec, b.status, at).window == window
