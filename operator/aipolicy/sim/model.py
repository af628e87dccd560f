"""Value types shared by the simulator core: service ids, capacities, faults, outcomes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = [
    "ApiCapacity",
    "Backend",
    "Faults",
    "FinishReason",
    "PodCapacity",
    "RequestOutcome",
    "ServiceId",
]


class Backend(StrEnum):
    """Self-hosted services run on pods; API-backed ones call a provider through a gateway."""

    SELF_HOSTED = "selfHosted"
    API = "api"


# vLLM's FinishReason strings (vllm/v1/engine/__init__.py, FINISH_REASON_STRINGS). vLLM
# counts every finished request in vllm:request_success_total with one of these as the
# finished_reason label: "error" is a request-level internal error (HTTP 500) and "abort"
# a request the client gave up on. It has no separate failure counter.
FinishReason = Literal["stop", "length", "abort", "error", "repetition"]
FINISH_REASONS: tuple[FinishReason, ...] = ("stop", "length", "abort", "error", "repetition")


@dataclass(frozen=True, order=True)
class ServiceId:
    """An InferenceService: namespace and name."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> ServiceId:
        """Parse ``namespace/name``."""
        namespace, sep, name = text.partition("/")
        if not sep or not namespace or not name or "/" in name:
            raise ValueError(f"expected 'namespace/name', got {text!r}")
        return cls(namespace, name)


def _positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value}")


@dataclass(frozen=True)
class PodCapacity:
    """What one replica (one vLLM server) can do.

    Prefill throughput is shared equally by the sequences in prefill; decode throughput is
    shared equally by the sequences in decode (continuous batching, approximated as
    processor sharing), each one capped at ``per_sequence_decode_tokens_per_s`` because a
    lone sequence cannot decode faster than one forward pass per token. The defaults are
    roughly an 8B model on one A100-class GPU; at them a replica serves ~5 requests/s of the
    Azure conversation trace (mean 1155 prompt, 211 output tokens).
    """

    prefill_tokens_per_s: float = 6000.0
    decode_tokens_per_s: float = 1200.0
    max_concurrent_sequences: int = 32
    per_sequence_decode_tokens_per_s: float | None = 40.0
    kv_cache_tokens: int = 131072

    def __post_init__(self) -> None:
        _positive("prefill_tokens_per_s", self.prefill_tokens_per_s)
        _positive("decode_tokens_per_s", self.decode_tokens_per_s)
        _positive("kv_cache_tokens", self.kv_cache_tokens)
        if self.max_concurrent_sequences < 1:
            raise ValueError("max_concurrent_sequences must be >= 1")
        if self.per_sequence_decode_tokens_per_s is not None:
            _positive("per_sequence_decode_tokens_per_s", self.per_sequence_decode_tokens_per_s)


@dataclass(frozen=True)
class ApiCapacity:
    """Latency of a hosted API per request: no queue, ``base + in/in_rate + out/out_rate``."""

    base_latency_s: float = 0.4
    input_tokens_per_s: float = 20000.0
    output_tokens_per_s: float = 80.0

    def __post_init__(self) -> None:
        if not (self.base_latency_s >= 0 and math.isfinite(self.base_latency_s)):
            raise ValueError("base_latency_s must be >= 0")
        _positive("input_tokens_per_s", self.input_tokens_per_s)
        _positive("output_tokens_per_s", self.output_tokens_per_s)


@dataclass(frozen=True)
class Faults:
    """Faults injected into one service, switchable at run time.

    * ``error_rate``: each arriving request fails fast (HTTP 500, ``finished_reason="error"``)
      with this probability, drawn from the service's seeded generator.
    * ``latency_multiplier``: prefill and decode run this many times slower (so latency
      grows by this factor at low load, and capacity shrinks by it).
    * ``outage``: the model server is broken but its process is up: when it starts, queued
      and running requests fail; while it lasts every arriving request fails after
      ``outage_latency_s`` (a gateway timeout), which shows as an error-rate and e2e-latency
      spike. Metrics keep being served, so the operator sees the outage.
    * ``metrics_unavailable``: the metrics endpoints answer 503 (Prometheus marks the
      targets down); serving itself is unaffected. Combine with ``outage`` for a dead server.
    """

    error_rate: float = 0.0
    latency_multiplier: float = 1.0
    outage: bool = False
    metrics_unavailable: bool = False
    outage_latency_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {self.error_rate}")
        _positive("latency_multiplier", self.latency_multiplier)
        if not (self.outage_latency_s >= 0 and math.isfinite(self.outage_latency_s)):
            raise ValueError("outage_latency_s must be >= 0")


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """How one request ended. ``pod`` is None when no replica ever held it."""

    service: ServiceId
    pod: str | None
    arrival: float
    finished_at: float
    prompt_tokens: int
    output_tokens: int
    reason: FinishReason
    queue_wait: float | None
    ttft: float | None

    @property
    def ok(self) -> bool:
        return self.reason in ("stop", "length")

    @property
    def e2e(self) -> float:
        return self.finished_at - self.arrival
