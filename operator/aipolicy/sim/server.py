"""The simulator's I/O shell: one aiohttp server on loopback, file_sd targets, the clock.

Endpoints (all on ``127.0.0.1:<port>``):

* ``GET /metrics/pods/<namespace>/<pod>``: the pod's vLLM metrics. 404 for an unknown pod,
  503 while it has never been Ready (a real vLLM is loading weights and not listening yet)
  or while its service has the ``metricsUnavailable`` fault.
* ``GET /metrics/services/<namespace>/<service>``: gateway metrics of an API-backed service.
* ``PUT /faults/<namespace>/<service>`` with ``{"errorRate": 0.2, "latencyMultiplier": 3,
  "outage": false, "metricsUnavailable": false, "outageLatencySeconds": 30}`` (every field
  optional; the body replaces the service's faults); ``DELETE`` clears them.
* ``PUT /traffic/<namespace>/<service>`` with a traffic spec (see ``config.py``), e.g.
  ``{"kind": "trace", "speedup": 60, "scale": 2}``: replaces the service's traffic, starting
  now; ``DELETE`` stops it.
* ``PUT /services/<namespace>/<service>`` with a service spec (backend, modelName, capacity,
  apiCapacity, queueTimeoutSeconds, traffic, faults): declares or reconfigures a service,
  e.g. an API-backed one, which has no pods to be discovered by.
* ``/pods/<namespace>/<pod>/v1/...`` and ``/providers/<namespace>/<service>/v1/...``: real
  OpenAI-compatible requests, answered from the queueing model (see ``serving.py``);
  ``PUT``/``GET /serving/<namespace>/<service>``: a provider's API key and error status, and
  what the endpoints saw.
* ``GET /state``: JSON snapshot, per service: replicas, ready, queue, running, totals.
* ``GET /healthz``.

Virtual time is wall time since start (monotonic clock); traffic is compressed by its own
``speedup``. The fleet is advanced every tick and before every answer, on the event loop
thread only; the pod watcher's thread hands its events over with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from aipolicy.sim.cluster import PodWatcher
from aipolicy.sim.config import (
    ConfigError,
    FaultSpec,
    ServiceSpec,
    SimConfig,
    build_traffic,
    parse_traffic,
)
from aipolicy.sim.fleet import Fleet, PodInfo
from aipolicy.sim.metrics import (
    CONTENT_TYPE,
    render_api_metrics,
    render_frontdoor_metrics,
    render_pod_metrics,
)
from aipolicy.sim.model import ServiceId
from aipolicy.sim.serving import Serving
from aipolicy.sim.targets import TargetsWriter
from aipolicy.sim.traffic import TraceError

__all__ = ["LOOPBACK", "ServeOptions", "Simulator", "ThreadSafeSink", "serve"]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class Simulator:
    """A :class:`Fleet` on the wall clock, with the HTTP API and file_sd on top."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        config: SimConfig | None = None,
        config_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        targets: TargetsWriter | None = None,
    ) -> None:
        self.fleet = fleet
        self.config = config or SimConfig()
        self.config_dir = config_dir
        self.clock = clock
        self.targets = targets
        self._t0 = clock()
        self.serving: Serving | None = None

    # --- time and targets ---------------------------------------------------------------

    def now(self) -> float:
        return max(self.fleet.now, self.clock() - self._t0)

    def tick(self) -> None:
        """Advance the fleet to the current time and refresh the file_sd files."""
        self.fleet.step(self.now())
        self.sync_targets()

    def sync_targets(self) -> None:
        if self.targets is not None:
            self.targets.sync(self.fleet.pods(), self.fleet.service_ids())

    # --- configuration ------------------------------------------------------------------

    def apply_service(self, sid: ServiceId, spec: ServiceSpec) -> None:
        self.fleet.step(self.now())
        self.fleet.configure(sid, spec.settings())
        if spec.traffic is not None:
            self.fleet.set_traffic(sid, build_traffic(spec.traffic, base_dir=self.config_dir))
        if spec.faults is not None:
            self.fleet.set_faults(sid, spec.faults.build())
        self.sync_targets()

    def apply_config(self) -> None:
        for sid, spec in sorted(self.config.service_specs().items()):
            self.apply_service(sid, spec)

    def _first_sight(self, sid: ServiceId) -> None:
        """A service seen only through its pods gets the defaults' traffic and faults."""
        if self.fleet.service(sid) is not None:
            return
        d = self.config.defaults
        self.fleet.configure(sid, d.settings())
        if d.traffic is not None:
            self.fleet.set_traffic(sid, build_traffic(d.traffic, base_dir=self.config_dir))
        if d.faults is not None:
            self.fleet.set_faults(sid, d.faults.build())

    # --- the pod sink (event loop thread) -----------------------------------------------

    def replace_pods(self, pods: list[PodInfo], namespace: str | None = None) -> None:
        self.fleet.step(self.now())
        for p in pods:
            self._first_sight(p.service_id)
        self.fleet.replace_pods(pods, namespace)
        self.sync_targets()

    def upsert_pod(self, pod: PodInfo) -> None:
        self.fleet.step(self.now())
        self._first_sight(pod.service_id)
        self.fleet.upsert_pod(pod)
        self.sync_targets()

    def remove_pod(self, namespace: str, name: str) -> None:
        self.fleet.step(self.now())
        self.fleet.remove_pod(namespace, name)
        self.sync_targets()

    # --- HTTP ---------------------------------------------------------------------------

    def create_app(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_get("/healthz", self._healthz)
        r.add_get("/state", self._state)
        r.add_get("/metrics/pods/{namespace}/{pod}", self._pod_metrics)
        r.add_get("/metrics/services/{namespace}/{service}", self._service_metrics)
        r.add_put("/faults/{namespace}/{service}", self._put_faults)
        r.add_delete("/faults/{namespace}/{service}", self._delete_faults)
        r.add_put("/traffic/{namespace}/{service}", self._put_traffic)
        r.add_delete("/traffic/{namespace}/{service}", self._delete_traffic)
        r.add_put("/services/{namespace}/{service}", self._put_service)
        self.serving = Serving(self)
        self.serving.add_routes(app)
        return app

    @staticmethod
    def _sid(request: web.Request) -> ServiceId:
        return ServiceId(request.match_info["namespace"], request.match_info["service"])

    @staticmethod
    async def _json(request: web.Request) -> Any:
        try:
            return await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"body is not JSON: {exc}") from None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _state(self, request: web.Request) -> web.Response:
        self.tick()
        return web.json_response(self.fleet.state())

    async def _pod_metrics(self, request: web.Request) -> web.Response:
        self.tick()
        ns, pod = request.match_info["namespace"], request.match_info["pod"]
        status = self.fleet.pod_status(ns, pod)
        if status is None:
            return web.Response(status=404, text=f"no pod {ns}/{pod}\n")
        if status.loading:
            return web.Response(status=503, text="model loading\n")
        if status.metrics_unavailable:
            return web.Response(status=503, text="metrics unavailable (injected fault)\n")
        metrics = self.fleet.pod_metrics(ns, pod)
        assert metrics is not None
        return web.Response(body=render_pod_metrics(metrics).encode(), headers={"Content-Type": CONTENT_TYPE})

    async def _service_metrics(self, request: web.Request) -> web.Response:
        self.tick()
        sid = self._sid(request)
        metrics = self.fleet.api_metrics(sid)
        if metrics is None:
            waiting = self.fleet.frontdoor_waiting(sid)
            if waiting is None:
                return web.Response(status=404, text=f"no service {sid}\n")
            return web.Response(
                body=render_frontdoor_metrics(sid, waiting).encode(), headers={"Content-Type": CONTENT_TYPE}
            )
        if self.fleet.faults(sid).metrics_unavailable:
            return web.Response(status=503, text="metrics unavailable (injected fault)\n")
        return web.Response(body=render_api_metrics(metrics).encode(), headers={"Content-Type": CONTENT_TYPE})

    async def _put_faults(self, request: web.Request) -> web.Response:
        sid = self._sid(request)
        try:
            spec = FaultSpec.model_validate(await self._json(request))
        except (ValidationError, ConfigError) as exc:
            return _error(400, str(exc))
        self.tick()
        self._first_sight(sid)
        self.fleet.set_faults(sid, spec.build())
        return web.json_response({"service": str(sid), "faults": spec.model_dump(by_alias=True)})

    async def _delete_faults(self, request: web.Request) -> web.Response:
        sid = self._sid(request)
        if self.fleet.service(sid) is None:
            return _error(404, f"no service {sid}")
        self.tick()
        self.fleet.clear_faults(sid)
        return web.json_response({"service": str(sid), "faults": FaultSpec().model_dump(by_alias=True)})

    async def _put_traffic(self, request: web.Request) -> web.Response:
        sid = self._sid(request)
        try:
            spec = parse_traffic(await self._json(request))
            source = build_traffic(spec)
        except (ConfigError, TraceError, ValueError) as exc:
            return _error(400, str(exc))
        self.tick()
        self._first_sight(sid)
        self.fleet.set_traffic(sid, source)
        return web.json_response({"service": str(sid), "traffic": source.describe()})

    async def _delete_traffic(self, request: web.Request) -> web.Response:
        sid = self._sid(request)
        if self.fleet.service(sid) is None:
            return _error(404, f"no service {sid}")
        self.tick()
        self.fleet.set_traffic(sid, None)
        return web.json_response({"service": str(sid), "traffic": None})

    async def _put_service(self, request: web.Request) -> web.Response:
        sid = self._sid(request)
        try:
            spec = ServiceSpec.model_validate(await self._json(request))
            if spec.traffic is not None:
                parse_traffic(spec.traffic.model_dump(by_alias=True))  # no paths over HTTP
            self.tick()
            self.apply_service(sid, spec)
        except (ValidationError, ConfigError, TraceError, ValueError) as exc:
            return _error(400, str(exc))
        return web.json_response({"service": str(sid), "state": self.fleet.state()})


