"""SLO-targeted sizing: replicas from the request rate and token sizes, through the serving model.

:func:`slo_requirement` turns what the service sees (requests/s, mean prompt and output tokens,
requests waiting) into the replicas an SLO needs, as a fractional number, with no per-replica
metric target to tune:

1. **Capacity per replica** at the SLO: :func:`~aipolicy.policy.serving.sustainable_rate` of the
   profile for the observed token sizes and ``slo.ttftP95``, times ``slo.utilization``.
2. **Plan rate**: the larger of the observed rate plus the backlog to clear within a minute, and
   the forecast for the coming ``cold start + interval`` (replicas asked for now serve then).
3. **Forecast**: the period (such as a day) is cut into ``bins`` slots; each remembers the
   highest rate seen in it, halved each time a new period enters the slot, so a recurring peak
   is remembered and a one-off one fades. An unseen slot forecasts nothing.

:func:`slo_replicas` then applies hysteresis: up as soon as ``ceil(required)`` exceeds the
current count; down only when one replica fewer would still have ``tolerance`` headroom, so a
load between two counts does not see-saw. The scaling pipeline (stabilization, steps, bounds)
does the rest. :func:`overflow` is the gateway's side: a request whose predicted time to first
token on the least-loaded Ready replica exceeds its budget goes to the API provider.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from aipolicy.api.common import parse_duration
from aipolicy.api.slo import ServingSlo
from aipolicy.policy.serving import LoadShape, ServingProfile, sustainable_rate

__all__ = [
    "ReplicaLoad",
    "ServiceLoad",
    "SloMemory",
    "SloRequirement",
    "overflow",
    "route",
    "slo_replicas",
    "slo_requirement",
]

# Backlog (waiting requests) is planned to be cleared within this many seconds.
BACKLOG_CLEAR_S = 60.0
# A replica whose KV cache is this full counts as saturated (the inference gateway's and
# llm-d's default kvCacheUtilThreshold, serving-anchors §9).
KV_SATURATED = 0.8
# Assumed coefficient of variation of prompt sizes: metrics give means only (Azure traces ~1).
PROMPT_CV = 1.0


@dataclass(frozen=True)
class ServiceLoad:
    """What the service saw over the metric window (demand, including what overflowed)."""

    requests_per_s: float
    prompt_tokens: float
    """Mean prompt tokens per request."""
    output_tokens: float
    """Mean output tokens per request."""
    waiting: float = 0.0
    """Requests waiting now (model-server queues and the front door)."""


@dataclass(frozen=True)
class SloMemory:
    """The forecast's slots (requests/s, -1 = unseen) and the slot last written."""

    seasonal: tuple[float, ...] = ()
    last_bin: int = -1


@dataclass(frozen=True)
class SloRequirement:
    required: float
    """Replicas the plan rate needs (fractional)."""
    per_replica: float
    """Requests/s one replica serves at the SLO and planned utilization."""
    plan_rate: float
    summary: str
    memory: SloMemory


@functools.lru_cache(maxsize=4096)
def _capacity(profile: ServingProfile, prompt: int, output: int, ttft: float) -> float:
    return sustainable_rate(profile, LoadShape(prompt, output, PROMPT_CV), ttft)


def _bin(slo: ServingSlo, at: datetime) -> int:
    period = parse_duration(slo.forecast.period).total_seconds()
    return int((at.timestamp() % period) / period * slo.forecast.bins) % slo.forecast.bins


