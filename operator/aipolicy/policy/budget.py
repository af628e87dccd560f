"""The budget state machine: spend this period, the state it puts the budget in, and the forecast.

The controller asks :func:`query_interval` which interval to query, turns the increases into
money (:mod:`aipolicy.policy.spend`), calls :func:`evaluate_budget`, and writes the result with
:func:`updated_status`. Everything that must survive a restart lives in the status (spend so far,
the checkpoint ``lastEvaluated``, the notified thresholds, the action in force), so an operator
that restarts, or runs a second replica, decides exactly what the first one would have.

Rules (the module's tests hold each of them):

* Accumulation. In a calendar period, spend = the previous spend of the same period + this
  interval's costs; an evaluation therefore costs the same on the 30th as on the 1st. A new
  period, a changed period spec, or a status that cannot be read starts from 0 and counts the
  whole period so far from the counters. A Rolling period re-counts its window every time (spend
  leaves a rolling window, so it cannot be carried over).
* States. Thresholds reached put their action in force; the highest one wins (Suspend > Degrade
  > Notify) and gives the state: Notify → Warning, Degrade → Degraded, Suspend → Exceeded,
  nothing → Ok. A budget without any Suspend threshold is also Exceeded once spend reaches 100%
  of the limit (its action stays what the thresholds say: it only reports). Percent comparisons
  are exact (spend * 100 ≥ percent * limit), never on the rounded ``percentUsed``.
* Hysteresis. An action leaves force only when the value that put it there falls below
  (percent - hysteresisPercent)% of the limit; the same holds for Exceeded by the 100% rule. In a
  calendar period spend only grows, so this matters for Rolling periods, forecasts, and changes
  of the limit or thresholds.
* Forecasts. A threshold with ``onForecast`` is measured on max(spend, forecast). The forecast is
  spend + burn rate * time left in the period; for Rolling, burn rate * window (the spend of a
  window at the current rate). Without a burn rate there is no forecast.
* Notifications. A threshold is announced the first time it is reached in a period, once, even
  across restarts (``notifiedPercents``); a new period announces again. In a Rolling period a
  threshold is announced again after its value has fallen below its hysteresis band.
* Missing metrics. If any needed reading is unavailable nothing is added and ``lastEvaluated``
  stays, so the next good evaluation catches up from the counters (partial spend is never
  committed: the missing part would be lost for good). Then HoldLastKnown keeps the last spend,
  state and action (Unknown if this period has none yet), FailOpen reports Ok with no action,
  FailClosed reports Exceeded with Suspend in force.
* Bad input. A selector that matches no service, or a service with no price above zero, adds 0:
  what it truly costs this budget, never a guess. :func:`ready_condition` (NoServicesSelected)
  and :func:`pricing_condition` (PricingComplete=False, ZeroPrice) say so and what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, localcontext

from aipolicy.api.aibudget import (
    Action,
    AIBudgetSpec,
    AIBudgetStatus,
    BudgetState,
    Spender,
    Threshold,
)
from aipolicy.api.common import LabelSelector, find_condition, money, set_condition
from aipolicy.api.conditions import (
    ALL_SERVICES_PRICED,
    AWAITING_METRICS,
    BUDGET_EVALUATED,
    BUDGET_METRICS_AVAILABLE,
    DRY_RUN,
    LIMIT_REACHED,
    METRICS_AVAILABLE,
    NO_DATA,
    NO_SERVICES_SELECTED,
    PRICING_COMPLETE,
    READY,
    WITHIN_BUDGET,
    ZERO_PRICE,
    metrics_unavailable_reason,
    threshold_reached_reason,
)
from aipolicy.api.inferenceservice import Pricing
from aipolicy.policy.observations import Unavailable, UnavailableReason
from aipolicy.policy.outcome import ConditionUpdate
from aipolicy.policy.periods import PeriodWindow, current_period, ensure_utc, rolling_window
from aipolicy.policy.spend import (
    MONEY_CONTEXT,
    ServiceCost,
    display_money,
    format_money,
    interval_to_account,
    is_priced,
    parse_money,
    quantize_money,
)

__all__ = [
    "METRICS_AVAILABLE",
    "PRICING_COMPLETE",
    "READY",
    "BudgetEvaluation",
    "ConditionUpdate",
    "describe_selector",
    "evaluate_budget",
    "forecast_spend",
    "metrics_condition",
    "pricing_condition",
    "query_interval",
    "ready_condition",
    "updated_status",
]

# METRICS_AVAILABLE is the condition :func:`updated_status` sets; the next evaluation reads it
# back (see _memory).
# Conditions name the services they are about; past this many, the rest are counted.
_NAMED_AT_MOST = 10

_LEVEL: dict[str, int] = {"Notify": 1, "Degrade": 2, "Suspend": 3}
_ACTION_AT: tuple[Action | None, ...] = (None, "Notify", "Degrade", "Suspend")
_STATE_AT: tuple[BudgetState, ...] = ("Ok", "Warning", "Degraded", "Exceeded")
_EXCEEDED = 3
# When several readings are missing, name the most actionable reason in the condition.
_REASON_ORDER: tuple[UnavailableReason, ...] = (
    "QueryError",
    "Stale",
    "NotANumber",
    "Negative",
    "Ambiguous",
    "NoData",
)
_HOUR = Decimal(3_600_000_000)  # microseconds


@dataclass(frozen=True)
class BudgetEvaluation:
    """Everything the controller writes to status and acts on."""

    state: BudgetState
    spent: Decimal
    """Spend this period, quantized to 6 places."""
    percent_used: int
    """spent / limit in percent, rounded down."""
    forecast: Decimal | None
    burn_rate_per_hour: Decimal | None
    period: PeriodWindow
    last_evaluated: datetime
    """Spend is accounted up to here; not advanced while metrics are unavailable."""
    breakdown: dict[str, Decimal]
    """Spend this period per service and cost source (names shared by both add up)."""
    active_action: Action | None
    """The highest action in force: Suspend > Degrade > Notify."""
    new_notifications: tuple[Threshold, ...]
    """Thresholds reached for the first time this period, ascending."""
    notified_percents: tuple[int, ...]
    metrics_available: bool
    metrics_reason: str
    """CamelCase: Available, or the Unavailable reason (QueryError, NoData, ...)."""
    reason: str
    """CamelCase, for conditions and events (WithinBudget, DegradeThresholdReached, ...)."""
    message: str
    metrics_message: str
    """Which readings are missing and why; empty when all are there."""
    evaluated_at: datetime
    """The ``now`` of this evaluation (``last_evaluated`` may lag it)."""
    held_percents: tuple[int, ...] = ()
    """Thresholds reached, or still within their hysteresis band: their alerts keep firing.
    Empty when metrics are unavailable (then nothing is known to have resolved)."""


@dataclass(frozen=True)
class _Carry:
    """Spend already accounted in this period, read back from the status."""

    spent: Decimal
    breakdown: dict[str, Decimal]
    last_evaluated: datetime


@dataclass(frozen=True)
class _Memory:
    """What the previous evaluation decided, for hysteresis and announce-once."""

    level: int
    over_limit: bool
    notified: frozenset[int]


def _hours(span: timedelta) -> Decimal:
    microseconds = (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds
    with localcontext(MONEY_CONTEXT):
        return Decimal(microseconds) / _HOUR


def _limit(spec: AIBudgetSpec) -> Decimal:
    limit = money(spec.limit)
    if limit <= 0:  # the CRD refuses it; a pure function should not divide by it either
        raise ValueError(f"limit {spec.limit!r} must be greater than zero")
    return limit


def _same_period(previous: AIBudgetStatus, period: PeriodWindow) -> bool:
    # Both ends: a changed period type or time zone is a different period, counted afresh.
    return (
        previous.period_start is not None
        and previous.period_end is not None
        and ensure_utc(previous.period_start) == period.start
        and ensure_utc(previous.period_end) == period.end
    )


def _read_spend(previous: AIBudgetStatus) -> _Carry | None:
    """The status' spend and checkpoint, or None if it has none or it is unreadable."""
    if previous.last_evaluated is None:
        return None
    spent = parse_money(previous.spent)
    if spent is None:
        return None
    breakdown: dict[str, Decimal] = {}
    for spender in previous.breakdown:
        amount = parse_money(spender.spent)
        if amount is None:
            return None
        breakdown[spender.name] = breakdown.get(spender.name, Decimal(0)) + amount
    return _Carry(
        quantize_money(spent),
        {name: quantize_money(amount) for name, amount in breakdown.items()},
        ensure_utc(previous.last_evaluated),
    )


