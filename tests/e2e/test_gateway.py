"""The gateway end to end: real HTTP requests through `aipolicy gateway` (a loopback process
with the least-privilege Role of gateway/manifests.py), a real apiserver, Prometheus scraping
the gateway and the simulator, the operator as a process, and the simulator answering as the
pods and the provider. No test dials a pod or ClusterIP address: the gateway reaches pods
through the simulator's loopback endpoint for each pod (--pod-url-template)."""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from aipolicy.gateway import manifests
from tests.e2e.builders import aibudget, deployment, ready_after
from tests.e2e.cluster import (
    Cluster,
    ManagedProcess,
    Prometheus,
    Simulator,
    free_port,
    python_module,
    wait_until,
)
from tests.e2e.conftest import OperatorFactory

GROUP_VERSION = "aipolicy.dev/v1alpha1"
SECRET = "openai-key"
KEY = "sk-e2e-secret-key"
FAST_POD = {
    "capacity": {
        "prefillTokensPerSecond": 50000,
        "decodeTokensPerSecond": 4000,
        "perSequenceDecodeTokensPerSecond": 200,
    }
}


@dataclass
class GatewayHandle:
    url: str
    process: ManagedProcess

    def call(
        self,
        path: str,
        body: dict[str, Any] | bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> tuple[int, dict[str, str], bytes]:
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, headers={"Content-Type": "application/json", **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def chat(
        self, model: str, max_tokens: int = 5, **extra: Any
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": "say something short"}],
            "max_tokens": max_tokens,
            **extra,
        }
        status, headers, raw = self.call("/v1/chat/completions", body)
        return status, {k.lower(): v for k, v in headers.items()}, json.loads(raw) if raw else {}

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total


GatewayFactory = Callable[..., GatewayHandle]


def _kubeconfig_for(cluster: Cluster, namespace: str, path: Path) -> Path:
    token = cluster.kubectl(
        "-n", namespace, "create", "token", manifests.NAME, "--duration=2h"
    ).stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": "gateway", "user": {"token": token}}],
        "contexts": [{"name": "gateway", "context": {"cluster": "cluster", "user": "gateway"}}],
        "current-context": "gateway",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def gateway(
    cluster: Cluster, crds_installed: None, simulator: Simulator, tmp_path: Path
) -> Iterator[GatewayFactory]:
    """Start the gateway of a namespace with exactly the Role it would get in a cluster."""
    started: list[ManagedProcess] = []

    def start(namespace: str, secrets: list[str]) -> GatewayHandle:
        for obj in (
            manifests.service_account(namespace),
            manifests.role(namespace, secrets),
            manifests.role_binding(namespace),
        ):
            cluster.apply(obj, namespace)
        kubeconfig = _kubeconfig_for(cluster, namespace, tmp_path / "gateway-kubeconfig")
        port = free_port()
        args = python_module(
            "aipolicy",
            "gateway",
            "--namespace",
            namespace,
            "--port",
            str(port),
            "--kubeconfig",
            str(kubeconfig),
            "--pod-url-template",
            simulator.url + "/pods/{namespace}/{pod}",
            "--max-body-bytes",
            "65536",
        )
        if cluster.targets_dir is not None:
            args += ["--targets-dir", str(cluster.targets_dir)]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        process = ManagedProcess(args, env, tmp_path / f"gateway-{len(started)}.log").start()
        started.append(process)
        handle = GatewayHandle(f"http://127.0.0.1:{port}", process)

        def healthy() -> bool:
            try:
                return handle.call("/healthz")[0] == 200
            except OSError:
                return False

        try:
            wait_until("the gateway serving", healthy, timeout=60)
        except AssertionError:
            raise AssertionError(process.log_tail()) from None
        return handle

    yield start
    for process in started:
        process.stop()
        log = process.log_tail(1000)
        assert KEY not in log, "a provider key reached the gateway's log"


def _provider_service(
    name: str, simulator: Simulator, namespace: str, secret: str = SECRET
) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name, "labels": {"team": "a"}},
        "spec": {
            "model": name,
            "provider": {
                "url": f"{simulator.url}/providers/{namespace}/{name}/v1",
                "model": "gpt-4o-mini",
                "apiKeySecret": secret,
            },
            "pricing": {"inputPerMillionTokens": "150", "outputPerMillionTokens": "600"},
        },
    }


def _secret(name: str, key: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {"apiKey": base64.b64encode(key.encode()).decode()},
    }


