"""AIBudget: a spend limit over the InferenceServices it selects, in its own namespace."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from aipolicy.api.common import (
    ApiModel,
    ApiStatus,
    Condition,
    Currency,
    Duration,
    Enforcement,
    LabelSelector,
    Money,
    ObjectMeta,
    TimeZone,
    cel_time_zone_rule,
)

KIND = "AIBudget"
PLURAL = "aibudgets"
SHORT_NAMES = ("aib",)

PeriodType = Literal["Daily", "Weekly", "Monthly", "Rolling"]
Action = Literal["Notify", "Degrade", "Suspend"]
BudgetState = Literal["Ok", "Warning", "Degraded", "Exceeded", "Unknown"]


class Period(ApiModel):
    """The span spend is counted over; a new period starts over by itself."""

    type: PeriodType = "Monthly"
    """Daily, Weekly (from Monday), Monthly (calendar month), or Rolling (the last `window`)."""
    time_zone: TimeZone = "UTC"
    """The IANA time zone whose midnight starts a day, week or month, such as Europe/Paris."""
    window: Duration | None = None
    """For Rolling: the window, such as 24h or 7d."""

    cel_rules = (
        (
            "self.type == 'Rolling' ? has(self.window) : !has(self.window)",
            "window is required for Rolling periods and only allowed for them",
        ),
        (cel_time_zone_rule("timeZone"), "timeZone must be an IANA time zone such as Europe/Paris"),
    )


class Threshold(ApiModel):
    """At this share of the limit, take this action."""

    percent: int = Field(ge=1, le=1000)
    """The share of the limit, in percent (1 to 1000)."""
    action: Action
    """Notify (event, condition, metric, webhook), Degrade (selected services go to degraded mode), or Suspend (scale to zero; the gateway refuses requests with HTTP 429 naming this budget until the period resets)."""
    on_forecast: bool = False
    """Also act when the forecast for the period's end crosses this threshold, before the money is spent."""


class CostSource(ApiModel):
    """An extra cost: a PromQL query of money, or of units with a price."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    """A name for status."""
    query: str = Field(min_length=1, max_length=4096)
    """A PromQL expression of what was spent (or used) in the window `$window`, which aipolicy fills in at each evaluation, such as sum(increase(litellm_spend_metric_total{team="ml"}[$window]))."""
    price_per_unit: Money | None = None
    """When the query counts units (not money), the price of one unit."""

    cel_rules = (
        (
            "self.query.contains('$window')",
            "query must use $window, such as sum(increase(my_spend_total[$window]))",
        ),
    )


class Forecast(ApiModel):
    """Projects spend at the period's end from the recent burn rate."""

    window: Duration = "1h"
    """The window the burn rate is measured over."""


class Notification(ApiModel):
    """Where Notify thresholds are also sent."""

    webhook_url: str | None = Field(default=None, pattern=r"^https?://", max_length=2048)
    """Where each threshold's alert is POSTed, firing when reached and resolved when spend falls back below it, retried with backoff until delivered. An Alertmanager's /api/v2/alerts gets Alertmanager v2 alerts (a JSON array; firing ones re-sent every minute); any other URL gets Alertmanager's webhook-receiver format (version 4) once per change."""


class AIBudgetSpec(ApiModel):
    """A spend limit, the period it covers, and what happens as it fills."""

    limit: Money
    """The most to spend in one period, a decimal string such as "5000" or "120.50"."""
    currency: Currency = "USD"
    """An ISO 4217 code; services priced in another currency are refused for this budget."""
    period: Period = Field(default_factory=Period)
    """The span spend is counted over."""
    selector: LabelSelector = Field(default_factory=LabelSelector)
    """The InferenceServices of this namespace the budget covers; empty selects all of them."""
    cost_sources: list[CostSource] = Field(default_factory=list, max_length=16)
    """Extra costs beyond the services' own pricing."""
    thresholds: list[Threshold] = Field(
        default_factory=lambda: [
            Threshold(percent=80, action="Notify"),
            Threshold(percent=100, action="Notify"),
        ],
        max_length=16,
    )
    """Actions at shares of the limit, ascending by percent."""
    hysteresis_percent: int = Field(default=5, ge=0, le=50)
    """A state is left only when spend falls this many percent below its threshold (or a new period starts)."""
    forecast: Forecast = Field(default_factory=Forecast)
    """How the end-of-period forecast is made."""
    notification: Notification = Field(default_factory=Notification)
    """Where notices go besides events."""
    enforcement: Enforcement = "Enforce"
    """Enforce, or DryRun: decide and report, change nothing."""
    on_metrics_unavailable: Literal["HoldLastKnown", "FailOpen", "FailClosed"] = "HoldLastKnown"
    """When Prometheus cannot answer: keep the last known spend and state, treat the budget as Ok (FailOpen), or as Exceeded (FailClosed)."""
    evaluation_interval: Duration = "30s"
    """How often spend is evaluated."""

    cel_rules = (
        (
            "self.limit != '0' && !self.limit.matches('^0+(\\\\.0+)?$')",
            "limit must be greater than zero",
        ),
        (
            "self.thresholds.all(t, self.thresholds.filter(u, u.percent == t.percent).size() == 1)",
            "thresholds must have distinct percents",
        ),
        (
            "size(self.thresholds) < 2 || self.thresholds.all(t, self.thresholds.indexOf(t) == 0 || self.thresholds[self.thresholds.indexOf(t) - 1].percent < t.percent)",
            "thresholds must be sorted by ascending percent",
        ),
        (
            "self.costSources.all(s, self.costSources.exists_one(o, o.name == s.name))",
            "costSources names must be unique",
        ),
    )


