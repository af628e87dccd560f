"""Real OpenAI-compatible requests answered by simulated pods and providers (wall clock)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from aipolicy.sim.config import FaultSpec, ServiceSpec
from aipolicy.sim.fleet import Fleet, PodInfo
from aipolicy.sim.model import Backend, ServiceId
from aipolicy.sim.server import Simulator
from aipolicy.sim.serving import count_tokens
from aipolicy.sim.targets import TargetsWriter

FAST = {
    "prefillTokensPerSecond": 100000,
    "decodeTokensPerSecond": 4000,
    "perSequenceDecodeTokensPerSecond": 400,
}


@pytest.fixture
async def sim(tmp_path: Path) -> Simulator:
    s = Simulator(Fleet(), targets=TargetsWriter(tmp_path, "127.0.0.1:9400"))
    s.apply_service(
        ServiceId("ns", "chat"), ServiceSpec.model_validate({"modelName": "llama", "capacity": FAST})
    )
    s.upsert_pod(PodInfo("ns", "chat-0", "chat", "llama", True))
    s.upsert_pod(PodInfo("ns", "chat-1", "chat", "llama", False))
    s.apply_service(
        ServiceId("ns", "gpt"),
        ServiceSpec.model_validate(
            {
                "backend": "api",
                "modelName": "gpt-4o-mini",
                "apiCapacity": {"baseLatencySeconds": 0.01, "outputTokensPerSecond": 500},
            }
        ),
    )
    return s


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(sim.create_app())) as c:
        yield c


def _chat(model: str, words: int = 5, max_tokens: int = 8, **extra: object) -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": " ".join(["hi"] * words)}],
        "max_tokens": max_tokens,
        **extra,
    }


def test_count_tokens() -> None:
    assert (
        count_tokens([{"role": "user", "content": "a b c"}, {"content": [{"type": "text", "text": "d e"}]}])
        == 5
    )
    assert count_tokens("one two") == 2


async def test_pod_answers_chat_with_real_usage_and_counts_in_the_model(
    sim: Simulator, client: TestClient
) -> None:
    resp = await client.post(
        "/pods/ns/chat-0/v1/chat/completions", json=_chat("llama", words=7, max_tokens=9)
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 9, "total_tokens": 16}
    assert body["choices"][0]["message"]["content"]
    svc = sim.fleet.service(ServiceId("ns", "chat"))
    assert svc is not None and svc.totals.succeeded == 1  # type: ignore[union-attr]
    assert svc.totals.prompt_tokens == 7  # type: ignore[union-attr]


async def test_pod_streams_one_chunk_per_token_with_usage_last(client: TestClient) -> None:
    body = _chat("llama", max_tokens=6, stream=True, stream_options={"include_usage": True})
    resp = await client.post("/pods/ns/chat-0/v1/chat/completions", json=body)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = [line[6:] for line in (await resp.text()).split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 7  # six tokens, then usage
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6


async def test_unready_pod_unknown_model_and_models_list(client: TestClient) -> None:
    assert (await client.post("/pods/ns/chat-1/v1/chat/completions", json=_chat("llama"))).status == 503
    assert (await client.post("/pods/ns/nope/v1/chat/completions", json=_chat("llama"))).status == 404
    wrong = await client.post("/pods/ns/chat-0/v1/chat/completions", json=_chat("gpt"))
    assert wrong.status == 404 and (await wrong.json())["error"]["code"] == "model_not_found"
    models = await (await client.get("/pods/ns/chat-0/v1/models")).json()
    assert [m["id"] for m in models["data"]] == ["llama"]
    emb = await client.post("/pods/ns/chat-0/v1/embeddings", json={"model": "llama", "input": "a b c"})
    assert (await emb.json())["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


async def test_provider_checks_key_and_model(sim: Simulator, client: TestClient) -> None:
    assert (await client.put("/serving/ns/gpt", json={"apiKey": "sk-test"})).status == 200
    url = "/providers/ns/gpt/v1/chat/completions"
    assert (await client.post(url, json=_chat("gpt-4o-mini"))).status == 401
    bad = await client.post(url, json=_chat("gpt-4o-mini"), headers={"Authorization": "Bearer nope"})
    assert bad.status == 401
    wrong = await client.post(url, json=_chat("llama"), headers={"Authorization": "Bearer sk-test"})
    assert wrong.status == 404
    ok = await client.post(
        url, json=_chat("gpt-4o-mini", max_tokens=3), headers={"Authorization": "Bearer sk-test"}
    )
    assert ok.status == 200 and (await ok.json())["usage"]["completion_tokens"] == 3
    stats = await (await client.get("/serving/ns/gpt")).json()
    assert stats["unauthorized"] == 2 and stats["succeeded"] == 1 and stats["models"]["llama"] == 1


async def test_provider_faults_answer_with_the_error_status(sim: Simulator, client: TestClient) -> None:
    sim.fleet.set_faults(ServiceId("ns", "gpt"), FaultSpec(errorRate=1.0).build())
    await client.put("/serving/ns/gpt", json={"errorStatus": 429})
    resp = await client.post("/providers/ns/gpt/v1/chat/completions", json=_chat("gpt-4o-mini"))
    assert resp.status == 429
    sim.fleet.set_faults(ServiceId("ns", "chat"), FaultSpec(errorRate=1.0).build())
    assert (await client.post("/pods/ns/chat-0/v1/chat/completions", json=_chat("llama"))).status == 500
    assert Backend.API.value == "api"


async def test_real_provider_requests_stay_out_of_the_simulated_gateway_counters(
    sim: Simulator, client: TestClient
) -> None:
    # the real gateway counts them; the simulated LiteLLM counters are for simulated traffic
    ok = await client.post("/providers/ns/gpt/v1/chat/completions", json=_chat("gpt-4o-mini"))
    assert ok.status == 200
    metrics = sim.fleet.api_metrics(ServiceId("ns", "gpt"))
    assert metrics is not None and metrics.requests == 0 and metrics.output_tokens == 0


async def test_a_pod_not_ready_answers_503_like_a_server_still_loading(client: TestClient) -> None:
    resp = await client.post("/pods/ns/chat-1/v1/chat/completions", json=_chat("llama"))
    assert resp.status == 503
    assert "loading the model" in (await resp.json())["error"]["message"]


async def test_a_pod_the_watch_reports_ready_a_moment_late_is_served(
    sim: Simulator, client: TestClient
) -> None:
    """The gateway may see a pod Ready before the simulator's own watch does; the pod serves."""
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, sim.upsert_pod, PodInfo("ns", "chat-1", "chat", "llama", True))
    resp = await client.post("/pods/ns/chat-1/v1/chat/completions", json=_chat("llama"))
    assert resp.status == 200
