"""The simulator answers real OpenAI-compatible requests, with latency from its queueing model.

Two kinds of endpoint, on the simulator's loopback port:

* ``/pods/<namespace>/<pod>/v1/...``: one simulated model server (a vLLM pod). A pod that is
  not Ready answers 503 (a real one is still loading weights). Requests join the service's
  queueing model (``pods.py``): time to first token is queue wait plus prefill, then tokens
  come at the pod's per-sequence decode rate, and the request ends when the model says so.
* ``/providers/<namespace>/<service>/v1/...``: an API-backed service's provider. It checks
  ``Authorization: Bearer <key>`` against the key set with ``PUT /serving/<ns>/<service>``
  (401 otherwise) and the model name against the service's ``modelName`` (404 otherwise).

Both serve ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings`` and
``/v1/models``; ``"stream": true`` gives Server-Sent Events, one chunk per token, and
``stream_options.include_usage`` a last chunk with ``usage`` and no choices. Usage is real:
prompt tokens are the whitespace-separated words of the prompt, completion tokens
``max_tokens`` (default 16). Injected faults answer 500 (or ``errorStatus`` when set, such
as 429 for a provider's rate limit); an outage after its latency.

``GET /serving/<ns>/<service>`` returns what the endpoints saw (requests, the model names
asked for, keys refused, clients gone), so tests can check what reached a backend without
any key being stored: only whether it matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from aipolicy.sim.model import FinishReason, ServiceId

if TYPE_CHECKING:
    from aipolicy.sim.server import Simulator

__all__ = ["Serving", "count_tokens"]

#: How long a pod the simulator does not see Ready yet may take to show up Ready in its watch.
WATCH_LAG_GRACE_S = 2.0
DEFAULT_MAX_TOKENS = 16
MAX_TOKENS_CAP = 4096
_WORDS = ("the", "model", "answers", "with", "simulated", "tokens", "of", "text", "and", "then")
# Wake-ups of the pump are bounded so a wrong estimate never stalls a request for long.
_MAX_SLEEP_S = 0.05
_MIN_SLEEP_S = 0.001


def count_tokens(value: Any) -> int:
    """Whitespace-separated words of a prompt (a string, a list of them, or chat messages)."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(count_tokens(v) for v in value)
    if isinstance(value, dict):
        return count_tokens(value.get("content", "")) + count_tokens(value.get("text", ""))
    return 0


@dataclass
class ServingStats:
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    unauthorized: int = 0
    unknown_model: int = 0
    client_gone: int = 0
    models: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "unauthorized": self.unauthorized,
            "unknownModel": self.unknown_model,
            "clientGone": self.client_gone,
            "models": dict(self.models),
            "promptTokens": self.prompt_tokens,
            "completionTokens": self.completion_tokens,
        }


@dataclass
class ServingOptions:
    api_key: str | None = None
    error_status: int = 500


class _Watch:
    """A RequestWatcher that turns the model's callbacks into futures (loop thread only)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.first: asyncio.Future[tuple[float, float]] = loop.create_future()
        self.end: asyncio.Future[tuple[float, FinishReason]] = loop.create_future()

    def first_token(self, at: float, seconds_per_token: float) -> None:
        if not self.first.done():
            self.first.set_result((at, seconds_per_token))

    def done(self, at: float, reason: FinishReason) -> None:
        if not self.end.done():
            self.end.set_result((at, reason))


@dataclass(frozen=True)
class _Call:
    """A request the model has accepted: what its answer says, and the service's counts."""

    stats: ServingStats
    options: ServingOptions
    kind: str  # chat/completions, completions or embeddings
    model: str
    prompt: int
    output: int
    watch: _Watch

    @property
    def id(self) -> str:
        return f"sim-{id(self.watch):x}"

    def succeeded(self) -> None:
        self.stats.succeeded += 1
        self.stats.prompt_tokens += self.prompt
        self.stats.completion_tokens += self.output


def _error(status: int, message: str, kind: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status)


