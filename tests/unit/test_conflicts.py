"""Two FallbackPolicies on one target: one rule says which governs, and the other stands down."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from aipolicy.api.fallbackpolicy import FallbackPolicySpec, FallbackPolicyStatus
from aipolicy.api.inferenceservice import InferenceService
from aipolicy.api.reading import read
from aipolicy.policy import mode as policy_mode
from aipolicy.policy.conflicts import governing_policy, stand_down
from aipolicy.policy.mode import ModeDecision, read_budget, read_policy


def decide_mode(
    isvc: InferenceService, budgets: list[dict[str, Any]], policy: dict[str, Any] | None
) -> ModeDecision:
    """The mode from the objects as stored, read as the controller reads them."""
    return policy_mode.decide_mode(
        isvc, [read_budget(b) for b in budgets], None if policy is None else read_policy(policy)
    )


NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _policy(name: str, *, active: bool) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "target": "big",
            "triggers": [{"type": "Unavailable"}],
            "chain": [{"inferenceService": "small"}],
        },
        "status": {"active": active, "activeStep": 0 if active else -1},
    }


def _isvc() -> InferenceService:
    body = {
        "metadata": {"name": "big", "namespace": "team-a", "uid": "u-1", "generation": 1},
        "spec": {"model": "m", "serving": {"image": "vllm/vllm-openai:v0.6.3"}},
    }
    parsed = read(InferenceService, body)
    assert isinstance(parsed, InferenceService)
    return parsed


class TestGoverningPolicy:
    def test_none_without_policies(self) -> None:
        assert governing_policy([]) is None

    @pytest.mark.parametrize("order", [["a", "b", "c"], ["c", "b", "a"], ["b", "a", "c"]])
    def test_the_alphabetically_first_name_governs_whatever_the_order(self, order: list[str]) -> None:
        policies = [_policy(name, active=False) for name in order]
        chosen = governing_policy(policies)
        assert chosen is not None and chosen["metadata"]["name"] == "a"

    @pytest.mark.parametrize("stale_first", [True, False], ids=["stale-listed-first", "stale-listed-last"])
    def test_a_losing_policy_with_a_stale_active_status_does_not_hold_the_front_door(
        self, stale_first: bool
    ) -> None:
        """`b` was active before `a` appeared; `a` governs and says the target serves."""
        stale, governing = _policy("b", active=True), _policy("a", active=False)
        policies = [stale, governing] if stale_first else [governing, stale]
        decision = decide_mode(_isvc(), [], governing_policy(policies))
        assert decision.mode == "Normal"
        assert decision.backend.describe() == "service/big"


class TestStandDown:
    def test_a_policy_that_does_not_govern_leaves_the_front_door_to_the_target(self) -> None:
        spec = FallbackPolicySpec.model_validate(_policy("b", active=True)["spec"])
        previous = FallbackPolicyStatus(
            active=True,
            active_step=0,
            active_backend="service/small",
            triggered_by=["Unavailable"],
            since=NOW,
            last_switch_time=NOW,
            clear_since=NOW,
            trigger_since={"Unavailable": NOW},
            transitions=3,
        )
        status = stand_down(spec, previous)
        assert (status.active, status.active_step, status.active_backend) == (False, -1, "big")
        assert status.triggered_by == [] and status.trigger_since == {} and status.clear_since is None
        # the history stays: how many switches it made, and when the last was
        assert (status.transitions, status.last_switch_time) == (3, NOW)

    def test_an_inactive_policy_is_unchanged(self) -> None:
        spec = FallbackPolicySpec.model_validate(_policy("b", active=False)["spec"])
        previous = FallbackPolicyStatus(active_backend="big", transitions=2, last_switch_time=NOW)
        assert stand_down(spec, previous) == previous
