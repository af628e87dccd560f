"""What the InferenceService controller gathers for `status.economics`, once a minute at the
minute's start, so every service shares one answer per query; the arithmetic is
policy.economics.unit_economics."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from aipolicy.api.economics import UnitEconomics
from aipolicy.api.inferenceservice import InferenceService
from aipolicy.controllers.runtime import Runtime
from aipolicy.observe import presets
from aipolicy.observe.prometheus import ServiceKey
from aipolicy.policy.cycles import aligned
from aipolicy.policy.economics import ECONOMICS_WINDOW, EconomicsReadings, unit_economics
from aipolicy.policy.observations import Reading, Unavailable

#: Once a minute. AIPOLICY_ECONOMICS_REFRESH_SECONDS shortens it for the e2e tests (as
#: AIPOLICY_TICK_SECONDS does the tick), read once at import.
REFRESH = timedelta(seconds=int(os.environ.get("AIPOLICY_ECONOMICS_REFRESH_SECONDS", "60")))
#: GPU-hours over a month are sampled once a refresh (every minute): a finer step costs
#: Prometheus far more and changes an hour's total by a minute at most; one sample a refresh
#: means each refresh sees a new one
PERIOD_STEP_SECONDS = int(REFRESH.total_seconds())


def due(economics: UnitEconomics | None, now: datetime) -> datetime | None:
    """The instant to evaluate at now, or None when this minute's economics are in status."""
    at = aligned(now, REFRESH)
    if economics is not None and economics.evaluated_at is not None and economics.evaluated_at >= at:
        return None
    return at


def next_refresh(now: datetime) -> datetime:
    return aligned(now, REFRESH) + REFRESH


def period_start(at: datetime) -> datetime:
    """The current calendar month in UTC: the period GPU-hours are counted over."""
    return at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def evaluate(rt: Runtime, isvc: InferenceService, key: ServiceKey, at: datetime) -> UnitEconomics:
    readings = await _observe(rt, isvc, key, at)
    economics = unit_economics(isvc.spec, readings, window=ECONOMICS_WINDOW, period_start=period_start(at))
    economics.evaluated_at = at
    return economics


async def _observe(rt: Runtime, isvc: InferenceService, key: ServiceKey, at: datetime) -> EconomicsReadings:
    if rt.prometheus is None:
        missing = Unavailable("QueryError", "no Prometheus URL configured")
        return EconomicsReadings(*([missing] * 9))
    names = presets.metric_names(isvc.spec.metrics.preset, rt.metric_names)
    window = f"{int(ECONOMICS_WINDOW.total_seconds())}s"
    month = f"{max(int((at - period_start(at)).total_seconds()), 60)}s"
    gpu = isvc.spec.serving.gpu.resource_name if isvc.spec.serving else "nvidia.com/gpu"
    prometheus = rt.prometheus

    async def sum_of(query: str | None) -> Reading:
        """A sum over the service's pods: an answered query without its series means none."""
        if query is None:
            return Unavailable("NoData", "the model server exports no such metric")
        return (await prometheus.grouped(query, at)).reading_or_zero_when_answered(key)

    async def value_of(query: str | None) -> Reading:
        if query is None:
            return Unavailable("NoData", "the model server exports no such metric")
        return (await prometheus.grouped(query, at)).reading(key)

    def quantile(histogram: str | None) -> str | None:
        if histogram is None:
            return None
        return f"histogram_quantile(0.95, sum by ({presets.BY}, le) (increase({histogram}_bucket[{window}])))"

    return EconomicsReadings(
        requests=await value_of(presets.requests_finished(names, window)),
        failed_requests=await sum_of(presets.requests_failed(names, window)),
        input_tokens=await value_of(presets.token_increase(names, "input", window)),
        output_tokens=await value_of(presets.token_increase(names, "output", window)),
        gpu_hours=await sum_of(presets.gpu_hours(window, 15, gpu)),
        ttft_p95=await value_of(quantile(names.ttft)),
        e2e_p95=await value_of(quantile(names.e2e_latency)),
        period_gpu_hours=await sum_of(presets.gpu_hours(month, PERIOD_STEP_SECONDS, gpu)),
        period_idle_gpu_hours=await sum_of(presets.idle_gpu_hours(names, month, PERIOD_STEP_SECONDS, gpu)),
    )
