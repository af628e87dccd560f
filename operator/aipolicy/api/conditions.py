"""Condition types and reasons the operator writes, named once.

Reasons are CamelCase (metav1.Condition requires it) and double as event reasons: an event
tells a condition's change under the condition's reason. A reason written from data (a
scaling decision's reason, `Mode<mode>`, a scheduler's reason) is built by the function named
beside the constants it extends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from aipolicy.api.common import ConditionStatus

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


@dataclass(frozen=True)
class ConditionUpdate:
    """One condition to set (the shell keeps lastTransitionTime and observedGeneration)."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


@dataclass(frozen=True)
class Event:
    """One Kubernetes event to post on the object."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str
