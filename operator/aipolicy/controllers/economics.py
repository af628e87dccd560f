"""What the InferenceService controller gathers for `status.economics`, once a minute about the
minute's start (asked SETTLE later), so every service shares one answer per query; the
arithmetic is policy.economics.unit_economics."""

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
#: How long after the refresh instant its numbers are asked: scrapes that started before the
#: instant are stamped before it but stored only when they finish, and a query that comes first
#: misses them for good (status keeps that answer until the next refresh). On a loaded machine
#: the e2e saw the last 15 s step of GPUs held missing (15/16 of the PromQL asked later); an
#: hour's numbers lose nothing by waiting a few seconds more.
SETTLE = timedelta(seconds=10)
#: GPU-hours over a month are sampled once a refresh (every minute): a finer step costs
#: Prometheus far more and changes an hour's total by a minute at most; one sample a refresh
#: means each refresh sees a new one
PERIOD_STEP_SECONDS = int(REFRESH.total_seconds())


def due(economics: UnitEconomics | None, now: datetime) -> datetime | None:
    """The instant to evaluate at now, or None when this minute's economics are in status."""
    at = aligned(now - SETTLE, REFRESH)
    if economics is not None and economics.evaluated_at is not None and economics.evaluated_at >= at:
        return None
    return at


def next_refresh(now: datetime) -> datetime:
    return aligned(now - SETTLE, REFRESH) + REFRESH + SETTLE


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

    return EconomicsReadings(
        requests=await value_of(presets.requests_finished(names, window)),
        failed_requests=await sum_of(presets.requests_failed(names, window)),
        input_tokens=await value_of(presets.token_increase(names, "input", window)),
        output_tokens=await value_of(presets.token_increase(names, "output", window)),
        gpu_hours=await sum_of(presets.gpu_hours(window, 15, gpu)),
        ttft_p95=await value_of(presets.service_latency_quantile(names, "ttft", 0.95, window)),
        e2e_p95=await value_of(presets.service_latency_quantile(names, "e2e", 0.95, window)),
        period_gpu_hours=await sum_of(presets.gpu_hours(month, PERIOD_STEP_SECONDS, gpu)),
        period_idle_gpu_hours=await sum_of(presets.idle_gpu_hours(names, month, PERIOD_STEP_SECONDS, gpu)),
    )
