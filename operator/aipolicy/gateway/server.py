"""The gateway's I/O shell: an aiohttp server that routes each request by its ``model``.

Per request: refuse headers that try to steer it, read the body (413 over the limit), parse
it (400 saying where), find the InferenceService (404 listing the models), then ask
:func:`routing.route` until it says Forward or Refuse; a Hold waits in the activator's
bounded queue and asks again on every change of the watched objects. Forwarding rewrites
``model`` to the backend's name, asks for ``usage`` with every stream, sends the provider's
key (never the client's ``Authorization``) and passes the response through: a stream frame
by frame as it arrives. Tokens and money come from the backend's ``usage``, never guessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aipolicy.gateway import manifests
from aipolicy.gateway.metrics import GatewayMetrics
from aipolicy.gateway.podload import Flight, PodLoads, estimate_prompt_tokens
from aipolicy.gateway.routing import (
    Forward,
    Hold,
    PodsTarget,
    ProviderTarget,
    Refuse,
    find_service,
    known_backends,
    known_models,
    route,
)
from aipolicy.gateway.secrets import MissingSecretError, SecretReader, problem_reason
from aipolicy.gateway.state import KINDS, Store, Watcher

__all__ = ["BACKEND_HEADER", "MODE_HEADER", "Gateway", "GatewayOptions", "serve"]

log = logging.getLogger(__name__)

BACKEND_HEADER = "x-aipolicy-backend"
MODE_HEADER = "x-aipolicy-mode"
#: Headers a client might use to pick a backend: the gateway alone decides, so these are refused.
STEERING_PREFIXES = ("x-aipolicy-",)
COMPLETION_PATHS = ("chat/completions", "completions")
PATHS = (*COMPLETION_PATHS, "embeddings")
NONE = "-"  # the backend label of a request no backend saw
SECRET_CHECK_SECONDS = 5.0


@dataclass
class GatewayOptions:
    namespace: str
    host: str = "127.0.0.1"
    port: int = 8000
    #: Where a pod answers; fields namespace, pod, ip, port. In tests: the simulator's endpoint.
    pod_url_template: str = "http://{ip}:{port}"
    max_body_bytes: int = 8 * 1024 * 1024
    connect_timeout_s: float = 5.0
    #: The longest silence from a backend once it answered (a stream may run far longer).
    idle_timeout_s: float = 300.0
    secrets_dir: Path | None = None
    kubeconfig: str | None = None
    context: str | None = None
    #: Prometheus file_sd folder: the gateway writes its own target there (loopback clusters).
    targets_dir: Path | None = None
    #: Serve a fixed set of objects from a YAML file instead of watching a cluster (benchmarks,
    #: trying it out): a list of InferenceServices, FallbackPolicies, AIBudgets and Pods.
    state_file: Path | None = None


def _error(
    status: int, message: str, kind: str, code: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _usage_of(payload: Any) -> tuple[int, int] | None:
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens", 0)
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt, completion
    return None


class Gateway:
    def __init__(
        self,
        store: Store,
        secrets: SecretReader,
        options: GatewayOptions,
        *,
        metrics: GatewayMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.secrets = secrets
        self.options = options
        self.metrics = metrics or GatewayMetrics()
        self.clock = clock
        self.in_flight: dict[str, int] = {}  # per service, at its own pods
        self.pod_in_flight: dict[str, int] = {}
        self.pod_loads = PodLoads()  # prompt tokens queued and answers streaming, per pod (SLO overflow)
        self.waiting: dict[str, int] = {}
        self._session: aiohttp.ClientSession | None = None
        self._secret_checks: asyncio.Task[None] | None = None

    @property
    def namespace(self) -> str:
        return self.options.namespace

    async def start(self) -> None:
        # Keep-alive below vLLM's 5 s so a pooled socket is never one the server just closed.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=4.0)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        self._secret_checks = asyncio.create_task(self._check_secrets())

    async def close(self) -> None:
        if self._secret_checks is not None:
            self._secret_checks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._secret_checks
        if self._session is not None:
            await self._session.close()

    async def check_secrets_once(self) -> dict[str, str]:
        """Every Secret the namespace's providers name, checked (cached reads); the problems
        exported as aipolicy_gateway_secret_problem. Returns secret -> reason."""
        names = manifests.referenced_secrets(
            self.store.objects["inferenceservices"].values(), self.store.objects["fallbackpolicies"].values()
        )
        problems: dict[str, str] = {}
        for name in names:
            problem = await self.secrets.problem(name)
            if problem is not None:
                problems[name] = problem_reason(problem)
        self.metrics.secret_state(self.namespace, problems)
        return problems

    async def _check_secrets(self) -> None:
        """Before any request needs them: a missing Secret shows in the service's conditions
        while nobody calls it yet. On every change of the objects, and every few seconds (a
        Secret created later)."""
        while True:
            try:
                await self.check_secrets_once()
            except Exception:  # a failing check must not stop the next one
                log.exception("checking the referenced Secrets failed")
            await asyncio.sleep(1.0)  # at most once a second in a namespace of busy pods
            await self.store.changed(SECRET_CHECK_SECONDS)

    def create_app(self) -> web.Application:
        app = web.Application(client_max_size=self.options.max_body_bytes)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/v1/models", self._models)
        for path in PATHS:
            app.router.add_post(f"/v1/{path}", self._handler(path))
        app.on_startup.append(lambda _: self.start())
        app.on_cleanup.append(lambda _: self.close())
        return app

    def _handler(self, path: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.proxy(request, path)

        return handle

    async def _healthz(self, request: web.Request) -> web.Response:
        if not self.store.ready:
            return web.Response(status=503, text="watches not synced yet\n")
        return web.Response(text="ok\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        self.metrics.prime(self.namespace, known_backends(self.store.snapshot()))
        return web.Response(
            body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _models(self, request: web.Request) -> web.Response:
        snapshot = self.store.snapshot()
        data = []
        for name in sorted(snapshot.services):
            model = (snapshot.services[name].get("spec") or {}).get("model") or name
            data.append(
                {"id": model, "object": "model", "created": 0, "owned_by": f"{self.namespace}/{name}"}
            )
        return web.json_response({"object": "list", "data": data})

    # --- one request ----------------------------------------------------------------------

    def _count(self, service: str, backend: str, status: int, **kw: Any) -> None:
        self.metrics.answered(self.namespace, service, backend, status, **kw)

    async def proxy(self, request: web.Request, path: str) -> web.StreamResponse:
        started = self.clock()
        steering = sorted(h for h in request.headers if h.lower().startswith(STEERING_PREFIXES))
        if steering:
            self._count(NONE, NONE, 400)
            return _error(
                400,
                f"headers {', '.join(steering)} are set by the gateway, not by clients; "
                "the backend follows the InferenceService's mode",
                "invalid_request_error",
                "steering_header",
            )
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._count(NONE, NONE, 413)
            return _error(
                413,
                f"the request body is over {self.options.max_body_bytes} bytes",
                "invalid_request_error",
                "request_too_large",
            )
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            self._count(NONE, NONE, 400)
            return _error(
                400,
                f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})",
                "invalid_request_error",
                "invalid_json",
            )
        except UnicodeDecodeError as exc:
            self._count(NONE, NONE, 400)
            return _error(
                400, f"the body is not UTF-8: byte {exc.start}", "invalid_request_error", "invalid_json"
            )
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            self._count(NONE, NONE, 400)
            return _error(
                400,
                "the body must be a JSON object with a string field model",
                "invalid_request_error",
                "invalid_request",
            )
        model = body["model"]
        snapshot = self.store.snapshot()
        name = find_service(snapshot, model)
        if name is None:
            self._count(NONE, NONE, 404)
            return _error(
                404,
                f"The model `{model}` does not exist here; known models: "
                f"{', '.join(known_models(snapshot)) or 'none'}",
                "invalid_request_error",
                "model_not_found",
            )
        decision = await self._decide(name, started, estimate_prompt_tokens(body))
        if isinstance(decision, Refuse):
            self._count(name, NONE, decision.status)
            return _error(
                decision.status, decision.message, decision.kind, decision.code, dict(decision.headers)
            )
        return await self._forward(request, path, body, decision, started)

    async def _decide(self, name: str, started: float, prompt_tokens: int = 0) -> Forward | Refuse:
        """Route, holding the request while the route says Hold (the activator)."""
        held_for: str | None = None
        try:
            while True:
                decision = route(
                    self.store.snapshot(),
                    name,
                    datetime.now(UTC),
                    self.in_flight,
                    pod_loads=self.pod_loads.view(),
                    prompt_tokens=prompt_tokens,
                )
                if not isinstance(decision, Hold):
                    return decision
                if held_for != decision.waiting_for:
                    if held_for is not None:
                        self._unwait(held_for)
                    if self.waiting.get(decision.waiting_for, 0) >= decision.queue_size:
                        return Refuse(
                            503,
                            f"InferenceService {decision.waiting_for} has no ready replica "
                            f"and its queue is full ({decision.queue_size} requests wait)",
                            "service_unavailable",
                            "queue_full",
                            {"Retry-After": "5"},
                        )
                    held_for = decision.waiting_for
                    self.waiting[held_for] = self.waiting.get(held_for, 0) + 1
                    self.metrics.waiting.labels(self.namespace, held_for).set(self.waiting[held_for])
                left = started + decision.timeout_s - self.clock()
                if left <= 0:
                    return Refuse(
                        503,
                        f"the model is starting: InferenceService {decision.waiting_for} "
                        f"has no ready replica after {decision.timeout_s:g}s "
                        "(spec.frontDoor.queueTimeout); retry shortly",
                        "service_unavailable",
                        "model_starting",
                        {"Retry-After": "10"},
                    )
                await self.store.changed(left)
        finally:
            if held_for is not None:
                self._unwait(held_for)

    def _unwait(self, service: str) -> None:
        self.waiting[service] = self.waiting.get(service, 1) - 1
        self.metrics.waiting.labels(self.namespace, service).set(self.waiting[service])

    def _pick_pod(self, target: PodsTarget) -> str:
        endpoint = min(target.endpoints, key=lambda e: (self.pod_in_flight.get(e.pod, 0), e.pod))
        return (
            self.options.pod_url_template.format(
                namespace=self.namespace, pod=endpoint.pod, ip=endpoint.ip, port=target.port
            )
            + f"#{endpoint.pod}"
        )

    async def _forward(
        self, request: web.Request, path: str, body: dict[str, Any], decision: Forward, started: float
    ) -> web.StreamResponse:
        target = decision.target
        label = target.label
        name = decision.service
        api_service = target.service if isinstance(target, ProviderTarget) else None
        headers = {"Content-Type": "application/json", "Accept": request.headers.get("Accept", "*/*")}
        request_id = request.headers.get("x-request-id")
        if request_id and "\n" not in request_id and "\r" not in request_id:
            headers["x-request-id"] = request_id
        pod: str | None = None
        if isinstance(target, ProviderTarget):
            if target.secret is not None:
                try:
                    headers["Authorization"] = f"Bearer {await self.secrets.key(target.secret)}"
                except MissingSecretError as exc:
                    self._count(name, label, 503)
                    return _error(
                        503,
                        f"backend {label} cannot be called: {exc}",
                        "service_unavailable",
                        "missing_secret",
                    )
            url = f"{target.base_url.rstrip('/')}/{path}"
        else:
            base, _, pod = self._pick_pod(target).partition("#")
            url = f"{base.rstrip('/')}/v1/{path}"
        body = {**body, "model": target.model}
        stream = bool(body.get("stream")) and path in COMPLETION_PATHS
        client_wants_usage = False
        if stream:
            options = dict(body.get("stream_options") or {})
            client_wants_usage = bool(options.get("include_usage"))
            options["include_usage"] = True  # meter every stream from the backend's own count
            body["stream_options"] = options
        reply_headers = {BACKEND_HEADER: label, MODE_HEADER: decision.mode}
        own = target.service if isinstance(target, PodsTarget) else None
        if own is not None:
            self.in_flight[own] = self.in_flight.get(own, 0) + 1
        if pod is not None:
            self.pod_in_flight[pod] = self.pod_in_flight.get(pod, 0) + 1
        flight = self.pod_loads.sent(pod, estimate_prompt_tokens(body)) if pod is not None else None
        gauge = self.metrics.in_flight.labels(self.namespace, name, label)
        gauge.inc()
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.options.connect_timeout_s, sock_read=self.options.idle_timeout_s
        )
        status = 0
        try:
            try:
                upstream = await self._session.post(
                    url, data=json.dumps(body).encode(), headers=headers, timeout=timeout
                )
            except aiohttp.ClientConnectorError:
                status = 502
                return _error(
                    502,
                    f"backend {label} refused the connection",
                    "bad_gateway",
                    "backend_unreachable",
                    reply_headers,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = 502
                return _error(
                    502,
                    f"backend {label} failed before answering ({type(exc).__name__})",
                    "bad_gateway",
                    "backend_error",
                    reply_headers,
                )
            try:
                ttft = self.metrics.ttft.labels(self.namespace, name, label)
                if stream and upstream.status == 200:
                    status = 200
                    response, broken = await self._stream(
                        request, upstream, decision, reply_headers, client_wants_usage, started, flight
                    )
                    status = 502 if broken else 200
                    return response
                ttft.observe(self.clock() - started)  # a whole answer: its headers are its first byte
                if flight is not None:
                    flight.answering()
                payload = await upstream.read()
                status = upstream.status
                if status == 200:
                    with contextlib.suppress(ValueError, UnicodeDecodeError):
                        self._record_usage(decision, _usage_of(json.loads(payload)))
                passed = {
                    k: v for k, v in upstream.headers.items() if k.lower() in ("retry-after", "x-request-id")
                }
                return web.Response(
                    status=status,
                    body=payload,
                    headers={
                        **passed,
                        **reply_headers,
                        "Content-Type": upstream.headers.get("Content-Type", "application/json"),
                    },
                )
            except (asyncio.CancelledError, ConnectionResetError):
                status = 499  # the client went away: close the backend's socket so it stops
                upstream.close()
                raise
            finally:
                upstream.release()
        finally:
            gauge.dec()
            if own is not None:
                self.in_flight[own] -= 1
            if pod is not None:
                self.pod_in_flight[pod] -= 1
            if flight is not None:
                flight.done()
            self._count(name, label, status or 499, api_service=api_service, seconds=self.clock() - started)

    def _record_usage(self, decision: Forward, usage: tuple[int, int] | None) -> None:
        if usage is None:
            return
        target = decision.target
        api_service = target.service if isinstance(target, ProviderTarget) else None
        prompt, completion = usage
        self.metrics.usage(
            self.namespace,
            decision.service,
            target.label,
            prompt,
            completion,
            target.prices.cost(prompt, completion),
            target.prices.currency,
            api_service=api_service,
        )

    async def _stream(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        decision: Forward,
        reply_headers: dict[str, str],
        client_wants_usage: bool,
        started: float,
        flight: Flight | None = None,
    ) -> tuple[web.StreamResponse, bool]:
        """Pass the stream on frame by frame; True with it when the backend broke off mid-way
        (the client then gets an OpenAI-style error event, as the OpenAI API sends one)."""
        response = web.StreamResponse(
            status=200,
            headers={
                **reply_headers,
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            },
        )
        await response.prepare(request)
        buffer = b""
        usage: tuple[int, int] | None = None
        first = True
        async for chunk in _safe_chunks(upstream):
            if chunk is None:
                error = {
                    "error": {
                        "message": f"backend {decision.target.label} broke off the stream",
                        "type": "bad_gateway",
                    }
                }
                await response.write(f"data: {json.dumps(error)}\n\n".encode())
                await response.write_eof()
                return response, True
            if first:  # time to first token: the first bytes of the stream's body
                self.metrics.ttft.labels(self.namespace, decision.service, decision.target.label).observe(
                    self.clock() - started
                )
                first = False
                if flight is not None:
                    flight.answering()
            buffer += chunk
            out: list[bytes] = []
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                keep, seen = self._inspect(frame, client_wants_usage)
                usage = seen or usage
                if keep:
                    out.append(frame + b"\n\n")
            if out:
                await response.write(b"".join(out))
        if buffer:
            await response.write(buffer)
        self._record_usage(decision, usage)
        await response.write_eof()
        return response, False

    @staticmethod
    def _inspect(frame: bytes, client_wants_usage: bool) -> tuple[bool, tuple[int, int] | None]:
        """Whether to pass a frame on, and the usage it carries (the usage-only chunk is
        dropped when the client did not ask for it: the gateway asked, for metering)."""
        if not frame.startswith(b"data:"):
            return True, None
        data = frame[5:].strip()
        if data == b"[DONE]" or not data.startswith(b"{"):
            return True, None
        try:
            payload = json.loads(data)
        except ValueError:
            return True, None
        usage = _usage_of(payload)
        if usage is not None and not client_wants_usage and payload.get("choices") == []:
            return False, usage
        return True, usage


async def _safe_chunks(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes | None]:
    """The body's chunks as they come; None once if the backend breaks off mid-way."""
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientConnectionError):
        yield None


