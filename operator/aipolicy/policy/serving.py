"""A calibrated step model of one vLLM replica, per (GPU, model) profile: pure data and arithmetic.

Each constant is cited in ``docs/serving-model.md`` (section numbers below refer to it). One
engine iteration ("step") with ``B`` sequences decoding, ``ctx`` tokens of context held by
them and ``N`` prompt tokens prefilled (chunked prefill: decodes first, prompt chunks fill the
rest of the ``max_num_batched_tokens`` budget) takes::

    T_step = alpha + beta * B + kappa * max(0, ctx - 512 * B) + N / P

``alpha`` is the low-load inter-token latency, ``beta`` the clean-decode slope per sequence,
``kappa`` the extra KV read per context token beyond the ~512 tokens ``beta`` was measured
with, ``P`` the prefill rate. A request's TTFT adds ``request_overhead_s``. Concurrency is
bounded by ``max_num_seqs`` and by the KV cache (``kv_tokens``).

The simulator (:mod:`aipolicy.whatif.engine`) runs this step by step; the SLO policy
(:mod:`aipolicy.policy.slo`) uses :func:`sustainable_rate`, a closed-form queueing estimate on
top of the same constants, so the two share their calibration but not their arithmetic.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aipolicy.api.inferenceservice import InferenceService, InferenceServiceSpec

__all__ = [
    "PROFILES",
    "LoadShape",
    "ServingProfile",
    "predicted_ttft_p95",
    "profile_for",
    "serving_profile",
    "sustainable_rate",
]

# Context tokens per sequence that beta already covers (measured with 128-512-token contexts).
CONTEXT_FREE_TOKENS = 512


@dataclass(frozen=True)
class ServingProfile:
    """What one replica of a model on a GPU type does; see docs/serving-model.md for sources."""

    name: str
    gpu: str
    model_size: str
    tensor_parallel: int
    alpha_s: float
    """Step time with one decoding sequence (low-load ITL), seconds."""
    beta_s: float
    """Added step time per decoding sequence, seconds."""
    kappa_s: float
    """Added step time per context token beyond 512 per sequence, seconds."""
    prefill_tokens_per_s: float
    kv_tokens: int
    """KV-cache capacity of the replica, tokens."""
    max_num_seqs: int
    max_batched_tokens: int
    request_overhead_s: float = 0.015
    """Added to every TTFT (WVA gamma 15.4 ms, BLIS 15.6 ms)."""
    cold_start_median_s: float = 60.0
    cold_start_cv: float = 0.3

    def step_time(self, decodes: int, context_tokens: float, prefill_tokens: int) -> float:
        """Seconds of one engine step (see the module docstring)."""
        excess = context_tokens - CONTEXT_FREE_TOKENS * decodes
        return (
            self.alpha_s
            + self.beta_s * decodes
            + (self.kappa_s * excess if excess > 0 else 0.0)
            + prefill_tokens / self.prefill_tokens_per_s
        )


def _profile(name: str, tp: int, alpha_ms: float, beta_ms: float, kappa_us: float, prefill: float,
             kv: int, seqs: int, budget: int, cold_start_s: float = 60.0) -> ServingProfile:  # fmt: skip
    gpu, _, size = name.partition("/")
    return ServingProfile(
        name, gpu, size.split("-")[0], tp, alpha_ms / 1e3, beta_ms / 1e3, kappa_us / 1e6, prefill, kv, seqs,
        budget, cold_start_median_s=cold_start_s,
    )  # fmt: skip


# The suggested constants of serving-calibration §10 (see docs/serving-model.md for each source):
# name, TP, alpha ms, beta ms/seq, kappa µs/token, prefill tok/s, KV tokens, max_num_seqs,
# max_num_batched_tokens, cold-start median s.
PROFILES: dict[str, ServingProfile] = {
    p.name: p
    for p in (
        _profile("H100/8B", 1, 7, 0.04, 0.076, 27_000, 430_000, 1024, 8192),
        _profile("A100-80GB/8B", 1, 12, 0.1, 0.125, 13_000, 430_000, 256, 2048),
        _profile("A100-40GB/8B", 1, 13, 0.1, 0.163, 13_000, 140_000, 256, 2048),
        _profile("L4/8B", 1, 70, 0.2, 0.85, 3_000, 22_000, 256, 2048),
        _profile("H100/70B-TP4", 4, 20, 0.2, 0.048, 12_000, 440_000, 1024, 8192, 180),
        _profile("H100/70B-TP8", 8, 18, 0.2, 0.024, 15_000, 1_300_000, 1024, 8192, 180),
        _profile("A100-80GB/70B-TP4", 4, 31, 0.3, 0.079, 5_300, 440_000, 256, 2048, 180),
        _profile("A100-80GB/70B-TP8", 8, 28, 0.3, 0.040, 7_500, 1_300_000, 256, 2048, 180),
        _profile("A100-40GB/70B-TP8", 8, 32, 0.3, 0.052, 7_500, 400_000, 256, 2048, 180),
    )
}

_GPU_NAMES = (("H100", "H100"), ("H200", "H100"), ("A100-SXM4-80GB", "A100-80GB"), ("A100-80GB", "A100-80GB"),
              ("A100", "A100-40GB"), ("L4", "L4"))  # fmt: skip


def _gpu_of(product: str | None) -> str:
    text = (product or "").upper()
    for needle, gpu in _GPU_NAMES:
        if needle.upper() in text:
            return gpu
    return ""


def _size_of(model: str) -> float | None:
    found = re.findall(r"(\d+(?:\.\d+)?)\s*[bB](?![a-zA-Z])", model)
    return float(found[-1]) if found else None


def serving_profile(isvc: InferenceService) -> ServingProfile | None:
    """What the SLO policy sizes for: scaling.slo.profile, else the profile for the model and GPU
    product (:func:`profile_for`); None for an API-backed service or when none fits."""
    return spec_serving_profile(isvc.spec)


def spec_serving_profile(spec: InferenceServiceSpec) -> ServingProfile | None:
    """:func:`serving_profile` from the spec alone (the gateway reads specs, not objects)."""
    slo, serving = spec.scaling.slo, spec.serving
    if slo is not None and slo.profile:
        return PROFILES[slo.profile]
    if serving is None:
        return None
    try:
        return profile_for(spec.model, serving.gpu.product, serving.gpu.count)[0]
    except ValueError:
        return None


def profile_for(model: str, gpu_product: str | None, gpus: int) -> tuple[ServingProfile, str]:
    """The profile for a model on a GPU product, and a note when it is an approximation.

    Models up to 8B parameters use the 8B profile (conservative for smaller ones), larger ones
    the 70B profile with the replica's GPU count as tensor parallelism (4 or 8). An unknown GPU
    product falls back to A100-80GB. Raises ValueError when nothing fits (a 70B model on fewer
    than 4 GPUs).
    """
    notes: list[str] = []
    gpu = _gpu_of(gpu_product)
    if not gpu:
        gpu = "A100-80GB"
        notes.append(f"no profile for GPU {gpu_product or '(unset)'}; using A100-80GB")
    size = _size_of(model)
    if size is None:
        notes.append(f"model size not in the name {model!r}; assuming 8B")
        size = 8.0
    if size <= 8:
        if size < 8:
            notes.append(f"{size:g}B model simulated with the 8B profile (conservative)")
        name = f"{gpu}/8B"
    else:
        if size != 70:
            notes.append(f"{size:g}B model simulated with the 70B profile")
        if gpus < 4:
            raise ValueError(f"a {size:g}B model needs at least 4 GPUs per replica; the spec asks for {gpus}")
        tp = 8 if gpus >= 8 else 4
        name = f"{gpu}/70B-TP{tp}"
        if name not in PROFILES:  # A100-40GB cannot hold 70B at TP4 (serving-calibration §2)
            raise ValueError(f"no profile for {name}: 70B weights at TP{tp} do not fit in {gpu} memory")
    return PROFILES[name], "; ".join(notes)


@dataclass(frozen=True)
class LoadShape:
    """The traffic a replica sees: mean prompt and output tokens, and the prompts' spread."""

    prompt_tokens: float
    output_tokens: float
    prompt_cv: float = 1.0
    """Coefficient of variation of prompt sizes (the Azure traces: about 1)."""


