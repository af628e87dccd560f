"""The HTTP shell on a fake clock: metrics endpoints, control API, file_sd, serve()."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from aipolicy.sim.config import SimConfig
from aipolicy.sim.fleet import Fleet, PodInfo
from aipolicy.sim.server import ServeOptions, Simulator, serve
from aipolicy.sim.targets import PODS_FILE, SERVICES_FILE, TargetsWriter


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock, tmp_path: Path) -> Simulator:
    return Simulator(Fleet(), clock=clock, targets=TargetsWriter(tmp_path, "127.0.0.1:9400"))


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(sim.create_app())) as c:
        yield c


def _pod(name: str, ready: bool = True) -> PodInfo:
    return PodInfo("team-a", name, "chat", "llama", ready)


def _pods_in_file(tmp_path: Path) -> list[str]:
    return [g["labels"]["pod"] for g in json.loads((tmp_path / PODS_FILE).read_text())]


async def test_pod_metrics_lifecycle(sim: Simulator, client: TestClient, tmp_path: Path) -> None:
    assert (await client.get("/metrics/pods/team-a/p0")).status == 404
    sim.upsert_pod(_pod("p0", ready=False))
    assert _pods_in_file(tmp_path) == ["p0"]
    assert (await client.get("/metrics/pods/team-a/p0")).status == 503  # still loading
    sim.upsert_pod(_pod("p0"))
    resp = await client.get("/metrics/pods/team-a/p0")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {f.name for f in text_string_to_metric_families(await resp.text())}
    assert "vllm:num_requests_waiting" in names
    sim.remove_pod("team-a", "p0")
    assert _pods_in_file(tmp_path) == []
    assert (await client.get("/metrics/pods/team-a/p0")).status == 404


async def test_traffic_and_faults_over_http(sim: Simulator, client: TestClient, clock: FakeClock) -> None:
    sim.upsert_pod(_pod("p0"))
    body = {"kind": "constant", "rate": 10, "duration": 100, "promptTokens": 10, "outputTokens": 2}
    resp = await client.put("/traffic/team-a/chat", json=body)
    assert resp.status == 200, await resp.text()
    clock.t += 10
    state = await (await client.get("/state")).json()
    (svc,) = state["services"]
    assert svc["totals"]["arrived"] == 100
    assert (svc["replicas"], svc["ready"]) == (1, 1)
    resp = await client.put("/faults/team-a/chat", json={"errorRate": 1.0})
    assert resp.status == 200
    clock.t += 10
    svc = (await (await client.get("/state")).json())["services"][0]
    assert svc["faults"]["errorRate"] == 1.0
    assert svc["totals"]["failed"] == 100
    assert (await client.delete("/faults/team-a/chat")).status == 200
    resp = await client.put("/faults/team-a/chat", json={"metricsUnavailable": True})
    assert (await client.get("/metrics/pods/team-a/p0")).status == 503
    assert (await client.delete("/traffic/team-a/chat")).status == 200
    assert (await client.delete("/traffic/team-a/nope")).status == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/faults/team-a/chat", {"errorRate": 2}),
        ("/faults/team-a/chat", {"typo": 1}),
        ("/traffic/team-a/chat", {"kind": "constant"}),
        ("/traffic/team-a/chat", {"kind": "trace", "path": "/etc/hosts"}),
        ("/services/team-a/chat", {"backend": "carrier-pigeon"}),
    ],
)
async def test_bad_control_bodies_are_400(client: TestClient, path: str, body: object) -> None:
    resp = await client.put(path, json=body)
    assert resp.status == 400
    assert "error" in await resp.json()


async def test_api_backed_service_declared_over_http(
    client: TestClient, clock: FakeClock, tmp_path: Path
) -> None:
    spec = {"backend": "api", "modelName": "gpt-x",
            "traffic": {"kind": "constant", "rate": 1, "duration": 60}}  # fmt: skip
    assert (await client.put("/services/team-b/gpt", json=spec)).status == 200
    services = json.loads((tmp_path / SERVICES_FILE).read_text())
    assert services[0]["labels"]["__metrics_path__"] == "/metrics/services/team-b/gpt"
    clock.t += 30
    resp = await client.get("/metrics/services/team-b/gpt")
    assert resp.status == 200
    samples = {s.name: s for f in text_string_to_metric_families(await resp.text()) for s in f.samples}
    assert samples["litellm_proxy_total_requests_metric_total"].value > 20
    assert samples["litellm_proxy_total_requests_metric_total"].labels["model"] == "gpt-x"
    assert (await client.get("/metrics/services/team-a/chat")).status == 404


async def test_services_seen_only_through_pods_get_default_traffic(clock: FakeClock) -> None:
    cfg = SimConfig.model_validate({"defaults": {"traffic": {"kind": "constant", "rate": 2, "duration": 10}}})
    sim = Simulator(Fleet(), config=cfg, clock=clock)
    sim.replace_pods([_pod("p0")])
    clock.t += 20
    sim.tick()
    assert sim.fleet.state()["services"][0]["totals"]["succeeded"] == 20


async def test_serve_listens_on_loopback_and_stops(tmp_path: Path) -> None:
    stop = asyncio.Event()
    ports: list[int] = []
    cfg = SimConfig.model_validate({"services": {"team-b/gpt": {"backend": "api"}}})
    opts = ServeOptions(targets_dir=tmp_path, port=0, config=cfg, tick_s=0.05, watch_cluster=False)
    task = asyncio.create_task(serve(opts, stop, started=lambda _s, p: ports.append(p)))
    for _ in range(200):
        if ports:
            break
        await asyncio.sleep(0.01)
    assert ports, "server did not start"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{ports[0]}/healthz") as resp:
            assert resp.status == 200
        async with session.get(f"http://127.0.0.1:{ports[0]}/metrics/services/team-b/gpt") as r:
            assert r.status == 200
    # one file per simulator (named by its port), removed when it stops
    services_file = tmp_path / f"{ports[0]}-{SERVICES_FILE}"
    groups = json.loads(services_file.read_text())
    assert groups[0]["targets"] == [f"127.0.0.1:{ports[0]}"]
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert not services_file.exists()