def _carried(spec: AIBudgetSpec, previous: AIBudgetStatus, period: PeriodWindow) -> _Carry | None:
    """Spend to add this interval to; None means count the whole period from its start.

    :func:`query_interval` and :func:`evaluate_budget` both decide through here, so the interval
    queried and the spend it is added to always agree.
    """
    if spec.period.type == "Rolling" or not _same_period(previous, period):
        return None
    return _read_spend(previous)


def _memory(spec: AIBudgetSpec, previous: AIBudgetStatus, period: PeriodWindow) -> _Memory:
    """What the last decision leaves binding: nothing after a period change, and for a Rolling
    period (one endless period) whatever the last evaluation decided."""
    rolling = spec.period.type == "Rolling"
    if not (previous.period_start is not None if rolling else _same_period(previous, period)):
        return _Memory(0, False, frozenset())
    notified = frozenset(previous.notified_percents)
    metrics = find_condition(previous.conditions, METRICS_AVAILABLE)
    if metrics is not None and metrics.status == "False" and spec.on_metrics_unavailable != "HoldLastKnown":
        # The previous action came from FailOpen/FailClosed, not from spend: holding a Suspend
        # that FailClosed imposed by hysteresis would keep services down after Prometheus is back.
        return _Memory(0, False, notified)
    return _Memory(_LEVEL.get(previous.active_action, 0), previous.state == "Exceeded", notified)


