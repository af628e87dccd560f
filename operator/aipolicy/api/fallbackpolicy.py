"""FallbackPolicy: when a model is down, slow, erroring, out of GPUs or over budget, switch its
front door to a degraded backend, and back once healthy, without flapping."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from aipolicy.api.common import ApiModel, ApiStatus, Condition, Duration, Enforcement, Money, ObjectMeta

KIND = "FallbackPolicy"
PLURAL = "fallbackpolicies"
SHORT_NAMES = ("fbp",)

TriggerType = Literal["ErrorRate", "Latency", "Unavailable", "GPUShortage", "Budget", "PromQL"]
TriggeringBudgetState = Literal["Warning", "Degraded", "Exceeded"]


def _degraded_or_exceeded() -> list[TriggeringBudgetState]:
    return ["Degraded", "Exceeded"]


LOCAL_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class Trigger(ApiModel):
    """One condition under which the target is unhealthy."""

    type: TriggerType
    """ErrorRate, Latency, Unavailable (no ready replicas or the provider failing), GPUShortage (the target's pods Pending for lack of its GPU resource, serving.gpu.resourceName; not for memory, CPU or a taint), Budget (a budget's state), or PromQL."""
    threshold: float | None = Field(default=None, ge=0)
    """ErrorRate: the failing share of requests (0 to 1); Latency: seconds; PromQL: fire when the query's value is above it."""
    window: Duration = "1m"
    """The rate window of ErrorRate and Latency queries."""
    for_: Duration = Field(default="30s", alias="for")
    """How long the condition must hold before the trigger fires."""
    percentile: float = Field(default=0.95, gt=0, lt=1)
    """Latency: the quantile."""
    latency: Literal["EndToEnd", "TimeToFirstToken"] = "EndToEnd"
    """Latency: which latency."""
    budget: str | None = Field(default=None, pattern=LOCAL_NAME_PATTERN, max_length=63)
    """Budget: an AIBudget in the same namespace."""
    budget_states: list[TriggeringBudgetState] = Field(default_factory=_degraded_or_exceeded, max_length=3)
    """Budget: the budget states that fire the trigger."""
    query: str | None = Field(default=None, max_length=4096)
    """PromQL: an expression with one value; the trigger fires while it is above threshold."""

    cel_rules = (
        (
            "!(self.type in ['ErrorRate', 'Latency', 'PromQL']) || has(self.threshold)",
            "threshold is required for ErrorRate, Latency and PromQL triggers",
        ),
        (
            "self.type != 'ErrorRate' || !has(self.threshold) || self.threshold <= 1.0",
            "an ErrorRate threshold is a share between 0 and 1",
        ),
        ("self.type != 'Budget' || has(self.budget)", "budget is required for a Budget trigger"),
        ("self.type != 'PromQL' || has(self.query)", "query is required for a PromQL trigger"),
        ("self.type == 'PromQL' || !has(self.query)", "query is only allowed for a PromQL trigger"),
    )


class ProviderBackend(ApiModel):
    """An OpenAI-compatible API to send traffic to."""

    url: str = Field(pattern=r"^https?://[A-Za-z0-9.\-]+(:[0-9]+)?(/.*)?$", max_length=2048)
    """The API's base URL; the target's front door goes through the aipolicy gateway, which calls it."""
    model: str | None = Field(default=None, max_length=256)
    """The provider's model name."""
    api_key_secret: str | None = Field(default=None, max_length=253)
    """A Secret in the same namespace whose key `apiKey` holds the API key (the gateway sends it)."""
    input_per_million_tokens: Money | None = None
    """Price of one million prompt tokens at this provider, in the target's currency (gateway spend metrics)."""
    output_per_million_tokens: Money | None = None
    """Price of one million generated tokens at this provider."""