def _api_client(kubeconfig: str | None, context: str | None) -> Any:
    from kubernetes import client
    from kubernetes import config as kconfig

    loader: Any = kconfig
    if kubeconfig is None and context is None:
        with contextlib.suppress(kconfig.ConfigException):
            loader.load_incluster_config()
            return client.ApiClient()
    return loader.new_client_from_config(config_file=kubeconfig, context=context)


_KIND_OF = {
    "InferenceService": "inferenceservices",
    "FallbackPolicy": "fallbackpolicies",
    "AIBudget": "aibudgets",
    "Pod": "pods",
}


def load_state(store: Store, path: Path) -> None:
    """Fill the store once from a YAML file of objects (see GatewayOptions.state_file)."""
    import yaml

    by_kind: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for obj in yaml.safe_load_all(path.read_text()):
        for item in obj if isinstance(obj, list) else [obj]:
            if item:
                by_kind[_KIND_OF[item["kind"]]].append(item)
    for kind, items in by_kind.items():
        store.replace(kind, items)


def _write_target(options: GatewayOptions, port: int) -> Path | None:
    if options.targets_dir is None:
        return None
    from aipolicy.sim.targets import write_json_atomic

    path = options.targets_dir / f"aipolicy-gateway-{port}.json"
    write_json_atomic(path, [{"targets": [f"127.0.0.1:{port}"], "labels": {"job_kind": "aipolicy-gateway"}}])
    return path