def query_interval(spec: AIBudgetSpec, previous: AIBudgetStatus, now: datetime) -> tuple[datetime, datetime]:
    """The interval (from, to] whose increases the controller queries for this evaluation.

    From the status' checkpoint when it is of this period, else from the period's start (the
    whole window for Rolling).
    """
    period = current_period(spec.period, now)
    carry = _carried(spec, previous, period)
    return interval_to_account(None if carry is None else carry.last_evaluated, period, now)


def forecast_spend(
    spent: Decimal, burn_rate_per_hour: Decimal, now: datetime, period: PeriodWindow
) -> Decimal:
    """Spend at the period's end if the burn rate holds: spent + rate * hours left (≥ 0)."""
    left = max(period.end - ensure_utc(now), timedelta(0))
    rate = max(burn_rate_per_hour, Decimal(0))
    with localcontext(MONEY_CONTEXT):
        return quantize_money(spent + rate * _hours(left))


def _forecast(
    spec: AIBudgetSpec, spent: Decimal, burn: Decimal | None, now: datetime, period: PeriodWindow
) -> Decimal | None:
    if burn is None:
        return None
    if spec.period.type == "Rolling":
        # A rolling window never ends; project what a whole window holds at this rate.
        with localcontext(MONEY_CONTEXT):
            return quantize_money(burn * _hours(rolling_window(spec.period)))
    return forecast_spend(spent, burn, now, period)


def _missing(
    costs: Mapping[str, ServiceCost | Unavailable], extra: Mapping[str, Decimal | Unavailable]
) -> list[tuple[str, Unavailable]]:
    """The readings that cannot be counted, each named as "service NAME" or "cost source NAME"
    (a service and a cost source may share a name, and each is fixed in a different place)."""
    missing: list[tuple[str, Unavailable]] = []
    amounts: Iterable[tuple[str, Decimal | Unavailable]] = [
        *((f"service {n}", c if isinstance(c, Unavailable) else c.total) for n, c in costs.items()),
        *((f"cost source {n}", a) for n, a in extra.items()),
    ]
    for name, amount in amounts:
        if isinstance(amount, Unavailable):
            missing.append((name, amount))
        elif not amount.is_finite():
            missing.append((name, Unavailable("NotANumber", f"cost {amount} is invalid")))
        elif amount < 0:
            missing.append((name, Unavailable("Negative", f"cost {amount} is negative")))
    return missing


