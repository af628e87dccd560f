"""Helpers shared by the simulator's unit tests (pure: no network, no clock)."""

from __future__ import annotations

from aipolicy.sim.fleet import Fleet, PodInfo, ServiceSettings
from aipolicy.sim.model import PodCapacity, RequestOutcome, ServiceId
from aipolicy.sim.pods import PodService
from aipolicy.sim.traffic import Request, Trace, TraceReplay

SID = ServiceId("team-a", "chat")

# Round numbers so that latencies have known answers: prefill 1000 tok/s, decode 100 tok/s.
SIMPLE = PodCapacity(
    prefill_tokens_per_s=1000.0,
    decode_tokens_per_s=100.0,
    max_concurrent_sequences=64,
    per_sequence_decode_tokens_per_s=None,
    kv_cache_tokens=100_000,
)


def pod(name: str, ready: bool = True, service: str = SID.name, model: str | None = None) -> PodInfo:
    return PodInfo(SID.namespace, name, service, model, ready)


class Recorder:
    """A fleet with an outcome log, built the same way in every test."""

    def __init__(
        self,
        capacity: PodCapacity = SIMPLE,
        *,
        seed: int = 0,
        queue_timeout_s: float | None = None,
        pods: int = 1,
    ) -> None:
        self.outcomes: list[RequestOutcome] = []
        self.fleet = Fleet(seed=seed, on_outcome=self.outcomes.append)
        settings = ServiceSettings(capacity=capacity, queue_timeout_s=queue_timeout_s)
        self.fleet.configure(SID, settings)
        for i in range(pods):
            self.fleet.upsert_pod(pod(f"pod-{i}"))

    def send(self, *requests: tuple[float, int, int]) -> None:
        """Attach a fixed list of (arrival, prompt, output) requests, starting at t=0."""
        trace = Trace(tuple(Request(*r) for r in requests), "fixed")
        self.fleet.set_traffic(SID, TraceReplay(trace), start=0.0)

    @property
    def service(self) -> PodService:
        svc = self.fleet.service(SID)
        assert isinstance(svc, PodService)
        return svc

    def ok(self) -> list[RequestOutcome]:
        return [o for o in self.outcomes if o.ok]
