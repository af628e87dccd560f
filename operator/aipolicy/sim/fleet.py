"""The fleet: every simulated InferenceService, advanced together on one virtual clock.

Pure and deterministic given its seed and the sequence of calls: it never reads a clock,
a file or the network. The I/O shell (``server.py``) calls :meth:`Fleet.step` with the
time it wants, tells it which pods exist and are Ready, and reads metrics back.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aipolicy.sim.api import ApiService
from aipolicy.sim.metrics import ApiMetrics, PodMetrics
from aipolicy.sim.model import ApiCapacity, Backend, Faults, PodCapacity, RequestOutcome, ServiceId
from aipolicy.sim.pods import PodService, RequestWatcher
from aipolicy.sim.traffic import TrafficCursor, TrafficSource

__all__ = ["Fleet", "PodInfo", "PodStatus", "ServiceSettings"]


@dataclass(frozen=True)
class ServiceSettings:
    """How one service is simulated (from the config file or the control API)."""

    backend: Backend = Backend.SELF_HOSTED
    model: str | None = None
    capacity: PodCapacity = field(default_factory=PodCapacity)
    api_capacity: ApiCapacity = field(default_factory=ApiCapacity)
    queue_timeout_s: float | None = None


@dataclass(frozen=True)
class PodInfo:
    """A pod as the cluster reports it (only what the simulator needs)."""

    namespace: str
    name: str
    service: str
    model: str | None
    ready: bool

    @property
    def service_id(self) -> ServiceId:
        return ServiceId(self.namespace, self.service)


@dataclass(frozen=True)
class PodStatus:
    """What the metrics endpoint needs to know before rendering a pod."""

    service: ServiceId
    ready: bool
    loading: bool  # never been Ready: a real vLLM is still loading weights, not listening
    metrics_unavailable: bool


Service = PodService | ApiService


class Fleet:
    """All simulated services. Methods act at the fleet's current virtual time ``now``."""

    def __init__(
        self,
        *,
        seed: int = 0,
        on_outcome: Callable[[RequestOutcome], None] | None = None,
        default_settings: ServiceSettings | None = None,
    ) -> None:
        self.seed = seed
        self.now = 0.0
        self.default_settings = default_settings or ServiceSettings()
        self._on_outcome = on_outcome
        self._settings: dict[ServiceId, ServiceSettings] = {}
        self._services: dict[ServiceId, Service] = {}
        self._pod_index: dict[tuple[str, str], ServiceId] = {}  # (namespace, pod) -> service

    # --- configuration ------------------------------------------------------------------

    def _service_seed(self, sid: ServiceId) -> int:
        # Stable across processes (str hash is salted), distinct per service.
        return self.seed * 1_000_003 + zlib.crc32(str(sid).encode())

    def _build(self, sid: ServiceId, s: ServiceSettings) -> Service:
        if s.backend is Backend.API:
            return ApiService(
                sid,
                capacity=s.api_capacity,
                model=s.model,
                seed=self._service_seed(sid),
                on_outcome=self._on_outcome,
                now=self.now,
            )
        return PodService(
            sid,
            capacity=s.capacity,
            model=s.model,
            queue_timeout_s=s.queue_timeout_s,
            seed=self._service_seed(sid),
            on_outcome=self._on_outcome,
            now=self.now,
        )

    def configure(self, sid: ServiceId, settings: ServiceSettings) -> None:
        """Create or reconfigure a service. Changing the backend starts it afresh."""
        svc = self._services.get(sid)
        old = self._settings.get(sid)
        self._settings[sid] = settings
        if svc is None or old is None or old.backend is not settings.backend:
            if svc is not None:
                self._drop_pods_of(sid)
            new = self._build(sid, settings)
            if svc is not None:
                new.set_faults(svc.faults)
            self._services[sid] = new
            return
        if isinstance(svc, PodService):
            svc.set_capacity(settings.capacity)
            svc.model = settings.model
            svc.queue_timeout_s = settings.queue_timeout_s
        else:
            svc.capacity = settings.api_capacity
            svc.model = settings.model

    def _ensure(self, sid: ServiceId) -> Service:
        if sid not in self._services:
            self.configure(sid, self._settings.get(sid, self.default_settings))
        return self._services[sid]

    def settings(self, sid: ServiceId) -> ServiceSettings:
        return self._settings.get(sid, self.default_settings)

    def set_traffic(
        self, sid: ServiceId, source: TrafficSource | None, *, start: float | None = None
    ) -> None:
        """Attach (or with None, stop) traffic; it starts at ``start`` (default: now)."""
        cursor = None if source is None else TrafficCursor(source, self.now if start is None else start)
        self._ensure(sid).traffic = cursor

    def set_faults(self, sid: ServiceId, faults: Faults) -> None:
        self._ensure(sid).set_faults(faults)

    def clear_faults(self, sid: ServiceId) -> None:
        self._ensure(sid).set_faults(Faults())

    def faults(self, sid: ServiceId) -> Faults:
        svc = self._services.get(sid)
        return svc.faults if svc is not None else Faults()

    # --- pods ---------------------------------------------------------------------------

    def upsert_pod(self, pod: PodInfo) -> bool:
        """Add or update a pod. Returns False if its service is API-backed (ignored)."""
        sid = pod.service_id
        previous = self._pod_index.get((pod.namespace, pod.name))
        if previous is not None and previous != sid:
            self.remove_pod(pod.namespace, pod.name)  # relabelled to another service
        svc = self._ensure(sid)
        if not isinstance(svc, PodService):
            return False
        svc.set_pod(pod.name, ready=pod.ready, model=pod.model)
        self._pod_index[(pod.namespace, pod.name)] = sid
        return True

    def remove_pod(self, namespace: str, name: str) -> bool:
        sid = self._pod_index.pop((namespace, name), None)
        if sid is None:
            return False
        svc = self._services.get(sid)
        return isinstance(svc, PodService) and svc.remove_pod(name)

    def replace_pods(self, pods: Iterable[PodInfo], namespace: str | None = None) -> None:
        """Make the pod set equal to ``pods`` (after a re-list); others are removed.

        With ``namespace``, only pods of that namespace are considered (a namespaced watch).
        """
        pods = list(pods)
        keep = {(p.namespace, p.name) for p in pods}
        for key in sorted(self._pod_index):
            if key not in keep and (namespace is None or key[0] == namespace):
                self.remove_pod(*key)
        for p in pods:
            self.upsert_pod(p)

    def _drop_pods_of(self, sid: ServiceId) -> None:
        for key in [k for k, v in self._pod_index.items() if v == sid]:
            self.remove_pod(*key)

    # --- time ---------------------------------------------------------------------------

    def step(self, now: float) -> None:
        """Advance every service to virtual time ``now`` (seconds)."""
        if now < self.now:
            raise ValueError(f"time goes forward only: {now} < {self.now}")
        for sid in sorted(self._services):
            self._services[sid].advance(now)
        self.now = now

    # --- real requests (the serving shell) ---------------------------------------------

    def submit(self, sid: ServiceId, prompt_tokens: int, output_tokens: int, watcher: RequestWatcher) -> None:
        """A real request for ``sid`` arriving at ``now``: it joins the service's model."""
        self._ensure(sid).submit(prompt_tokens, output_tokens, watcher)

    def forget(self, sid: ServiceId, watcher: RequestWatcher) -> None:
        svc = self._services.get(sid)
        if svc is not None:
            svc.forget(watcher)

    def next_event_time(self) -> float:
        """The earliest time any service changes by itself (traffic arrivals aside)."""
        return min((s.next_event_time() for s in self._services.values()), default=float("inf"))

    # --- reading ------------------------------------------------------------------------

    def service_ids(self) -> list[ServiceId]:
        return sorted(self._services)

    def service(self, sid: ServiceId) -> Service | None:
        return self._services.get(sid)

    def pods(self) -> list[tuple[ServiceId, str]]:
        """Every known pod as ``(service, pod name)``, sorted."""
        return sorted((sid, name) for (_, name), sid in self._pod_index.items())

    def api_services(self) -> list[ServiceId]:
        return [sid for sid in self.service_ids() if isinstance(self._services[sid], ApiService)]

    def pod_status(self, namespace: str, name: str) -> PodStatus | None:
        sid = self._pod_index.get((namespace, name))
        svc = self._services.get(sid) if sid is not None else None
        if sid is None or not isinstance(svc, PodService):
            return None
        state = svc.pod_state(name)
        if state is None:
            return None
        ready, ever_ready, _ = state
        return PodStatus(sid, ready, not ever_ready, svc.faults.metrics_unavailable)

    def pod_metrics(self, namespace: str, name: str) -> PodMetrics | None:
        sid = self._pod_index.get((namespace, name))
        svc = self._services.get(sid) if sid is not None else None
        return svc.pod_metrics(name) if isinstance(svc, PodService) else None

    def frontdoor_waiting(self, sid: ServiceId) -> int | None:
        """Requests of a self-hosted service not yet taken by any pod: what a front door (an
        activator, such as KEDA's HTTP add-on) sees waiting; the demand signal at zero pods."""
        svc = self._services.get(sid)
        return svc.queue_length if isinstance(svc, PodService) else None

    def api_metrics(self, sid: ServiceId) -> ApiMetrics | None:
        svc = self._services.get(sid)
        return svc.metrics() if isinstance(svc, ApiService) else None

    def idle(self) -> bool:
        return all(s.idle for s in self._services.values())

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot of every service, for ``GET /state``."""
        return {"time": self.now, "services": [self._service_state(s) for s in self.service_ids()]}

    def _service_state(self, sid: ServiceId) -> dict[str, Any]:
        svc = self._services[sid]
        f = svc.faults
        cursor = svc.traffic
        base: dict[str, Any] = {
            "namespace": sid.namespace,
            "service": sid.name,
            "model": svc.model_name() if isinstance(svc, PodService) else svc.model or sid.name,
            "faults": {
                "errorRate": f.error_rate,
                "latencyMultiplier": f.latency_multiplier,
                "outage": f.outage,
                "metricsUnavailable": f.metrics_unavailable,
            },
            "traffic": None
            if cursor is None
            else {
                **cursor.source.describe(),
                "start": cursor.start,
                "emitted": cursor.emitted,
                "exhausted": cursor.exhausted,
            },
        }
        if isinstance(svc, ApiService):
            return {
                **base,
                "backend": Backend.API.value,
                "inFlight": svc.in_flight,
                "totals": {
                    "arrived": svc.arrived,
                    "requests": svc.requests,
                    "failed": svc.failed,
                    "inputTokens": svc.input_tokens,
                    "outputTokens": svc.output_tokens,
                },
            }
        pods = []
        for name in svc.pod_names():
            st = svc.pod_state(name)
            assert st is not None
            pods.append({"name": name, "ready": st[0], "running": st[2]})
        t = svc.totals
        return {
            **base,
            "backend": Backend.SELF_HOSTED.value,
            "replicas": len(pods),
            "ready": sum(1 for p in pods if p["ready"]),
            "queue": svc.queue_length,
            "running": svc.running,
            "pods": pods,
            "totals": {
                "arrived": t.arrived,
                "succeeded": t.succeeded,
                "failed": t.failed,
                "promptTokens": t.prompt_tokens,
                "generationTokens": t.generation_tokens,
            },
        }