def _reaches(amount: Decimal, percent: int, limit: Decimal) -> bool:
    return amount * 100 >= percent * limit


def _level(
    thresholds: Sequence[Threshold],
    measure: Mapping[int, Decimal],
    limit: Decimal,
    hysteresis: int,
    remembered: int,
) -> tuple[int, list[Threshold], list[Threshold]]:
    """The action level in force, the thresholds reached and those still within their band."""
    reached = [t for t in thresholds if _reaches(measure[t.percent], t.percent, limit)]
    held = [t for t in thresholds if _reaches(measure[t.percent], t.percent - hysteresis, limit)]
    enter = max((_LEVEL[t.action] for t in reached), default=0)
    stay = max((_LEVEL[t.action] for t in held), default=0)
    # A level once in force stays while a threshold of at least that level is in its band.
    return max(enter, min(remembered, stay)), reached, held


@dataclass(frozen=True)
class _Decision:
    state: BudgetState
    action: Action | None
    new: tuple[Threshold, ...]
    notified: tuple[int, ...]
    reason: str
    detail: str
    held: tuple[int, ...]


def _decide(
    spec: AIBudgetSpec,
    limit: Decimal,
    spent: Decimal,
    forecast: Decimal | None,
    memory: _Memory,
) -> _Decision:
    thresholds = sorted(spec.thresholds, key=lambda t: t.percent)
    h = spec.hysteresis_percent
    on_spend = {t.percent: spent for t in thresholds}
    measured = {
        t.percent: max(spent, forecast) if t.on_forecast and forecast is not None else spent
        for t in thresholds
    }
    level, reached, held = _level(thresholds, measured, limit, h, memory.level)
    spend_level, _, _ = _level(thresholds, on_spend, limit, h, memory.level)

    over_limit = not any(t.action == "Suspend" for t in thresholds) and (
        _reaches(spent, 100, limit) or (memory.over_limit and _reaches(spent, 100 - h, limit))
    )
    rank = max(level, _EXCEEDED if over_limit else 0)

    new = tuple(t for t in reached if t.percent not in memory.notified)
    kept = memory.notified
    if spec.period.type == "Rolling":
        # A rolling window never starts over; re-arm a threshold once its value has left its band.
        kept = kept & {t.percent for t in held}
    notified = tuple(sorted(kept | {t.percent for t in new}))

    action = _ACTION_AT[level]
    if rank == 0:
        reason = WITHIN_BUDGET
    elif level < _EXCEEDED and over_limit:
        reason = LIMIT_REACHED
    else:
        assert action is not None  # rank > 0 without the limit rule means a threshold is in force
        reason = threshold_reached_reason(action, on_forecast=level > spend_level)
    detail = ""
    if action is not None:
        top = [t for t in held if _LEVEL[t.action] == level]
        detail = f"; {action} in force ({', '.join(f'{t.percent}%' for t in top)})"
        if not any(t in reached for t in top):
            floor = min(t.percent for t in top) - h
            detail += f", held until below {floor}% by hysteresis"
    return _Decision(
        _STATE_AT[rank], action, new, notified, reason, detail, tuple(sorted(t.percent for t in held))
    )


def _summary(spec: AIBudgetSpec, spent: Decimal, percent: int, forecast: Decimal | None) -> str:
    limit = display_money(_limit(spec), spec.currency)
    text = f"Spent {display_money(spent, spec.currency)} of {limit} {spec.currency} ({percent}%)"
    if forecast is not None:
        text += f", forecast {display_money(forecast, spec.currency)} {spec.currency}"
    return text