def _provider(simulator: Simulator, namespace: str, service: str, **options: Any) -> None:
    simulator.configure(
        namespace,
        service,
        {
            "backend": "api",
            "modelName": "gpt-4o-mini",
            "apiCapacity": {"baseLatencySeconds": 0.05, "outputTokensPerSecond": 400},
        },
    )
    simulator._call("PUT", f"/serving/{namespace}/{service}", {"apiKey": KEY, **options})


def _api_backed_gpt(cluster: Cluster, simulator: Simulator, namespace: str) -> None:
    """The API-backed service gpt, its simulated provider, and the Secret of its key."""
    _provider(simulator, namespace, "gpt")
    cluster.apply(_secret(SECRET, KEY), namespace)
    cluster.apply(_provider_service("gpt", simulator, namespace), namespace)


def _team_budget(*, limit: str, thresholds: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """The daily budget `team-budget` of team a's services, evaluated every 2 s."""
    return aibudget(
        "team-budget",
        {
            "limit": limit,
            "period": {"type": "Daily"},
            "selector": {"matchLabels": {"team": "a"}},
            "thresholds": thresholds,
            "evaluationInterval": "2s",
            **spec,
        },
    )


def _seen(simulator: Simulator, namespace: str, service: str) -> dict[str, Any]:
    result: dict[str, Any] = simulator._call("GET", f"/serving/{namespace}/{service}")
    return result


def test_an_api_backed_service_serves_through_the_gateway_with_the_secrets_key(
    cluster: Cluster, namespace: str, simulator: Simulator, gateway: GatewayFactory
) -> None:
    _provider(simulator, namespace, "gpt")
    cluster.apply(_secret(SECRET, KEY), namespace)
    cluster.apply(_secret("not-named", "sk-other"), namespace)
    cluster.apply(_provider_service("gpt", simulator, namespace), namespace)
    cluster.apply(_provider_service("nokey", simulator, namespace, secret="missing-key"), namespace)
    gw = gateway(namespace, [SECRET, "missing-key"])

    status, headers, body = gw.chat("gpt", 6, **{"user": "u1"})
    assert status == 200, body
    assert headers["x-aipolicy-backend"] == "service/gpt"
    # the provider saw the Secret's key (else 401) and its own model name, not the client's
    seen = _seen(simulator, namespace, "gpt")
    assert seen["models"] == {"gpt-4o-mini": 1} and seen["unauthorized"] == 0
    # a client's own Authorization never reaches the provider: the Secret's key replaces it
    status, _, _ = gw.call(
        "/v1/chat/completions",
        {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": "Bearer sk-client-own"},
    )
    assert status == 200 and _seen(simulator, namespace, "gpt")["unauthorized"] == 0

    # tokens and money in the gateway's metrics are exactly the provider's usage
    usage = body["usage"]
    seen = _seen(simulator, namespace, "gpt")
    labels = {"namespace": namespace, "service": "gpt", "backend": "service/gpt"}
    assert gw.metric("aipolicy_gateway_prompt_tokens_total", **labels) == seen["promptTokens"]
    assert gw.metric("aipolicy_gateway_completion_tokens_total", **labels) == seen["completionTokens"]
    assert usage["completion_tokens"] == 6
    spend = (seen["promptTokens"] * 150 + seen["completionTokens"] * 600) / 1e6
    assert gw.metric("aipolicy_gateway_spend_total", **labels) == pytest.approx(spend, rel=1e-9)

    # a Secret that is missing: 503 naming it, and the provider never sees a request (no 401)
    status, _, body = gw.chat("nokey")
    assert status == 503 and "missing-key" in body["error"]["message"]
    assert _seen(simulator, namespace, "nokey")["requests"] == 0

    # bad input: each a clear error, and the gateway keeps serving
    assert gw.call("/v1/chat/completions", b"{" + b" " * 70000 + b"}")[0] == 413
    status, _, raw = gw.call("/v1/chat/completions", b'{"model": "gpt", "messages": [}')
    assert status == 400 and b"column" in raw
    status, _, body = gw.chat("no-such-model")
    assert status == 404 and "gpt" in body["error"]["message"]
    status, _, _ = gw.call(
        "/v1/chat/completions",
        {"model": "gpt", "messages": []},
        headers={"X-Aipolicy-Backend": "provider/elsewhere"},
    )
    assert status == 400
    assert gw.chat("gpt")[0] == 200


def test_a_stream_passes_through_chunk_by_chunk_and_is_metered_exactly(
    cluster: Cluster, namespace: str, simulator: Simulator, gateway: GatewayFactory
) -> None:
    simulator.configure(namespace, "chat", {"modelName": "example/chat", **FAST_POD})
    cluster.apply(_selfhosted("chat", min_replicas=1), namespace)
    cluster.apply(_deployment_of("chat"), namespace)
    gw = gateway(namespace, [])
    wait_until("a ready pod behind the gateway", lambda: gw.chat("example/chat", 1)[0] == 200, timeout=90)
    before = _seen(simulator, namespace, "chat")

    body = {
        "model": "example/chat",
        "messages": [{"role": "user", "content": "a b c d"}],
        "max_tokens": 30,
        "stream": True,
    }
    request = urllib.request.Request(
        f"{gw.url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    reads: list[bytes] = []
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        while chunk := response.read1(65536):
            reads.append(chunk)
    events = [e for e in b"".join(reads).decode().split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and len(events) == 31  # 30 tokens, then [DONE]
    assert len(reads) > 5  # frames arrived as the pod produced them, not in one buffered burst
    after = _seen(simulator, namespace, "chat")
    labels = {"namespace": namespace, "service": "chat", "backend": "service/chat"}
    assert gw.metric("aipolicy_gateway_completion_tokens_total", **labels) == after["completionTokens"]
    assert after["completionTokens"] - before["completionTokens"] == 30
    assert gw.metric("aipolicy_gateway_prompt_tokens_total", **labels) == after["promptTokens"]


def _selfhosted(
    name: str, *, min_replicas: int, front_door: dict[str, Any] | None = None, **scaling: Any
) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name, "labels": {"team": "a"}},
        "spec": {
            "model": f"example/{name}",
            "serving": {
                "image": "vllm/vllm-openai:v0.6.3",
                "gpu": {"count": 1},
                "resources": {"cpu": "1", "memory": "4Gi"},
                "podAnnotations": {"kwok.aipolicy.dev/ready-delay": "3s"},
            },
            "pricing": {"gpuHour": "2.50"},
            "scaling": {"minReplicas": min_replicas, "maxReplicas": 1, **scaling},
            **({"frontDoor": front_door} if front_door else {}),
        },
    }


def _deployment_of(name: str) -> dict[str, Any]:
    """Pods labelled as the operator labels them, for tests that run no operator."""
    server = {"name": "server", "image": "vllm/vllm-openai:v0.6.3"}
    return deployment(name, server, labels={"aipolicy.dev/service": name}, annotations=ready_after("1s"))


def test_a_suspended_budget_refuses_with_429_and_no_backend_sees_it(
    cluster: Cluster,
    namespace: str,
    simulator: Simulator,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
    gateway: GatewayFactory,
) -> None:
    _api_backed_gpt(cluster, simulator, namespace)
    # at 150/600 per million, each request of ~3 prompt and 50 completion tokens costs ~$0.03
    cluster.apply(
        _team_budget(limit="0.05", thresholds=[{"percent": 100, "action": "Suspend"}], hysteresisPercent=0),
        namespace,
    )
    operator_process(namespace)
    gw = gateway(namespace, [SECRET])
    for _ in range(3):
        status, _, body = gw.chat("gpt", 50)
        assert status == 200, body

    def suspended() -> tuple[int, dict[str, str], dict[str, Any]] | None:
        answer = gw.chat("gpt", 50)
        return answer if answer[0] == 429 else None

    served_before = _seen(simulator, namespace, "gpt")["requests"]
    status, headers, body = wait_until(
        "the budget suspending the service", suspended, timeout=120, interval=1
    )
    message = body["error"]["message"]
    assert "AIBudget team-budget" in message and "of 0.05 USD" in message and "resets at" in message
    assert int(headers["retry-after"]) > 0
    # what the budget computed is what the gateway metered (the spend is named in the refusal)
    spent = (cluster.get("aibudget", "team-budget", namespace) or {})["status"]["spent"]
    assert f"spent {spent}" in message
    refused_requests = _seen(simulator, namespace, "gpt")["requests"]
    # only requests admitted before the refusal reached the provider; none after
    assert gw.chat("gpt")[0] == 429
    assert _seen(simulator, namespace, "gpt")["requests"] == refused_requests
    assert refused_requests >= served_before

    # back under the limit (raised here; a new period does the same): requests pass again
    cluster.kubectl(
        "-n", namespace, "patch", "aibudget", "team-budget", "--type=merge", "-p", '{"spec":{"limit":"1000"}}'
    )
    wait_until("requests passing again", lambda: gw.chat("gpt")[0] == 200, timeout=60, interval=1)


def test_a_service_at_zero_holds_the_first_request_until_a_pod_is_ready(
    cluster: Cluster,
    namespace: str,
    simulator: Simulator,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
    gateway: GatewayFactory,
) -> None:
    simulator.configure(namespace, "cold", {"modelName": "example/cold", **FAST_POD})
    cluster.apply(
        _selfhosted(
            "cold",
            min_replicas=0,
            front_door={"queueSize": 4, "queueTimeout": "150s"},
            evaluationInterval="2s",
        ),
        namespace,
    )
    operator_process(namespace)
    gw = gateway(namespace, [])
    wait_until(
        "scaled to zero",
        lambda: (cluster.get("deployment", "cold", namespace) or {}).get("spec", {}).get("replicas") == 0,
        timeout=60,
    )
    # the held request is the demand signal: the gateway publishes it, the operator scales on it
    status, headers, body = gw.chat("example/cold", 3, timeout=170)
    assert status == 200, body
    assert headers["x-aipolicy-backend"] == "service/cold"
    assert _seen(simulator, namespace, "cold")["succeeded"] == 1
    decisions = (cluster.get("inferenceservice", "cold", namespace) or {})["status"]["decisions"]
    assert any(d["from"] == 0 and d["to"] == 1 for d in decisions)
    assert gw.metric("aipolicy_frontdoor_requests_waiting", namespace=namespace, service="cold") == 0


def test_a_held_request_times_out_with_503_model_is_starting(
    cluster: Cluster, namespace: str, simulator: Simulator, gateway: GatewayFactory
) -> None:
    # no operator: nothing will ever scale it up
    cluster.apply(
        _selfhosted("idle", min_replicas=0, front_door={"queueSize": 1, "queueTimeout": "3s"}), namespace
    )
    gw = gateway(namespace, [])
    status, headers, body = gw.chat("example/idle")
    assert status == 503 and "model is starting" in body["error"]["message"]
    assert "retry-after" in headers


def _policy(
    chain: list[dict[str, Any]], *, target: str = "large", hold_for: str = "10s", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "FallbackPolicy",
        "metadata": {"name": "fallback"},
        "spec": {
            "target": target,
            "triggers": [{"type": "ErrorRate", "threshold": 0.5, "window": "10s", "for": "2s"}],
            "chain": chain,
            "recovery": {"holdFor": hold_for, "minSwitchInterval": "2s"},
            "evaluationInterval": "1s",
            **spec,
        },
    }


Answer = tuple[int, dict[str, str], dict[str, Any]]


def _served_by(gw: GatewayHandle) -> Callable[[str], Callable[[], Answer | None]]:
    """A probe per backend: a request for the large model answered by that backend, or None."""

    def served_by(backend: str) -> Callable[[], Answer | None]:
        def probe() -> Answer | None:
            answer = gw.chat("example/large", 2)
            return answer if answer[0] == 200 and answer[1].get("x-aipolicy-backend") == backend else None

        return probe

    return served_by


def _error_storm_on_large(gw: GatewayHandle, simulator: Simulator, namespace: str) -> None:
    """Once the large model answers through the gateway, most of its requests fail."""
    wait_until(
        "the large model answering", lambda: gw.chat("example/large", 1)[0] == 200, timeout=120, interval=1
    )
    # simulated clients keep the large model's error rate measured while real requests go elsewhere
    simulator.traffic(
        namespace,
        "large",
        {"kind": "constant", "rate": 5, "duration": 600, "promptTokens": 50, "outputTokens": 5},
    )
    simulator.fault(namespace, "large", errorRate=0.9)


def test_an_error_storm_moves_real_requests_to_the_small_model_then_the_provider_then_back(
    cluster: Cluster,
    namespace: str,
    simulator: Simulator,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
    gateway: GatewayFactory,
) -> None:
    for name in ("large", "small"):
        simulator.configure(namespace, name, {"modelName": f"example/{name}", **FAST_POD})
        cluster.apply(_selfhosted(name, min_replicas=1), namespace)
    _provider(simulator, namespace, "api")
    cluster.apply(_secret(SECRET, KEY), namespace)
    provider_step = {
        "provider": {
            "url": f"{simulator.url}/providers/{namespace}/api/v1",
            "model": "gpt-4o-mini",
            "apiKeySecret": SECRET,
            "inputPerMillionTokens": "0.15",
            "outputPerMillionTokens": "0.60",
        }
    }
    cluster.apply(_policy([{"inferenceService": "small"}, provider_step]), namespace)
    operator_process(namespace)
    gw = gateway(namespace, [SECRET])
    _error_storm_on_large(gw, simulator, namespace)
    served_by = _served_by(gw)

    _, headers, body = wait_until(
        "requests on the small model", served_by("service/small"), timeout=120, interval=1
    )
    assert headers["x-aipolicy-mode"] == "Fallback" and body["model"] == "example/small"

    # the small model goes down too: the chain's provider serves, with its own model name and key
    cluster.kubectl("-n", namespace, "delete", "inferenceservice", "small", "--wait=false")
    _, headers, body = wait_until(
        "requests on the provider", served_by("provider/127.0.0.1"), timeout=120, interval=1
    )
    assert body["model"] == "gpt-4o-mini"
    assert _seen(simulator, namespace, "api")["unauthorized"] == 0
    assert (
        gw.metric(
            "aipolicy_gateway_completion_tokens_total",
            namespace=namespace,
            service="large",
            backend="provider/127.0.0.1",
        )
        >= 2
    )

    # healthy again: back on the large model after the recovery hold
    simulator.clear_fault(namespace, "large")
    _, headers, body = wait_until(
        "requests back on the large model", served_by("service/large"), timeout=120, interval=1
    )
    assert headers["x-aipolicy-mode"] == "Normal" and body["model"] == "example/large"


def test_a_fallback_to_an_api_backed_service_goes_through_the_gateway_to_its_provider(
    cluster: Cluster,
    namespace: str,
    simulator: Simulator,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
    gateway: GatewayFactory,
) -> None:
    """A chain step naming an API-backed InferenceService: it has no pods, so the L4 switch would
    point the front door at nothing. The front door is the gateway from the start, the step
    counts as healthy (no replicas to be Ready), and the request reaches that service's provider
    with its key and model name."""
    simulator.configure(namespace, "large", {"modelName": "example/large", **FAST_POD})
    cluster.apply(_selfhosted("large", min_replicas=1), namespace)
    _api_backed_gpt(cluster, simulator, namespace)
    cluster.apply(_policy([{"inferenceService": "gpt"}]), namespace)
    operator_process(namespace)
    gw = gateway(namespace, [SECRET])

    def front_door_on_the_gateway() -> dict[str, Any] | None:
        door = cluster.get("service", "large", namespace) or {}
        on_gateway = (door.get("spec") or {}).get("selector") == manifests.SELECTOR
        return door if on_gateway else None

    door = wait_until("the large model's front door on the gateway", front_door_on_the_gateway, timeout=60)
    assert door["metadata"]["annotations"]["aipolicy.dev/front-door"] == "gateway"
    assert door["spec"]["ports"][0]["targetPort"] == manifests.PORT

    _error_storm_on_large(gw, simulator, namespace)
    _, headers, body = wait_until(
        "requests on the API-backed service", _served_by(gw)("service/gpt"), timeout=120, interval=1
    )
    assert headers["x-aipolicy-mode"] == "Fallback" and body["model"] == "gpt-4o-mini"
    seen = _seen(simulator, namespace, "gpt")
    assert seen["models"].get("gpt-4o-mini", 0) >= 1 and seen["unauthorized"] == 0
    policy = cluster.get("fallbackpolicy", "fallback", namespace) or {}
    assert policy["status"]["activeBackend"] == "service/gpt"

    def large_in_fallback() -> dict[str, Any] | None:
        status = (cluster.get("inferenceservice", "large", namespace) or {}).get("status") or {}
        return status if status.get("mode") == "Fallback" else None

    status = wait_until("the large model in Fallback mode", large_in_fallback, timeout=30)
    assert status["backend"] == "service/gpt"


def _provider_step(simulator: Simulator, namespace: str) -> dict[str, Any]:
    return {
        "provider": {
            "url": f"{simulator.url}/providers/{namespace}/api/v1",
            "model": "gpt-4o-mini",
            "apiKeySecret": SECRET,
            "inputPerMillionTokens": "0.15",
            "outputPerMillionTokens": "0.60",
        }
    }


def test_cold_start_bridge_answers_from_the_provider_at_once(
    cluster: Cluster, namespace: str, simulator: Simulator, gateway: GatewayFactory
) -> None:
    _provider(simulator, namespace, "api")
    cluster.apply(_secret(SECRET, KEY), namespace)
    cluster.apply(_selfhosted("cold", min_replicas=0, front_door={"queueTimeout": "1m"}), namespace)
    cluster.apply(
        _policy([_provider_step(simulator, namespace)], target="cold", coldStartBridge=True), namespace
    )
    gw = gateway(namespace, [SECRET])
    status, headers, body = gw.chat("example/cold", 3, timeout=20)
    assert status == 200, body
    assert (
        headers["x-aipolicy-mode"] == "ColdStartBridge"
        and headers["x-aipolicy-backend"] == "provider/127.0.0.1"
    )
    assert body["model"] == "gpt-4o-mini"
    assert gw.metric("aipolicy_frontdoor_requests_waiting", namespace=namespace, service="cold") == 0


def test_a_budget_counts_what_the_gateway_spent_at_a_fallback_provider_for_its_service(
    cluster: Cluster,
    namespace: str,
    simulator: Simulator,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
    gateway: GatewayFactory,
) -> None:
    """Money spent at a provider chain step for a service's clients is that service's spend.

    Its GPUs are free here, so everything its budget counts is what the gateway paid the
    provider, at the step's prices, for requests the cold-start bridge sent there.
    """
    _provider(simulator, namespace, "api")
    cluster.apply(_secret(SECRET, KEY), namespace)
    cold = _selfhosted("cold", min_replicas=0, front_door={"queueTimeout": "1m"})
    cold["spec"]["pricing"] = {"gpuHour": "0"}
    cluster.apply(cold, namespace)
    step = _provider_step(simulator, namespace)
    step["provider"] |= {"inputPerMillionTokens": "150", "outputPerMillionTokens": "600"}
    cluster.apply(_policy([step], target="cold", coldStartBridge=True), namespace)
    cluster.apply(_team_budget(limit="1000", thresholds=[{"percent": 90, "action": "Notify"}]), namespace)
    operator_process(namespace)
    gw = gateway(namespace, [SECRET])
    # the gateway exports the step's spend at zero before any request, so Prometheus sees all
    # of it grow (a counter first scraped with money in it would lose that money)
    primed = (
        f'aipolicy_gateway_spend_total{{namespace="{namespace}",service="cold",backend="provider/127.0.0.1"}}'
    )
    wait_until("Prometheus scraping the gateway", lambda: prometheus.value(primed) == 0, timeout=60)
    # the first answers come from the provider at once (later ones may find a pod up)
    status, headers, body = gw.chat("example/cold", 50, timeout=20)
    assert status == 200 and headers["x-aipolicy-backend"] == "provider/127.0.0.1", body
    for _ in range(3):
        assert gw.chat("example/cold", 50, timeout=20)[0] == 200
    paid = gw.metric(
        "aipolicy_gateway_spend_total", namespace=namespace, service="cold", backend="provider/127.0.0.1"
    )
    assert paid > 0.025  # at least one answer of 50 completion tokens at 600 per million

    def counted() -> float | None:
        spent = ((cluster.get("aibudget", "team-budget", namespace) or {}).get("status") or {}).get("spent")
        return float(spent) if spent is not None and abs(float(spent) - paid) < 1e-5 else None

    try:
        wait_until("the budget counting the provider's money", counted, timeout=120, interval=1)
    except AssertionError as error:
        status = (cluster.get("aibudget", "team-budget", namespace) or {}).get("status")
        raise AssertionError(f"{error}; paid {paid}; budget status {status}") from None


def _slow_chat_and_a_provider(cluster: Cluster, namespace: str, simulator: Simulator) -> None:
    """A provider with its key, and a "chat" model whose one sequence decodes 20 tokens/s: a
    40-token answer holds its slot for about 2 s."""
    _provider(simulator, namespace, "api")
    cluster.apply(_secret(SECRET, KEY), namespace)
    simulator.configure(
        namespace,
        "chat",
        {
            "modelName": "example/chat",
            "capacity": {
                "prefillTokensPerSecond": 50000,
                "decodeTokensPerSecond": 400,
                "perSequenceDecodeTokensPerSecond": 20,
            },
        },
    )


def test_overflow_sends_the_excess_of_a_burst_to_the_provider(
    cluster: Cluster, namespace: str, simulator: Simulator, gateway: GatewayFactory
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _slow_chat_and_a_provider(cluster, namespace, simulator)
    cluster.apply(
        _selfhosted("chat", min_replicas=1, front_door={"maxInFlightPerReplica": 2, "overflow": "Fallback"}),
        namespace,
    )
    cluster.apply(_deployment_of("chat"), namespace)
    cluster.apply(_policy([_provider_step(simulator, namespace)], target="chat"), namespace)
    gw = gateway(namespace, [SECRET])
    wait_until("a ready pod behind the gateway", lambda: gw.chat("example/chat", 1)[0] == 200, timeout=90)
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: gw.chat("example/chat", 40), range(6)))
    assert all(a[0] == 200 for a in answers), answers
    backends = [a[1]["x-aipolicy-backend"] for a in answers]
    on_pods = backends.count("service/chat")
    assert 1 <= on_pods <= 2 + 1, backends  # the bound (2 per replica), give or take one finishing early
    assert backends.count("provider/127.0.0.1") == 6 - on_pods
    assert all(
        a[1]["x-aipolicy-mode"] == "Overflow" for a in answers if a[1]["x-aipolicy-backend"] != "service/chat"
    )


def _slo_rate(status: dict[str, Any]) -> float | None:
    """The request rate SLO sizing observed, from its summary in the ScalingActive message."""
    active = next((c for c in status.get("conditions") or [] if c["type"] == "ScalingActive"), {})
    found = re.search(r"([0-9.]+(?:e[+-]?[0-9]+)?) req/s \(", active.get("message", ""))
    return float(found.group(1)) if found else None


def test_slo_sizing_counts_the_requests_that_overflowed(
    cluster: Cluster,
    namespace: str,
    simulator: Simulator,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
    gateway: GatewayFactory,
) -> None:
    """The replica holds 2 requests of 2 s each, so its pods finish at most 1 request/s; the
    clients send 4/s and the rest overflows to the provider. SLO sizing must see the 4."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    _slow_chat_and_a_provider(cluster, namespace, simulator)
    sized = _selfhosted(
        "chat",
        min_replicas=1,
        front_door={"maxInFlightPerReplica": 2, "overflow": "Fallback"},
        metric={"type": "SLO", "window": "10s"},
        evaluationInterval="2s",
        slo={"ttftP95": 2, "profile": "L4/8B"},
    )
    cluster.apply(sized, namespace)
    cluster.apply(_policy([_provider_step(simulator, namespace)], target="chat"), namespace)
    operator_process(namespace)
    gw = gateway(namespace, [SECRET])
    wait_until("a ready pod behind the gateway", lambda: gw.chat("example/chat", 1)[0] == 200, timeout=90)

    stop = threading.Event()
    answers: list[Answer] = []

    def clients() -> None:  # 4 requests a second of 40 output tokens, at most 75 s
        with ThreadPoolExecutor(max_workers=12) as pool:
            for _ in range(300):
                if stop.wait(0.25):
                    break
                pool.submit(lambda: answers.append(gw.chat("example/chat", 40, timeout=30)))

    sender = threading.Thread(target=clients, daemon=True)
    sender.start()

    def status() -> dict[str, Any]:
        return (cluster.get("inferenceservice", "chat", namespace) or {}).get("status") or {}

    def all_demand_seen() -> float | None:
        rate = _slo_rate(status())
        return rate if rate is not None and rate >= 3 else None

    try:
        observed = wait_until(
            "SLO sizing seeing the overflowed requests", all_demand_seen, timeout=70, interval=1
        )
    except AssertionError as error:
        raise AssertionError(f"{error}; status {status()}") from None
    finally:
        stop.set()
        sender.join(timeout=60)
    # the pods finished at most their 1 request/s: the rest was the provider's
    finished = prometheus.value(
        f'sum(rate(vllm:request_success_total{{namespace="{namespace}",service="chat"}}[10s]))'
    )
    assert finished is not None and finished < 1.5 < observed, (finished, observed)
    assert all(a[0] == 200 for a in answers), [a[0] for a in answers]
    assert any(a[1].get("x-aipolicy-mode") == "Overflow" for a in answers)


def test_a_missing_secret_shows_in_the_services_conditions_without_the_operator_reading_secrets(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    simulator: Simulator,
    gateway: GatewayFactory,
    operator_process: OperatorFactory,
) -> None:
    """The gateway (whose Role gets only the named Secrets) checks them and exports
    aipolicy_gateway_secret_problem; the operator, which has no Secret permission at all (it
    runs with manifests/base/rbac.yaml), reads that from Prometheus into SecretsAvailable and,
    for the service's own key, Ready."""
    _provider(simulator, namespace, "nokey")
    cluster.apply(_provider_service("nokey", simulator, namespace, secret="missing-key"), namespace)
    gw = gateway(namespace, ["missing-key"])
    operator_process(namespace)
    # before any request: the gateway checks what the namespace names
    wait_until(
        "the gateway reporting the missing Secret",
        lambda: (
            gw.metric(
                "aipolicy_gateway_secret_problem",
                namespace=namespace,
                secret="missing-key",
                reason="SecretNotFound",
            )
            == 1
        ),
        timeout=30,
    )

    def condition(type_: str, status: str) -> dict[str, Any] | None:
        isvc = cluster.get("inferenceservice", "nokey", namespace) or {}
        for c in (isvc.get("status") or {}).get("conditions") or []:
            if c["type"] == type_ and c["status"] == status:
                return dict(c)
        return None

    missing = wait_until("SecretsAvailable False", lambda: condition("SecretsAvailable", "False"), timeout=90)
    assert missing["reason"] == "SecretNotFound"
    assert f"Secret {namespace}/missing-key" in missing["message"]
    assert "spec.provider.apiKeySecret" in missing["message"]
    ready = wait_until("Ready False", lambda: condition("Ready", "False"), timeout=30)
    assert ready["reason"] == "SecretNotFound"
    # the operator never read it: it cannot
    denied = cluster.kubectl(
        "auth",
        "can-i",
        "get",
        "secrets",
        "-n",
        namespace,
        "--as=system:serviceaccount:aipolicy-system:aipolicy",
        check=False,
    )
    assert denied.stdout.strip() == "no"

    cluster.apply(_secret("missing-key", KEY), namespace)
    found = wait_until("SecretsAvailable True", lambda: condition("SecretsAvailable", "True"), timeout=90)
    assert found["reason"] == "SecretsFound"
    assert (
        wait_until("Ready True", lambda: condition("Ready", "True"), timeout=30)["reason"]
        == "ProviderConfigured"
    )


def test_the_gateways_own_objects_are_put_back_when_deleted_scaled_or_edited(
    cluster: Cluster, namespace: str, simulator: Simulator, operator_process: OperatorFactory
) -> None:
    """The operator watches the gateway's objects like its other children: someone deleting the
    Deployment or the Role, scaling the Deployment or changing its image sees it put back within
    a tick or two, without the operator reading them from the API."""
    cluster.apply(_provider_service("gpt", simulator, namespace), namespace)
    operator_process(namespace)

    def gateway_deployment(uid: str | None = None) -> Callable[[], dict[str, Any] | None]:
        def probe() -> dict[str, Any] | None:
            found = cluster.get("deployment", manifests.NAME, namespace)
            if found is None or found["metadata"]["uid"] == uid or found["spec"]["replicas"] != 2:
                return None
            return found

        return probe

    first = wait_until("the gateway Deployment", gateway_deployment(), timeout=60)
    container = first["spec"]["template"]["spec"]["containers"][0]

    cluster.kubectl("-n", namespace, "delete", "deployment", manifests.NAME)
    wait_until("the deleted Deployment back", gateway_deployment(first["metadata"]["uid"]), timeout=30)

    cluster.kubectl("-n", namespace, "scale", "deployment", manifests.NAME, "--replicas=5")
    wait_until("its replicas back at 2", gateway_deployment(), timeout=30)

    cluster.kubectl("-n", namespace, "set", "image", f"deployment/{manifests.NAME}", "gateway=elsewhere:1")

    def image_back() -> bool:
        found = cluster.get("deployment", manifests.NAME, namespace) or {}
        return (
            bool(found) and found["spec"]["template"]["spec"]["containers"][0]["image"] == container["image"]
        )

    wait_until("its image back", image_back, timeout=30)

    cluster.kubectl("-n", namespace, "delete", "role", manifests.NAME)
    wait_until("the deleted Role back", lambda: cluster.get("role", manifests.NAME, namespace), timeout=30)
