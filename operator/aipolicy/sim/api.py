"""An API-backed InferenceService: a hosted model behind a LiteLLM-style gateway.

There are no pods and no queue: the provider is treated as elastic, so each request takes
``base + prompt/input_rate + output/output_rate`` seconds (times the latency multiplier)
whatever the load. The gateway counts a request when it ends, as LiteLLM's success and
failure hooks do; tokens and latency are counted for successes only.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from aipolicy.sim.metrics import LITELLM_LATENCY_BUCKETS, ApiMetrics, Histogram
from aipolicy.sim.model import ApiCapacity, Faults, RequestOutcome, ServiceId
from aipolicy.sim.pods import FAST_FAIL_LATENCY_S, RequestWatcher
from aipolicy.sim.traffic import Request, TrafficCursor

__all__ = ["ApiService"]


@dataclass(frozen=True, slots=True)
class _InFlight:
    request: Request
    ok: bool
    watcher: RequestWatcher | None = None
    #: A real request came through a real gateway, which counts it: the simulated gateway's
    #: counters (this class's metrics) only count simulated traffic, or both would.
    real: bool = False


class ApiService:
    """One API-backed service: in-flight requests, faults, traffic and gateway counters."""

    def __init__(
        self,
        service: ServiceId,
        *,
        capacity: ApiCapacity,
        model: str | None = None,
        seed: int = 0,
        on_outcome: Callable[[RequestOutcome], None] | None = None,
        now: float = 0.0,
    ) -> None:
        self.service = service
        self.capacity = capacity
        self.model = model
        self.faults = Faults()
        self.now = now
        self.requests = 0
        self.failed = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.arrived = 0
        self.latency = Histogram(LITELLM_LATENCY_BUCKETS)
        self._rng = random.Random(seed)
        self._on_outcome = on_outcome
        self.traffic: TrafficCursor | None = None  # the simulated arrivals to come
        self._flight: list[tuple[float, int, _InFlight]] = []
        self._seq = 0

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults

    @property
    def in_flight(self) -> int:
        return len(self._flight)

    @property
    def idle(self) -> bool:
        return (self.traffic is None or self.traffic.exhausted) and not self._flight

    def _latency(self, r: Request) -> float:
        c = self.capacity
        base = (
            c.base_latency_s
            + r.prompt_tokens / c.input_tokens_per_s
            + r.output_tokens / c.output_tokens_per_s
        )
        return base * self.faults.latency_multiplier

    def advance(self, t_end: float) -> None:
        """Process arrivals and completions up to ``t_end`` in time order."""
        if t_end < self.now:
            raise ValueError(f"time goes forward only: {t_end} < {self.now}")
        while True:
            t_arrival = self.traffic.peek_time() if self.traffic else math.inf
            t_done = self._flight[0][0] if self._flight else math.inf
            t_next = min(t_arrival, t_done)
            if t_next > t_end:
                self.now = t_end
                return
            self.now = t_next
            while self._flight and self._flight[0][0] <= self.now:
                _, _, item = heapq.heappop(self._flight)
                self._complete(item)
            if self.traffic is not None:
                for r in self.traffic.take_until(self.now):
                    self._start(r)

    def _start(self, r: Request, watcher: RequestWatcher | None = None) -> None:
        if watcher is None:
            self.arrived += 1
        f = self.faults
        if f.outage:
            delay, ok = f.outage_latency_s, False
        elif f.error_rate > 0 and (f.error_rate >= 1 or self._rng.random() < f.error_rate):
            delay, ok = FAST_FAIL_LATENCY_S, False
        else:
            delay, ok = self._latency(r), True
        heapq.heappush(
            self._flight, (r.arrival + delay, self._seq, _InFlight(r, ok, watcher, watcher is not None))
        )
        self._seq += 1
        if watcher is not None and ok and r.output_tokens > 0:
            # The provider streams its output at output_tokens_per_s once the prompt is read.
            c = self.capacity
            ttft = c.base_latency_s + r.prompt_tokens / c.input_tokens_per_s + 1 / c.output_tokens_per_s
            watcher.first_token(
                r.arrival + ttft * f.latency_multiplier, f.latency_multiplier / c.output_tokens_per_s
            )

    def submit(self, prompt_tokens: int, output_tokens: int, watcher: RequestWatcher) -> None:
        """A real request arriving now; ``watcher`` hears its first token and its end."""
        self._start(Request(self.now, prompt_tokens, output_tokens), watcher)

    def forget(self, watcher: RequestWatcher) -> None:
        """The client went away: the provider still finishes (and bills) the request."""
        self._flight = [
            (t, n, _InFlight(i.request, i.ok, None, True) if i.watcher is watcher else i)
            for t, n, i in self._flight
        ]
        heapq.heapify(self._flight)

    def next_event_time(self) -> float:
        return self._flight[0][0] if self._flight else math.inf

    def _complete(self, item: _InFlight) -> None:
        r = item.request
        if item.watcher is not None:
            item.watcher.done(self.now, "stop" if item.ok else "error")
        if item.real:
            return
        self.requests += 1
        if item.ok:
            self.input_tokens += r.prompt_tokens
            self.output_tokens += r.output_tokens
            self.latency.observe(self.now - r.arrival)
        else:
            self.failed += 1
        if self._on_outcome is not None:
            self._on_outcome(
                RequestOutcome(
                    self.service,
                    None,
                    r.arrival,
                    self.now,
                    r.prompt_tokens,
                    r.output_tokens,
                    "stop" if item.ok else "error",
                    0.0,
                    None,
                )
            )

    def metrics(self) -> ApiMetrics:
        return ApiMetrics(
            namespace=self.service.namespace,
            service=self.service.name,
            model=self.model or self.service.name,
            requests=self.requests,
            failed=self.failed,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            latency=self.latency.snapshot(),
        )