def _percent(spent: Decimal, limit: Decimal) -> int:
    with localcontext(MONEY_CONTEXT):
        return int(spent * 100 // limit)


def _burn(burn_rate_per_hour: Decimal | None) -> Decimal | None:
    # A rate of a counter is never negative; one that is says nothing usable about the future.
    if burn_rate_per_hour is None or not burn_rate_per_hour.is_finite() or burn_rate_per_hour < 0:
        return None
    return quantize_money(burn_rate_per_hour)


def evaluate_budget(
    spec: AIBudgetSpec,
    previous: AIBudgetStatus,
    costs: Mapping[str, ServiceCost | Unavailable],
    extra: Mapping[str, Decimal | Unavailable],
    now: datetime,
    burn_rate_per_hour: Decimal | None,
) -> BudgetEvaluation:
    """Decide the budget from the last status and the costs of :func:`query_interval`'s interval.

    ``costs`` is per selected service, ``extra`` per cost source (from
    :func:`~aipolicy.policy.spend.cost_source_cost`); ``burn_rate_per_hour`` is the spend rate
    over ``spec.forecast.window`` (None when unknown: no forecast).
    """
    # Sums and comparisons of large amounts must not round at the default 28 digits.
    with localcontext(MONEY_CONTEXT):
        return _evaluate(spec, previous, costs, extra, ensure_utc(now), burn_rate_per_hour)


def _evaluate(
    spec: AIBudgetSpec,
    previous: AIBudgetStatus,
    costs: Mapping[str, ServiceCost | Unavailable],
    extra: Mapping[str, Decimal | Unavailable],
    now: datetime,
    burn_rate_per_hour: Decimal | None,
) -> BudgetEvaluation:
    period = current_period(spec.period, now)
    limit = _limit(spec)
    memory = _memory(spec, previous, period)
    burn = _burn(burn_rate_per_hour)
    missing = _missing(costs, extra)
    if missing:
        return _without_metrics(spec, previous, period, now, limit, memory, burn, missing)

    carry = _carried(spec, previous, period)
    breakdown = dict(carry.breakdown) if carry else {}
    spent = carry.spent if carry else Decimal(0)
    interval: list[tuple[str, Decimal]] = [
        *((n, c.total) for n, c in costs.items() if isinstance(c, ServiceCost)),
        *((n, a) for n, a in extra.items() if isinstance(a, Decimal)),
    ]
    for name, amount in interval:
        amount = quantize_money(amount)
        breakdown[name] = breakdown.get(name, Decimal(0)) + amount
        spent += amount
    # A clock that went back must not move the checkpoint back: that would count twice.
    last = now if carry is None else max(now, carry.last_evaluated)

    forecast = _forecast(spec, spent, burn, now, period)
    decision = _decide(spec, limit, spent, forecast, memory)
    percent = _percent(spent, limit)
    return BudgetEvaluation(
        state=decision.state,
        spent=spent,
        percent_used=percent,
        forecast=forecast,
        burn_rate_per_hour=burn,
        period=period,
        last_evaluated=last,
        breakdown=breakdown,
        active_action=decision.action,
        new_notifications=decision.new,
        notified_percents=decision.notified,
        metrics_available=True,
        metrics_reason=BUDGET_METRICS_AVAILABLE,
        reason=decision.reason,
        message=_summary(spec, spent, percent, forecast) + decision.detail + ".",
        metrics_message="",
        evaluated_at=now,
        held_percents=decision.held,
    )


def _without_metrics(
    spec: AIBudgetSpec,
    previous: AIBudgetStatus,
    period: PeriodWindow,
    now: datetime,
    limit: Decimal,
    memory: _Memory,
    burn: Decimal | None,
    missing: list[tuple[str, Unavailable]],
) -> BudgetEvaluation:
    rolling = spec.period.type == "Rolling"
    held: _Carry | None
    if rolling:
        # The last window counted is the last known spend, though it has moved on since.
        held = None if previous.period_start is None else _read_spend(previous)
    else:
        held = _carried(spec, previous, period)
    spent = held.spent if held else Decimal(0)
    policy = spec.on_metrics_unavailable
    state: BudgetState
    action: Action | None
    if policy == "FailOpen":
        state, action = "Ok", None
    elif policy == "FailClosed":
        state, action = "Exceeded", "Suspend"
    elif held is not None:
        state = previous.state
        action = _ACTION_AT[_LEVEL.get(previous.active_action, 0)]
    else:
        state, action = "Unknown", None  # nothing known of this period yet
    reasons = {u.reason for _, u in missing}
    metrics_reason = next(r for r in _REASON_ORDER if r in reasons)
    metrics_message = "; ".join(f"{name}: {u.message or u.reason}" for name, u in missing)
    percent = _percent(spent, limit)
    forecast = _forecast(spec, spent, burn, now, period)
    doing = {
        "HoldLastKnown": "holding the last known state",
        "FailOpen": "failing open (no action)",
        "FailClosed": "failing closed (Suspend)",
    }[policy]
    return BudgetEvaluation(
        state=state,
        spent=spent,
        percent_used=percent,
        forecast=forecast,
        burn_rate_per_hour=burn,
        period=period,
        # Not advanced: the next evaluation with metrics counts this gap from the counters.
        last_evaluated=held.last_evaluated if held else period.start,
        breakdown=dict(held.breakdown) if held else {},
        active_action=action,
        new_notifications=(),
        notified_percents=tuple(sorted(memory.notified)),
        metrics_available=False,
        metrics_reason=metrics_reason,
        reason=AWAITING_METRICS if state == "Unknown" else metrics_unavailable_reason(policy),
        message=f"{_summary(spec, spent, percent, forecast)} as last known; metrics unavailable, "
        f"{doing}: {metrics_message}.",
        metrics_message=metrics_message,
        evaluated_at=now,
    )


def metrics_condition(evaluation: BudgetEvaluation) -> ConditionUpdate:
    """MetricsAvailable: True when every spend query answered, else False with the most
    actionable missing reading's reason (QueryError, Stale, NoData...) naming what is missing.

    Decided here only: :func:`updated_status` stores it (the next evaluation reads it back, see
    _memory) and the controller sets it, which posts the event when it changes.
    """
    return ConditionUpdate(
        METRICS_AVAILABLE,
        "True" if evaluation.metrics_available else "False",
        evaluation.metrics_reason,
        evaluation.metrics_message or "All spend queries answered.",
    )


def updated_status(
    previous: AIBudgetStatus, evaluation: BudgetEvaluation, spec: AIBudgetSpec, generation: int
) -> AIBudgetStatus:
    """``previous`` with every field the evaluation decides, including MetricsAvailable.

    The next evaluation reads these back, so write them as given: ``spent`` and the breakdown
    keep 6 places (they are the checkpoint); ``spentDisplay`` and ``forecastDisplay`` are the
    same amounts in the currency's usual precision, for kubectl's columns. The controller adds
    its other conditions.
    """
    ranked = sorted(evaluation.breakdown.items(), key=lambda item: (-item[1], item[0]))
    breakdown = [Spender(name=name, spent=format_money(amount)) for name, amount in ranked]
    metrics = metrics_condition(evaluation)
    conditions = set_condition(
        list(previous.conditions),
        metrics.type,
        metrics.status,
        metrics.reason,
        metrics.message,
        generation,
        evaluation.evaluated_at,
    )
    return previous.model_copy(
        update={
            "state": evaluation.state,
            "spent": format_money(evaluation.spent),
            "spent_display": display_money(evaluation.spent, spec.currency),
            "limit": spec.limit,
            "percent_used": evaluation.percent_used,
            "forecast": "" if evaluation.forecast is None else format_money(evaluation.forecast),
            "forecast_display": ""
            if evaluation.forecast is None
            else display_money(evaluation.forecast, spec.currency),
            "burn_rate_per_hour": ""
            if evaluation.burn_rate_per_hour is None
            else format_money(evaluation.burn_rate_per_hour),
            "period_start": evaluation.period.start,
            "period_end": evaluation.period.end,
            "last_evaluated": evaluation.last_evaluated,
            "breakdown": breakdown,
            "top_spenders": [s for s, (_, a) in zip(breakdown, ranked, strict=True) if a > 0][:3],
            "active_action": evaluation.active_action or "",
            "notified_percents": list(evaluation.notified_percents),
            "conditions": conditions,
        }
    )


# ---- conditions about the budget's inputs ------------------------------------------------------


def describe_selector(selector: LabelSelector) -> str:
    """The selector as kubectl writes one (team=a,tier in (gold,silver),!legacy); "" if empty."""
    parts = [f"{key}={value}" for key, value in sorted(selector.match_labels.items())]
    for requirement in selector.match_expressions:
        key, values = requirement.key, ",".join(requirement.values)
        parts.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }[requirement.operator]
        )
    return ",".join(parts)


