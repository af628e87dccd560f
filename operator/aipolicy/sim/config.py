"""The simulator's configuration: YAML file and control-API bodies (pydantic, camelCase).

Example ``sim.yaml``::

    seed: 7
    defaults:                      # for services seen only through their pods
      capacity: {prefillTokensPerSecond: 6000, decodeTokensPerSecond: 1200}
    services:
      team-a/chat:                 # namespace/InferenceService
        modelName: llama-3.1-8b
        capacity:
          prefillTokensPerSecond: 6000
          decodeTokensPerSecond: 1200
          maxConcurrentSequences: 32
          perSequenceDecodeTokensPerSecond: 40
          kvCacheTokens: 131072
        queueTimeoutSeconds: 120
        traffic: {kind: trace, speedup: 10, scale: 1}
        faults: {errorRate: 0.0}
      team-a/gpt:
        backend: api
        modelName: gpt-4o-mini
        apiCapacity: {baseLatencySeconds: 0.4, outputTokensPerSecond: 80}
        traffic: {kind: constant, rate: 2, duration: 3600}

Traffic kinds: ``trace`` (``path`` only in the file, default the packaged Azure trace;
``speedup``, ``scale``, ``seed``), ``constant`` (``rate``), ``step`` (``before``, ``after``,
``at``), ``burst`` (``base``, ``peak``, ``start``, ``length``), ``diurnal`` (``mean``,
``amplitude``, ``period``, ``peakAt``), ``silence``; every synthetic kind takes
``duration``, ``promptTokens``, ``outputTokens``, ``arrivals`` (uniform|poisson), ``seed``
and ``sizesFromTrace`` (draw sizes from the packaged trace).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from aipolicy.sim.fleet import ServiceSettings
from aipolicy.sim.model import ApiCapacity, Backend, Faults, PodCapacity, ServiceId
from aipolicy.sim.traffic import (
    Burst,
    ConstantRate,
    Diurnal,
    RateShape,
    ShapeOptions,
    Silence,
    Step,
    TraceReplay,
    TrafficSource,
    default_trace,
    load_trace,
)

__all__ = [
    "ConfigError",
    "FaultSpec",
    "ServiceSpec",
    "SimConfig",
    "TrafficSpec",
    "build_traffic",
    "load_config",
    "parse_traffic",
]


class ConfigError(ValueError):
    """A configuration file or control-API body that cannot be used."""


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class TraceTraffic(_Spec):
    kind: Literal["trace"]
    path: str | None = None
    speedup: float = Field(1.0, gt=0)
    scale: float = Field(1.0, ge=0)
    seed: int = 0


class _ShapeSpec(_Spec):
    duration: float = Field(3600.0, ge=0)
    prompt_tokens: int = Field(512, ge=0)
    output_tokens: int = Field(128, ge=0)
    arrivals: Literal["uniform", "poisson"] = "uniform"
    seed: int = 0
    sizes_from_trace: bool = False

    def options(self) -> ShapeOptions:
        return ShapeOptions(
            duration=self.duration,
            prompt_tokens=self.prompt_tokens,
            output_tokens=self.output_tokens,
            arrivals=self.arrivals,
            seed=self.seed,
            sizes_from=default_trace() if self.sizes_from_trace else None,
        )


class ConstantTraffic(_ShapeSpec):
    kind: Literal["constant"]
    rate: float = Field(ge=0)


class StepTraffic(_ShapeSpec):
    kind: Literal["step"]
    before: float = Field(ge=0)
    after: float = Field(ge=0)
    at: float = Field(gt=0)


class BurstTraffic(_ShapeSpec):
    kind: Literal["burst"]
    base: float = Field(ge=0)
    peak: float = Field(ge=0)
    start: float = Field(ge=0)
    length: float = Field(gt=0)


class DiurnalTraffic(_ShapeSpec):
    kind: Literal["diurnal"]
    mean: float = Field(ge=0)
    amplitude: float = Field(0.5, ge=0, le=1)
    period: float = Field(86400.0, gt=0)
    peak_at: float = 0.0


class SilenceTraffic(_ShapeSpec):
    kind: Literal["silence"]


TrafficSpec = Annotated[
    TraceTraffic | ConstantTraffic | StepTraffic | BurstTraffic | DiurnalTraffic | SilenceTraffic,
    Field(discriminator="kind"),
]


class _TrafficBody(_Spec):
    traffic: TrafficSpec


def parse_traffic(data: object, *, allow_path: bool = False) -> TrafficSpec:
    """Validate a traffic spec; ``path`` is refused unless ``allow_path`` (control API)."""
    try:
        spec = _TrafficBody.model_validate({"traffic": data}).traffic
    except ValidationError as exc:
        raise ConfigError(str(exc)) from None
    if isinstance(spec, TraceTraffic) and spec.path is not None and not allow_path:
        raise ConfigError("traffic.path is accepted only in the config file")
    return spec


def build_traffic(spec: TrafficSpec, *, base_dir: Path | None = None) -> TrafficSource:
    """Turn a validated spec into a traffic source (a trace path is relative to base_dir)."""
    if isinstance(spec, TraceTraffic):
        trace = default_trace()
        if spec.path is not None:
            p = Path(spec.path)
            trace = load_trace(p if p.is_absolute() or base_dir is None else base_dir / p)
        return TraceReplay(trace, speedup=spec.speedup, scale=spec.scale, seed=spec.seed)
    shape: RateShape
    opts = spec.options()
    if isinstance(spec, ConstantTraffic):
        shape = ConstantRate(spec.rate, **opts)
    elif isinstance(spec, StepTraffic):
        shape = Step(spec.before, spec.after, spec.at, **opts)
    elif isinstance(spec, BurstTraffic):
        shape = Burst(spec.base, spec.peak, spec.start, spec.length, **opts)
    elif isinstance(spec, DiurnalTraffic):
        shape = Diurnal(spec.mean, spec.amplitude, spec.period, spec.peak_at, **opts)
    else:
        shape = Silence(**opts)
    return shape


class CapacitySpec(_Spec):
    prefill_tokens_per_second: float = Field(6000.0, gt=0)
    decode_tokens_per_second: float = Field(1200.0, gt=0)
    max_concurrent_sequences: int = Field(32, ge=1)
    per_sequence_decode_tokens_per_second: float | None = Field(40.0, gt=0)
    kv_cache_tokens: int = Field(131072, ge=1)

    def build(self) -> PodCapacity:
        return PodCapacity(
            prefill_tokens_per_s=self.prefill_tokens_per_second,
            decode_tokens_per_s=self.decode_tokens_per_second,
            max_concurrent_sequences=self.max_concurrent_sequences,
            per_sequence_decode_tokens_per_s=self.per_sequence_decode_tokens_per_second,
            kv_cache_tokens=self.kv_cache_tokens,
        )


class ApiCapacitySpec(_Spec):
    base_latency_seconds: float = Field(0.4, ge=0)
    input_tokens_per_second: float = Field(20000.0, gt=0)
    output_tokens_per_second: float = Field(80.0, gt=0)

    def build(self) -> ApiCapacity:
        return ApiCapacity(
            base_latency_s=self.base_latency_seconds,
            input_tokens_per_s=self.input_tokens_per_second,
            output_tokens_per_s=self.output_tokens_per_second,
        )


class FaultSpec(_Spec):
    """``PUT /faults/<ns>/<svc>`` body and the ``faults`` entry of a service."""

    error_rate: float = Field(0.0, ge=0, le=1)
    latency_multiplier: float = Field(1.0, gt=0)
    outage: bool = False
    metrics_unavailable: bool = False
    outage_latency_seconds: float = Field(30.0, ge=0)

    def build(self) -> Faults:
        return Faults(
            error_rate=self.error_rate,
            latency_multiplier=self.latency_multiplier,
            outage=self.outage,
            metrics_unavailable=self.metrics_unavailable,
            outage_latency_s=self.outage_latency_seconds,
        )


class ServiceSpec(_Spec):
    """One service in the config file, or a ``PUT /services/<ns>/<svc>`` body."""

    backend: Backend = Backend.SELF_HOSTED
    model_name: str | None = None
    capacity: CapacitySpec = CapacitySpec()
    api_capacity: ApiCapacitySpec = ApiCapacitySpec()
    queue_timeout_seconds: float | None = Field(None, gt=0)
    traffic: TrafficSpec | None = None
    faults: FaultSpec | None = None

    def settings(self) -> ServiceSettings:
        return ServiceSettings(
            backend=self.backend,
            model=self.model_name,
            capacity=self.capacity.build(),
            api_capacity=self.api_capacity.build(),
            queue_timeout_s=self.queue_timeout_seconds,
        )


class SimConfig(_Spec):
    """The whole ``serve`` configuration file."""

    seed: int = 0
    defaults: ServiceSpec = ServiceSpec()
    services: dict[str, ServiceSpec] = {}

    @field_validator("services")
    @classmethod
    def _keys_are_ids(cls, v: dict[str, ServiceSpec]) -> dict[str, ServiceSpec]:
        for key in v:
            ServiceId.parse(key)  # raises ValueError -> validation error naming the key
        return v

    def service_specs(self) -> dict[ServiceId, ServiceSpec]:
        return {ServiceId.parse(k): s for k, s in self.services.items()}


def load_config(path: str | Path | None) -> SimConfig:
    """Load a YAML config; None gives the defaults (no configured services)."""
    if path is None:
        return SimConfig()
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{p}: {exc}") from None
    try:
        return SimConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{p}: {exc}") from None