class FallbackStep(ApiModel):
    """One backend of the chain: exactly one of inferenceService, provider and degraded."""

    inference_service: str | None = Field(default=None, pattern=LOCAL_NAME_PATTERN, max_length=63)
    """Another InferenceService in the same namespace (a smaller or cheaper model)."""
    provider: ProviderBackend | None = None
    """An API provider."""
    degraded: bool | None = None
    """The target's own degraded mode (its spec.degraded), on its own pods."""

    cel_rules = (
        (
            "(has(self.inferenceService) ? 1 : 0) + (has(self.provider) ? 1 : 0) + (has(self.degraded) && self.degraded ? 1 : 0) == 1",
            "each fallback step needs exactly one of inferenceService, provider and degraded: true",
        ),
    )


class Recovery(ApiModel):
    """How the policy switches back, without flapping."""

    hold_for: Duration = "2m"
    """Triggers must stay clear this long before traffic switches back."""
    min_switch_interval: Duration = "30s"
    """The least time between two switches."""


class FallbackPolicySpec(ApiModel):
    """Triggers, a fallback chain, and how to recover."""

    target: str = Field(pattern=LOCAL_NAME_PATTERN, max_length=63)
    """The InferenceService (same namespace) whose front door this policy switches."""
    triggers: list[Trigger] = Field(min_length=1, max_length=16)
    """When the target counts as unhealthy."""
    trigger_mode: Literal["Any", "All"] = "Any"
    """Fire when any trigger fires, or only when all do."""
    chain: list[FallbackStep] = Field(min_length=1, max_length=8)
    """Backends to try in order; an unhealthy one is skipped."""
    recovery: Recovery = Field(default_factory=Recovery)
    """Hysteresis of switching back."""
    cold_start_bridge: bool = False
    """While the target warms up from zero replicas, send its traffic to the chain until its pods are Ready."""
    enforcement: Enforcement = "Enforce"
    """Enforce, or DryRun: decide and report, change nothing."""
    evaluation_interval: Duration = "5s"
    """How often triggers are evaluated."""

    cel_rules = (
        (
            "self.chain.all(s, !has(s.inferenceService) || s.inferenceService != self.target)",
            "the chain must not lead back to the target itself",
        ),
        (
            "self.chain.all(s, !has(s.inferenceService) || self.chain.exists_one(o, has(o.inferenceService) && o.inferenceService == s.inferenceService))",
            "an InferenceService may appear only once in the chain",
        ),
    )


class FallbackPolicyStatus(ApiStatus):
    """The observed state of a FallbackPolicy."""

    observed_generation: int = 0
    """The generation this status reflects."""
    active: bool = False
    """Whether traffic goes to a fallback now."""
    active_backend: str = ""
    """The backend the front door points at: the target, service/<name>, provider/<host>, or degraded."""
    active_step: int = -1
    """Index of the active chain step; -1 when the target serves."""
    triggered_by: list[str] = Field(default_factory=list)
    """The triggers that fired."""
    since: datetime | None = None
    """When the active backend took over."""
    last_switch_time: datetime | None = None
    """When the front door last switched."""
    clear_since: datetime | None = None
    """Since when every trigger has been clear while in fallback (recovery hold)."""
    trigger_since: dict[str, datetime] = Field(default_factory=dict)
    """Since when each trigger's condition has held (for its `for`)."""
    transitions: int = 0
    """Switches so far."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, FallbackActive, MetricsAvailable."""


class FallbackPolicy(ApiModel):
    """Switches an InferenceService's traffic to a fallback when it is unhealthy."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    metadata: ObjectMeta
    spec: FallbackPolicySpec
    status: FallbackPolicyStatus = Field(default_factory=FallbackPolicyStatus)


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Target", "type": "string", "jsonPath": ".spec.target"},
    {"name": "Active", "type": "boolean", "jsonPath": ".status.active"},
    {"name": "Backend", "type": "string", "jsonPath": ".status.activeBackend"},
    {"name": "Since", "type": "date", "jsonPath": ".status.since"},
    {"name": "Transitions", "type": "integer", "jsonPath": ".status.transitions", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
