"""The queueing model of one self-hosted InferenceService: a shared FIFO queue and its pods.

Pure and deterministic: no clock, no I/O. The owner advances it with :meth:`advance` and
tells it which pods exist and are Ready; it returns what each pod would publish.

Model
-----
* Requests wait in one FIFO queue shared by the service (a gateway in front of the pods).
  Whenever a Ready pod has a free sequence slot, the head of the queue is admitted to the
  Ready pod with the fewest running sequences (ties by name): per-pod admission.
* On a pod a sequence first prefills its prompt, then decodes its output. Prefill
  throughput is shared equally among the pod's prefilling sequences and decode throughput
  among its decoding ones (continuous batching as processor sharing, with a per-sequence
  decode cap). The first output token comes out of prefill, as in vLLM, so time to first
  token = queue wait + prefill time.
* Time advances event by event (arrival, phase end, queue timeout), so results do not
  depend on how often the owner calls :meth:`advance`. Processor sharing is tracked with a
  per-pod "virtual service" counter per phase: a sequence joining at counter value V with W
  tokens of work leaves when the counter reaches V + W, and every sequence in the phase
  advances the counter at the same rate, so the next departure is the heap's minimum.
* A pod that stops being Ready drains: it admits nothing new but finishes what it runs.
  A pod that is removed fails what it runs (``finished_reason="error"``).
* KV-cache usage is reported (prompt plus generated tokens of running sequences over
  ``kv_cache_tokens``, capped at 1) but does not throttle admission: no preemption.
* ``vllm:num_requests_waiting`` is the shared queue split evenly over the Ready pods (the
  first pods by name take the remainder), as if a load balancer had spread it; with no
  Ready pod the queue is visible only in the service state.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aipolicy.sim.metrics import (
    E2E_LATENCY_BUCKETS,
    TTFT_BUCKETS,
    Histogram,
    PodMetrics,
)
from aipolicy.sim.model import Faults, FinishReason, PodCapacity, RequestOutcome, ServiceId
from aipolicy.sim.traffic import Request, TrafficCursor

__all__ = ["FAST_FAIL_LATENCY_S", "PodService", "RequestWatcher", "ServiceTotals"]

# Latency observed for a request rejected by an injected error (a fast HTTP 500).
FAST_FAIL_LATENCY_S = 0.005
# Relative slack when comparing virtual-service counters, far above float rounding.
_EPS = 1e-9

OutcomeSink = Callable[[RequestOutcome], None]


class RequestWatcher(Protocol):
    """Follows one real (HTTP) request through the model: the serving shell answers from it.

    Called on the event loop thread, from inside :meth:`PodService.advance` (or
    :meth:`PodService.submit`), at virtual times; ``at`` may lie ahead of the model's clock
    for a failure whose latency is known when it is decided (an injected fast 500).
    """

    def first_token(self, at: float, seconds_per_token: float) -> None: ...

    def done(self, at: float, reason: FinishReason) -> None: ...


@dataclass(eq=False, slots=True)
class _Seq:
    rid: int
    arrival: float
    prompt: int
    output: int
    admitted_at: float = math.nan
    start_v: float = 0.0


_Heap = list[tuple[float, int, _Seq]]


class _Pod:
    """One replica: its running sequences and the counters it publishes."""

    def __init__(self, name: str, model: str | None, ready: bool, now: float) -> None:
        self.name = name
        self.model = model
        self.ready = ready
        self.ever_ready = ready
        self.prefill: _Heap = []
        self.decode: _Heap = []
        # Processor-sharing state, synced lazily: per-sequence rates only change when the
        # pod's membership (or the latency multiplier) changes, so between such changes
        # v_p and v_d grow linearly and the next departure time is fixed.
        self.v_p = 0.0
        self.v_d = 0.0
        self.rp = 0.0
        self.rd = 0.0
        self.t_sync = now
        self.next_t = math.inf
        self.next_phase = ""
        self.sum_start_p = 0.0
        self.sum_start_d = 0.0
        self.decode_context = 0  # prompt + first token of every decoding sequence
        self.prompt_done = 0.0
        self.gen_done = 0.0
        self.finished: dict[str, int] = {}
        self.ttft = Histogram(TTFT_BUCKETS)
        self.e2e = Histogram(E2E_LATENCY_BUCKETS)
        self.queue_time = Histogram(E2E_LATENCY_BUCKETS)
        self.shown_prompt = 0.0
        self.shown_gen = 0.0

    @property
    def running(self) -> int:
        return len(self.prefill) + len(self.decode)

    def sync(self, now: float) -> None:
        """Bring the virtual-service counters up to ``now`` at the current rates."""
        dt = now - self.t_sync
        if dt > 0:
            self.v_p += self.rp * dt
            self.v_d += self.rd * dt
        self.t_sync = now

    def reschedule(self, cap: PodCapacity, mult: float, now: float) -> None:
        """Recompute rates and the next departure after a change; call after :meth:`sync`."""
        self.rp = cap.prefill_tokens_per_s / len(self.prefill) / mult if self.prefill else 0.0
        self.rd = 0.0
        if self.decode:
            rd = cap.decode_tokens_per_s / len(self.decode)
            if cap.per_sequence_decode_tokens_per_s is not None:
                rd = min(rd, cap.per_sequence_decode_tokens_per_s)
            self.rd = rd / mult
        best, phase = math.inf, ""
        if self.prefill:
            best, phase = max(0.0, (self.prefill[0][0] - self.v_p) / self.rp), "p"
        if self.decode:
            dt = max(0.0, (self.decode[0][0] - self.v_d) / self.rd)
            if dt < best:
                best, phase = dt, "d"
        self.next_t = now + best
        self.next_phase = phase

    def prompt_progress(self) -> float:
        return len(self.prefill) * self.v_p - self.sum_start_p

    def decode_progress(self) -> float:
        return len(self.decode) * self.v_d - self.sum_start_d

    def finish(self, reason: FinishReason, e2e: float, queue: float | None) -> None:
        self.finished[reason] = self.finished.get(reason, 0) + 1
        self.e2e.observe(e2e)
        if queue is not None:
            self.queue_time.observe(queue)


@dataclass
class ServiceTotals:
    """Service-wide counts since the service was created (pods come and go)."""

    arrived: int = 0
    succeeded: int = 0
    failed: int = 0
    prompt_tokens: float = 0.0
    generation_tokens: float = 0.0


class PodService:
    """One self-hosted InferenceService: shared queue, pods, faults and traffic."""

    def __init__(
        self,
        service: ServiceId,
        *,
        capacity: PodCapacity,
        model: str | None = None,
        queue_timeout_s: float | None = None,
        seed: int = 0,
        on_outcome: OutcomeSink | None = None,
        now: float = 0.0,
    ) -> None:
        if queue_timeout_s is not None and not queue_timeout_s > 0:
            raise ValueError("queue_timeout_s must be > 0")
        self.service = service
        self.capacity = capacity
        self.model = model
        self.queue_timeout_s = queue_timeout_s
        self.faults = Faults()
        self.now = now
        self.totals = ServiceTotals()
        self.in_system_seconds = 0.0  # ∫ (queued + running) dt, for Little's law
        self._rng = random.Random(seed)
        self._on_outcome = on_outcome
        self._queue: deque[_Seq] = deque()
        self._pods: dict[str, _Pod] = {}
        self.traffic: TrafficCursor | None = None  # the simulated arrivals to come
        self._next_rid = 0
        self._rr = 0  # round-robin index for attributing fast failures to pods
        self._running = 0  # sequences on pods, kept incrementally for the Little's-law area
        self._ttft: dict[int, float] = {}
        self._watchers: dict[int, RequestWatcher] = {}  # real requests, by sequence id

    # --- what the owner tells the model -------------------------------------------------

    def set_faults(self, faults: Faults) -> None:
        """Switch faults at the current time; an outage starting fails queue and batch."""
        starting_outage = faults.outage and not self.faults.outage
        for pod in self._pods.values():
            pod.sync(self.now)  # progress so far happened at the old speed
        self.faults = faults
        for pod in self._pods.values():
            self._reschedule(pod)
        if starting_outage:
            while self._queue:
                self._fail_queued(self._queue.popleft(), "error")
            for pod in self._pods.values():
                self._abort_running(pod, "error")
        self._admit()

    def set_pod(self, name: str, *, ready: bool, model: str | None = None) -> None:
        """Add a pod or change its readiness; a Ready pod takes work at once."""
        pod = self._pods.get(name)
        if pod is None:
            pod = self._pods[name] = _Pod(name, model, ready, self.now)
        pod.ready = ready
        pod.ever_ready = pod.ever_ready or ready
        if model is not None:
            pod.model = model
        self._admit()

    def set_capacity(self, capacity: PodCapacity) -> None:
        for pod in self._pods.values():
            pod.sync(self.now)
        self.capacity = capacity
        for pod in self._pods.values():
            self._reschedule(pod)
        self._admit()

    def remove_pod(self, name: str) -> bool:
        pod = self._pods.pop(name, None)
        if pod is None:
            return False
        self._abort_running(pod, "error")
        return True

    # --- time -------------------------------------------------------------------------

    def advance(self, t_end: float) -> None:
        """Process every event up to ``t_end`` (virtual seconds) in time order."""
        if t_end < self.now:
            raise ValueError(f"time goes forward only: {t_end} < {self.now}")
        while True:
            t_arrival = self.traffic.peek_time() if self.traffic else math.inf
            t_timeout = math.inf
            if self.queue_timeout_s is not None and self._queue:
                t_timeout = self._queue[0].arrival + self.queue_timeout_s
            t_departure = min((p.next_t for p in self._pods.values()), default=math.inf)
            t_next = min(t_arrival, t_timeout, t_departure)
            if t_next > t_end:
                self._move_clock(t_end)
                return
            self._move_clock(t_next)
            if t_departure <= t_next:
                for pod in list(self._pods.values()):
                    if pod.next_t <= t_next:
                        self._departures(pod)
            self._expire_queue()
            if self.traffic is not None:
                self._arrive(self.traffic.take_until(self.now))
            self._admit()

    def _move_clock(self, t: float) -> None:
        if t > self.now:
            self.in_system_seconds += (len(self._queue) + self._running) * (t - self.now)
            self.now = t

    def _reschedule(self, pod: _Pod) -> None:
        pod.reschedule(self.capacity, self.faults.latency_multiplier, self.now)

    def _departures(self, pod: _Pod) -> None:
        """Take every sequence whose phase ends now off the pod (its next_t has come)."""
        pod.sync(self.now)
        # The departure time was computed as the head reaching its target; float rounding may
        # leave the counter a hair short, so snap it to guarantee progress.
        if pod.next_phase == "p" and pod.prefill:
            pod.v_p = max(pod.v_p, pod.prefill[0][0])
        elif pod.next_phase == "d" and pod.decode:
            pod.v_d = max(pod.v_d, pod.decode[0][0])
        while pod.prefill and pod.prefill[0][0] <= pod.v_p + _EPS * max(1.0, abs(pod.v_p)):
            _, _, seq = heapq.heappop(pod.prefill)
            # Reset exactly when the phase empties so float residue cannot accumulate.
            pod.sum_start_p = pod.sum_start_p - seq.start_v if pod.prefill else 0.0
            self._prefill_done(pod, seq)
        while pod.decode and pod.decode[0][0] <= pod.v_d + _EPS * max(1.0, abs(pod.v_d)):
            _, _, seq = heapq.heappop(pod.decode)
            pod.sum_start_d = pod.sum_start_d - seq.start_v if pod.decode else 0.0
            pod.decode_context -= seq.prompt + 1
            pod.gen_done += seq.output - 1
            self.totals.generation_tokens += seq.output - 1
            self._finish(pod, seq, "stop", ttft=None)
        self._reschedule(pod)

    def _prefill_done(self, pod: _Pod, seq: _Seq) -> None:
        pod.prompt_done += seq.prompt
        self.totals.prompt_tokens += seq.prompt
        if seq.output == 0:
            self._finish(pod, seq, "stop", ttft=None)
            return
        ttft = self.now - seq.arrival
        pod.ttft.observe(ttft)
        watcher = self._watchers.get(seq.rid)
        if watcher is not None:
            cap = self.capacity
            rate = cap.decode_tokens_per_s / max(1, len(pod.decode) + 1)
            if cap.per_sequence_decode_tokens_per_s is not None:
                rate = min(rate, cap.per_sequence_decode_tokens_per_s)
            watcher.first_token(self.now, self.faults.latency_multiplier / rate)
        pod.gen_done += 1  # the first token comes out of the prefill step
        self.totals.generation_tokens += 1
        if seq.output == 1:
            self._finish(pod, seq, "stop", ttft=ttft)
            return
        seq.start_v = pod.v_d
        pod.sum_start_d += seq.start_v
        pod.decode_context += seq.prompt + 1
        heapq.heappush(pod.decode, (seq.start_v + (seq.output - 1), seq.rid, seq))
        # The outcome is reported when decode ends; remember the TTFT until then.
        self._ttft[seq.rid] = ttft

    def _finish(self, pod: _Pod, seq: _Seq, reason: FinishReason, *, ttft: float | None) -> None:
        if ttft is None:
            ttft = self._ttft.pop(seq.rid, None)
        else:
            self._ttft.pop(seq.rid, None)
        self._running -= 1
        self._notify_done(seq, self.now, reason)
        queue_wait = seq.admitted_at - seq.arrival
        pod.finish(reason, self.now - seq.arrival, queue_wait)
        if reason in ("stop", "length"):
            self.totals.succeeded += 1
        else:
            self.totals.failed += 1
        if self._on_outcome is not None:
            self._on_outcome(
                RequestOutcome(
                    self.service,
                    pod.name,
                    seq.arrival,
                    self.now,
                    seq.prompt,
                    seq.output,
                    reason,
                    queue_wait,
                    ttft,
                )
            )

    def _abort_running(self, pod: _Pod, reason: FinishReason) -> None:
        """Fail every sequence on the pod, keeping the tokens it had already processed."""
        pod.sync(self.now)
        for _, _, seq in sorted(pod.prefill):
            done = pod.v_p - seq.start_v
            pod.prompt_done += done
            self.totals.prompt_tokens += done
            self._finish(pod, seq, reason, ttft=None)
        for _, _, seq in sorted(pod.decode):
            done = pod.v_d - seq.start_v
            pod.gen_done += done
            self.totals.generation_tokens += done
            self._finish(pod, seq, reason, ttft=None)
        pod.prefill.clear()
        pod.decode.clear()
        pod.sum_start_p = pod.sum_start_d = 0.0
        pod.decode_context = 0
        self._reschedule(pod)

    def _notify_done(self, seq: _Seq, at: float, reason: FinishReason) -> None:
        watcher = self._watchers.pop(seq.rid, None)
        if watcher is not None:
            watcher.done(at, reason)

    def _fail_queued(self, seq: _Seq, reason: FinishReason) -> None:
        self.totals.failed += 1
        self._notify_done(seq, self.now, reason)
        if self._on_outcome is not None:
            self._on_outcome(
                RequestOutcome(
                    self.service,
                    None,
                    seq.arrival,
                    self.now,
                    seq.prompt,
                    seq.output,
                    reason,
                    None,
                    None,
                )
            )

    def _expire_queue(self) -> None:
        if self.queue_timeout_s is None:
            return
        limit = self.now - self.queue_timeout_s
        while self._queue and self._queue[0].arrival <= limit + _EPS * max(1.0, abs(limit)):
            self._fail_queued(self._queue.popleft(), "abort")  # the client gave up waiting

    def _arrive(self, requests: list[Request]) -> None:
        for r in requests:
            self.totals.arrived += 1
            seq = _Seq(self._next_rid, r.arrival, r.prompt_tokens, r.output_tokens)
            self._next_rid += 1
            if self.faults.outage:
                self._reject(seq, self.faults.outage_latency_s)
            elif self.faults.error_rate > 0 and (
                self.faults.error_rate >= 1 or self._rng.random() < self.faults.error_rate
            ):
                self._reject(seq, FAST_FAIL_LATENCY_S)
            else:
                self._queue.append(seq)

    def _reject(self, seq: _Seq, latency: float) -> None:
        """An injected failure: HTTP 500 after ``latency``, charged to a Ready pod if any."""
        self.totals.failed += 1
        self._notify_done(seq, seq.arrival + latency, "error")
        ready = self._ready_pods()
        pod_name: str | None = None
        if ready:
            pod = ready[self._rr % len(ready)]
            self._rr += 1
            pod.finish("error", latency, None)
            pod_name = pod.name
        if self._on_outcome is not None:
            self._on_outcome(
                RequestOutcome(
                    self.service,
                    pod_name,
                    seq.arrival,
                    seq.arrival + latency,
                    seq.prompt,
                    seq.output,
                    "error",
                    None,
                    None,
                )
            )

    def _ready_pods(self) -> list[_Pod]:
        return [self._pods[n] for n in sorted(self._pods) if self._pods[n].ready]

    def _admit(self) -> None:
        if self.faults.outage or not self._queue:
            return
        slots = self.capacity.max_concurrent_sequences
        ready = self._ready_pods()  # sorted by name, so the first least-loaded wins ties
        while self._queue:
            pod: _Pod | None = None
            for p in ready:
                if p.running < slots and (pod is None or p.running < pod.running):
                    pod = p
            if pod is None:
                return
            seq = self._queue.popleft()
            seq.admitted_at = self.now
            pod.sync(self.now)
            seq.start_v = pod.v_p
            pod.sum_start_p += seq.start_v
            heapq.heappush(pod.prefill, (seq.start_v + seq.prompt, seq.rid, seq))
            self._running += 1
            self._reschedule(pod)

    def submit(self, prompt_tokens: int, output_tokens: int, watcher: RequestWatcher) -> None:
        """A real request arriving now: it queues with the traffic, and ``watcher`` hears of it."""
        rid = self._next_rid
        self._watchers[rid] = watcher
        self._arrive([Request(self.now, prompt_tokens, output_tokens)])
        self._admit()

    def forget(self, watcher: RequestWatcher) -> None:
        """The client went away: abort its sequence, as vLLM does when the socket closes
        (``finished_reason="abort"``), keeping the tokens already processed."""
        rid = next((r for r, w in self._watchers.items() if w is watcher), None)
        if rid is None:
            return
        del self._watchers[rid]
        for i, seq in enumerate(self._queue):
            if seq.rid == rid:
                del self._queue[i]
                self._fail_queued(seq, "abort")
                return
        for pod in self._pods.values():
            for phase in (pod.prefill, pod.decode):
                for j, (_, _, seq) in enumerate(phase):
                    if seq.rid == rid:
                        self._abort_one(pod, phase, j, seq)
                        self._admit()
                        return

    def _abort_one(self, pod: _Pod, phase: _Heap, index: int, seq: _Seq) -> None:
        pod.sync(self.now)
        phase.pop(index)
        heapq.heapify(phase)
        if phase is pod.prefill:
            done = pod.v_p - seq.start_v
            pod.prompt_done += done
            self.totals.prompt_tokens += done
            pod.sum_start_p = pod.sum_start_p - seq.start_v if pod.prefill else 0.0
        else:
            done = pod.v_d - seq.start_v
            pod.gen_done += done
            self.totals.generation_tokens += done
            pod.sum_start_d = pod.sum_start_d - seq.start_v if pod.decode else 0.0
            pod.decode_context -= seq.prompt + 1
        self._finish(pod, seq, "abort", ttft=None)
        self._reschedule(pod)

    def next_event_time(self) -> float:
        """When the model next changes by itself (a phase ends, a queued request times out)."""
        t = min((p.next_t for p in self._pods.values()), default=math.inf)
        if self.queue_timeout_s is not None and self._queue:
            t = min(t, self._queue[0].arrival + self.queue_timeout_s)
        return t

    # --- what the model shows -----------------------------------------------------------

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return self._running

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing running, no traffic left to come."""
        no_traffic = self.traffic is None or self.traffic.exhausted
        return no_traffic and not self._queue and self.running == 0

    def model_name(self) -> str:
        """The configured model, else the first pod's ``aipolicy.dev/model``, else the name."""
        labelled = [self._pods[n].model for n in sorted(self._pods) if self._pods[n].model]
        return self.model or (labelled[0] if labelled else None) or self.service.name

    def pod_names(self) -> list[str]:
        return sorted(self._pods)

    def pod_state(self, name: str) -> tuple[bool, bool, int] | None:
        """``(ready, ever_ready, running)`` of a pod, or None if unknown."""
        pod = self._pods.get(name)
        return None if pod is None else (pod.ready, pod.ever_ready, pod.running)

    def _waiting_share(self, name: str) -> int:
        ready = [p.name for p in self._ready_pods()]
        if name not in ready:
            return 0
        base, extra = divmod(len(self._queue), len(ready))
        return base + (1 if ready.index(name) < extra else 0)

    def pod_metrics(self, name: str) -> PodMetrics | None:
        pod = self._pods.get(name)
        if pod is None:
            return None
        # Counters must never go down; float cancellation in the progress sums could nudge
        # them by a hair when a sequence moves from "in progress" to "done".
        # Rounding is monotone, so rounded values keep that property and hide the residue.
        prompt = round(pod.prompt_done + pod.prompt_progress(), 3)
        gen = round(pod.gen_done + pod.decode_progress(), 3)
        pod.shown_prompt = max(pod.shown_prompt, prompt)
        pod.shown_gen = max(pod.shown_gen, gen)
        kv = 0.0
        if pod.running:
            used = pod.decode_context + pod.decode_progress() + pod.prompt_progress()
            kv = used / self.capacity.kv_cache_tokens
        return PodMetrics(
            namespace=self.service.namespace,
            pod=name,
            service=self.service.name,
            model_name=pod.model or self.model or self.service.name,
            running=pod.running,
            waiting=self._waiting_share(name),
            kv_cache_usage=min(1.0, max(0.0, kv)),
            prompt_tokens=pod.shown_prompt,
            generation_tokens=pod.shown_gen,
            finished=dict(pod.finished),
            ttft=pod.ttft.snapshot(),
            e2e_latency=pod.e2e.snapshot(),
            queue_time=pod.queue_time.snapshot(),
        )
