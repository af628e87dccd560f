"""The serving model: vLLM replicas stepping through a calibrated step model, on a virtual clock.

One :class:`Replica` is one vLLM server (continuous batching, chunked prefill, a KV-cache limit
with recompute preemption), driven by :meth:`ServingProfile.step_time`:

* requests wait (``vllm:num_requests_waiting``) until a sequence slot (``max_num_seqs``) and
  KV room for their prompt are free, then prefill first-come first-served, in chunks that fill
  what the decodes leave of the ``max_num_batched_tokens`` budget of each step;
* a sequence decodes one token per step; when the KV cache fills, the newest sequence is
  preempted and recomputed later (vLLM V1's RECOMPUTE), keeping its first token;
* a request still waiting after ``timeout_s`` without a first token fails (the client gave up).

While prompt chunks are in flight the replica moves step by step; with only decodes running it
jumps from one completion to the next (every step of such a stretch has the same length up to
the slowly growing context), which is what makes an hour of traffic cost about a second.

:class:`Cluster` is the Deployment and Service in front of the replicas: cold starts drawn from a
lognormal distribution, routing by least request over two random choices (Envoy's default), draining
on scale-down, a front door that holds requests while no replica is Ready, and the counters
and gauges the replicas export, scraped every ``scrape_interval_s`` as Prometheus would.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from aipolicy.policy.serving import ServingProfile

__all__ = ["Cluster", "Replica", "Request", "Scrape"]

# vLLM's histogram buckets (vllm/engine/metrics.py): time_to_first_token_seconds and
# e2e_request_latency_seconds; +Inf is implicit.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
               240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip


class Request:
    """One request and how it went; times are seconds on the virtual clock."""

    __slots__ = ("arrival", "backend", "done_at", "failed", "first_token_at", "output", "price", "prompt",
                 "queued_at", "reserved", "serial", "todo_output", "todo_prompt", "via")  # fmt: skip

    def __init__(self, arrival: float, prompt: int, output: int, serial: int) -> None:
        self.arrival = arrival
        self.prompt = prompt
        self.output = max(output, 1)
        self.serial = serial
        self.queued_at = arrival
        self.todo_prompt = prompt  # prompt tokens to (re)compute before the next token
        self.todo_output = self.output  # tokens still to generate
        self.reserved = 0  # KV tokens reserved for its prompt while it prefills
        self.first_token_at: float | None = None
        self.done_at: float | None = None
        self.failed = False
        self.backend = "gpu"
        self.price: tuple[Decimal, Decimal] | None = None  # an API's per-million prices, if priced
        self.via = ""  # the gateway's backend label when not the service's own pods

    @property
    def ttft(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.arrival


def _bucket_index(buckets: tuple[float, ...], value: float) -> int:
    # le buckets: the first bucket whose bound is >= value (len(buckets) is +Inf)
    i = bisect_right(buckets, value)
    if i > 0 and buckets[i - 1] == value:
        i -= 1
    return i


@dataclass
class Counters:
    """Cumulative counters summed over the replicas (and the front door), as exported."""

    arrived: int = 0
    succeeded: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    first_tokens: int = 0
    generation_tokens: int = 0
    ttft_buckets: list[int] = field(default_factory=lambda: [0] * (len(TTFT_BUCKETS) + 1))
    e2e_buckets: list[int] = field(default_factory=lambda: [0] * (len(E2E_BUCKETS) + 1))


class Replica:
    """One vLLM server (see the module docstring)."""

    def __init__(
        self,
        profile: ServingProfile,
        name: str,
        created: float,
        ready_at: float,
        counters: Counters,
        on_done: Callable[[Request], None],
        timeout_s: float,
    ) -> None:
        self.p = profile
        self.name = name
        self.created = created
        self.ready_at = ready_at
        self.removed: float | None = None
        self.draining = False
        self.pending = False  # Pending for lack of GPUs: not scheduled, holds none
        self.t = ready_at  # the replica's own clock; it may run one step ahead of the cluster's
        self.steps = 0.0  # decode steps so far (fractional inside a decode-only stretch)
        self.waiting: deque[Request] = deque()
        self.waiting_prompt = 0  # prompt tokens of the waiting requests (the gateway's view)
        self.prefilling: deque[Request] = deque()
        self.prefill_backlog = 0
        self.decoding: list[tuple[float, int, Request]] = []  # (finish step, serial, request)
        self.entered: dict[int, float] = {}  # serial -> step at which it started decoding
        self.dec_prompt = 0  # sum of (prompt + tokens before decoding) over decoding sequences
        self.dec_entered = 0.0  # sum of entry steps over decoding sequences
        self.kv_prefill = 0  # KV tokens reserved by prefilling sequences
        self.counters = counters
        self.on_done = on_done
        self.timeout_s = timeout_s
        self.preemptions = 0
        # after a preemption nothing new is scheduled until a sequence finishes (vLLM V1 does
        # not schedule waiting requests in a step that preempted); without this the preempted
        # request would be readmitted at once and preempted again, forever
        self.admission_held = False

    # -- load as the router and the metrics see it --------------------------------------------
    @property
    def running(self) -> int:
        return len(self.prefilling) + len(self.decoding)

    @property
    def outstanding(self) -> int:
        return len(self.waiting) + self.running

    def kv_used(self) -> float:
        return self.dec_prompt + len(self.decoding) * self.steps - self.dec_entered + self.kv_prefill

    def context(self) -> float:
        return self.dec_prompt + len(self.decoding) * self.steps - self.dec_entered

    # -- requests ------------------------------------------------------------------------------
    def enqueue(self, req: Request, now: float) -> None:
        req.queued_at = now
        self.waiting.append(req)
        self.waiting_prompt += req.todo_prompt

    def _finish(self, req: Request, at: float, failed: bool) -> None:
        req.done_at = at
        req.failed = failed
        c = self.counters
        if failed:
            c.failed += 1
        else:
            c.succeeded += 1
            c.generation_tokens += req.output
            c.e2e_buckets[_bucket_index(E2E_BUCKETS, at - req.arrival)] += 1
        self.on_done(req)

    def _admit(self) -> None:
        p = self.p
        while self.waiting:
            head = self.waiting[0]
            if head.first_token_at is None and self.t - head.arrival > self.timeout_s:
                self.waiting.popleft()
                self.waiting_prompt -= head.todo_prompt
                self._finish(head, head.arrival + self.timeout_s, failed=True)
                continue
            if head.todo_prompt > p.kv_tokens:
                self.waiting.popleft()  # vLLM refuses a prompt longer than the cache holds
                self.waiting_prompt -= head.todo_prompt
                self._finish(head, self.t, failed=True)
                continue
            if self.admission_held and self.decoding:
                return
            # vLLM schedules a waiting request (and allocates its KV blocks) only when a step's
            # token budget reaches it: no more prompts in prefill than the next step can take
            if self.prefill_backlog >= p.max_batched_tokens - len(self.decoding):
                return
            if self.running >= p.max_num_seqs or self.kv_used() + head.todo_prompt > p.kv_tokens:
                return
            self.waiting.popleft()
            self.waiting_prompt -= head.todo_prompt
            self.prefilling.append(head)
            self.prefill_backlog += head.todo_prompt
            head.reserved = head.todo_prompt
            self.kv_prefill += head.reserved

    def _start_decoding(self, req: Request) -> None:
        self.kv_prefill -= req.reserved
        req.reserved = 0
        if req.first_token_at is None:
            req.first_token_at = self.t
            c = self.counters
            c.prompt_tokens += req.prompt
            c.first_tokens += 1
            c.ttft_buckets[_bucket_index(TTFT_BUCKETS, self.t - req.arrival)] += 1
            req.todo_output -= 1
        if req.todo_output <= 0:
            self._finish(req, self.t, failed=False)
            return
        held = req.prompt + (req.output - req.todo_output)
        heapq.heappush(self.decoding, (self.steps + req.todo_output, req.serial, req))
        self.entered[req.serial] = self.steps
        self.dec_prompt += held
        self.dec_entered += self.steps

    def _leave_decoding(self, req: Request) -> None:
        entered = self.entered.pop(req.serial)
        held = req.prompt + (req.output - req.todo_output)
        self.dec_prompt -= held
        self.dec_entered -= entered

    def _complete_decodes(self) -> None:
        while self.decoding and self.decoding[0][0] <= self.steps + 1e-9:
            _, _, req = heapq.heappop(self.decoding)
            self._leave_decoding(req)
            self.admission_held = False
            req.todo_output = 0
            self._finish(req, self.t, failed=False)

    def _preempt_newest(self) -> None:
        """KV cache full: the latest-admitted decoding sequence goes back to the queue's head."""
        i = max(range(len(self.decoding)), key=lambda k: self.decoding[k][2].serial)
        _, _, req = self.decoding.pop(i)
        heapq.heapify(self.decoding)
        generated_before = req.output - req.todo_output
        done_now = int(self.steps - self.entered[req.serial])
        self._leave_decoding(req)
        req.todo_output = max(1, req.todo_output - done_now)
        req.todo_prompt = req.prompt + generated_before + done_now  # recompute everything held
        self.waiting.appendleft(req)
        self.waiting_prompt += req.todo_prompt
        self.preemptions += 1
        self.admission_held = True

    # -- time ------------------------------------------------------------------------------------
    def advance(self, until: float) -> None:
        """Run the engine up to ``until`` (the last step may end a little after it)."""
        p = self.p
        while self.t < until:
            self._admit()
            if self.prefilling:
                self._prefill_step()
                continue
            if not self.decoding:
                self.t = until  # idle
                if self.waiting:
                    self._admit()
                return
            step = p.step_time(len(self.decoding), self.context(), 0)
            next_finish = self.decoding[0][0]
            # where the KV cache would fill at this batch size
            room = p.kv_tokens - self.kv_used()
            full_at = self.steps + room / len(self.decoding)
            target = min(next_finish, full_at)
            dt = max(0.0, target - self.steps) * step
            if self.t + dt <= until:
                self.t += dt
                self.steps = max(self.steps, target)
                if target == full_at and full_at < next_finish:
                    self._preempt_newest()
                self._complete_decodes()
            else:
                self.steps += (until - self.t) / step
                self.t = until

    def _prefill_step(self) -> None:
        p = self.p
        decodes = len(self.decoding)
        budget = p.max_batched_tokens - decodes
        chunk = min(max(budget, 0), self.prefill_backlog)
        if chunk <= 0:
            chunk = min(self.prefill_backlog, 16)  # a prefill always makes some progress
        if self.kv_used() + decodes > p.kv_tokens and self.decoding:
            self._preempt_newest()
            return
        self.t += p.step_time(decodes, self.context(), chunk)
        self.steps += 1
        self._complete_decodes()
        left = chunk
        self.prefill_backlog -= chunk
        while left > 0 and self.prefilling:
            head = self.prefilling[0]
            if head.todo_prompt <= left:
                left -= head.todo_prompt
                self.prefilling.popleft()
                self._start_decoding(head)
            else:
                head.todo_prompt -= left  # its reservation covers computed and remaining tokens
                left = 0

    def drained(self) -> bool:
        return self.outstanding == 0


