"""Condition types and reasons the operator writes, named once.

Reasons are CamelCase (metav1.Condition requires it) and double as event reasons: an event
tells a condition's change under the condition's reason. A reason written from data (a
scaling decision's reason, `Mode<mode>`, a threshold's action) is built by the function named
beside the constants it extends. What a decision returns (ConditionUpdate, Event) is in
policy/outcome.py.
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

# --- InferenceService: condition types ------------------------------------------------------

#: Every replica the scaling policy asked for could be scheduled.
CAPACITY_AVAILABLE: Final = "CapacityAvailable"
#: The Secrets the service's provider and its fallback chain name are usable.
SECRETS_AVAILABLE: Final = "SecretsAvailable"
#: The autoscaler acts on the service (False when paused or API-backed).
SCALING_ACTIVE: Final = "ScalingActive"
#: Every AIBudget and FallbackPolicy that governs the service's mode could be read.
POLICIES_VALID: Final = "PoliciesValid"

# --- InferenceService: reasons --------------------------------------------------------------

# Ready=True
PROVIDER_CONFIGURED: Final = "ProviderConfigured"
SERVING_FROM_FALLBACK: Final = "ServingFromFallback"
SCALED_TO_ZERO: Final = "ScaledToZero"
REPLICAS_READY: Final = "ReplicasReady"
# Ready=False (besides a missing reference's own reason, observe/pods.py)
PODS_NOT_CREATED: Final = "PodsNotCreated"
REPLICAS_FAILING: Final = "ReplicasFailing"
NO_READY_REPLICAS: Final = "NoReadyReplicas"
# MetricsAvailable
METRICS_FOUND: Final = "MetricsFound"
METRICS_UNAVAILABLE: Final = "MetricsUnavailable"
# CapacityAvailable
CAPACITY_FOUND: Final = "CapacityFound"
# ScalingActive=False
PAUSED: Final = "Paused"
PROVIDER_BACKED: Final = "ProviderBacked"
# Degraded=False
NOT_DEGRADED: Final = "NotDegraded"
# SecretsAvailable=True (the False reasons are the gateway's, policy/secrets.py)
SECRETS_FOUND: Final = "SecretsFound"
# PoliciesValid
POLICIES_READABLE: Final = "PoliciesReadable"
POLICY_UNREADABLE: Final = "PolicyUnreadable"


def mode_reason(mode: str) -> str:
    """`Mode<mode>`: the reason of a change of mode (its event, and Degraded=True)."""
    return f"Mode{mode}"


def metrics_reason(cause: str | None) -> str:
    """`Metrics<cause>` (MetricsAbsent, MetricsQueryError...), or MetricsUnavailable."""
    return f"Metrics{cause}" if cause else METRICS_UNAVAILABLE


# --- What a pure decision returns for the shell to write -------------------------------------


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
# NOT_DEGRADED, as for InferenceService
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
# MetricsAvailable: METRICS_FOUND and METRICS_UNAVAILABLE, as for InferenceService