async def serve(
    options: GatewayOptions,
    stop: asyncio.Event,
    *,
    started: Callable[[Gateway, int], None] | None = None,
) -> None:
    """Watch the namespace, then serve until ``stop`` is set."""
    store = Store(options.namespace)
    watchers: list[Watcher] = []
    if options.state_file is not None:
        load_state(store, options.state_file)
        secrets = SecretReader(options.namespace, folder=options.secrets_dir)
    else:
        from kubernetes import client

        api_client = _api_client(options.kubeconfig, options.context)
        loop = asyncio.get_running_loop()
        watchers = [Watcher(kind, options.namespace, api_client, loop, store) for kind in KINDS]
        for w in watchers:
            w.start()
        core = client.CoreV1Api(api_client)
        secrets = SecretReader(options.namespace, folder=options.secrets_dir, core_api=core)
    gateway = Gateway(store, secrets, options)
    # On SIGTERM, requests in flight get a bounded drain (a pod's grace period is 30 s), not
    # aiohttp's 60 s: a request held for a cold start would otherwise keep the process alive.
    runner = web.AppRunner(
        gateway.create_app(), access_log=None, handler_cancellation=True, shutdown_timeout=10.0
    )
    await runner.setup()
    target_file: Path | None = None
    try:
        deadline = time.monotonic() + 60
        while not store.ready and time.monotonic() < deadline and not stop.is_set():
            await store.changed(1.0)
        site = web.TCPSite(runner, options.host, options.port)
        await site.start()
        port = int(runner.addresses[0][1])
        target_file = _write_target(options, port)
        log.info("gateway for namespace %s listening on %s:%d", options.namespace, options.host, port)
        if started is not None:
            started(gateway, port)
        await stop.wait()
    finally:
        for w in watchers:
            w.stop()
        if target_file is not None:
            target_file.unlink(missing_ok=True)
        await runner.cleanup()
