"""Budgets and fallback in a what-if run: the operator's budget, fallback and mode functions and
the gateway's routing, on a simulated service, with plain data."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from aipolicy.api.aibudget import AIBudget
from aipolicy.api.fallbackpolicy import FallbackPolicy, Trigger
from aipolicy.api.inferenceservice import InferenceService
from aipolicy.policy.serving import PROFILES
from aipolicy.whatif import report
from aipolicy.whatif.governance import Governance
from aipolicy.whatif.manifests import ManifestError, Manifests, load_manifests
from aipolicy.whatif.run import OperatorScaler, RunResult, run
from aipolicy.whatif.traces import Trace

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
PROFILE = PROFILES["A100-80GB/8B"]


def _trace(*phases: tuple[float, float]) -> Trace:
    """Uniform arrivals: (requests/s, seconds) per phase, back to back."""
    arrivals: list[float] = []
    t0 = 0.0
    for rate, seconds in phases:
        t = t0
        while t < t0 + seconds:
            arrivals.append(t)
            t += 1 / rate
        t0 += seconds
    n = len(arrivals)
    return Trace(tuple(arrivals), (1000,) * n, (200,) * n, START, "phases")


def _isvc(replicas: int, **spec: Any) -> InferenceService:
    return InferenceService.model_validate(
        {
            "metadata": {"name": "chat", "namespace": "ns", "labels": {"team": "a"}},
            "spec": {
                "model": "meta-llama/Llama-3.1-8B-Instruct",
                "serving": {"image": "vllm"},
                "pricing": {"gpuHour": "6"},
                "scaling": {"minReplicas": replicas, "maxReplicas": replicas, "coldStartSeconds": 60},
                **spec,
            },
        }
    )


def _budget(limit: str, thresholds: list[dict[str, Any]]) -> AIBudget:
    return AIBudget.model_validate(
        {
            "metadata": {"name": "team-a", "namespace": "ns"},
            "spec": {
                "limit": limit,
                "period": {"type": "Daily"},
                "selector": {"matchLabels": {"team": "a"}},
                "thresholds": thresholds,
                "evaluationInterval": "30s",
            },
        }
    )


def _policy(**recovery: str) -> FallbackPolicy:
    return FallbackPolicy.model_validate(
        {
            "metadata": {"name": "chat-fallback", "namespace": "ns"},
            "spec": {
                "target": "chat",
                "triggers": [
                    {"type": "Latency", "latency": "TimeToFirstToken", "threshold": 2, "window": "1m"}
                    | {"for": "30s"}
                ],
                "chain": [
                    {
                        "provider": {
                            "url": "https://api.example.com/v1",
                            "model": "small",
                            "inputPerMillionTokens": "0.15",
                            "outputPerMillionTokens": "0.60",
                        }
                    }
                ],
                "recovery": {"holdFor": "2m", "minSwitchInterval": "1m", **recovery},
            },
        }
    )


def _governed_run(
    isvc: InferenceService,
    trace: Trace,
    replicas: int,
    *,
    budgets: tuple[AIBudget, ...] = (),
    policy: FallbackPolicy | None = None,
) -> RunResult:
    manifests = Manifests((isvc,), (), budgets, (policy,) if policy is not None else ())
    governance = Governance(isvc, manifests, trace.start)
    assert governance.active
    scaler = OperatorScaler(isvc, PROFILE, trace.start, replicas)
    return run(
        trace,
        PROFILE,
        scaler,
        initial=replicas,
        cold_start_median_s=60,
        first_decision_s=scaler.first_decision(),
        governance=governance,
    )


def test_a_budget_degrades_then_suspends_the_service_in_the_middle_of_the_trace() -> None:
    # Two replicas at 6/h cost 0.2 a minute: 50 % of 1.00 is spent at 2.5 min, 100 % at 5 min
    # (while degraded to one replica, at 0.1 a minute, a little later: 7.5 min).
    isvc = _isvc(2, degraded={"maxReplicas": 1})
    budget = _budget("1", [{"percent": 50, "action": "Degrade"}, {"percent": 100, "action": "Suspend"}])
    trace = _trace((1.0, 900.0))
    result = _governed_run(isvc, trace, 2, budgets=(budget,))
    gov = result.governance
    assert gov is not None

    # the budget's state machine: Degraded at 50 %, then Suspend once the whole limit is spent
    (name, spent, limit, currency, state) = gov.budgets[0]
    assert (name, limit, currency, state) == ("team-a", Decimal(1), "USD", "Exceeded")
    # spend is what the pods cost, accounted interval by interval: 150 s at 2 replicas (0.50),
    # then one replica (the cap reaches the Deployment at the next scaling evaluation) up to
    # 100 %; after the suspension the pod is drained and nothing more is spent: the spend stops
    # within one budget interval (30 s at one replica, 0.05) of the limit
    assert Decimal(1) <= spent <= Decimal("1.05")

    # the service went Normal -> Degraded -> Suspended, each for a while
    minutes = gov.mode_seconds
    assert 120 <= minutes["Normal"] <= 180
    assert minutes["Degraded"] > 180
    assert minutes["Suspended"] > 120
    assert minutes["Fallback"] == 0

    # replicas followed the cap: 2, then 1 (degraded), then 0 (suspended)
    replicas = [n for _, n, _ in result.timeline]
    assert replicas[0] == 2 and replicas[-1] == 0
    assert 1 in replicas
    suspended_at = result.end - minutes["Suspended"]

    # requests arriving while suspended were refused by the gateway (429) and count as misses
    refused = [r for r in result.requests if r.backend == "refused 429"]
    assert refused and gov.refused == {429: len(refused)}
    assert min(r.arrival for r in refused) >= suspended_at - 1e-6
    after = [r for r in result.requests if r.arrival > suspended_at + 1]
    assert after and all(r.failed and r.backend == "refused 429" for r in after)
    before = [r for r in result.requests if r.arrival < suspended_at - 60]
    assert before and not any(r.failed for r in before)
    summary = report.summarize(result, report.Costs(Decimal(6)), 2.0)
    assert summary.failed >= len(refused) and summary.ttft_p99 == float("inf")
    assert summary.budgets == [
        {"name": "team-a", "spent": str(spent), "limit": "1", "currency": "USD", "state": "Exceeded"}
    ]


def test_fallback_switches_on_a_latency_burst_and_back_once_without_flapping() -> None:
    # One replica: fine at 0.5 req/s, far over its capacity at 30 req/s for two minutes.
    isvc = _isvc(1)
    trace = _trace((0.5, 300.0), (30.0, 120.0), (0.5, 900.0))
    result = _governed_run(isvc, trace, 1, policy=_policy())
    gov = result.governance
    assert gov is not None

    # exactly one switch to the provider and one back: the hold (2m) and the out-of-rotation
    # reading keep it from flapping while the target's backlog drains
    assert gov.fallback_switches == 2
    (t_on, to_backend, why_on), (t_off, back, why_off) = gov.fallback_history
    assert (to_backend, why_on) == ("provider/api.example.com", "FallbackActivated")
    assert (back, why_off) == ("chat", "FallbackRecovered")
    assert 300 < t_on < 420  # during the burst, after the trigger's `for`
    assert t_off - t_on >= 120  # at least the recovery hold
    assert gov.mode_seconds["Fallback"] == pytest.approx(t_off - t_on, abs=5)

    # the gateway sent the requests of that span to the provider, priced per token
    api = [r for r in result.requests if r.backend == "api"]
    assert api and all(r.via == "provider/api.example.com" for r in api)
    assert all(t_on <= r.arrival <= t_off + 5 for r in api)
    summary = report.summarize(result, report.Costs(Decimal(6)), 2.0)
    tokens_in, tokens_out = sum(r.prompt for r in api), sum(r.output for r in api)
    expected = (Decimal(tokens_in) * Decimal("0.15") + Decimal(tokens_out) * Decimal("0.60")) / 1_000_000
    assert summary.api_cost == expected.quantize(Decimal("0.01"))
    assert summary.api_requests == len(api) and summary.fallback_switches == 2


def test_min_switch_interval_bounds_the_switches_on_load_that_keeps_failing() -> None:
    # A load that stays above the replica's capacity: the target fails again as soon as traffic
    # is back; switches are bounded by 1 + elapsed / minSwitchInterval, and here by the hold.
    isvc = _isvc(1)
    trace = _trace((0.5, 120.0), (30.0, 900.0))
    result = _governed_run(isvc, trace, 1, policy=_policy(holdFor="30s", minSwitchInterval="5m"))
    gov = result.governance
    assert gov is not None
    times = [t for t, _, _ in gov.fallback_history]
    assert gov.fallback_switches >= 2
    assert all(b - a >= 300 for a, b in itertools.pairwise(times))
    assert gov.fallback_switches <= 1 + result.end // 300


def test_manifests_with_a_budget_and_a_policy_are_read_through_the_operators_models(tmp_path: Path) -> None:
    body = _policy().model_dump(by_alias=True, mode="json", exclude_none=True)
    docs = [
        {"apiVersion": "aipolicy.dev/v1alpha1", "kind": "FallbackPolicy", **body},
        {
            "apiVersion": "aipolicy.dev/v1alpha1",
            "kind": "AIBudget",
            **_budget("5", []).model_dump(by_alias=True, mode="json", exclude_none=True),
        },
        {"apiVersion": "aipolicy.dev/v1alpha1", "kind": "InferenceService"}
        | _isvc(1).model_dump(by_alias=True, mode="json", exclude_none=True),
    ]
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    m = load_manifests([path])
    assert [b.metadata.name for b in m.budgets] == ["team-a"]
    (isvc,) = m.services
    assert m.policy_for(isvc) is not None and m.budgets_selecting(isvc) == m.budgets
    assert m.others == ()

    docs[0]["spec"]["recovery"]["holdFor"] = "soon"
    path.write_text(yaml.safe_dump_all(docs))
    with pytest.raises(ManifestError, match=r"FallbackPolicy/chat-fallback: spec\.recovery\.holdFor"):
        load_manifests([path])


def test_a_budget_or_policy_the_apiserver_would_refuse_is_refused_naming_the_rule(tmp_path: Path) -> None:
    budget = {"apiVersion": "aipolicy.dev/v1alpha1", "kind": "AIBudget"} | _budget(
        "5", [{"percent": 80, "action": "Degrade"}, {"percent": 50, "action": "Notify"}]
    ).model_dump(by_alias=True, mode="json", exclude_none=True)
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(budget))
    with pytest.raises(ManifestError, match="thresholds must be sorted by ascending percent"):
        load_manifests([path])
    policy = {"apiVersion": "aipolicy.dev/v1alpha1", "kind": "FallbackPolicy"} | _policy().model_dump(
        by_alias=True, mode="json", exclude_none=True
    )
    policy["spec"]["chain"] = [{"inferenceService": "chat"}]
    path.write_text(yaml.safe_dump(policy))
    with pytest.raises(ManifestError, match="the chain must not lead back to the target itself"):
        load_manifests([path])


def test_slo_overflow_through_the_gateways_route_matches_the_slo_policy_it_wires() -> None:
    # An SLO service overflowing bursts to an API-backed service, under a budget far from its
    # limit: every request goes through gateway.routing.route (with the replicas' loads), and
    # the result is the same as calling policy.slo.route directly (the ungoverned run).
    isvc = InferenceService.model_validate(
        {
            "metadata": {"name": "chat", "namespace": "ns", "labels": {"team": "a"}},
            "spec": {
                "model": "meta-llama/Llama-3.1-8B-Instruct",
                "serving": {"image": "vllm"},
                "pricing": {"gpuHour": "6"},
                "scaling": {
                    "minReplicas": 1,
                    "maxReplicas": 1,
                    "coldStartSeconds": 60,
                    "metric": {"type": "SLO"},
                    "slo": {
                        "ttftP95": 2,
                        "profile": "A100-80GB/8B",
                        "overflow": {"inferenceService": "mini"},
                    },
                },
            },
        }
    )
    mini = InferenceService.model_validate(
        {
            "metadata": {"name": "mini", "namespace": "ns", "labels": {"team": "a"}},
            "spec": {
                "model": "gpt-4o-mini",
                "provider": {"url": "https://api.example.com/v1"},
                "pricing": {"inputPerMillionTokens": "0.15", "outputPerMillionTokens": "0.60"},
            },
        }
    )
    trace = _trace((0.5, 120.0), (30.0, 60.0), (0.5, 120.0))
    slo = isvc.spec.scaling.slo
    assert slo is not None
    from aipolicy.whatif.run import ApiPrices

    prices = ApiPrices(Decimal("0.15"), Decimal("0.60"))
    plain = run(trace, PROFILE, OperatorScaler(isvc, PROFILE, START, 1), initial=1, cold_start_median_s=60,
                overflow_to=(slo, prices))  # fmt: skip
    manifests = Manifests((isvc, mini), (), (_budget("1000", [{"percent": 100, "action": "Suspend"}]),), ())
    governance = Governance(isvc, manifests, START)
    governed = run(trace, PROFILE, OperatorScaler(isvc, PROFILE, START, 1), initial=1, cold_start_median_s=60,
                   governance=governance)  # fmt: skip

    def outcome(result: RunResult) -> list[tuple[int, str, float | None]]:
        return sorted((r.serial, r.backend, r.ttft and round(r.ttft, 6)) for r in result.requests)

    api = [r for r in governed.requests if r.backend == "api"]
    assert len(api) > 100 and all(r.via == "service/mini" for r in api)
    assert outcome(governed) == outcome(plain)
    # the overflow service's tokens count in the budget selecting it, at its prices
    assert governed.governance is not None
    (_, spent, _, _, _) = governed.governance.budgets[0]
    gpu = Decimal(repr(governed.gpu_seconds / 3600)) * 6
    tokens = (
        sum(Decimal(r.prompt) * Decimal("0.15") + Decimal(r.output) * Decimal("0.60") for r in api) / 10**6
    )
    assert abs(spent - (gpu + tokens)) < Decimal("0.02")


def test_replicas_the_cluster_has_no_gpus_for_stay_pending_and_fire_gpu_shortage() -> None:
    # Scaling wants more replicas than the 2 GPUs the cluster has: the third stays Pending
    # (no GPU billed), GPUShortage fires after its `for`, and the policy switches to the provider.
    isvc = InferenceService.model_validate(
        {
            "metadata": {"name": "chat", "namespace": "ns"},
            "spec": {
                "model": "meta-llama/Llama-3.1-8B-Instruct",
                "serving": {"image": "vllm"},
                "pricing": {"gpuHour": "6"},
                "scaling": {"minReplicas": 1, "maxReplicas": 4, "coldStartSeconds": 60,
                            "metric": {"type": "RequestsInFlight", "target": 8}},
            },
        }
    )  # fmt: skip
    base = _policy()
    shortage = [Trigger.model_validate({"type": "GPUShortage", "for": "30s"})]
    policy = base.model_copy(update={"spec": base.spec.model_copy(update={"triggers": shortage})})
    trace = _trace((1.0, 120.0), (20.0, 600.0))
    manifests = Manifests((isvc,), (), (), (policy,))
    governance = Governance(isvc, manifests, START)
    scaler = OperatorScaler(isvc, PROFILE, START, 1)
    result = run(
        trace, PROFILE, scaler, initial=1, cold_start_median_s=60, governance=governance, gpu_capacity=2
    )
    gov = result.governance
    assert gov is not None
    assert max(n for _, n, _ in result.timeline) == 2  # never more than the GPUs hold
    assert result.gpu_seconds <= 2 * result.end + 1e-6
    assert any(d.to_replicas > 2 for d in scaler.status.decisions) or scaler.status.desired_replicas > 2
    assert gov.fallback_history and gov.fallback_history[0][1:] == (
        "provider/api.example.com",
        "FallbackActivated",
    )
    assert gov.fallback_history[0][0] > 120  # after the load rose and the trigger's `for`


def test_a_chain_step_naming_an_api_backed_service_takes_the_traffic_at_its_provider() -> None:
    """An API-backed InferenceService has no replicas; as a chain step it is usable all the same
    (policy.fallback.service_step_health), and the gateway sends its share to its provider."""
    isvc = _isvc(1)
    gpt = InferenceService.model_validate(
        {
            "metadata": {"name": "gpt", "namespace": "ns"},
            "spec": {
                "model": "gpt-4o-mini",
                "provider": {"url": "https://api.example.com/v1"},
                "pricing": {"inputPerMillionTokens": "0.15", "outputPerMillionTokens": "0.60"},
            },
        }
    )
    body = _policy().model_dump(by_alias=True, mode="json", exclude_none=True)
    body["spec"]["chain"] = [{"inferenceService": "gpt"}]
    policy = FallbackPolicy.model_validate(body)
    trace = _trace((0.5, 300.0), (30.0, 120.0), (0.5, 900.0))
    manifests = Manifests((isvc, gpt), (), (), (policy,))
    governance = Governance(isvc, manifests, trace.start)
    scaler = OperatorScaler(isvc, PROFILE, trace.start, 1)
    result = run(
        trace,
        PROFILE,
        scaler,
        initial=1,
        cold_start_median_s=60,
        first_decision_s=scaler.first_decision(),
        governance=governance,
    )
    gov = result.governance
    assert gov is not None
    (_, to_backend, why_on), (_, back, why_off) = gov.fallback_history
    assert (to_backend, why_on, back, why_off) == (
        "service/gpt",
        "FallbackActivated",
        "chat",
        "FallbackRecovered",
    )
    api = [r for r in result.requests if r.backend == "api"]
    assert api and all(r.via == "service/gpt" for r in api)
