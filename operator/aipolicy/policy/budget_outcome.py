"""An AIBudget evaluation as what to write: the status, its conditions and its events.

The controller gathers the inputs (the selected services' prices and the costs Prometheus
gives for :func:`~aipolicy.policy.budget.query_interval`'s interval), calls
:func:`budget_outcome`, and applies the result. The pipeline:

1. :func:`~aipolicy.policy.budget.evaluate_budget`: spend, state, action in force, forecast.
2. :func:`~aipolicy.policy.budget.updated_status` and
   :func:`~aipolicy.policy.notify.plan_alerts`: the status to write, with the alerts to send.
3. :func:`threshold_events`: one event per threshold reached for the first time this period.
4. :func:`budget_conditions`: MetricsAvailable, ThresholdReached, Degraded, Exceeded,
   PricingComplete and Ready, each decided by one function (a change posts its event).

Before gathering, the controller asks :func:`budget_due` whether to evaluate (and about which
instant) and :func:`spend_window` which interval of the counters to query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from aipolicy.api.aibudget import AIBudget, AIBudgetSpec, AIBudgetStatus
from aipolicy.api.common import parse_duration
from aipolicy.api.conditions import (
    BUDGET_DEGRADED,
    BUDGET_EXCEEDED,
    DEGRADED,
    EXCEEDED,
    NOT_DEGRADED,
    THRESHOLD_REACHED,
    WITHIN_LIMIT,
    threshold_event_reason,
)
from aipolicy.api.inferenceservice import Pricing
from aipolicy.policy.budget import (
    BudgetEvaluation,
    evaluate_budget,
    metrics_condition,
    pricing_condition,
    query_interval,
    ready_condition,
    updated_status,
)
from aipolicy.policy.due import Due, when_due
from aipolicy.policy.notify import plan_alerts
from aipolicy.policy.observations import Unavailable
from aipolicy.policy.outcome import ConditionUpdate, Event, Outcome
from aipolicy.policy.spend import ServiceCost, display_money

__all__ = [
    "MAX_CATCH_UP",
    "SETTLE",
    "BudgetInputs",
    "BudgetOutcome",
    "SpendWindow",
    "budget_conditions",
    "budget_due",
    "budget_outcome",
    "spend_window",
    "state_conditions",
    "threshold_events",
]

# A scrape stamped just before an evaluation's instant may still be on its way into the TSDB;
# read an instant only this long after it, so that the next window does not start past a sample
# this one never saw.
SETTLE = timedelta(seconds=1)
# The most one evaluation accounts for. A budget created late in the month, or back from a long
# Prometheus outage, catches up in steps of this, one per tick: in one step, the GPU subquery
# over four weeks took 10 s, past the query timeout, and was retried every tick, never counted.
MAX_CATCH_UP = timedelta(hours=6)


def budget_due(budget: AIBudget, generation: int, now: datetime) -> Due:
    """Due at each multiple of evaluationInterval (read SETTLE after it) that status.lastEvaluated
    has not reached, and at once after a change of spec; `at` is the instant to account up to.

    lastEvaluated stays behind while metrics are missing, so such a budget is due every tick
    until it catches up.
    """
    interval = parse_duration(budget.spec.evaluation_interval)
    due = when_due(
        interval=interval, aligned_to_clock=True, last=budget.status.last_evaluated, now=now - SETTLE
    )
    if budget.status.observed_generation != generation:
        return replace(due, due=True)
    return due


@dataclass(frozen=True)
class SpendWindow:
    to: datetime
    """The end of the interval accounted."""
    window: str | None
    """Its length as a PromQL duration, in whole milliseconds; None when it is empty."""


def spend_window(spec: AIBudgetSpec, previous: AIBudgetStatus, at: datetime) -> SpendWindow:
    """The interval of the counters this evaluation accounts: from
    :func:`~aipolicy.policy.budget.query_interval`, at most MAX_CATCH_UP of a calendar period
    (a rolling window is re-counted whole, never in steps)."""
    frm, to = query_interval(spec, previous, at)
    if spec.period.type != "Rolling":
        to = min(to, frm + MAX_CATCH_UP)
    # whole milliseconds, not seconds: truncating a fractional interval (7.5s) to 7s would leave
    # a slice of every interval uncounted
    milliseconds = round((to - frm).total_seconds() * 1000)
    return SpendWindow(to, f"{milliseconds}ms" if milliseconds > 0 else None)


@dataclass(frozen=True)
class BudgetInputs:
    """What the controller gathered for one evaluation."""

    pricing: Mapping[str, Pricing]
    """The selected services' billed prices, by name (in the order they were found)."""
    costs: Mapping[str, ServiceCost | Unavailable]
    """Each selected service's cost over the interval queried, by name."""
    extra: Mapping[str, Decimal | Unavailable]
    """Each cost source's cost over the interval queried, by name."""
    burn_rate_per_hour: Decimal | None
    """Spend per hour over spec.forecast.window; None when any part of it is unknown."""
    to: datetime
    """The end of the interval queried: spend is accounted up to here."""


