"""The gateway's HTTP shell against the real simulator over loopback HTTP (no cluster: the
store is filled by hand, as the watches would fill it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from aipolicy.gateway.secrets import SecretReader
from aipolicy.gateway.server import BACKEND_HEADER, MODE_HEADER, Gateway, GatewayOptions
from aipolicy.gateway.state import Store
from aipolicy.sim.config import FaultSpec, ServiceSpec
from aipolicy.sim.fleet import Fleet, PodInfo
from aipolicy.sim.model import ServiceId
from aipolicy.sim.server import Simulator
from aipolicy.sim.targets import TargetsWriter

NS = "team"
FAST = {
    "prefillTokensPerSecond": 100000,
    "decodeTokensPerSecond": 4000,
    "perSequenceDecodeTokensPerSecond": 200,
}


def _isvc(name: str, model: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, **spec}
    if "provider" not in spec:
        body.setdefault("serving", {"image": "vllm", "port": 8000})
        body.setdefault(
            "pricing", {"gpuHour": "2", "inputPerMillionTokens": "1", "outputPerMillionTokens": "3"}
        )
    return {"metadata": {"name": name, "namespace": NS, "labels": {"team": "a"}}, "spec": body}


def _pod(name: str, service: str, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"aipolicy.dev/service": service}},
        "status": {
            "podIP": "10.0.0.9",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


class Harness:
    def __init__(self, sim: Simulator, sim_url: str, store: Store, gw: TestClient, gateway: Gateway) -> None:
        self.sim, self.sim_url, self.store, self.gw, self.gateway = sim, sim_url, store, gw, gateway

    def metric(self, name: str, **labels: str) -> float:
        total = 0.0
        for family in text_string_to_metric_families(_render(self.gateway)):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    async def stats(self, service: str) -> dict[str, Any]:
        async with aiohttp.ClientSession() as s, s.get(f"{self.sim_url}/serving/{NS}/{service}") as r:
            result: dict[str, Any] = await r.json()
            return result


def _render(gateway: Gateway) -> str:
    from prometheus_client import generate_latest

    return generate_latest(gateway.metrics.registry).decode()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    sim = Simulator(Fleet(), targets=TargetsWriter(tmp_path / "t", "127.0.0.1:1"))
    sim.apply_service(
        ServiceId(NS, "chat"), ServiceSpec.model_validate({"modelName": "llama-70b", "capacity": FAST})
    )
    sim.apply_service(
        ServiceId(NS, "small"), ServiceSpec.model_validate({"modelName": "llama-8b", "capacity": FAST})
    )
    sim.apply_service(
        ServiceId(NS, "gpt"),
        ServiceSpec.model_validate(
            {
                "backend": "api",
                "modelName": "gpt-4o-mini",
                "apiCapacity": {"baseLatencySeconds": 0.01, "outputTokensPerSecond": 500},
            }
        ),
    )
    sim.upsert_pod(PodInfo(NS, "chat-0", "chat", None, True))
    sim.upsert_pod(PodInfo(NS, "small-0", "small", None, True))
    secrets = tmp_path / "secrets"
    (secrets / "openai").mkdir(parents=True)
    (secrets / "openai" / "apiKey").write_text("sk-from-secret\n")
    async with TestServer(sim.create_app(), host="127.0.0.1") as sim_server:
        sim_url = f"http://127.0.0.1:{sim_server.port}"
        store = Store(NS)
        store.replace(
            "inferenceservices",
            [
                _isvc("chat", "llama-70b", frontDoor={"queueSize": 2, "queueTimeout": "2s"}),
                _isvc("small", "llama-8b"),
                _isvc(
                    "gpt",
                    "gpt",
                    provider={
                        "url": f"{sim_url}/providers/{NS}/gpt/v1",
                        "model": "gpt-4o-mini",
                        "apiKeySecret": "openai",
                    },
                    pricing={"inputPerMillionTokens": "0.15", "outputPerMillionTokens": "0.60"},
                ),
            ],
        )
        store.replace("fallbackpolicies", [])
        store.replace("aibudgets", [])
        store.replace("pods", [_pod("chat-0", "chat"), _pod("small-0", "small")])
        options = GatewayOptions(
            namespace=NS, pod_url_template=sim_url + "/pods/{namespace}/{pod}", max_body_bytes=4096
        )
        gateway = Gateway(store, SecretReader(NS, folder=secrets), options)
        async with TestClient(TestServer(gateway.create_app(), host="127.0.0.1")) as gw:
            async with aiohttp.ClientSession() as s:
                await s.put(f"{sim_url}/serving/{NS}/gpt", json={"apiKey": "sk-from-secret"})
            yield Harness(sim, sim_url, store, gw, gateway)


def _chat(model: str, max_tokens: int = 5, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "hello there you"}],
        "max_tokens": max_tokens,
        **extra,
    }


async def test_chat_reaches_the_pod_and_usage_is_metered(harness: Harness) -> None:
    resp = await harness.gw.post("/v1/chat/completions", json=_chat("llama-70b", 7))
    assert resp.status == 200, await resp.text()
    assert resp.headers[BACKEND_HEADER] == "service/chat" and resp.headers[MODE_HEADER] == "Normal"
    usage = (await resp.json())["usage"]
    assert usage == {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}
    labels = {"namespace": NS, "service": "chat", "backend": "service/chat"}
    assert harness.metric("aipolicy_gateway_prompt_tokens_total", **labels) == 3
    assert harness.metric("aipolicy_gateway_completion_tokens_total", **labels) == 7
    assert harness.metric("aipolicy_gateway_spend_total", **labels) == pytest.approx((3 * 1 + 7 * 3) / 1e6)
    assert harness.metric("aipolicy_gateway_requests_total", code="200", **labels) == 1


async def test_provider_gets_the_secret_key_and_its_model_never_the_clients_key(harness: Harness) -> None:
    resp = await harness.gw.post(
        "/v1/chat/completions", json=_chat("gpt", 4), headers={"Authorization": "Bearer client-key"}
    )
    assert resp.status == 200, await resp.text()
    assert resp.headers[BACKEND_HEADER] == "service/gpt"
    stats = await harness.stats("gpt")
    assert stats["models"] == {"gpt-4o-mini": 1} and stats["unauthorized"] == 0
    assert harness.metric("litellm_output_tokens_metric_total", namespace=NS, service="gpt") == 4
    assert "sk-from-secret" not in _render(harness.gateway)


async def test_missing_secret_is_503_naming_it(harness: Harness) -> None:
    gpt = harness.store.objects["inferenceservices"]["gpt"]
    gpt["spec"]["provider"]["apiKeySecret"] = "nope"
    harness.store.apply("inferenceservices", "MODIFIED", gpt)
    resp = await harness.gw.post("/v1/chat/completions", json=_chat("gpt"))
    assert resp.status == 503
    assert "Secret team/nope" in (await resp.json())["error"]["message"]
    assert (await harness.stats("gpt"))["requests"] == 0


async def test_stream_passes_frames_and_usage_only_when_asked(harness: Harness) -> None:
    resp = await harness.gw.post("/v1/chat/completions", json=_chat("llama-70b", 6, stream=True))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    frames: list[bytes] = []
    async for chunk in resp.content.iter_any():
        frames.append(chunk)
    events = [e for e in b"".join(frames).decode().split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(e[6:]) for e in events[:-1]]
    assert len(payloads) == 6 and all(p["choices"] for p in payloads)  # the usage chunk is not the client's
    assert len(frames) > 1  # streamed, not buffered into one write
    assert harness.metric("aipolicy_gateway_completion_tokens_total", service="chat") == 6
    asked = await harness.gw.post(
        "/v1/chat/completions",
        json=_chat("llama-70b", 2, stream=True, stream_options={"include_usage": True}),
    )
    text = await asked.text()
    assert '"choices": []' in text and '"completion_tokens": 2' in text


async def test_suspended_budget_refuses_before_any_backend(harness: Harness) -> None:
    budget = {
        "metadata": {"name": "team-budget"},
        "spec": {"limit": "10", "selector": {"matchLabels": {"team": "a"}}},
        "status": {"activeAction": "Suspend", "spent": "10.50", "periodEnd": "2099-01-01T00:00:00Z"},
    }
    harness.store.replace("aibudgets", [budget])
    resp = await harness.gw.post("/v1/chat/completions", json=_chat("llama-70b"))
    assert resp.status == 429
    message = (await resp.json())["error"]["message"]
    assert "AIBudget team-budget" in message and "10.50 of 10 USD" in message and "2099-01-01" in message
    assert int(resp.headers["Retry-After"]) > 0
    assert (await harness.stats("chat"))["requests"] == 0


async def test_fallback_step_serves_and_says_so(harness: Harness) -> None:
    policy = {
        "metadata": {"name": "fb"},
        "spec": {
            "target": "chat",
            "triggers": [{"type": "ErrorRate", "threshold": 0.5}],
            "chain": [{"inferenceService": "small"}],
        },
        "status": {"active": True, "activeStep": 0},
    }
    harness.store.replace("fallbackpolicies", [policy])
    resp = await harness.gw.post("/v1/chat/completions", json=_chat("llama-70b"))
    assert resp.status == 200
    assert resp.headers[BACKEND_HEADER] == "service/small" and resp.headers[MODE_HEADER] == "Fallback"
    assert (await resp.json())["model"] == "llama-8b"


async def test_bad_input_rows(harness: Harness) -> None:
    big = await harness.gw.post("/v1/chat/completions", data=b"{" + b" " * 5000 + b"}")
    assert big.status == 413
    broken = await harness.gw.post("/v1/chat/completions", data=b'{"model": "llama-70b",\n "messages": [}')
    assert broken.status == 400 and "line 2 column" in (await broken.json())["error"]["message"]
    unknown = await harness.gw.post("/v1/chat/completions", json=_chat("nope"))
    assert unknown.status == 404 and "llama-70b" in (await unknown.json())["error"]["message"]
    steer = await harness.gw.post(
        "/v1/chat/completions", json=_chat("llama-70b"), headers={"X-Aipolicy-Backend": "service/small"}
    )
    assert steer.status == 400
    assert (await harness.stats("chat"))["requests"] == 0 and (await harness.stats("small"))["requests"] == 0
    assert harness.metric("aipolicy_gateway_requests_total", service="-") == 4
    models = await (await harness.gw.get("/v1/models")).json()
    assert {m["id"] for m in models["data"]} == {"llama-70b", "llama-8b", "gpt"}


async def test_refused_connection_is_502_and_provider_errors_pass_through(harness: Harness) -> None:
    harness.gateway.options.pod_url_template = "http://127.0.0.1:1/pods/{namespace}/{pod}"
    resp = await harness.gw.post("/v1/chat/completions", json=_chat("llama-70b"))
    assert resp.status == 502 and "refused" in (await resp.json())["error"]["message"]
    assert harness.metric("aipolicy_gateway_requests_total", service="chat", code="502") == 1
    harness.sim.fleet.set_faults(ServiceId(NS, "gpt"), FaultSpec(errorRate=1.0).build())
    async with aiohttp.ClientSession() as s:
        await s.put(
            f"{harness.sim_url}/serving/{NS}/gpt", json={"apiKey": "sk-from-secret", "errorStatus": 429}
        )
    limited = await harness.gw.post("/v1/chat/completions", json=_chat("gpt"))
    assert limited.status == 429
    assert harness.metric("litellm_proxy_failed_requests_metric_total", service="gpt") == 1


async def test_activator_holds_until_a_pod_is_ready_then_times_out_without_one(harness: Harness) -> None:
    harness.store.replace("pods", [_pod("small-0", "small")])  # chat has no Ready replica
    task = asyncio.create_task(harness.gw.post("/v1/chat/completions", json=_chat("llama-70b")))
    for _ in range(100):
        if harness.metric("aipolicy_frontdoor_requests_waiting", service="chat") == 1:
            break
        await asyncio.sleep(0.02)
    assert harness.metric("aipolicy_frontdoor_requests_waiting", service="chat") == 1
    harness.store.apply("pods", "ADDED", _pod("chat-0", "chat"))
    resp = await task
    assert resp.status == 200 and resp.headers[BACKEND_HEADER] == "service/chat"
    assert harness.metric("aipolicy_frontdoor_requests_waiting", service="chat") == 0
    harness.store.replace("pods", [])
    late = await harness.gw.post("/v1/chat/completions", json=_chat("llama-70b"))  # queueTimeout 2s
    assert late.status == 503 and "model is starting" in (await late.json())["error"]["message"]


async def test_client_gone_mid_stream_cancels_the_backend_request(harness: Harness) -> None:
    async with aiohttp.ClientSession() as s:
        url = f"http://127.0.0.1:{harness.gw.port}/v1/chat/completions"
        async with s.post(url, json=_chat("llama-70b", 4000, stream=True)) as resp:
            assert resp.status == 200
            await resp.content.readany()
    svc = harness.sim.fleet.service(ServiceId(NS, "chat"))
    assert svc is not None
    for _ in range(100):
        if (await harness.stats("chat"))["clientGone"] == 1 and svc.running == 0:  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.05)
    assert (await harness.stats("chat"))["clientGone"] == 1
    # the pod stopped decoding (4000 tokens at 200/s would take 20 s): aborted, as vLLM does
    assert svc.running == 0 and svc.totals.failed == 1  # type: ignore[union-attr]
    assert harness.metric("aipolicy_gateway_requests_total", service="chat", code="499") == 1


async def test_overflow_sends_the_excess_to_the_chain(harness: Harness) -> None:
    chat = harness.store.objects["inferenceservices"]["chat"]
    chat["spec"]["frontDoor"] = {"maxInFlightPerReplica": 1, "overflow": "Fallback"}
    harness.store.apply("inferenceservices", "MODIFIED", chat)
    policy = {
        "metadata": {"name": "fb"},
        "spec": {
            "target": "chat",
            "triggers": [{"type": "ErrorRate", "threshold": 0.5}],
            "chain": [{"inferenceService": "gpt"}],
        },
        "status": {"active": False, "activeStep": -1},
    }
    harness.store.replace("fallbackpolicies", [policy])
    responses = await asyncio.gather(
        *(harness.gw.post("/v1/chat/completions", json=_chat("llama-70b", 40)) for _ in range(4))
    )
    backends = sorted(r.headers[BACKEND_HEADER] for r in responses)
    assert all(r.status == 200 for r in responses)
    assert "service/chat" in backends and "service/gpt" in backends


async def test_a_backend_breaking_off_mid_stream_is_an_error_event_and_a_502(harness: Harness) -> None:
    from aiohttp import web

    async def broken(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"choices": [{"index": 0, "delta": {"content": "a"}}]}\n\n')
        assert request.transport is not None
        request.transport.close()  # the server dies mid-answer
        return resp

    app = web.Application()
    app.router.add_post("/pods/{namespace}/{pod}/v1/chat/completions", broken)
    async with TestServer(app, host="127.0.0.1") as dying:
        harness.gateway.options.pod_url_template = (
            f"http://127.0.0.1:{dying.port}" + "/pods/{namespace}/{pod}"
        )
        resp = await harness.gw.post("/v1/chat/completions", json=_chat("llama-70b", stream=True))
        text = await resp.text()
    assert resp.status == 200 and '"delta": {"content": "a"}' in text
    assert "broke off the stream" in text
    assert harness.metric("aipolicy_gateway_requests_total", service="chat", code="502") == 1


async def test_slo_overflow_goes_to_the_api_service_while_the_pods_queue_is_too_long(
    harness: Harness,
) -> None:
    chat = harness.store.objects["inferenceservices"]["chat"]
    chat["spec"]["scaling"] = {
        "metric": {"type": "SLO"},
        "slo": {"ttftP95": 2, "profile": "A100-80GB/8B", "overflow": {"inferenceService": "gpt"}},
    }
    harness.store.apply("inferenceservices", "MODIFIED", chat)

    async def ask(stream: bool) -> tuple[str, str]:
        resp = await harness.gw.post("/v1/chat/completions", json=_chat("llama-70b", 5, stream=stream))
        assert resp.status == 200
        await resp.read()
        return resp.headers[BACKEND_HEADER], resp.headers[MODE_HEADER]

    # the pod's queue as the gateway sees it: prompts it sent and has no first byte for yet
    assert await ask(stream=True) == ("service/chat", "Normal")
    assert harness.gateway.pod_loads.view() == {}  # the request's own flight was closed
    backlog = harness.gateway.pod_loads.sent("chat-0", 200_000)  # minutes of prefill queued there
    assert await ask(stream=True) == ("service/gpt", "Overflow")
    assert await ask(stream=False) == ("service/gpt", "Overflow")
    backlog.answering()  # those requests now decode: the queue is gone
    assert await ask(stream=False) == ("service/chat", "Normal")
    backlog.done()
    assert harness.gateway.pod_loads.view() == {}
