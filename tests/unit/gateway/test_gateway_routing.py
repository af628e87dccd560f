"""Routing as a pure function: objects as stored in the API in, a decision out."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aipolicy.gateway.metrics import GatewayMetrics
from aipolicy.gateway.routing import (
    Endpoint,
    Forward,
    Hold,
    PodsTarget,
    ProviderTarget,
    Refuse,
    Snapshot,
    find_service,
    known_backends,
    known_models,
    route,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POD = Endpoint("chat-0", "10.0.0.1")


def _selfhosted(name: str, model: str, **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"team": "a"}},
        "spec": {
            "model": model,
            "serving": {"image": "vllm", "port": 8000},
            "pricing": {"gpuHour": "2"},
            **extra,
        },
    }


def _api(name: str, model: str, url: str = "https://api.example.com/v1") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "provider": {"url": url, "model": "gpt-4o-mini", "apiKeySecret": "openai"},
            "pricing": {"inputPerMillionTokens": "0.15", "outputPerMillionTokens": "0.60"},
        },
    }


def _budget(
    action: str, *, enforcement: str = "Enforce", period_end: str | None = "2027-01-01T00:00:00Z"
) -> dict[str, Any]:
    return {
        "metadata": {"name": "team-budget"},
        "spec": {
            "limit": "100",
            "currency": "USD",
            "selector": {"matchLabels": {"team": "a"}},
            "enforcement": enforcement,
        },
        "status": {"activeAction": action, "spent": "123.40", "periodEnd": period_end},
    }


def _policy(
    active_step: int = -1, *, bridge: bool = False, chain: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": "chat-fallback"},
        "spec": {
            "target": "chat",
            "triggers": [{"type": "ErrorRate", "threshold": 0.2}],
            "chain": chain
            or [
                {"inferenceService": "small"},
                {
                    "provider": {
                        "url": "https://api.example.com/v1",
                        "model": "gpt-4o",
                        "apiKeySecret": "openai",
                    }
                },
            ],
            "coldStartBridge": bridge,
        },
        "status": {"active": active_step >= 0, "activeStep": active_step},
    }


def _snap(
    *,
    ready: dict[str, tuple[Endpoint, ...]] | None = None,
    policies: tuple[dict[str, Any], ...] = (),
    budgets: tuple[dict[str, Any], ...] = (),
    chat_extra: dict[str, Any] | None = None,
) -> Snapshot:
    services = {
        "chat": _selfhosted("chat", "llama-70b", **(chat_extra or {})),
        "small": _selfhosted("small", "llama-8b"),
        "gpt": _api("gpt", "gpt"),
    }
    return Snapshot(
        "ns",
        services,
        policies,
        budgets,
        ready if ready is not None else {"chat": (POD,), "small": (Endpoint("small-0", "10.0.0.2"),)},
    )


def test_models_resolve_by_spec_model_then_name() -> None:
    snap = _snap()
    assert find_service(snap, "llama-70b") == "chat"
    assert find_service(snap, "small") == "small"
    assert find_service(snap, "nope") is None
    assert "llama-8b" in known_models(snap) and "gpt" in known_models(snap)


def test_normal_goes_to_own_pods_and_api_to_its_provider() -> None:
    decision = route(_snap(), "chat", NOW)
    assert isinstance(decision, Forward) and decision.mode == "Normal"
    assert decision.target == PodsTarget("chat", "llama-70b", 8000, (POD,), decision.target.prices)
    api = route(_snap(), "gpt", NOW)
    assert isinstance(api, Forward) and isinstance(api.target, ProviderTarget)
    assert api.target.model == "gpt-4o-mini" and api.target.secret == "openai"
    assert api.target.prices.cost(1_000_000, 1_000_000) == Decimal("0.75")


def test_suspended_is_429_naming_the_budget_with_retry_after() -> None:
    decision = route(_snap(budgets=(_budget("Suspend"),)), "chat", NOW)
    assert isinstance(decision, Refuse) and decision.status == 429
    assert "AIBudget team-budget" in decision.message and "123.40 of 100 USD" in decision.message
    assert "2027-01-01T00:00:00Z" in decision.message
    assert decision.headers["Retry-After"] == str(31 * 86400 - 12 * 3600)
    # a budget in DryRun, or one whose selector misses the service, refuses nothing
    assert isinstance(route(_snap(budgets=(_budget("Suspend", enforcement="DryRun"),)), "chat", NOW), Forward)
    assert isinstance(route(_snap(budgets=(_budget("Suspend"),)), "gpt", NOW), Forward)


def test_suspend_beats_an_active_fallback() -> None:
    snap = _snap(budgets=(_budget("Suspend"),), policies=(_policy(0),))
    assert isinstance(route(snap, "chat", NOW), Refuse)


def test_fallback_step_serves_with_its_own_model_name() -> None:
    small = route(_snap(policies=(_policy(0),)), "chat", NOW)
    assert isinstance(small, Forward) and small.mode == "Fallback"
    assert isinstance(small.target, PodsTarget) and small.target.model == "llama-8b"
    assert small.target.label == "service/small"
    provider = route(_snap(policies=(_policy(1),)), "chat", NOW)
    assert isinstance(provider, Forward) and isinstance(provider.target, ProviderTarget)
    assert provider.target.label == "provider/api.example.com" and provider.target.model == "gpt-4o"


def test_fallback_to_a_service_with_no_ready_pod_holds_for_it() -> None:
    decision = route(_snap(policies=(_policy(0),), ready={"chat": (POD,)}), "chat", NOW)
    assert isinstance(decision, Hold) and decision.waiting_for == "small"


def test_degraded_serves_own_pods_and_refuses_at_zero_replicas() -> None:
    decision = route(_snap(budgets=(_budget("Degrade"),)), "chat", NOW)
    assert isinstance(decision, Forward) and decision.mode == "Degraded"
    zero = _snap(budgets=(_budget("Degrade"),), chat_extra={"degraded": {"maxReplicas": 0}})
    refused = route(zero, "chat", NOW)
    assert isinstance(refused, Refuse) and refused.status == 503
    policy_degraded = route(_snap(policies=(_policy(0, chain=[{"degraded": True}]),)), "chat", NOW)
    assert isinstance(policy_degraded, Forward) and policy_degraded.mode == "Degraded"


def test_no_ready_replica_holds_with_the_spec_queue() -> None:
    snap = _snap(ready={}, chat_extra={"frontDoor": {"queueSize": 3, "queueTimeout": "20s"}})
    assert route(snap, "chat", NOW) == Hold("chat", "chat", 3, 20.0)


def test_cold_start_bridge_serves_from_the_first_usable_step() -> None:
    # small has no pod either: the provider step bridges
    snap = _snap(ready={}, policies=(_policy(bridge=True),))
    decision = route(snap, "chat", NOW)
    assert isinstance(decision, Forward) and decision.mode == "ColdStartBridge"
    assert isinstance(decision.target, ProviderTarget)
    without = _snap(ready={}, policies=(_policy(bridge=False),))
    assert isinstance(route(without, "chat", NOW), Hold)


def test_overflow_above_the_in_flight_bound_goes_to_the_chain() -> None:
    front_door = {"frontDoor": {"maxInFlightPerReplica": 2, "overflow": "Fallback"}}
    snap = _snap(policies=(_policy(),), chat_extra=front_door)
    assert isinstance(route(snap, "chat", NOW, {"chat": 1}), Forward)
    assert route(snap, "chat", NOW, {"chat": 1}).mode == "Normal"  # type: ignore[union-attr]
    over = route(snap, "chat", NOW, {"chat": 2})
    assert isinstance(over, Forward) and over.mode == "Overflow" and over.target.label == "service/small"
    queue = _snap(policies=(_policy(),), chat_extra={"frontDoor": {"maxInFlightPerReplica": 2}})
    assert route(queue, "chat", NOW, {"chat": 5}).mode == "Normal"  # type: ignore[union-attr]


def test_a_suspended_step_is_not_usable_for_the_bridge() -> None:
    gpt_suspended = {**_budget("Suspend"), "spec": {**_budget("Suspend")["spec"], "selector": {}}}
    snap = _snap(
        ready={},
        policies=(_policy(bridge=True, chain=[{"inferenceService": "gpt"}]),),
        budgets=(gpt_suspended,),
    )
    # the budget selects everything: chat itself is suspended first
    assert isinstance(route(snap, "chat", NOW), Refuse)


def test_every_backend_a_service_could_be_metered_at_is_known_before_any_request() -> None:
    """The gateway exports these counters at zero, so Prometheus sees each one grow from 0."""
    assert known_backends(_snap(policies=(_policy(),))) == {
        ("chat", "service/chat", "USD"),
        ("chat", "service/small", "USD"),
        ("chat", "provider/api.example.com", "USD"),
        ("small", "service/small", "USD"),
        ("gpt", "service/gpt", "USD"),
    }


def test_primed_counters_are_exported_at_zero() -> None:
    metrics = GatewayMetrics()
    metrics.prime("ns", {("chat", "provider/api.example.com", "USD")})
    labels = {"namespace": "ns", "service": "chat", "backend": "provider/api.example.com"}
    registry = metrics.registry
    assert registry.get_sample_value("aipolicy_gateway_spend_total", {**labels, "currency": "USD"}) == 0
    assert registry.get_sample_value("aipolicy_gateway_completion_tokens_total", labels) == 0