@dataclass(frozen=True)
class BudgetOutcome:
    evaluation: BudgetEvaluation
    """For the controller's metrics (spend, utilisation, forecast, thresholds announced)."""
    outcome: Outcome[AIBudgetStatus]


def budget_outcome(
    budget: AIBudget, inputs: BudgetInputs, *, generation: int, now: datetime
) -> BudgetOutcome:
    """One evaluation of the budget: the module docstring's pipeline."""
    spec, previous = budget.spec, budget.status
    # as of `to`: while catching up, the checkpoint moves to the end of the step just counted
    evaluation = evaluate_budget(
        spec, previous, inputs.costs, inputs.extra, inputs.to, inputs.burn_rate_per_hour
    )
    status = updated_status(previous, evaluation, spec, generation)
    status.alerts = plan_alerts(previous.alerts, spec, evaluation, now)
    # conditions are set over the previous ones, so that a change is seen (and posts an event)
    status.conditions = list(previous.conditions)
    conditions = budget_conditions(spec, budget.metadata.namespace, inputs.pricing, evaluation)
    outcome = Outcome(status, conditions, threshold_events(spec, evaluation))
    return BudgetOutcome(evaluation, outcome)


def threshold_events(spec: AIBudgetSpec, evaluation: BudgetEvaluation) -> tuple[Event, ...]:
    """`Threshold<Action>` for each threshold reached for the first time this period: Normal for
    Notify, Warning for Degrade and Suspend (which DryRun says it would do)."""
    verb = "would" if spec.enforcement == "DryRun" else "will"
    spent = display_money(evaluation.spent, spec.currency)
    events = []
    for threshold in evaluation.new_notifications:
        action_text = {
            "Notify": "notify",
            "Degrade": f"{verb} degrade its services",
            "Suspend": f"{verb} suspend its services",
        }[threshold.action]
        events.append(
            Event(
                "Normal" if threshold.action == "Notify" else "Warning",
                threshold_event_reason(threshold.action),
                f"spent {spent} {spec.currency} of {spec.limit} ({evaluation.percent_used}%): "
                f"reached {threshold.percent}%, {action_text}",
            )
        )
    return tuple(events)


def state_conditions(evaluation: BudgetEvaluation) -> tuple[ConditionUpdate, ...]:
    """ThresholdReached (an action in force), Degraded and Exceeded (the state), all with the
    evaluation's summary as message."""
    degraded = evaluation.state == "Degraded"
    exceeded = evaluation.state == "Exceeded"
    return (
        ConditionUpdate(
            THRESHOLD_REACHED,
            "True" if evaluation.active_action else "False",
            evaluation.reason,
            evaluation.message,
        ),
        ConditionUpdate(
            DEGRADED,
            "True" if degraded else "False",
            BUDGET_DEGRADED if degraded else NOT_DEGRADED,
            evaluation.message,
        ),
        ConditionUpdate(
            EXCEEDED,
            "True" if exceeded else "False",
            BUDGET_EXCEEDED if exceeded else WITHIN_LIMIT,
            evaluation.message,
        ),
    )


def budget_conditions(
    spec: AIBudgetSpec, namespace: str, pricing: Mapping[str, Pricing], evaluation: BudgetEvaluation
) -> tuple[ConditionUpdate, ...]:
    """Every condition of an evaluated budget, in the order they are set."""
    return (
        metrics_condition(evaluation),
        *state_conditions(evaluation),
        pricing_condition(pricing),
        ready_condition(spec, namespace, list(pricing), evaluation),
    )