def _itl(profile: ServingProfile, rate: float, shape: LoadShape) -> float | None:
    """Steady-state step time at ``rate`` requests/s on one replica, or None past saturation.

    Fluid balance of chunked prefill: every step carries the prompt tokens that arrived during
    it, so ``T = alpha + (beta + kappa * c) * B + rate * L_in * T / P`` with ``B = rate * L_out
    * T`` (Little's law), c the context beyond 512 tokens per sequence. Then
    ``T = alpha / (1 - u)`` with ``u = rate * (L_in / P + (beta + kappa * c) * L_out)``.
    """
    context = max(0.0, shape.prompt_tokens + shape.output_tokens / 2 - CONTEXT_FREE_TOKENS)
    per_token = profile.beta_s + profile.kappa_s * context
    u = rate * (shape.prompt_tokens / profile.prefill_tokens_per_s + per_token * shape.output_tokens)
    if u >= 1:
        return None
    step = profile.alpha_s / (1 - u)
    running = rate * shape.output_tokens * step
    # The batch fluctuates (Poisson: about 2 standard deviations above its mean at the 97th
    # percentile), and long requests hold the cache longer: per sequence the time-averaged
    # context is L_in + L_out * (1 + cv_out^2) / 2, with cv_out assumed 1 (the Azure traces).
    peak = running + 2 * math.sqrt(running)
    held = peak * (shape.prompt_tokens + shape.output_tokens)
    if peak > profile.max_num_seqs or held > profile.kv_tokens:
        return None
    return step


