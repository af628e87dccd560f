"""Unit economics in an InferenceService's status: what a request costs, how fast and reliable
the model is, and how many of its GPU-hours sat idle. Absent fields mean "no data", never 0."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from aipolicy.api.common import ApiModel, ApiStatus, Money
from aipolicy.api.serving import FieldRule

#: The calibrated serving model's profiles (policy/serving.py PROFILES; a unit test keeps the two
#: equal). Spelled out here so the API does not depend on the policy package.
GPU_PROFILES = (
    "H100/8B",
    "A100-80GB/8B",
    "A100-40GB/8B",
    "L4/8B",
    "H100/70B-TP4",
    "H100/70B-TP8",
    "A100-80GB/70B-TP4",
    "A100-80GB/70B-TP8",
    "A100-40GB/70B-TP8",
)
_PROFILE_LIST = ", ".join(GPU_PROFILES)


def _known_profile(name: str) -> str:
    if name not in GPU_PROFILES:
        raise ValueError(
            f"{name!r} must be a profile of the calibrated serving model: one of {_PROFILE_LIST}"
        )
    return name


GpuProfileName = Annotated[
    str,
    Field(max_length=32),
    AfterValidator(_known_profile),
    FieldRule(
        "self in [" + ", ".join(f"'{name}'" for name in GPU_PROFILES) + "]",
        f"must be a profile of the calibrated serving model: one of {_PROFILE_LIST}",
    ),
]


class GpuAlternative(ApiModel):
    """Self-host or API, for an API-backed service: what serving its recorded traffic on GPUs would cost.

    Each evaluation sizes replicas of the profile for the window's request rate and mean token
    lengths at ttftP95, as `aipolicy simulate` and scaling.metric.type SLO do, and prices them at
    gpuHour; status.economics shows the result next to the API's cost. Never added to spend.
    """

    profile: GpuProfileName
    """A profile of the calibrated serving model (GPU/model size, see docs/serving-model.md), such as H100/8B or A100-80GB/70B-TP4."""
    gpu_hour: Money
    """Price of one GPU for one hour on the alternative (a replica of a TPn profile holds n GPUs)."""
    ttft_p95: float = Field(default=2.0, gt=0, le=600)
    """The 95th percentile of time to first token the GPU replicas are sized for, in seconds."""
    utilization: float = Field(default=0.9, gt=0, le=1)
    """The share of a replica's modelled sustainable request rate planned for, as scaling.slo.utilization."""


class UnitEconomics(ApiStatus):
    """Refreshed each evaluation over `window` (GPU-hours: since `periodStart`)."""

    window: str = "1h"
    """The window the rates, costs and percentiles are measured over."""
    evaluated_at: datetime | None = None
    """The instant these numbers are about (refreshed once a minute)."""
    requests_per_second: float | None = None
    """Requests finished per second."""
    cost_per_thousand_requests: str | None = None
    """Money per 1,000 requests: GPU-hours for a self-hosted service, tokens for an API-backed one (each counted once)."""
    cost_per_million_tokens: str | None = None
    """Money per million tokens (prompt and generated)."""
    ttft_p95_seconds: float | None = None
    """95th percentile time to first token."""
    e2e_p95_seconds: float | None = None
    """95th percentile end-to-end latency."""
    error_rate: float | None = None
    """Failed share of finished requests, 0 to 1."""
    period_start: datetime | None = None
    """Start of the period the GPU-hours are counted over (the current calendar month, UTC)."""
    gpu_hours_this_period: float | None = None
    """GPU-hours held since periodStart."""
    idle_gpu_hours_this_period: float | None = None
    """GPU-hours held with no request running or waiting, since periodStart."""
    idle_cost_this_period: str | None = None
    """What the idle GPU-hours cost."""
    api_cost_per_thousand_requests: str | None = None
    """Self-hosted services with token prices: what these requests would cost per 1,000 at those prices (an API provider's)."""
    gpu_alternative_replicas: int | None = None
    """API-backed services with provider.gpuAlternative: replicas of its profile the window's request rate needs at its ttftP95."""
    gpu_cost_per_thousand_requests: str | None = None
    """API-backed services with provider.gpuAlternative: what these requests would cost per 1,000 on those GPU replicas."""
    break_even_requests_per_day: float | None = None
    """Requests per day above which the GPUs cost less than the API would: a self-hosted service's GPUs against its token prices, or an API-backed service against its provider.gpuAlternative."""
    no_data: list[str] = Field(default_factory=list)
    """What could not be measured in the window, and why."""
