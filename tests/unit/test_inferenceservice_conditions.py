"""Every condition and event an InferenceService shows, decided by pure functions
(policy/service_conditions.py), in tables whose ids read as sentences."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from aipolicy.api.inferenceservice import InferenceService, Scaling
from aipolicy.api.reading import read
from aipolicy.observe.pods import PodCounts
from aipolicy.policy import service_conditions as decide
from aipolicy.policy.backends import Backend
from aipolicy.policy.mode import ModeDecision, Unreadable, decide_mode, read_budget, read_policy
from aipolicy.policy.observations import Reading, Unavailable, Value
from aipolicy.policy.outcome import ConditionUpdate, Event
from aipolicy.policy.scaling import ScalingDecision, ScalingMemory
from aipolicy.policy.secrets import SecretsVerdict

NORMAL = ModeDecision("Normal", "", None, Backend(service="big"))
FALLBACK = ModeDecision("Fallback", "FallbackPolicy fb sent traffic to small", None, Backend(service="small"))
DEGRADED = ModeDecision("Degraded", "AIBudget team asks for degraded mode", 1, Backend(service="big"))
SUSPENDED = ModeDecision("Suspended", "AIBudget team is exceeded", 0, Backend(service="big"))
OWN_KEY_MISSING = SecretsVerdict(
    "False", "SecretNotFound", "Secret team-a/key (spec.provider.apiKeySecret) does not exist", True
)
CHAIN_KEY_MISSING = replace(OWN_KEY_MISSING, own_missing=False)
SECRETS_FINE = SecretsVerdict("True", "SecretsFound", "the gateway reports no problem with key", False)
SECRET_MISSING_MESSAGE = 'Error: secret "hf-token" not found'


def _facts(**changes: Any) -> decide.ReadyFacts:
    base = decide.ReadyFacts(
        namespace="team-a",
        provider_backed=False,
        active_backend="service/big",
        mode=NORMAL,
        desired_replicas=2,
        pods=PodCounts(),
    )
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("facts", "status", "reason", "message_part"),
    [
        pytest.param(
            _facts(provider_backed=True, active_backend="provider/api.example.com", secrets=OWN_KEY_MISSING),
            "False",
            "SecretNotFound",
            "does not exist",
            id="an API-backed service whose own key is missing is not ready, naming the Secret",
        ),
        pytest.param(
            _facts(
                provider_backed=True, active_backend="provider/api.example.com", secrets=CHAIN_KEY_MISSING
            ),
            "True",
            "ProviderConfigured",
            "traffic goes to provider/api.example.com",
            id="a missing key of a fallback step leaves an API-backed service ready",
        ),
        pytest.param(
            _facts(provider_backed=True, active_backend="provider/api.example.com"),
            "True",
            "ProviderConfigured",
            "traffic goes to provider/api.example.com",
            id="an API-backed service is ready once configured",
        ),
        pytest.param(
            _facts(mode=FALLBACK),
            "True",
            "ServingFromFallback",
            "sent traffic to small",
            id="a service whose traffic a fallback serves is ready, saying which policy sent it",
        ),
        pytest.param(
            _facts(desired_replicas=0, pods=PodCounts(failing=1, failing_message="boom")),
            "True",
            "ScaledToZero",
            "demand starts one",
            id="a service scaled to zero is ready even with a failing pod",
        ),
        pytest.param(
            _facts(pods=PodCounts(total=2, ready=1, starting=1)),
            "True",
            "ReplicasReady",
            "1 of 2 replicas are ready",
            id="one ready replica makes the service ready",
        ),
        pytest.param(
            _facts(
                pods=PodCounts(total=2, ready=1, starting=1, failing=1, failing_message="ImagePullBackOff")
            ),
            "True",
            "ReplicasReady",
            "1 cannot start (ImagePullBackOff)",
            id="a ready service says how many replicas cannot start",
        ),
        pytest.param(
            _facts(pods=PodCounts(total=1, starting=1, failing=1, failing_message=SECRET_MISSING_MESSAGE)),
            "False",
            "SecretNotFound",
            "Secret hf-token does not exist in namespace team-a, and spec.serving needs it",
            id="pods that lack a Secret they name make the service not ready, naming the Secret",
        ),
        pytest.param(
            _facts(pods=PodCounts(not_created="no PriorityClass with name high was found")),
            "False",
            "PriorityClassNotFound",
            "the Deployment cannot create pods",
            id="a Deployment refused pods for a missing PriorityClass names it",
        ),
        pytest.param(
            _facts(pods=PodCounts(not_created='serviceaccount "x" is forbidden: quota exceeded')),
            "False",
            "PodsNotCreated",
            "the Deployment cannot create pods (serviceaccount",
            id="a Deployment that cannot create pods for another cause says so",
        ),
        pytest.param(
            _facts(
                pods=PodCounts(total=1, starting=1, failing=1, failing_message="ErrImagePull: no such image")
            ),
            "False",
            "ReplicasFailing",
            "Check spec.serving (image, args, resources)",
            id="pods that cannot start make the service not ready and point at spec.serving",
        ),
        pytest.param(
            _facts(pods=PodCounts(total=2, starting=2)),
            "False",
            "NoReadyReplicas",
            "0 of 2 replicas are ready yet",
            id="replicas still starting leave the service not ready yet",
        ),
    ],
)
def test_ready(facts: decide.ReadyFacts, status: str, reason: str, message_part: str) -> None:
    condition = decide.ready(facts)
    assert (condition.type, condition.status, condition.reason) == ("Ready", status, reason)
    assert message_part in condition.message


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        pytest.param(
            NORMAL,
            ConditionUpdate("Degraded", "False", "NotDegraded", "the service runs with its normal settings"),
            id="a service in normal mode is not degraded",
        ),
        pytest.param(
            FALLBACK,
            ConditionUpdate("Degraded", "False", "NotDegraded", "the service runs with its normal settings"),
            id="a service switched to a fallback is not degraded",
        ),
        pytest.param(
            DEGRADED,
            ConditionUpdate("Degraded", "True", "ModeDegraded", "AIBudget team asks for degraded mode"),
            id="a service in degraded mode is degraded, saying who asked",
        ),
        pytest.param(
            SUSPENDED,
            ConditionUpdate("Degraded", "True", "ModeSuspended", "AIBudget team is exceeded"),
            id="a suspended service is degraded, saying which budget is exceeded",
        ),
    ],
)
def test_degraded(mode: ModeDecision, expected: ConditionUpdate) -> None:
    assert decide.degraded(mode) == expected


BAD_BUDGET = Unreadable("AIBudget", "team", "spec.selector: bad operator")
BAD_POLICY = Unreadable("FallbackPolicy", "fb", "chain: too short")


@pytest.mark.parametrize(
    ("unreadable", "status", "reason", "message_parts"),
    [
        pytest.param((), "True", "PoliciesReadable", ["can be read"], id="readable policies are valid"),
        pytest.param(
            (BAD_BUDGET,),
            "False",
            "PolicyUnreadable",
            ["AIBudget team is ignored: spec.selector: bad operator"],
            id="an unreadable budget is reported by name, with why",
        ),
        pytest.param(
            (BAD_BUDGET, BAD_POLICY),
            "False",
            "PolicyUnreadable",
            ["AIBudget team", "FallbackPolicy fb is ignored: chain: too short"],
            id="every unreadable budget and policy is reported",
        ),
    ],
)
def test_policies_valid(
    unreadable: tuple[Unreadable, ...], status: str, reason: str, message_parts: list[str]
) -> None:
    condition = decide.policies_valid(replace(NORMAL, unreadable=unreadable))
    assert (condition.type, condition.status, condition.reason) == ("PoliciesValid", status, reason)
    assert all(part in condition.message for part in message_parts)


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        pytest.param(None, None, id="no verdict keeps the condition as it was"),
        pytest.param(
            SECRETS_FINE,
            ConditionUpdate("SecretsAvailable", "True", "SecretsFound", SECRETS_FINE.message),
            id="usable Secrets are available",
        ),
        pytest.param(
            CHAIN_KEY_MISSING,
            ConditionUpdate("SecretsAvailable", "False", "SecretNotFound", CHAIN_KEY_MISSING.message),
            id="a missing Secret is not available, under the gateway's reason",
        ),
    ],
)
def test_secrets_available(verdict: SecretsVerdict | None, expected: ConditionUpdate | None) -> None:
    assert decide.secrets_available(verdict) == expected


def _decision(**changes: Any) -> ScalingDecision:
    base = ScalingDecision(
        desired=3,
        reason="ScaleUp",
        message="load 90 over target 30",
        memory=ScalingMemory(),
        metrics_available=True,
        metrics_reason="",
        capacity_available=True,
        capacity_shortfall=0,
        active_prewarm=None,
    )
    return replace(base, **changes)


def test_an_api_backed_service_has_no_scaling() -> None:
    assert decide.provider_backed_scaling() == ConditionUpdate(
        "ScalingActive", "False", "ProviderBacked", "an API-backed service has no replicas to scale"
    )


@pytest.mark.parametrize(
    ("paused", "dry_run", "expected"),
    [
        pytest.param(
            False,
            False,
            ConditionUpdate("ScalingActive", "True", "ScaleUp", "load 90 over target 30"),
            id="an active autoscaler shows its last decision",
        ),
        pytest.param(
            False,
            True,
            ConditionUpdate(
                "ScalingActive", "True", "ScaleUp", "DryRun: replicas are not changed; load 90 over target 30"
            ),
            id="a dry run says replicas are not changed",
        ),
        pytest.param(
            True,
            False,
            ConditionUpdate(
                "ScalingActive",
                "False",
                "Paused",
                "annotation aipolicy.dev/autoscaling-paused=true pauses autoscaling",
            ),
            id="a paused autoscaler is not active, naming the annotation",
        ),
    ],
)
def test_scaling_active(paused: bool, dry_run: bool, expected: ConditionUpdate) -> None:
    assert decide.scaling_active(_decision(), paused=paused, dry_run=dry_run) == expected


@pytest.mark.parametrize(
    ("decision", "metric", "expected"),
    [
        pytest.param(
            _decision(),
            Value(90.0),
            ConditionUpdate("MetricsAvailable", "True", "MetricsFound", "QueueDepth is 90"),
            id="a metric read shows its value",
        ),
        pytest.param(
            _decision(metrics_available=False, metrics_reason="QueryError"),
            Unavailable("QueryError", "prometheus answered 503"),
            ConditionUpdate(
                "MetricsAvailable", "False", "MetricsQueryError", "prometheus answered 503; policy Hold"
            ),
            id="a failed query says what the reading said and the policy that applies",
        ),
        pytest.param(
            _decision(metrics_available=False, metrics_reason="", message="no demand reading at zero"),
            Value(0.0),
            ConditionUpdate(
                "MetricsAvailable", "False", "MetricsUnavailable", "no demand reading at zero; policy Hold"
            ),
            id="a missing signal other than the metric says what the decision said",
        ),
    ],
)
def test_metrics_available(decision: ScalingDecision, metric: Reading, expected: ConditionUpdate) -> None:
    scaling = Scaling.model_validate({"metric": {"type": "QueueDepth", "target": "30"}})
    assert decide.metrics_available(decision, metric, scaling, "90") == expected


@pytest.mark.parametrize(
    ("decision", "pods", "expected"),
    [
        pytest.param(
            _decision(),
            PodCounts(),
            ConditionUpdate("CapacityAvailable", "True", "CapacityFound", "every replica could be scheduled"),
            id="every replica scheduled means capacity is available",
        ),
        pytest.param(
            _decision(capacity_available=False, capacity_shortfall=2),
            PodCounts(
                unschedulable=2, unschedulable_reason="InsufficientGPU", unschedulable_message="0/3 nodes"
            ),
            ConditionUpdate(
                "CapacityAvailable", "False", "InsufficientGPU", "2 replica(s) cannot be scheduled: 0/3 nodes"
            ),
            id="unschedulable replicas show the scheduler's reason",
        ),
        pytest.param(
            _decision(capacity_available=False, capacity_shortfall=1),
            PodCounts(unschedulable=1),
            ConditionUpdate(
                "CapacityAvailable", "False", "Unschedulable", "1 replica(s) cannot be scheduled:"
            ),
            id="unschedulable replicas without a reason read as Unschedulable",
        ),
    ],
)
def test_capacity_available(decision: ScalingDecision, pods: PodCounts, expected: ConditionUpdate) -> None:
    assert decide.capacity_available(decision, pods) == expected


def test_an_evaluation_decides_metrics_capacity_and_scaling_together() -> None:
    scaling = Scaling.model_validate(
        {"metric": {"type": "QueueDepth", "target": "30"}, "enforcement": "DryRun"}
    )
    updates = decide.evaluation_conditions(_decision(), Value(90.0), scaling, "90", PodCounts(), paused=False)
    assert [(u.type, u.reason) for u in updates] == [
        ("MetricsAvailable", "MetricsFound"),
        ("CapacityAvailable", "CapacityFound"),
        ("ScalingActive", "ScaleUp"),
    ]
    assert updates[2].message.startswith("DryRun: ")


@pytest.mark.parametrize(
    ("previous", "mode", "expected"),
    [
        pytest.param("Normal", NORMAL, None, id="no change of mode posts no event"),
        pytest.param(
            "Normal",
            DEGRADED,
            Event("Warning", "ModeDegraded", "AIBudget team asks for degraded mode"),
            id="entering degraded mode is a warning",
        ),
        pytest.param(
            "Degraded",
            SUSPENDED,
            Event("Warning", "ModeSuspended", "AIBudget team is exceeded"),
            id="suspension is a warning",
        ),
        pytest.param(
            "Normal",
            FALLBACK,
            Event("Normal", "ModeFallback", "FallbackPolicy fb sent traffic to small"),
            id="a switch to a fallback is a normal event",
        ),
        pytest.param(
            "Suspended",
            NORMAL,
            Event("Normal", "ModeNormal", "back to Normal mode"),
            id="the return to normal mode says so",
        ),
    ],
)
def test_mode_event(previous: str, mode: ModeDecision, expected: Event | None) -> None:
    assert decide.mode_event(previous, mode) == expected


@pytest.mark.parametrize(
    ("decision", "dry_run", "current", "expected"),
    [
        pytest.param(
            _decision(),
            False,
            1,
            Event("Normal", "ScaleUp", "1 -> 3 replicas: load 90 over target 30"),
            id="a change of replicas says from and to",
        ),
        pytest.param(
            _decision(),
            True,
            1,
            Event("Normal", "ScaleUp", "would scale 1 -> 3 replicas (DryRun): load 90 over target 30"),
            id="a dry run says what it would scale",
        ),
        pytest.param(
            _decision(desired=1, reason="Hold"),
            True,
            1,
            Event("Normal", "Hold", "would keep the 1 replicas (DryRun): load 90 over target 30"),
            id="a dry run that would change nothing says it would keep the replicas",
        ),
        pytest.param(
            _decision(reason="CapacityLimited"),
            False,
            1,
            Event("Warning", "CapacityLimited", "1 -> 3 replicas: load 90 over target 30"),
            id="a decision limited by capacity is a warning",
        ),
    ],
)
def test_scaling_event(decision: ScalingDecision, dry_run: bool, current: int, expected: Event) -> None:
    assert (
        decide.scaling_event(decision, dry_run=dry_run, current=current, desired=decision.desired) == expected
    )


def _service() -> InferenceService:
    body = {
        "metadata": {"name": "big", "namespace": "team-a", "uid": "u-1", "labels": {"team": "a"}},
        "spec": {
            "model": "m",
            "serving": {"image": "vllm/vllm-openai:v0.6.3"},
            "degraded": {"maxReplicas": 1},
        },
    }
    parsed = read(InferenceService, body)
    assert isinstance(parsed, InferenceService), parsed
    return parsed


BAD_SELECTOR = {"matchExpressions": [{"key": "team", "operator": "Near", "values": ["a"]}]}
SUSPENDING = {"metadata": {"name": "ok"}, "spec": {"limit": "10"}, "status": {"activeAction": "Suspend"}}


@pytest.mark.parametrize(
    ("budgets", "policy", "mode", "unreadable"),
    [
        pytest.param(
            [
                {
                    "metadata": {"name": "bad"},
                    "spec": {"selector": BAD_SELECTOR},
                    "status": {"activeAction": "Suspend"},
                }
            ],
            None,
            "Normal",
            [("AIBudget", "bad")],
            id="a budget whose selector does not parse is reported and caps nothing",
        ),
        pytest.param(
            [SUSPENDING, {"metadata": {"name": "bad"}, "spec": {"selector": BAD_SELECTOR}}],
            None,
            "Suspended",
            [("AIBudget", "bad")],
            id="an unreadable budget does not hide a readable one that suspends",
        ),
        pytest.param(
            [],
            {"metadata": {"name": "fb"}, "spec": {"target": "big", "chain": []}, "status": {"active": True}},
            "Normal",
            [("FallbackPolicy", "fb")],
            id="a policy whose spec does not parse is reported and switches nothing",
        ),
        pytest.param(
            [],
            {
                "metadata": {"name": "fb"},
                "spec": {
                    "target": "big",
                    "triggers": [{"type": "Unavailable"}],
                    "chain": [{"inferenceService": "s"}],
                },
                "status": {"active": "sometimes", "activeStep": 0},
            },
            "Normal",
            [],
            id="a policy whose status does not parse reads as inactive, as any old status does",
        ),
    ],
)
def test_unreadable_governing_objects_are_reported_not_dropped(
    budgets: list[dict[str, Any]], policy: dict[str, Any] | None, mode: str, unreadable: list[tuple[str, str]]
) -> None:
    decision = decide_mode(
        _service(), [read_budget(b) for b in budgets], None if policy is None else read_policy(policy)
    )
    assert decision.mode == mode
    assert [(u.kind, u.name) for u in decision.unreadable] == unreadable
    assert decide.policies_valid(decision).status == ("False" if unreadable else "True")