class ThreadSafeSink:
    """Forwards the watcher thread's pod events to the simulator on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sim: Simulator, namespace: str | None = None) -> None:
        self.loop = loop
        self.sim = sim
        self.namespace = namespace

    def replace_pods(self, pods: list[PodInfo]) -> None:
        self.loop.call_soon_threadsafe(self.sim.replace_pods, pods, self.namespace)

    def upsert_pod(self, pod: PodInfo) -> None:
        self.loop.call_soon_threadsafe(self.sim.upsert_pod, pod)

    def remove_pod(self, namespace: str, name: str) -> None:
        self.loop.call_soon_threadsafe(self.sim.remove_pod, namespace, name)


@dataclass
class ServeOptions:
    """Options of ``serve``. ``port`` 0 picks a free port."""

    targets_dir: Path
    port: int = 9400
    config: SimConfig | None = None
    config_dir: Path | None = None
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    tick_s: float = 1.0
    watch_cluster: bool = True


def _core_api(kubeconfig: str | None, context: str | None) -> Any:
    from kubernetes import client
    from kubernetes import config as kconfig

    loader: Any = kconfig  # the client's loaders are untyped
    if kubeconfig is None and context is None:
        with contextlib.suppress(kconfig.ConfigException):
            loader.load_incluster_config()
            return client.CoreV1Api()
    return client.CoreV1Api(loader.new_client_from_config(config_file=kubeconfig, context=context))


async def serve(
    options: ServeOptions,
    stop: asyncio.Event,
    *,
    started: Callable[[Simulator, int], None] | None = None,
) -> None:
    """Run the simulator until ``stop`` is set. ``started(sim, port)`` fires once listening."""
    cfg = options.config or SimConfig()
    fleet = Fleet(seed=cfg.seed, default_settings=cfg.defaults.settings())
    sim = Simulator(fleet, config=cfg, config_dir=options.config_dir)
    runner = web.AppRunner(sim.create_app(), access_log=None)
    await runner.setup()
    watcher: PodWatcher | None = None
    try:
        site = web.TCPSite(runner, LOOPBACK, options.port)
        await site.start()
        port = int(runner.addresses[0][1])
        sim.targets = TargetsWriter(options.targets_dir, f"{LOOPBACK}:{port}", prefix=f"{port}-")
        sim.apply_config()
        sim.sync_targets()
        if options.watch_cluster:
            api = _core_api(options.kubeconfig, options.context)
            sink = ThreadSafeSink(asyncio.get_running_loop(), sim, options.namespace)
            watcher = PodWatcher(api, sink, namespace=options.namespace)
            watcher.start_thread()
        log.info("simulator listening on %s:%d", LOOPBACK, port)
        if started is not None:
            started(sim, port)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=options.tick_s)
            sim.tick()
    finally:
        if watcher is not None:
            watcher.stop()
        if sim.targets is not None:
            sim.targets.remove()
        if sim.serving is not None:
            await sim.serving.stop()
        await runner.cleanup()
