"""status.backend: who serves a service's traffic, shown beside its mode."""

from __future__ import annotations

from typing import Any

import pytest

from aipolicy.api.inferenceservice import InferenceService
from aipolicy.api.reading import read
from aipolicy.policy import mode as policy_mode
from aipolicy.policy.mode import ModeDecision, read_budget, read_policy, serving_backend


def decide_mode(
    isvc: InferenceService, budgets: list[dict[str, Any]], policy: dict[str, Any] | None
) -> ModeDecision:
    """The mode from the objects as stored, read as the controller reads them."""
    return policy_mode.decide_mode(
        isvc, [read_budget(b) for b in budgets], None if policy is None else read_policy(policy)
    )


def _isvc(**spec: Any) -> InferenceService:
    body = {
        "metadata": {"name": "big", "namespace": "team-a", "uid": "u-1", "generation": 1},
        "spec": {"model": "m", "degraded": {"maxReplicas": 1}, **spec},
    }
    parsed = read(InferenceService, body)
    assert isinstance(parsed, InferenceService), parsed
    return parsed


SERVING = {"serving": {"image": "vllm/vllm-openai:v0.6.3"}}
PROVIDER = {"provider": {"url": "https://api.example.com/v1"}}
DEGRADE = {"metadata": {"name": "team"}, "spec": {"limit": "10"}, "status": {"activeAction": "Degrade"}}


def _policy(step: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "fb"},
        "spec": {"target": "big", "triggers": [{"type": "Unavailable"}], "chain": [step]},
        "status": {"active": True, "activeStep": 0},
    }


@pytest.mark.parametrize(
    ("spec", "budgets", "step", "mode", "backend"),
    [
        pytest.param(SERVING, [], None, "Normal", "self", id="own-pods"),
        pytest.param(PROVIDER, [], None, "Normal", "self", id="own-provider"),
        pytest.param(SERVING, [DEGRADE], None, "Degraded", "self", id="degraded-on-its-own-pods"),
        pytest.param(
            SERVING,
            [],
            {"inferenceService": "small"},
            "Fallback",
            "service/small",
            id="switched-to-a-service",
        ),
        pytest.param(
            SERVING,
            [],
            {"provider": {"url": "https://api.openai.com/v1"}},
            "Fallback",
            "provider/api.openai.com",
            id="switched-to-a-provider",
        ),
        pytest.param(
            SERVING,
            [DEGRADE],
            {"inferenceService": "small"},
            "Degraded",
            "service/small",
            id="degraded-and-switched-shows-both",
        ),
        pytest.param(SERVING, [], {"degraded": True}, "Degraded", "self", id="degraded-step-serves-itself"),
    ],
)
def test_mode_and_backend(
    spec: dict[str, Any],
    budgets: list[dict[str, Any]],
    step: dict[str, Any] | None,
    mode: str,
    backend: str,
) -> None:
    isvc = _isvc(**spec)
    decision = decide_mode(isvc, budgets, None if step is None else _policy(step))
    assert (decision.mode, serving_backend(isvc, decision.backend)) == (mode, backend)
