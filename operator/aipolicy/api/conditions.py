"""Condition types and reasons the operator writes, named once.

Reasons are CamelCase (metav1.Condition requires it) and double as event reasons: an event
tells a condition's change under the condition's reason. A reason written from data (a
threshold's action, the metrics-unavailable policy) is built by the function named beside the
constants it extends.
"""

from __future__ import annotations

from typing import Final

# --- Common: condition types and reasons every kind uses ------------------------------------

#: The object can do its job; kstatus, Argo CD and `kubectl wait` read it.
READY: Final = "Ready"
#: kstatus' abnormal-true condition: True while the spec cannot be acted on.
STALLED: Final = "Stalled"
#: The metrics a decision needs could be read.
METRICS_AVAILABLE: Final = "MetricsAvailable"
#: True while the object runs in a reduced mode.
DEGRADED: Final = "Degraded"

#: The spec passed the schema but cannot be acted on (see api/reading.py).
INVALID_SPEC: Final = "InvalidSpec"
#: Ready=True of an object in DryRun: decisions are reported, not applied.
DRY_RUN: Final = "DryRun"

# --- AIBudget: condition types --------------------------------------------------------------

#: Every selected service has a price above zero.
PRICING_COMPLETE: Final = "PricingComplete"
#: A threshold's action is in force.
THRESHOLD_REACHED: Final = "ThresholdReached"
#: The budget's state is Exceeded.
EXCEEDED: Final = "Exceeded"

# --- AIBudget: reasons ----------------------------------------------------------------------

# Ready
BUDGET_EVALUATED: Final = "Evaluated"
NO_SERVICES_SELECTED: Final = "NoServicesSelected"
NO_DATA: Final = "NoData"
# MetricsAvailable=True (False carries the missing reading's reason: QueryError, NoData...)
BUDGET_METRICS_AVAILABLE: Final = "Available"
# PricingComplete
ALL_SERVICES_PRICED: Final = "AllServicesPriced"
ZERO_PRICE: Final = "ZeroPrice"
# ThresholdReached (besides threshold_reached_reason and metrics_unavailable_reason)
WITHIN_BUDGET: Final = "WithinBudget"
LIMIT_REACHED: Final = "LimitReached"
AWAITING_METRICS: Final = "AwaitingMetrics"
# Degraded
BUDGET_DEGRADED: Final = "BudgetDegraded"
NOT_DEGRADED: Final = "NotDegraded"
# Exceeded
BUDGET_EXCEEDED: Final = "BudgetExceeded"
WITHIN_LIMIT: Final = "WithinLimit"
# Events of alert delivery (spec.notification.webhookUrl)
NOTIFICATION_FAILED: Final = "NotificationFailed"
NOTIFICATION_DELIVERED: Final = "NotificationDelivered"


def threshold_reached_reason(action: str, *, on_forecast: bool = False) -> str:
    """`<Action>ThresholdReached`, `Forecast<Action>ThresholdReached` when only the forecast
    reaches it."""
    return f"{'Forecast' if on_forecast else ''}{action}ThresholdReached"


def metrics_unavailable_reason(policy: str) -> str:
    """`MetricsUnavailable<onMetricsUnavailable>`: HoldLastKnown, FailOpen or FailClosed."""
    return f"MetricsUnavailable{policy}"


def threshold_event_reason(action: str) -> str:
    """`Threshold<Action>`: the event of a threshold reached for the first time this period."""
    return f"Threshold{action}"


# --- FallbackPolicy: condition types ----------------------------------------------------------

#: Traffic goes to a chain step rather than to the target.
FALLBACK_ACTIVE: Final = "FallbackActive"

# --- FallbackPolicy: reasons --------------------------------------------------------------------
# (FallbackActive's reasons are the state machine's, policy/fallback.py `Reason`.)

# Ready
ENFORCING: Final = "Enforcing"
TARGET_NOT_FOUND: Final = "TargetNotFound"
#: Ready and FallbackActive of a policy that another policy, sorting first, overrules.
CONFLICT: Final = "Conflict"
# MetricsAvailable
METRICS_FOUND: Final = "MetricsFound"
METRICS_UNAVAILABLE: Final = "MetricsUnavailable"