def slo_requirement(
    slo: ServingSlo,
    profile: ServingProfile,
    load: ServiceLoad,
    memory: SloMemory,
    now: datetime,
    lead_s: float,
) -> SloRequirement:
    """The replicas the SLO needs now and ``lead_s`` ahead; see the module docstring."""
    bins = slo.forecast.bins
    seasonal = list(memory.seasonal) if len(memory.seasonal) == bins else [-1.0] * bins
    here = _bin(slo, now)
    rate = max(load.requests_per_s, 0.0)
    if here != memory.last_bin and seasonal[here] >= 0:
        seasonal[here] *= 0.5  # a new period enters the slot: last period's peak fades
    seasonal[here] = max(seasonal[here], rate)
    period = parse_duration(slo.forecast.period).total_seconds()
    slot_s = period / bins
    ahead = [
        seasonal[(here + k) % bins] for k in range(1, int(lead_s // slot_s) + 2) if (here + k) % bins != here
    ]
    forecast = max((v for v in ahead if v >= 0), default=0.0)
    observed = rate + max(load.waiting, 0.0) / BACKLOG_CLEAR_S
    plan = max(observed, forecast)
    prompt = max(1, round(load.prompt_tokens))
    output = max(1, round(load.output_tokens))
    per_replica = _capacity(profile, prompt, output, slo.ttft_p95) * slo.utilization
    required = plan / per_replica if per_replica > 0 else math.inf
    summary = (
        f"{rate:.3g} req/s ({prompt} in, {output} out tokens)"
        + (f", {load.waiting:g} waiting" if load.waiting else "")
        + (f", forecast {forecast:.3g} req/s" if forecast > observed else "")
        + f"; {per_replica:.3g} req/s per replica at p95 TTFT {slo.ttft_p95:g}s on {profile.name}"
    )
    return SloRequirement(required, per_replica, plan, summary, SloMemory(tuple(seasonal), here))


def slo_replicas(required: float, current: int, tolerance: float) -> int:
    """Hysteresis on the fractional requirement (see the module docstring)."""
    up = math.ceil(round(required, 9))
    if up > current:
        return up
    if current > 1 and required <= (current - 1) * (1 - tolerance):
        return max(math.ceil(round(required / (1 - tolerance), 9)), 1) if tolerance < 1 else 1
    return current


@dataclass(frozen=True)
class ReplicaLoad:
    """One Ready replica as the gateway sees it: prompt tokens not yet prefilled (queued and
    in prefill) and sequences decoding."""

    prompt_tokens_queued: float
    decoding: int
    kv_usage: float = 0.0
    """Share of the KV cache in use (vllm:kv_cache_usage_perc)."""


def route(
    slo: ServingSlo, profile: ServingProfile, replicas: Sequence[ReplicaLoad], prompt_tokens: int
) -> int | None:
    """The gateway's choice for one request: the index of the Ready replica with the shortest
    predicted time to first token, or None to send it to the overflow provider.

    The prediction: the prompt tokens queued ahead of it and its own, at the prefill rate the
    decodes leave, plus one step and the request overhead. A replica whose KV cache is 80 %
    full is saturated (new requests would wait for decodes to finish) and is not chosen. The
    request overflows when no replica is Ready and unsaturated, or when the best prediction
    exceeds ``ttftBudget`` x ``ttftP95``. Without ``slo.overflow``: the best replica, always.
    """
    best, best_ttft = None, math.inf
    for i, r in enumerate(replicas):
        if r.kv_usage >= KV_SATURATED and slo.overflow is not None:
            continue
        step = profile.alpha_s + profile.beta_s * r.decoding
        share = min(0.95, step / (step + profile.max_batched_tokens / profile.prefill_tokens_per_s))
        rate = profile.prefill_tokens_per_s * (1 - share)
        ttft = profile.request_overhead_s + step + (r.prompt_tokens_queued + prompt_tokens) / rate
        if ttft < best_ttft:
            best, best_ttft = i, ttft
    if slo.overflow is None:
        return best if best is not None else (0 if replicas else None)
    if best is None or best_ttft > slo.overflow.ttft_budget * slo.ttft_p95:
        return None
    return best


def overflow(
    slo: ServingSlo, profile: ServingProfile, replicas: Sequence[ReplicaLoad], prompt_tokens: int
) -> bool:
    """Whether a request goes to the overflow provider (see :func:`route`)."""
    if slo.overflow is None:
        return False
    return route(slo, profile, replicas, prompt_tokens) is None
