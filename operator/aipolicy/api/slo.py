"""scaling.slo: size replicas for a latency SLO through a calibrated serving model.

A separate sub-model of InferenceService's ``spec.scaling`` (used with ``metric.type: SLO``) and
its memory in status. The decision is :func:`aipolicy.policy.slo.slo_recommendation`.
"""

from __future__ import annotations

from pydantic import Field

from aipolicy.api.common import ApiModel, Duration

PROFILE_PATTERN = r"^(H100|A100-80GB|A100-40GB|L4)/(8B|70B-TP4|70B-TP8)$"


class SloForecast(ApiModel):
    """Scale ahead of load that recurs every period (such as a daily peak)."""

    period: Duration = "24h"
    """How often the load pattern repeats, such as 24h (daily) or 168h (weekly)."""
    bins: int = Field(default=96, ge=4, le=672)
    """Slots the period is cut into; each remembers the request rate seen in it."""


class SloOverflow(ApiModel):
    """Send what the replicas cannot serve within the SLO to an API-backed InferenceService."""

    inference_service: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    """An InferenceService in the same namespace with spec.provider, priced per token."""
    ttft_budget: float = Field(default=0.5, gt=0, le=1)
    """Overflow a request when its predicted time to first token on the least-loaded Ready replica exceeds this share of the SLO's ttftP95."""


class ServingSlo(ApiModel):
    """A latency SLO that scaling sizes replicas for (with scaling.metric.type SLO)."""

    ttft_p95: float = Field(default=2.0, gt=0, le=600)
    """The 95th percentile of time to first token to keep, in seconds."""
    profile: str | None = Field(default=None, pattern=PROFILE_PATTERN)
    """The serving profile (GPU/model size), such as A100-80GB/8B; empty: derived from serving.gpu and model."""
    utilization: float = Field(default=0.9, gt=0, le=1)
    """The share of the modelled sustainable request rate a replica is planned for (llm-d's analyzer keeps 10 % below its maximum)."""
    forecast: SloForecast = Field(default_factory=SloForecast)
    """Scale ahead of recurring load."""
    overflow: SloOverflow | None = None
    """Where requests go that the replicas cannot serve within the SLO (bursts, cold starts)."""


class SloStatus(ApiModel):
    """What SLO sizing remembers between decisions (so a restart loses no forecast)."""

    seasonal: list[float] = Field(default_factory=list, max_length=672)
    """Requests/s seen in each slot of the forecast period (-1: not seen yet)."""
    last_bin: int = -1
    """The slot written last (entering another one starts its new period)."""