@dataclass(frozen=True)
class Scrape:
    """One scrape of every replica's /metrics, summed (what ``sum by (service)`` returns)."""

    t: float
    pods: int
    waiting: int
    running: int
    kv_usage: float
    frontdoor_waiting: int
    arrived: int
    succeeded: int
    failed: int
    prompt_tokens: int
    first_tokens: int
    generation_tokens: int
    ttft_buckets: tuple[int, ...]
    e2e_buckets: tuple[int, ...]


class Cluster:
    """The replicas of one self-hosted service behind its Service and front door."""

    def __init__(
        self,
        profile: ServingProfile,
        *,
        cold_start_median_s: float,
        cold_start_cv: float,
        timeout_s: float,
        seed: int,
        overflow: Callable[[Cluster, Request], Replica | bool | None] | None = None,
    ) -> None:
        self.profile = profile
        self.cold_start_median_s = cold_start_median_s
        self.cold_start_cv = cold_start_cv
        self.timeout_s = timeout_s
        self.rng = random.Random(seed)
        self.route_rng = random.Random(seed + 1)
        self.counters = Counters()
        self.replicas: list[Replica] = []  # every replica ever created
        self.live: list[Replica] = []
        self.frontdoor: deque[Request] = deque()
        self.done: list[Request] = []
        self.overflow = overflow
        self.api_requests: list[Request] = []
        # replicas the cluster has GPUs for (None: room for any); the others stay Pending, in
        # creation order, until a replica goes away
        self.gpu_slots: int | None = None
        self.pending: deque[Replica] = deque()
        self._serial = 0
        self._scrapes: list[Scrape] = []
        self._scrape_times: list[float] = []

    # -- pods -------------------------------------------------------------------------------------
    def cold_start(self) -> float:
        if self.cold_start_cv <= 0:
            return self.cold_start_median_s
        sigma = math.sqrt(math.log(1 + self.cold_start_cv**2))
        return self.rng.lognormvariate(math.log(self.cold_start_median_s), sigma)

    def add_replica(self, now: float, *, warm: bool = False) -> Replica:
        ready_at = now if warm else now + self.cold_start()
        r = Replica(self.profile, f"replica-{len(self.replicas):04d}", now, ready_at, self.counters,
                    self.done.append, self.timeout_s)  # fmt: skip
        self.replicas.append(r)
        self.live.append(r)
        if self.gpu_slots is not None and len(self.live) - len(self.pending) > self.gpu_slots:
            r.pending = True
            r.ready_at = r.t = math.inf
            self.pending.append(r)
        return r

    def ready(self, now: float) -> list[Replica]:
        return [r for r in self.live if not r.draining and r.ready_at <= now]

    def starting(self, now: float) -> list[Replica]:
        return [r for r in self.live if not r.draining and not r.pending and r.ready_at > now]

    def scale_to(self, desired: int, now: float) -> None:
        """Apply a Deployment's replica count: cancel starting pods first, then drain the least
        loaded Ready ones; scaling up brings back draining pods before creating new ones."""
        serving = [r for r in self.live if not r.draining]
        if desired > len(serving):
            need = desired - len(serving)
            for r in [r for r in self.live if r.draining][:need]:
                r.draining = False
                need -= 1
            for _ in range(need):
                self.add_replica(now)
        elif desired < len(serving):
            excess = len(serving) - desired
            for r in sorted((r for r in serving if r.ready_at > now), key=lambda r: -r.created)[:excess]:
                self._remove(r, now)
                excess -= 1
            for r in sorted((r for r in serving if r.ready_at <= now), key=lambda r: r.outstanding)[:excess]:
                r.advance(now)
                r.draining = True
                for req in list(r.waiting):  # not started: back to the front door, re-routed
                    r.waiting.remove(req)
                    r.waiting_prompt -= req.todo_prompt
                    self.frontdoor.append(req)
        self.retire(now)

    def _remove(self, r: Replica, now: float) -> None:
        if r.pending:  # never scheduled: it held no GPU
            r.pending = False
            self.pending.remove(r)
            r.created = now
        r.removed = now
        self.live.remove(r)
        while (
            self.pending
            and self.gpu_slots is not None
            and len(self.live) - len(self.pending) < self.gpu_slots
        ):
            waiting = self.pending.popleft()  # the scheduler places it now: its cold start begins
            waiting.pending = False
            waiting.created = now
            waiting.ready_at = waiting.t = now + self.cold_start()

    def retire(self, now: float) -> None:
        for r in [r for r in self.live if r.draining]:
            r.advance(now)
            if r.drained():
                self._remove(r, now)

    # -- traffic --------------------------------------------------------------------------------
    def arrive(self, arrival: float, prompt: int, output: int) -> None:
        req = Request(arrival, prompt, output, self._serial)
        self._serial += 1
        self.counters.arrived += 1
        if self.overflow is not None:
            # the gateway: a replica it predicts best, True when it sent the request to an API
            # provider, False when it answered it itself (refused), None for the front door
            choice = self.overflow(self, req)
            if choice is True:
                req.backend = "api"
                self.api_requests.append(req)
                return
            if choice is False:
                return
            if isinstance(choice, Replica) and not self.frontdoor:
                choice.enqueue(req, arrival)
                choice.advance(arrival)
                return
        self.frontdoor.append(req)
        self.dispatch(arrival)

    def dispatch(self, now: float) -> None:
        """Send what waits at the front door to a Ready replica (the less loaded of two drawn at
        random); requests waiting there past the timeout fail."""
        if not self.frontdoor:
            return
        ready = self.ready(now)
        while self.frontdoor:
            head = self.frontdoor[0]
            if now - head.arrival > self.timeout_s:
                self.frontdoor.popleft()
                head.done_at, head.failed = head.arrival + self.timeout_s, True
                self.counters.failed += 1
                self.done.append(head)
                continue
            if not ready:
                return
            self.frontdoor.popleft()
            # least request with two random choices, as Envoy's LEAST_REQUEST balancer does by
            # default (choice_count 2): near least-loaded, and O(1) per request
            candidates = self.route_rng.sample(ready, 2) if len(ready) > 2 else ready
            best = candidates[0]
            best.advance(now)
            for r in candidates[1:]:
                r.advance(now)
                if r.outstanding < best.outstanding:
                    best = r
            best.enqueue(head, now)
            best.advance(now)

    def advance(self, now: float) -> None:
        for r in self.live:
            r.advance(now)

    # -- metrics ----------------------------------------------------------------------------------
    def scrape(self, now: float) -> Scrape:
        self.advance(now)
        pods = [r for r in self.live if r.ready_at <= now]
        kv = [r.kv_used() / r.p.kv_tokens for r in pods]
        c = self.counters
        s = Scrape(
            t=now,
            pods=len(pods),
            waiting=sum(len(r.waiting) for r in pods),
            running=sum(r.running for r in pods),
            kv_usage=sum(kv) / len(kv) if kv else 0.0,
            frontdoor_waiting=len(self.frontdoor),
            arrived=c.arrived,
            succeeded=c.succeeded,
            failed=c.failed,
            prompt_tokens=c.prompt_tokens,
            first_tokens=c.first_tokens,
            generation_tokens=c.generation_tokens,
            ttft_buckets=tuple(c.ttft_buckets),
            e2e_buckets=tuple(c.e2e_buckets),
        )
        self._scrapes.append(s)
        self._scrape_times.append(now)
        return s

    def last_scrape(self, at: float) -> Scrape | None:
        i = bisect_right(self._scrape_times, at)
        return self._scrapes[i - 1] if i else None

    def window(self, at: float, seconds: float) -> tuple[Scrape, Scrape] | None:
        """The first and last scrapes in (at - seconds, at], if there are two (for rate())."""
        hi = bisect_right(self._scrape_times, at)
        lo = bisect_right(self._scrape_times, at - seconds)
        if hi - lo < 2:
            return None
        return self._scrapes[lo], self._scrapes[hi - 1]

    def rate(self, at: float, seconds: float, counter: Callable[[Scrape], float]) -> float | None:
        w = self.window(at, seconds)
        if w is None:
            return None
        first, last = w
        return (counter(last) - counter(first)) / (last.t - first.t)

    def quantile(self, at: float, seconds: float, q: float, which: str = "ttft") -> float | None:
        """histogram_quantile(q, rate(..._bucket[window])): None when nothing was observed."""
        w = self.window(at, seconds)
        if w is None:
            return None
        first, last = w
        bounds = TTFT_BUCKETS if which == "ttft" else E2E_BUCKETS
        a = first.ttft_buckets if which == "ttft" else first.e2e_buckets
        b = last.ttft_buckets if which == "ttft" else last.e2e_buckets
        return histogram_quantile(q, bounds, [y - x for x, y in zip(a, b, strict=True)])


def histogram_quantile(q: float, bounds: tuple[float, ...], counts: list[int]) -> float | None:
    """Prometheus's histogram_quantile on per-bucket (not cumulative) counts; None if empty."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if seen + n >= rank and n > 0:
            if i == len(bounds):  # +Inf bucket: Prometheus answers the highest finite bound
                return bounds[-1]
            lower = bounds[i - 1] if i > 0 else 0.0
            return lower + (bounds[i] - lower) * (rank - seen) / n
        seen += n
    return bounds[-1]
