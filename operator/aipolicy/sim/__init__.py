"""A model-serving simulator standing in for a fleet of vLLM servers under real traffic.

Pods in the test cluster are faked by kwok and serve nothing; this package models what real
vLLM servers (and, for API-backed services, a LiteLLM-style gateway) would publish under a
traffic trace, so Prometheus and the operator see realistic series.

Layout: a pure, deterministic core (:mod:`.traffic`, :mod:`.pods`, :mod:`.api`,
:mod:`.fleet`, :mod:`.metrics`, :mod:`.offline`) and a thin I/O shell (:mod:`.server`,
:mod:`.cluster`, :mod:`.targets`, :mod:`.__main__`).

The packaged trace is the Azure LLM inference trace 2023 (conversation), CC-BY 4.0,
Patel et al., "Splitwise", ISCA 2024; see ``data/README.md``.
"""

from aipolicy.sim.fleet import Fleet, PodInfo, ServiceSettings
from aipolicy.sim.model import ApiCapacity, Backend, Faults, PodCapacity, RequestOutcome, ServiceId
from aipolicy.sim.offline import (
    Observation,
    ScalingPolicy,
    SimulationReport,
    fixed_replicas,
    simulate,
)
from aipolicy.sim.traffic import (
    Burst,
    ConstantRate,
    Diurnal,
    Request,
    Silence,
    Step,
    Trace,
    TraceError,
    TraceReplay,
    TrafficSource,
    default_trace,
    load_trace,
)

__all__ = [
    "ApiCapacity",
    "Backend",
    "Burst",
    "ConstantRate",
    "Diurnal",
    "Faults",
    "Fleet",
    "Observation",
    "PodCapacity",
    "PodInfo",
    "Request",
    "RequestOutcome",
    "ScalingPolicy",
    "ServiceId",
    "ServiceSettings",
    "Silence",
    "SimulationReport",
    "Step",
    "Trace",
    "TraceError",
    "TraceReplay",
    "TrafficSource",
    "default_trace",
    "fixed_replicas",
    "load_trace",
    "simulate",
]
