"""SLO overflow at the gateway: policy.slo.route on the pods' loads as the gateway sees them,
wired into the gateway's pure routing; and the pod-load bookkeeping the server keeps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aipolicy.api.inferenceservice import InferenceService
from aipolicy.gateway.podload import PodLoads, estimate_prompt_tokens
from aipolicy.gateway.routing import Endpoint, Forward, PodsTarget, ProviderTarget, Snapshot, route
from aipolicy.policy.frontdoor import l7_reason
from aipolicy.policy.slo import ReplicaLoad

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PODS = (Endpoint("chat-0", "10.0.0.1"), Endpoint("chat-1", "10.0.0.2"))
BUSY = ReplicaLoad(200_000.0, 64)  # a prompt backlog that takes far longer than the SLO to prefill


def _chat(overflow: bool = True, metric: str = "SLO") -> dict[str, Any]:
    slo: dict[str, Any] = {"ttftP95": 2, "profile": "A100-80GB/8B"}
    if overflow:
        slo["overflow"] = {"inferenceService": "mini"}
    return {
        "metadata": {"name": "chat", "namespace": "ns", "labels": {"team": "a"}},
        "spec": {
            "model": "llama",
            "serving": {"image": "vllm", "port": 8000},
            "pricing": {"gpuHour": "2"},
            "scaling": {"metric": {"type": metric}, "slo": slo},
        },
    }


def _mini(**labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "mini", "namespace": "ns", "labels": labels},
        "spec": {
            "model": "gpt-4o-mini",
            "provider": {"url": "https://api.example.com/v1", "apiKeySecret": "openai"},
            "pricing": {"inputPerMillionTokens": "0.15", "outputPerMillionTokens": "0.60"},
        },
    }


def _snap(chat: dict[str, Any] | None = None, budgets: tuple[dict[str, Any], ...] = ()) -> Snapshot:
    return Snapshot(
        namespace="ns",
        services={"chat": chat or _chat(), "mini": _mini(team="b")},
        budgets=budgets,
        ready={"chat": PODS},
    )


def test_the_pod_predicted_fastest_serves() -> None:
    d = route(_snap(), "chat", NOW, pod_loads={"chat-0": BUSY}, prompt_tokens=1000)
    assert isinstance(d, Forward) and isinstance(d.target, PodsTarget)
    assert d.target.endpoints == (PODS[1],) and d.mode == "Normal"  # chat-1 is idle (not listed)


def test_what_no_pod_can_serve_within_the_slo_overflows_to_the_api_service() -> None:
    d = route(_snap(), "chat", NOW, pod_loads={"chat-0": BUSY, "chat-1": BUSY}, prompt_tokens=1000)
    assert isinstance(d, Forward) and isinstance(d.target, ProviderTarget)
    assert (d.target.service, d.target.model, d.mode) == ("mini", "gpt-4o-mini", "Overflow")
    assert d.target.label == "service/mini"


def test_without_slo_overflow_or_loads_the_own_pods_serve_as_before() -> None:
    loads = {"chat-0": BUSY, "chat-1": BUSY}
    for snap, pod_loads in (
        (_snap(_chat(overflow=False)), loads),
        (_snap(_chat(metric="RequestsInFlight")), loads),
        (_snap(), None),
    ):
        d = route(snap, "chat", NOW, pod_loads=pod_loads, prompt_tokens=1000)
        assert isinstance(d, Forward) and isinstance(d.target, PodsTarget)
        assert d.target.endpoints == PODS


def test_a_suspended_overflow_service_is_not_used() -> None:
    suspending = {
        "metadata": {"name": "b-budget"},
        "spec": {"limit": "1", "selector": {"matchLabels": {"team": "b"}}},
        "status": {"activeAction": "Suspend"},
    }
    d = route(_snap(budgets=(suspending,)), "chat", NOW, pod_loads={"chat-0": BUSY, "chat-1": BUSY})
    assert isinstance(d, Forward) and isinstance(d.target, PodsTarget) and d.target.endpoints == PODS


def test_pod_loads_follow_each_request_from_sent_to_answering_to_done() -> None:
    loads = PodLoads()
    a = loads.sent("chat-0", 1200)
    b = loads.sent("chat-0", 300)
    assert loads.view() == {"chat-0": ReplicaLoad(1500.0, 0)}
    a.answering()
    a.answering()  # a second first byte changes nothing
    assert loads.view() == {"chat-0": ReplicaLoad(300.0, 1)}
    b.done()  # ended before answering (an error): its prompt leaves the queue
    a.done()
    a.done()
    assert loads.view() == {}


def test_a_pod_is_forgotten_only_when_its_last_request_ends_even_with_empty_prompts() -> None:
    """Two requests whose prompts count 0 tokens: the first ending must not drop the pod while
    the second is still there (the gateway answered 500 to every such concurrent request)."""
    loads = PodLoads()
    first, second = loads.sent("pod-a", 0), loads.sent("pod-a", 0)
    first.answering()
    first.done()
    assert loads.view() == {"pod-a": ReplicaLoad(0.0, 0)}
    second.answering()
    assert loads.view() == {"pod-a": ReplicaLoad(0.0, 1)}
    second.done()
    assert loads.view() == {}


def test_prompt_tokens_are_estimated_from_the_text() -> None:
    chat = {"messages": [{"role": "user", "content": "x" * 4000}, {"role": "system", "content": "y" * 400}]}
    assert estimate_prompt_tokens(chat) == 1100 + 8
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "z" * 40}]}]}
    assert estimate_prompt_tokens(parts) == 14
    assert estimate_prompt_tokens({"prompt": "w" * 800}) == 200
    assert estimate_prompt_tokens({"prompt": ["a" * 40, "b" * 40]}) == 20
    assert estimate_prompt_tokens({"input": "embeddings"}) == 0


def test_slo_overflow_puts_the_service_behind_the_gateway() -> None:
    isvc = InferenceService.model_validate(_chat())
    assert l7_reason(isvc, []) == (
        "it overflows what its replicas cannot serve within the SLO to mini (spec.scaling.slo.overflow)"
    )
    assert l7_reason(InferenceService.model_validate(_chat(overflow=False)), []) is None
