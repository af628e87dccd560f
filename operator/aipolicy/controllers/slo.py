"""What the InferenceService controller gathers for scaling.metric.type SLO: the request rate
and token sizes (policy.slo.ServiceLoad) and the serving profile; and the forecast's memory in
status. The decision itself is policy.slo through decide_replicas."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from aipolicy.api.inferenceservice import InferenceService, InferenceServiceStatus
from aipolicy.api.slo import SloStatus
from aipolicy.controllers.runtime import Runtime
from aipolicy.observe import presets
from aipolicy.policy.observations import Unavailable, Value
from aipolicy.policy.scaling import ScalingDecision, ScalingMemory
from aipolicy.policy.serving import serving_profile
from aipolicy.policy.slo import ServiceLoad, SloMemory

__all__ = ["observe_load", "serving_profile", "with_slo_memory", "write_slo_memory"]

Key = tuple[str, str]


async def observe_load(
    rt: Runtime, isvc: InferenceService, key: Key, at: datetime
) -> ServiceLoad | Unavailable:
    """Request rate and mean sizes over metric.window: the demand, as the aipolicy gateway saw
    it arrive (overflowed and refused requests included), else the model servers' finished
    requests for a service the gateway does not front (presets.slo_load); the backlog is the
    model servers' ``waiting``."""
    if rt.prometheus is None:
        return Unavailable("QueryError", "no Prometheus URL configured")
    # the service's own preset: an SGLang or TGI service's servers do not export vLLM's names
    names = presets.metric_names(isvc.spec.metrics.preset, rt.metric_names)
    queries = presets.slo_load(names, isvc.spec.scaling.metric.window)
    readings = [(await rt.prometheus.grouped(q, at)).reading_or_zero_when_answered(key) for q in queries]
    for r in readings:
        if isinstance(r, Unavailable):
            return r
    rate, prompt, output, waiting = (r.value if isinstance(r, Value) else 0.0 for r in readings)
    if rate <= 0:
        # nothing finished in the window: sizes unknown, a typical chat request is assumed
        return ServiceLoad(0.0, 1000.0, 200.0, waiting)
    return ServiceLoad(rate, prompt / rate, output / rate, waiting)


def with_slo_memory(memory: ScalingMemory, status: InferenceServiceStatus) -> ScalingMemory:
    if status.slo is None:
        return memory
    return replace(memory, slo=SloMemory(tuple(status.slo.seasonal), status.slo.last_bin))


def write_slo_memory(status: InferenceServiceStatus, decision: ScalingDecision) -> None:
    slo = decision.memory.slo
    if slo.seasonal:
        status.slo = SloStatus(seasonal=list(slo.seasonal), last_bin=slo.last_bin)
