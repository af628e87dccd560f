"""Unit economics in an InferenceService's status: what a request costs, how fast and reliable
the model is, and how many of its GPU-hours sat idle. Absent fields mean "no data", never 0."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from aipolicy.api.common import ApiStatus


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
    break_even_requests_per_day: float | None = None
    """Self-hosted services with token prices: requests per day above which the GPUs cost less than the API would."""
    no_data: list[str] = Field(default_factory=list)
    """What could not be measured in the window, and why."""