class Serving:
    """The OpenAI-compatible endpoints of every simulated pod and provider."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.stats: dict[ServiceId, ServingStats] = {}
        self.options: dict[ServiceId, ServingOptions] = {}
        self._pending = 0
        self._wake = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        for kind in ("pods", "providers"):
            base = f"/{kind}/{{namespace}}/{{name}}/v1"
            r.add_get(f"{base}/models", self._models)
            for path in ("chat/completions", "completions", "embeddings"):
                r.add_post(f"{base}/{path}", self._complete)
        r.add_put("/serving/{namespace}/{name}", self._put_options)
        r.add_get("/serving/{namespace}/{name}", self._get_stats)

    # --- control ------------------------------------------------------------------------

    async def _put_options(self, request: web.Request) -> web.Response:
        sid = ServiceId(request.match_info["namespace"], request.match_info["name"])
        try:
            body = await request.json()
            key = body.get("apiKey")
            status = int(body.get("errorStatus", 500))
        except (ValueError, AttributeError, TypeError) as exc:
            return _error(400, f"body must be JSON {{apiKey, errorStatus}}: {exc}", "invalid_request_error")
        if key is not None and not isinstance(key, str):
            return _error(400, "apiKey must be a string", "invalid_request_error")
        if not 400 <= status <= 599:
            return _error(400, "errorStatus must be an HTTP error status", "invalid_request_error")
        self.options[sid] = ServingOptions(api_key=key, error_status=status)
        return web.json_response({"service": str(sid), "apiKeySet": key is not None, "errorStatus": status})

    async def _get_stats(self, request: web.Request) -> web.Response:
        sid = ServiceId(request.match_info["namespace"], request.match_info["name"])
        return web.json_response(self.stats.get(sid, ServingStats()).as_json())

    # --- which service ------------------------------------------------------------------

    async def _service_of(self, request: web.Request) -> tuple[ServiceId | None, web.Response | None]:
        """The service behind the endpoint, or the answer a real server would give instead.

        A pod the API already reports Ready is serving: its readiness probe passed. The
        simulator learns that from its own watch, which can trail the caller's (the gateway's)
        by a few milliseconds, so a pod it does not see Ready yet gets a short grace before the
        503 a loading server would give. Without it, the activator's first forward races the
        simulator's watch.
        """
        ns, name = request.match_info["namespace"], request.match_info["name"]
        self.sim.tick()
        if request.path.startswith("/providers/"):
            return ServiceId(ns, name), None
        deadline = time.monotonic() + WATCH_LAG_GRACE_S
        status = self.sim.fleet.pod_status(ns, name)
        while (status is None or not status.ready) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            self.sim.tick()
            status = self.sim.fleet.pod_status(ns, name)
        if status is None:
            return None, _error(404, f"no pod {ns}/{name}", "not_found_error")
        if not status.ready:
            return None, _error(
                503, f"pod {ns}/{name} is not ready (loading the model)", "service_unavailable"
            )
        return status.service, None

    def _model_name(self, sid: ServiceId) -> str | None:
        """The name this backend answers to; None accepts any (a pod with no configured name)."""
        return self.sim.fleet.settings(sid).model if self.sim.fleet.service(sid) is not None else None

    async def _models(self, request: web.Request) -> web.Response:
        sid, refusal = await self._service_of(request)
        if refusal is not None:
            return refusal
        assert sid is not None
        name = self._model_name(sid) or sid.name
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": name, "object": "model", "created": 0, "owned_by": "aipolicy-sim"}],
            }
        )

    # --- completions --------------------------------------------------------------------

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        sid, refusal = await self._service_of(request)
        if refusal is not None:
            return refusal
        assert sid is not None
        stats = self.stats.setdefault(sid, ServingStats())
        options = self.options.get(sid, ServingOptions())
        stats.requests += 1
        key = options.api_key
        provider = request.path.startswith("/providers/")
        if provider and key is not None and request.headers.get("Authorization", "") != f"Bearer {key}":
            stats.unauthorized += 1
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as exc:
            return _error(400, f"invalid JSON body: {exc}", "invalid_request_error")
        model = body.get("model")
        stats.models[str(model)] = stats.models.get(str(model), 0) + 1
        expected = self._model_name(sid)
        if expected is not None and model != expected:
            stats.unknown_model += 1
            return _error(
                404, f"The model `{model}` does not exist.", "invalid_request_error", "model_not_found"
            )
        kind = request.path.rsplit("/v1/", 1)[1]
        if kind == "embeddings":
            prompt, output = count_tokens(body.get("input", "")), 0
        elif kind == "completions":
            prompt, output = count_tokens(body.get("prompt", "")), self._max_tokens(body)
        else:
            prompt, output = count_tokens(body.get("messages", [])), self._max_tokens(body)
        prompt = max(1, prompt)
        stream = bool(body.get("stream")) and kind != "embeddings"
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        watch = _Watch(asyncio.get_running_loop())
        self.sim.fleet.step(self.sim.now())
        self.sim.fleet.submit(sid, prompt, output, watch)
        self._pending += 1
        self._ensure_pump()
        call = _Call(stats, options, kind, str(model), prompt, output, watch)
        try:
            if stream:
                return await self._stream(request, call, include_usage)
            return await self._whole(call)
        except (asyncio.CancelledError, ConnectionResetError):
            stats.client_gone += 1
            self.sim.fleet.forget(sid, watch)
            raise
        finally:
            self._pending -= 1

    @staticmethod
    def _max_tokens(body: dict[str, Any]) -> int:
        value = body.get("max_completion_tokens", body.get("max_tokens", DEFAULT_MAX_TOKENS))
        try:
            return max(1, min(MAX_TOKENS_CAP, int(value)))
        except (TypeError, ValueError):
            return DEFAULT_MAX_TOKENS

    async def _until(self, at: float) -> None:
        delay = at - self.sim.now()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _ended(self, watch: _Watch) -> FinishReason:
        at, reason = await watch.end
        await self._until(at)
        return reason

    def _failure(self, stats: ServingStats, options: ServingOptions, reason: FinishReason) -> web.Response:
        stats.failed += 1
        if reason == "abort":
            return _error(503, "the request waited too long in the queue", "service_unavailable")
        status = options.error_status
        kind = "rate_limit_exceeded" if status == 429 else "server_error"
        return _error(status, "the model server failed the request (injected fault)", kind)

    @staticmethod
    def _usage(prompt: int, output: int) -> dict[str, int]:
        return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}

    async def _whole(self, call: _Call) -> web.Response:
        kind, model, prompt, output = call.kind, call.model, call.prompt, call.output
        reason = await self._ended(call.watch)
        if reason not in ("stop", "length"):
            return self._failure(call.stats, call.options, reason)
        call.succeeded()
        created = int(time.time())
        if kind == "embeddings":
            return web.json_response(
                {
                    "object": "list",
                    "model": model,
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 0.5, 1.0, 0.5]}],
                    "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
                }
            )
        text = " ".join(_WORDS[i % len(_WORDS)] for i in range(output))
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
        if kind == "completions":
            choice["text"] = text
            obj = "text_completion"
        else:
            choice["message"] = {"role": "assistant", "content": text}
            obj = "chat.completion"
        return web.json_response(
            {
                "id": call.id,
                "object": obj,
                "created": created,
                "model": model,
                "choices": [choice],
                "usage": self._usage(prompt, output),
            }
        )

    async def _stream(self, request: web.Request, call: _Call, include_usage: bool) -> web.StreamResponse:
        kind, model, prompt, output, watch = call.kind, call.model, call.prompt, call.output, call.watch
        # Wait for the first token (or the end: a failure before any token is a plain error).
        waits: set[asyncio.Future[Any]] = {watch.first, watch.end}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if not watch.first.done():
            reason = await self._ended(watch)
            if reason not in ("stop", "length"):
                return self._failure(call.stats, call.options, reason)
        first_at, per_token = watch.first.result() if watch.first.done() else (self.sim.now(), 0.0)
        await self._until(first_at)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        rid, created = call.id, int(time.time())
        obj = "text_completion" if kind == "completions" else "chat.completion.chunk"

        def chunk(i: int, last: bool) -> bytes:
            word = _WORDS[i % len(_WORDS)] + ("" if last else " ")
            choice: dict[str, Any] = {"index": 0, "finish_reason": "length" if last else None}
            if kind == "completions":
                choice["text"] = word
            else:
                choice["delta"] = {"role": "assistant", "content": word} if i == 0 else {"content": word}
            payload: dict[str, Any] = {
                "id": rid,
                "object": obj,
                "created": created,
                "model": model,
                "choices": [choice],
            }
            if include_usage:
                payload["usage"] = None
            return f"data: {json.dumps(payload)}\n\n".encode()

        async for i in self._token_times(watch, first_at, per_token, output):
            if i < 0:  # the model failed the request mid-stream: an error event, as OpenAI's API does
                call.stats.failed += 1
                error = {"error": {"message": "the model server failed mid-stream", "type": "server_error"}}
                await response.write(f"data: {json.dumps(error)}\n\n".encode())
                await response.write_eof()
                return response
            await response.write(chunk(i, i == output - 1))
        call.succeeded()
        if include_usage:
            usage = {
                "id": rid,
                "object": obj,
                "created": created,
                "model": model,
                "choices": [],
                "usage": self._usage(prompt, output),
            }
            await response.write(f"data: {json.dumps(usage)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _token_times(
        self, watch: _Watch, first_at: float, per_token: float, output: int
    ) -> AsyncIterator[int]:
        """Token indices as they come out: paced at the decode rate, the last one at the end."""
        yield 0
        for i in range(1, output):
            if i == output - 1 or watch.end.done():
                reason = await self._ended(watch)
                if reason not in ("stop", "length"):
                    yield -1
                    return
                for j in range(i, output):
                    yield j
                return
            await self._until(first_at + i * per_token)
            yield i

    # --- the pump: advance the model at its own events while real requests wait ---------

    def _ensure_pump(self) -> None:
        if self._pump_task is None or self._pump_task.done():
            self._pump_task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        while self._pending > 0:
            now = self.sim.now()
            self.sim.fleet.step(now)
            next_t = self.sim.fleet.next_event_time()
            delay = _MAX_SLEEP_S if math.isinf(next_t) else next_t - now
            await asyncio.sleep(min(_MAX_SLEEP_S, max(_MIN_SLEEP_S, delay)))

    async def stop(self) -> None:
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