def predicted_ttft_p95(profile: ServingProfile, rate: float, shape: LoadShape) -> float:
    """p95 TTFT at ``rate`` requests/s on one replica (inf past saturation).

    Prefill is a FCFS server of prompt tokens: a step carries a chunk of the budget the decodes
    leave (``max_num_batched_tokens - B``) and lasts the decode part of the step plus the
    chunk's prefill time, which gives its token rate ``P_left``; its utilisation is
    ``rho = rate * L_in / P_left``. Waiting is M/G/1 (Pollaczek-Khinchine, with
    the prompt spread ``prompt_cv``) and its tail exponential, so the p95 wait is
    ``W * ln(20 * rho) / rho`` (zero when ``rho < 1/20``); the request's own prefill is at its
    95th percentile, ``L_in * (1 + 1.6 * cv)``, plus one step and the request overhead.
    """
    if rate <= 0:
        alone = shape.prompt_tokens / profile.prefill_tokens_per_s
        return profile.request_overhead_s + profile.alpha_s + alone
    step = _itl(profile, rate, shape)
    if step is None:
        return math.inf
    running = rate * shape.output_tokens * step
    chunk = max(profile.max_batched_tokens - running, 16.0)
    overhead = step - rate * shape.prompt_tokens * step / profile.prefill_tokens_per_s
    prefill_rate = chunk / (overhead + chunk / profile.prefill_tokens_per_s)
    service = shape.prompt_tokens / prefill_rate
    rho = rate * service
    if rho >= 1:
        return math.inf
    second_moment = service**2 * (1 + shape.prompt_cv**2)
    wait_mean = rate * second_moment / (2 * (1 - rho))
    wait_p95 = wait_mean * math.log(20 * rho) / rho if rho > 0.05 else 0.0
    own = shape.prompt_tokens * (1 + 1.6 * shape.prompt_cv) / prefill_rate
    return profile.request_overhead_s + step + own + wait_p95


def sustainable_rate(profile: ServingProfile, shape: LoadShape, ttft_p95_s: float) -> float:
    """The highest requests/s one replica serves with predicted p95 TTFT <= ``ttft_p95_s``.

    Bisection on :func:`predicted_ttft_p95`, which grows with the rate. 0 if even one request
    alone misses the target.
    """
    if predicted_ttft_p95(profile, 0.0, shape) > ttft_p95_s:
        return 0.0
    lo, hi = 0.0, 1.0
    while predicted_ttft_p95(profile, hi, shape) <= ttft_p95_s and hi < 1e6:
        lo, hi = hi, hi * 2
    for _ in range(40):
        mid = (lo + hi) / 2
        if predicted_ttft_p95(profile, mid, shape) <= ttft_p95_s:
            lo = mid
        else:
            hi = mid
    return lo