def _no_services_selected(spec: AIBudgetSpec, namespace: str) -> str:
    selector = describe_selector(spec.selector)
    if not selector:
        return (
            f"spec.selector is empty (all InferenceServices) but namespace {namespace} has none, "
            "and spec.costSources is empty: this budget has no spend to count. Create the "
            f"InferenceServices in {namespace}, or add spec.costSources."
        )
    counted = f" (its {len(spec.cost_sources)} cost source(s) still are)" if spec.cost_sources else ""
    return (
        f"spec.selector {selector} matches no InferenceService in namespace {namespace}, so no "
        f"service's spend is counted{counted}. Fix spec.selector, or label the InferenceServices "
        "this budget should cover."
    )


def ready_condition(
    spec: AIBudgetSpec, namespace: str, selected: Sequence[str], evaluation: BudgetEvaluation
) -> ConditionUpdate:
    """Ready summarises whether the budget counts what it was meant to.

    False with NoServicesSelected when its selector names services and matches none (a typo
    there silently drops their spend, the worst failure of a budget), or when it has nothing at
    all to count; spend is still what was measured (0 from no services is real, not invented),
    so the other conditions and the state go on as usual. An empty selector with cost sources
    in a namespace without services is a budget of cost sources only, and is Ready. False with
    NoData while nothing of this period is known yet.
    """
    if not selected and (describe_selector(spec.selector) or not spec.cost_sources):
        return ConditionUpdate(READY, "False", NO_SERVICES_SELECTED, _no_services_selected(spec, namespace))
    if spec.enforcement == "DryRun":
        return ConditionUpdate(
            READY, "True", DRY_RUN, "DryRun: states and actions are reported, services are not touched"
        )
    if evaluation.state == "Unknown":
        return ConditionUpdate(READY, "False", NO_DATA, evaluation.message)
    if not selected:
        return ConditionUpdate(
            READY,
            "True",
            BUDGET_EVALUATED,
            f"no InferenceService in namespace {namespace}; spend comes from the "
            f"{len(spec.cost_sources)} cost source(s)",
        )
    return ConditionUpdate(READY, "True", BUDGET_EVALUATED, f"{len(selected)} service(s) selected")