class Spender(ApiModel):
    """One service's spend this period."""

    name: str
    """The InferenceService, or an extra cost source."""
    spent: str
    """Spend this period."""


class AlertDelivery(ApiModel):
    """One threshold's alert, and whether spec.notification.webhookUrl has it."""

    percent: int
    """The threshold's percent (one alert per threshold)."""
    action: Action
    """The threshold's action."""
    state: Literal["Firing", "Resolved"]
    """Firing while spend stays at the threshold (within hysteresis), Resolved once below."""
    starts_at: datetime
    """When the threshold was reached."""
    ends_at: datetime | None = None
    """When it resolved."""
    summary: str = ""
    """The alert's summary annotation."""
    description: str = ""
    """The alert's description annotation: the spend when it fired or resolved."""
    delivered: bool = False
    """The receiver accepted this state of the alert (HTTP 2xx)."""
    delivered_at: datetime | None = None
    """When it last accepted it."""
    attempts: int = 0
    """POSTs of this state of the alert so far."""
    next_attempt: datetime | None = None
    """When the next POST is due (backoff after a failure)."""
    last_error: str = ""
    """Why the last POST failed."""


class AIBudgetStatus(ApiStatus):
    """The observed state of an AIBudget."""

    observed_generation: int = 0
    """The generation this status reflects."""
    state: BudgetState = "Unknown"
    """Ok, Warning, Degraded, Exceeded, or Unknown."""
    spent: str = "0"
    """Spend so far this period, in spec.currency, exact to 6 places (for machines: the next evaluation adds to it)."""
    spent_display: str = ""
    """spent in the currency's usual precision (2 places for USD and EUR, none for JPY), as the SPENT column shows it."""
    limit: str = ""
    """The limit (copied for kubectl get)."""
    percent_used: int = 0
    """spent / limit, in percent, rounded down."""
    forecast: str = ""
    """Projected spend at the period's end, exact to 6 places."""
    forecast_display: str = ""
    """forecast in the currency's usual precision, as the FORECAST column shows it."""
    burn_rate_per_hour: str = ""
    """Spend per hour over the forecast window."""
    period_start: datetime | None = None
    """When this period began."""
    period_end: datetime | None = None
    """When it ends."""
    last_evaluated: datetime | None = None
    """Spend is accounted up to this time; the next evaluation adds what came after."""
    breakdown: list[Spender] = Field(default_factory=list)
    """Spend per service and cost source this period."""
    top_spenders: list[Spender] = Field(default_factory=list)
    """The three largest spenders."""
    active_action: str = ""
    """The highest threshold action in force: Notify, Degrade, Suspend, or empty."""
    notified_percents: list[int] = Field(default_factory=list)
    """Thresholds already announced this period (so a restart repeats none)."""
    alerts: list[AlertDelivery] = Field(default_factory=list)
    """Alerts for spec.notification.webhookUrl: firing ones, and those not yet delivered (kept here so a restart loses none)."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready (False with NoServicesSelected when spec.selector matches no InferenceService, NoData before any spend is known, InvalidSpec), MetricsAvailable (False when a spend query errs or returns nothing, NaN, a negative value or several series), PricingComplete (False with ZeroPrice when a selected service has no price above zero, so its usage counts 0), ThresholdReached, Degraded, Exceeded."""


class AIBudget(ApiModel):
    """A spend budget over AI services."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    metadata: ObjectMeta
    spec: AIBudgetSpec
    status: AIBudgetStatus = Field(default_factory=AIBudgetStatus)


PRINTER_COLUMNS: list[dict[str, Any]] = [
    # People read the currency's usual precision; status.spent and status.forecast keep 6 places.
    {"name": "Spent", "type": "string", "jsonPath": ".status.spentDisplay"},
    {"name": "Limit", "type": "string", "jsonPath": ".spec.limit"},
    {
        "name": "Used",
        "type": "string",
        "jsonPath": ".status.percentUsed",
        "description": "percent of the limit",
    },
    {"name": "Forecast", "type": "string", "jsonPath": ".status.forecastDisplay"},
    {"name": "State", "type": "string", "jsonPath": ".status.state"},
    {"name": "Currency", "type": "string", "jsonPath": ".spec.currency", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