def _named(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_NAMED_AT_MOST])
    rest = len(names) - _NAMED_AT_MOST
    return f"{shown} and {rest} more" if rest > 0 else shown


def pricing_condition(pricing: Mapping[str, Pricing]) -> ConditionUpdate:
    """PricingComplete: False with ZeroPrice, naming them, when selected services have no price
    above zero. Their usage honestly costs 0, but a budget that never moves looks like one that
    is within its limit; a free service is possible, so this warns and changes nothing else."""
    unpriced = sorted(name for name, prices in pricing.items() if not is_priced(prices))
    if not unpriced:
        message = f"All {len(pricing)} selected service(s) have a price."
        return ConditionUpdate(
            PRICING_COMPLETE, "True", ALL_SERVICES_PRICED, message if pricing else "No service selected."
        )
    one = len(unpriced) == 1
    return ConditionUpdate(
        PRICING_COMPLETE,
        "False",
        ZERO_PRICE,
        f"{_named(unpriced)} {'has' if one else 'have'} no price above zero in spec.pricing, so "
        f"{'its' if one else 'their'} usage counts as 0 in this budget. Set spec.pricing "
        "(gpuHour, inputPerMillionTokens, outputPerMillionTokens) on "
        f"{'that InferenceService' if one else 'those InferenceServices'} unless "
        f"{'it is' if one else 'they are'} free.",
    )
