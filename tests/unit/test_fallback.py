"""The FallbackPolicy state machine: entering, holding, recovering, chain moves, anti-flapping.

Every run goes through `Driver`, which persists the status as the API server would (JSON with
camelCase aliases) and reads it back before the next evaluation, so each test also checks that
the state lives in status alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aipolicy.api.fallbackpolicy import FallbackPolicySpec, FallbackPolicyStatus, Trigger
from aipolicy.policy.fallback import (
    COLD_START,
    METRICS_OK,
    BackendHealth,
    FallbackDecision,
    TriggerObservation,
    backend_label,
    decide_fallback,
    service_step_health,
    trigger_condition,
    trigger_names,
)
from aipolicy.policy.observations import Unavailable, Value

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

ERROR_RATE: dict[str, Any] = {"type": "ErrorRate", "threshold": 0.1, "for": "30s"}
CHAIN: list[dict[str, Any]] = [
    {"inferenceService": "small"},
    {"provider": {"url": "https://api.example.com/v1", "model": "gpt-x"}},
    {"degraded": True},
]
UP = BackendHealth(exists=True, healthy=True)
SICK = BackendHealth(exists=True, healthy=False)
GONE = BackendHealth(exists=False, healthy=False)
ALL_UP = (UP, UP, UP)


def make_spec(
    *,
    triggers: Sequence[dict[str, Any]] = (ERROR_RATE,),
    chain: Sequence[dict[str, Any]] = CHAIN,
    hold_for: str = "2m",
    min_switch_interval: str = "30s",
    **extra: Any,
) -> FallbackPolicySpec:
    return FallbackPolicySpec.model_validate(
        {
            "target": "big",
            "triggers": list(triggers),
            "chain": list(chain),
            "recovery": {"holdFor": hold_for, "minSwitchInterval": min_switch_interval},
            **extra,
        }
    )


def reading(value: float) -> TriggerObservation:
    return TriggerObservation(Value(value))


BAD = reading(0.5)  # an ErrorRate above the 0.1 threshold
GOOD = reading(0.01)
MISSING = TriggerObservation(Unavailable("NoData", "no series"))


def persist(status: FallbackPolicyStatus) -> FallbackPolicyStatus:
    """Write and read back the status as the API server stores it."""
    return FallbackPolicyStatus.model_validate(status.model_dump(mode="json", by_alias=True))


@dataclass
class Driver:
    """Feeds evaluations to decide_fallback at increasing times, persisting status between."""

    spec: FallbackPolicySpec
    status: FallbackPolicyStatus = field(default_factory=FallbackPolicyStatus)
    now: datetime = T0
    decisions: list[FallbackDecision] = field(default_factory=list)

    def at(
        self,
        seconds: float,
        *triggers: TriggerObservation,
        chain: Sequence[BackendHealth] = ALL_UP,
        warming: bool = False,
    ) -> FallbackDecision:
        """Evaluate at T0 + seconds."""
        self.now = T0 + timedelta(seconds=seconds)
        decision = decide_fallback(
            self.spec,
            self.status,
            list(triggers),
            list(chain),
            self.now,
            target_scaled_to_zero_warming=warming,
        )
        self.status = persist(decision.status)
        self.decisions.append(decision)
        return decision


def into_fallback(driver: Driver) -> FallbackDecision:
    """Fire the default ErrorRate trigger for its 30s: active on step 0 at t=30."""
    driver.at(0, BAD)
    decision = driver.at(30, BAD)
    assert decision.switched
    assert decision.active_step == 0
    return decision


# --------------------------------------------------------------------------------------------
# Trigger conditions


def trig(**kw: Any) -> Trigger:
    return Trigger.model_validate(kw)


@pytest.mark.parametrize(
    ("trigger", "obs", "expected"),
    [
        pytest.param(trig(type="ErrorRate", threshold=0.1), reading(0.2), True, id="error-above"),
        pytest.param(trig(type="ErrorRate", threshold=0.1), reading(0.1), False, id="error-equal"),
        pytest.param(trig(type="ErrorRate", threshold=0.1), reading(0.0), False, id="error-zero"),
        pytest.param(trig(type="Latency", threshold=2), reading(2.5), True, id="latency-above"),
        pytest.param(trig(type="Latency", threshold=2), reading(1.9), False, id="latency-below"),
        pytest.param(trig(type="Unavailable"), reading(0), True, id="unavailable-no-ready"),
        pytest.param(trig(type="Unavailable"), reading(2), False, id="unavailable-ready"),
        pytest.param(trig(type="GPUShortage"), reading(1), True, id="gpu-pending"),
        pytest.param(trig(type="GPUShortage"), reading(0), False, id="gpu-none-pending"),
        pytest.param(trig(type="PromQL", threshold=5, query="q"), reading(6), True, id="promql-above"),
        pytest.param(trig(type="PromQL", threshold=5, query="q"), reading(5), False, id="promql-equal"),
        pytest.param(trig(type="ErrorRate", threshold=0.1), MISSING, None, id="missing"),
        pytest.param(trig(type="Latency", threshold=1), reading(float("nan")), None, id="nan-is-unknown"),
        pytest.param(trig(type="ErrorRate"), reading(0.9), None, id="no-threshold-is-unknown"),
        pytest.param(
            trig(type="Budget", budget="team-a"),
            TriggerObservation(MISSING.value, "Degraded"),
            True,
            id="budget-degraded-ignores-value",
        ),
        pytest.param(
            trig(type="Budget", budget="team-a"),
            TriggerObservation(MISSING.value, "Warning"),
            False,
            id="budget-warning-not-in-default-states",
        ),
        pytest.param(
            trig(type="Budget", budget="team-a", budgetStates=["Warning"]),
            TriggerObservation(MISSING.value, "Warning"),
            True,
            id="budget-warning-chosen",
        ),
        pytest.param(
            trig(type="Budget", budget="team-a"),
            TriggerObservation(MISSING.value, "Ok"),
            False,
            id="budget-ok",
        ),
        pytest.param(
            trig(type="Budget", budget="team-a"),
            TriggerObservation(MISSING.value, None),
            None,
            id="budget-missing",
        ),
        pytest.param(
            trig(type="Budget", budget="team-a"),
            TriggerObservation(MISSING.value, "Unknown"),
            None,
            id="budget-state-unknown",
        ),
    ],
)
def test_trigger_condition(trigger: Trigger, obs: TriggerObservation, expected: bool | None) -> None:
    assert trigger_condition(trigger, obs) is expected


def test_trigger_names_are_readable_and_unique() -> None:
    triggers = [
        trig(type="ErrorRate", threshold=0.1),
        trig(type="Latency", threshold=2, latency="TimeToFirstToken"),
        trig(type="Latency", threshold=2, percentile=0.999),
        trig(type="Budget", budget="team-a"),
        trig(type="ErrorRate", threshold=0.5),
    ]
    assert trigger_names(triggers) == [
        "ErrorRate",
        "Latency(p95 TimeToFirstToken)",
        "Latency(p99.9 EndToEnd)",
        "Budget(team-a)",
        "ErrorRate#2",
    ]


@pytest.mark.parametrize(
    ("step", "label"),
    [
        pytest.param(-1, "big", id="target"),
        pytest.param(0, "service/small", id="service"),
        pytest.param(1, "provider/api.example.com", id="provider-host"),
        pytest.param(2, "degraded", id="degraded"),
    ],
)
def test_backend_label(step: int, label: str) -> None:
    assert backend_label(make_spec(), step) == label


# --------------------------------------------------------------------------------------------
# Entering, holding, recovering


def test_enters_only_after_for() -> None:
    d = Driver(make_spec())
    first = d.at(0, BAD)
    assert (first.active, first.switched, first.reason) == (False, False, "TriggerPending")
    assert d.at(29, BAD).active is False
    entered = d.at(30, BAD)
    assert (entered.active, entered.active_step, entered.switched) == (True, 0, True)
    assert entered.reason == "FallbackActivated"
    assert entered.triggered_by == ("ErrorRate",)
    assert entered.status.transitions == 1
    assert entered.status.since == entered.status.last_switch_time == T0 + timedelta(seconds=30)
    assert entered.status.active_backend == "service/small"


def test_a_clear_reading_restarts_the_for_timer() -> None:
    d = Driver(make_spec())
    d.at(0, BAD)
    assert d.at(20, GOOD).status.trigger_since == {}
    d.at(25, BAD)
    assert d.at(50, BAD).active is False  # 25s of the 30s since the restart
    assert d.at(55, BAD).switched is True


def test_holds_while_triggers_fire() -> None:
    d = Driver(make_spec())
    into_fallback(d)
    for t in (60, 300, 3600):
        held = d.at(t, BAD)
        assert (held.active, held.switched, held.reason) == (True, False, "Holding")
    assert d.status.transitions == 1


def test_recovers_after_hold_for() -> None:
    d = Driver(make_spec(hold_for="2m"))
    into_fallback(d)
    pending = d.at(40, GOOD)
    assert (pending.active, pending.reason) == (True, "RecoveryPending")
    assert pending.triggered_by == ("ErrorRate",)  # the cause stays visible during the hold
    assert pending.status.clear_since == T0 + timedelta(seconds=40)
    assert d.at(159, GOOD).active is True
    back = d.at(160, GOOD)
    assert (back.active, back.active_step, back.switched) == (False, -1, True)
    assert back.reason == "FallbackRecovered"
    assert back.triggered_by == ()
    assert back.status.transitions == 2
    assert back.status.clear_since is None
    assert back.status.active_backend == "big"


def test_retrigger_during_recovery_resets_the_hold() -> None:
    d = Driver(make_spec(hold_for="2m"))
    into_fallback(d)
    d.at(40, GOOD)
    # One bad reading, too short to fire, still breaks "continuously clear".
    blip = d.at(100, BAD)
    assert (blip.active, blip.status.clear_since) == (True, None)
    d.at(110, GOOD)
    assert d.at(200, GOOD).active is True  # 160s after t=40, but only 90s after t=110
    assert d.at(229, GOOD).active is True
    assert d.at(230, GOOD).reason == "FallbackRecovered"


def test_alternating_input_faster_than_hold_for_switches_once() -> None:
    d = Driver(make_spec(triggers=[{**ERROR_RATE, "for": "0s"}], hold_for="1m"))
    for i in range(200):  # 10 s period flapping for ~33 minutes
        d.at(i * 10, BAD if i % 2 == 0 else GOOD)
    assert d.status.transitions == 1
    assert d.status.active is True


# --------------------------------------------------------------------------------------------
# Minimum switch interval


def test_min_switch_interval_delays_recovery() -> None:
    d = Driver(make_spec(hold_for="10s", min_switch_interval="5m"))
    into_fallback(d)  # switched at t=30
    d.at(40, GOOD)
    blocked = d.at(60, GOOD)
    assert (blocked.active, blocked.reason) == (True, "MinSwitchInterval")
    assert d.at(329, GOOD).active is True
    assert d.at(330, GOOD).reason == "FallbackRecovered"


def test_min_switch_interval_delays_reentry() -> None:
    spec = make_spec(triggers=[{**ERROR_RATE, "for": "0s"}], hold_for="10s", min_switch_interval="1m")
    d = Driver(spec)
    assert d.at(0, BAD).switched
    d.at(10, GOOD)
    assert d.at(60, GOOD).reason == "FallbackRecovered"
    blocked = d.at(70, BAD)
    assert (blocked.active, blocked.switched, blocked.reason) == (False, False, "MinSwitchInterval")
    assert blocked.triggered_by == ("ErrorRate",)
    assert d.at(120, BAD).reason == "FallbackActivated"
    assert d.status.transitions == 3


# --------------------------------------------------------------------------------------------
# The chain


@pytest.mark.parametrize(
    ("chain", "step", "reason"),
    [
        pytest.param((UP, UP, UP), 0, "FallbackActivated", id="first"),
        pytest.param((GONE, UP, UP), 1, "FallbackActivated", id="skip-nonexistent"),
        pytest.param((SICK, UP, UP), 1, "FallbackActivated", id="skip-unhealthy"),
        pytest.param((GONE, SICK, UP), 2, "FallbackActivated", id="skip-both"),
        pytest.param((GONE, SICK, SICK), -1, "NoHealthyFallback", id="none-healthy"),
        pytest.param((GONE, GONE, GONE), -1, "NoHealthyFallback", id="none-exists"),
    ],
)
def test_entering_skips_unusable_steps(chain: tuple[BackendHealth, ...], step: int, reason: str) -> None:
    d = Driver(make_spec())
    d.at(0, BAD, chain=chain)
    decision = d.at(30, BAD, chain=chain)
    assert (decision.active_step, decision.active, decision.reason) == (step, step >= 0, reason)
    assert decision.switched is (step >= 0)
    assert decision.status.transitions == (1 if step >= 0 else 0)


def test_no_healthy_fallback_waits_then_enters_when_one_heals() -> None:
    d = Driver(make_spec())
    d.at(0, BAD, chain=(SICK, SICK, SICK))
    stuck = d.at(30, BAD, chain=(SICK, SICK, SICK))
    assert (stuck.active, stuck.reason, stuck.triggered_by) == (
        False,
        "NoHealthyFallback",
        ("ErrorRate",),
    )
    assert "small is unhealthy" in stuck.message
    healed = d.at(60, BAD, chain=(SICK, UP, SICK))
    assert (healed.active_step, healed.reason) == (1, "FallbackActivated")


def test_unhealthy_active_step_moves_along_after_min_interval() -> None:
    d = Driver(make_spec(min_switch_interval="1m"))
    into_fallback(d)  # switched at t=30
    blocked = d.at(40, BAD, chain=(SICK, UP, UP))
    assert (blocked.active_step, blocked.reason) == (0, "MinSwitchInterval")
    moved = d.at(90, BAD, chain=(SICK, UP, UP))
    assert (moved.active_step, moved.switched, moved.reason) == (1, True, "FallbackStepChanged")
    assert moved.status.transitions == 2
    assert moved.status.active_backend == "provider/api.example.com"


def test_vanished_active_step_moves_at_once() -> None:
    d = Driver(make_spec(min_switch_interval="1h"))
    into_fallback(d)
    moved = d.at(31, BAD, chain=(GONE, SICK, UP))
    assert (moved.active_step, moved.switched, moved.reason) == (2, True, "FallbackStepChanged")


def test_vanished_active_step_without_alternative_returns_to_target() -> None:
    d = Driver(make_spec(min_switch_interval="1h"))
    into_fallback(d)
    back = d.at(31, BAD, chain=(GONE, SICK, SICK))
    assert (back.active, back.active_step, back.switched) == (False, -1, True)
    assert back.reason == "NoHealthyFallback"
    # And it does not bounce back until a step is healthy and the interval has passed.
    assert d.at(40, BAD, chain=(UP, UP, UP)).reason == "MinSwitchInterval"


def test_vanished_active_step_recovers_at_once_when_due() -> None:
    d = Driver(make_spec(hold_for="10s", min_switch_interval="1h"))
    into_fallback(d)
    d.at(40, GOOD)
    assert d.at(50, GOOD).reason == "MinSwitchInterval"
    back = d.at(51, GOOD, chain=(GONE, UP, UP))
    assert (back.active, back.switched, back.reason) == (False, True, "FallbackRecovered")


def test_unhealthy_active_step_without_alternative_stays() -> None:
    d = Driver(make_spec())
    into_fallback(d)
    stay = d.at(100, BAD, chain=(SICK, SICK, GONE))
    assert (stay.active_step, stay.switched, stay.reason) == (0, False, "NoHealthyFallback")


def test_preferred_step_healing_does_not_move_traffic() -> None:
    d = Driver(make_spec())
    d.at(0, BAD, chain=(SICK, UP, UP))
    assert d.at(30, BAD, chain=(SICK, UP, UP)).active_step == 1
    stay = d.at(300, BAD, chain=ALL_UP)
    assert (stay.active_step, stay.switched) == (1, False)


def test_active_step_failing_prefers_chain_order() -> None:
    d = Driver(make_spec(min_switch_interval="0s"))
    d.at(0, BAD, chain=(SICK, UP, UP))
    d.at(30, BAD, chain=(SICK, UP, UP))
    moved = d.at(60, BAD, chain=(UP, SICK, UP))
    assert (moved.active_step, moved.reason) == (0, "FallbackStepChanged")


def test_chain_reordered_keeps_the_backend_without_a_switch() -> None:
    d = Driver(make_spec())
    into_fallback(d)  # service/small at index 0
    d.spec = make_spec(chain=[CHAIN[2], CHAIN[0]])
    kept = d.at(60, BAD, chain=(UP, UP))
    assert (kept.active_step, kept.switched, kept.status.active_backend) == (
        1,
        False,
        "service/small",
    )


def test_same_label_twice_keeps_the_index() -> None:
    twins = [{"provider": {"url": f"https://api.example.com/{v}"}} for v in ("v1", "v2")]
    d = Driver(make_spec(chain=twins))
    d.at(0, BAD, chain=(SICK, UP))
    assert d.at(30, BAD, chain=(SICK, UP)).active_step == 1
    kept = d.at(60, BAD, chain=(UP, UP))
    assert (kept.active_step, kept.switched) == (1, False)


def test_active_backend_removed_from_chain_moves_even_to_its_old_index() -> None:
    d = Driver(make_spec(min_switch_interval="1h"))
    into_fallback(d)
    d.spec = make_spec(chain=[CHAIN[1]])
    moved = d.at(31, BAD, chain=(UP,))
    assert (moved.active_step, moved.switched, moved.reason) == (0, True, "FallbackStepChanged")
    assert moved.status.active_backend == "provider/api.example.com"


# --------------------------------------------------------------------------------------------
# Combining triggers, budgets


LATENCY: dict[str, Any] = {"type": "Latency", "threshold": 2, "for": "0s"}


@pytest.mark.parametrize(
    ("mode", "error", "latency", "enters", "by"),
    [
        pytest.param("Any", BAD, reading(1), True, ("ErrorRate",), id="any-one"),
        pytest.param("Any", BAD, reading(3), True, ("ErrorRate", "Latency(p95 EndToEnd)"), id="any-both"),
        pytest.param("Any", GOOD, reading(1), False, (), id="any-none"),
        pytest.param("Any", MISSING, reading(3), True, ("Latency(p95 EndToEnd)",), id="any-one-missing"),
        pytest.param("All", BAD, reading(1), False, (), id="all-one"),
        pytest.param("All", BAD, reading(3), True, ("ErrorRate", "Latency(p95 EndToEnd)"), id="all-both"),
        pytest.param("All", MISSING, reading(3), False, (), id="all-one-missing"),
    ],
)
def test_any_and_all(
    mode: str,
    error: TriggerObservation,
    latency: TriggerObservation,
    enters: bool,
    by: tuple[str, ...],
) -> None:
    d = Driver(make_spec(triggers=[{**ERROR_RATE, "for": "0s"}, LATENCY], triggerMode=mode))
    decision = d.at(0, error, latency)
    assert decision.active is enters
    if enters:
        assert decision.triggered_by == by


def test_all_mode_recovers_only_when_every_trigger_is_clear() -> None:
    d = Driver(make_spec(triggers=[{**ERROR_RATE, "for": "0s"}, LATENCY], triggerMode="All", hold_for="1m"))
    assert d.at(0, BAD, reading(3)).active
    assert d.at(100, GOOD, reading(3)).reason == "Holding"  # no longer "all", not yet clear
    d.at(110, GOOD, reading(1))
    assert d.at(170, GOOD, reading(1)).reason == "FallbackRecovered"


def test_budget_trigger() -> None:
    d = Driver(make_spec(triggers=[{"type": "Budget", "budget": "team-a", "for": "0s"}], hold_for="1m"))
    ok = d.at(0, TriggerObservation(MISSING.value, "Warning"))
    assert (ok.active, ok.metrics_available) == (False, True)
    hit = d.at(10, TriggerObservation(MISSING.value, "Exceeded"))
    assert (hit.active, hit.triggered_by) == (True, ("Budget(team-a)",))
    gone = d.at(100, TriggerObservation(MISSING.value, None))
    assert (gone.active, gone.reason, gone.metrics_reason) == (
        True,
        "MetricsUnavailable",
        "BudgetNotFound",
    )
    d.at(110, TriggerObservation(MISSING.value, "Ok"))
    assert d.at(170, TriggerObservation(MISSING.value, "Ok")).reason == "FallbackRecovered"


# --------------------------------------------------------------------------------------------
# Missing data


def test_missing_data_alone_never_enters() -> None:
    d = Driver(make_spec(triggers=[{**ERROR_RATE, "for": "0s"}]))
    for t in range(0, 3600, 60):
        decision = d.at(t, MISSING)
        assert (decision.active, decision.switched) == (False, False)
        assert (decision.reason, decision.metrics_available) == ("MetricsUnavailable", False)
        assert decision.metrics_reason == "NoData"
        assert "ErrorRate: NoData (no series)" in decision.metrics_message


def test_missing_data_keeps_the_for_timer() -> None:
    d = Driver(make_spec())
    d.at(0, BAD)
    during = d.at(40, MISSING)  # the 30s passed, but with nothing to show it
    assert (during.active, during.status.trigger_since) == (False, {"ErrorRate": T0})
    assert d.at(50, BAD).reason == "FallbackActivated"  # held on both sides of the gap


def test_missing_data_never_recovers() -> None:
    d = Driver(make_spec(hold_for="2m"))
    into_fallback(d)
    d.at(40, GOOD)
    for t in range(60, 3600, 60):
        decision = d.at(t, MISSING)
        assert (decision.active, decision.switched, decision.reason) == (
            True,
            False,
            "MetricsUnavailable",
        )
    assert d.status.clear_since == T0 + timedelta(seconds=40)
    assert d.at(3600, GOOD).reason == "FallbackRecovered"


def test_metrics_available_when_all_readings_are() -> None:
    decision = Driver(make_spec()).at(0, GOOD)
    assert (decision.metrics_available, decision.metrics_reason, decision.reason) == (
        True,
        METRICS_OK,
        "TriggersClear",
    )


# --------------------------------------------------------------------------------------------
# Cold-start bridge


def test_cold_start_bridge() -> None:
    d = Driver(make_spec(coldStartBridge=True, min_switch_interval="30s"))
    bridge = d.at(0, MISSING, chain=(SICK, UP, UP), warming=True)
    assert (bridge.active, bridge.active_step, bridge.switched) == (True, 1, True)
    assert (bridge.reason, bridge.triggered_by) == ("ColdStartBridge", (COLD_START,))
    assert bridge.status.transitions == 1
    still = d.at(10, MISSING, chain=(SICK, UP, UP), warming=True)
    assert (still.switched, still.reason) == (False, "ColdStartBridge")
    early = d.at(20, MISSING, chain=(SICK, UP, UP))
    assert (early.active, early.reason) == (True, "MinSwitchInterval")
    # Missing request metrics (no traffic yet) do not keep the bridge up.
    warm = d.at(30, MISSING, chain=(SICK, UP, UP))
    assert (warm.active, warm.switched, warm.reason) == (False, True, "ColdStartBridgeEnded")
    assert warm.status.transitions == 2


def test_cold_start_bridge_is_opt_in() -> None:
    decision = Driver(make_spec()).at(0, GOOD, warming=True)
    assert (decision.active, decision.reason) == (False, "TriggersClear")


def test_cold_start_bridge_becomes_a_fallback_when_triggers_fire() -> None:
    d = Driver(make_spec(coldStartBridge=True, hold_for="1m"))
    d.at(0, BAD, warming=True)
    assert d.status.triggered_by == [COLD_START]
    fired = d.at(30, BAD, warming=True)
    assert (fired.switched, fired.reason, fired.triggered_by) == (False, "Holding", ("ErrorRate",))
    # Warm now, but the ordinary recovery hold applies.
    assert d.at(40, GOOD).reason == "RecoveryPending"
    assert d.at(100, GOOD).reason == "FallbackRecovered"


def test_cold_start_bridge_without_healthy_step_stays() -> None:
    decision = Driver(make_spec(coldStartBridge=True)).at(0, GOOD, chain=(GONE, SICK, SICK), warming=True)
    assert (decision.active, decision.reason) == (False, "NoHealthyFallback")


# --------------------------------------------------------------------------------------------
# Restarts: the status is the only memory


def test_restart_mid_fallback_does_not_switch_again() -> None:
    d = Driver(make_spec(hold_for="2m"))
    into_fallback(d)
    d.at(40, GOOD)
    saved = d.status.model_dump(mode="json", by_alias=True)
    # A new operator process, ten minutes later, with the triggers firing again.
    restarted = Driver(make_spec(hold_for="2m"), FallbackPolicyStatus.model_validate(saved))
    after = restarted.at(640, BAD)
    assert (after.active, after.active_step, after.switched) == (True, 0, False)
    assert after.status.transitions == 1
    assert after.status.since == T0 + timedelta(seconds=30)


def test_restart_resumes_the_recovery_hold() -> None:
    d = Driver(make_spec(hold_for="2m"))
    into_fallback(d)
    d.at(40, GOOD)
    restarted = Driver(make_spec(hold_for="2m"), persist(d.status))
    assert restarted.at(159, GOOD).active is True
    assert restarted.at(160, GOOD).reason == "FallbackRecovered"


def test_restart_resumes_the_cold_start_bridge() -> None:
    d = Driver(make_spec(coldStartBridge=True))
    d.at(0, GOOD, warming=True)
    restarted = Driver(make_spec(coldStartBridge=True), persist(d.status))
    assert restarted.at(10, GOOD, warming=True).reason == "ColdStartBridge"
    assert restarted.at(40, GOOD).reason == "ColdStartBridgeEnded"


def test_previous_status_is_not_mutated() -> None:
    previous = FallbackPolicyStatus()
    decide_fallback(make_spec(triggers=[{**ERROR_RATE, "for": "0s"}]), previous, [BAD], ALL_UP, T0)
    assert previous == FallbackPolicyStatus()


def test_other_status_fields_are_kept() -> None:
    previous = FallbackPolicyStatus(observed_generation=7)
    decision = decide_fallback(make_spec(), previous, [GOOD], ALL_UP, T0)
    assert decision.status.observed_generation == 7


@pytest.mark.parametrize(
    ("triggers", "chain", "now"),
    [
        pytest.param([], ALL_UP, T0, id="too-few-observations"),
        pytest.param([GOOD], (UP,), T0, id="too-few-backends"),
        pytest.param([GOOD], ALL_UP, datetime(2025, 1, 1), id="naive-now"),
    ],
)
def test_caller_errors_are_refused(
    triggers: list[TriggerObservation], chain: Sequence[BackendHealth], now: datetime
) -> None:
    with pytest.raises(ValueError, match=r"observations|healths|timezone"):
        decide_fallback(make_spec(), FallbackPolicyStatus(), triggers, chain, now)


# --------------------------------------------------------------------------------------------
# Properties: random flapping input


OBS = st.sampled_from(["bad", "good", "missing"])
HEALTH = st.sampled_from([UP, UP, UP, SICK, GONE])
EVENT = st.tuples(
    st.integers(min_value=1, max_value=90),  # seconds since the last evaluation
    st.tuples(OBS, OBS),
    st.tuples(HEALTH, HEALTH, HEALTH),
    st.booleans(),  # the target is warming from zero
)
LATENCY_OBS = {"bad": reading(5), "good": reading(0.5), "missing": MISSING}
ERROR_OBS = {"bad": BAD, "good": GOOD, "missing": MISSING}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(EVENT, min_size=1, max_size=60),
    for_s=st.sampled_from([0, 10, 30]),
    hold_s=st.sampled_from([0, 5, 30, 120]),
    min_switch_s=st.sampled_from([1, 15, 60, 300]),
    mode=st.sampled_from(["Any", "All"]),
    bridge=st.booleans(),
    stable_chain=st.booleans(),
)
def test_flapping_input_gives_bounded_switches(
    events: list[tuple[int, tuple[str, str], tuple[BackendHealth, ...], bool]],
    for_s: int,
    hold_s: int,
    min_switch_s: int,
    mode: str,
    bridge: bool,
    stable_chain: bool,
) -> None:
    spec = make_spec(
        triggers=[{**ERROR_RATE, "for": f"{for_s}s"}, {**LATENCY, "for": f"{for_s}s"}],
        triggerMode=mode,
        coldStartBridge=bridge,
        hold_for=f"{hold_s}s",
        min_switch_interval=f"{min_switch_s}s",
    )
    d = Driver(spec)
    t = 0
    switch_times: list[int] = []
    exempt = 0  # moves off a backend that no longer exists
    for gap, (err, lat), chain, warming in events:
        t += gap
        if stable_chain:  # steps may sicken and heal, but none is deleted
            chain = tuple(UP if h is GONE else h for h in chain)
        before = d.status
        decision = d.at(t, ERROR_OBS[err], LATENCY_OBS[lat], chain=chain, warming=warming)

        # active_step is the target or a step that exists; a step is switched to only when healthy.
        assert decision.active is (decision.active_step >= 0)
        assert -1 <= decision.active_step < len(chain)
        if decision.active_step >= 0:
            assert chain[decision.active_step].exists
            if decision.switched:
                assert chain[decision.active_step].healthy
            elif not chain[decision.active_step].healthy:
                assert decision.reason in {"MinSwitchInterval", "NoHealthyFallback"}

        # Missing data alone never switches, either way.
        if decision.switched and decision.reason == "FallbackActivated":
            assert "bad" in (err, lat)
        if decision.switched and decision.reason == "FallbackRecovered":
            assert (err, lat) == ("good", "good")

        if decision.switched:
            left_gone = before.active and not chain[before.active_step].exists
            if left_gone:
                exempt += 1
            elif switch_times:
                assert t - switch_times[-1] >= min_switch_s
            switch_times.append(t)

    transitions = d.status.transitions
    assert transitions == len(switch_times)
    assert transitions <= 1 + t // min_switch_s + exempt
    if stable_chain:
        assert exempt == 0
        # The brief's bound: elapsed / min(minSwitchInterval, holdFor), plus the first switch.
        assert transitions <= 1 + t / min(min_switch_s, max(hold_s, 1))


@pytest.mark.parametrize(
    ("obj", "exists", "healthy"),
    [
        pytest.param(None, False, False, id="a step naming no service"),
        pytest.param({"spec": {"serving": {}}, "status": {"readyReplicas": 2}}, True, True, id="ready pods"),
        pytest.param(
            {"spec": {"serving": {}}, "status": {"readyReplicas": 0}}, True, False, id="no ready pod"
        ),
        pytest.param(
            {"spec": {"provider": {"url": "https://api.example.com/v1"}}, "status": {"readyReplicas": 0}},
            True,
            True,
            id="an API-backed service has no replicas and is usable: the gateway sends on to its provider",
        ),
        pytest.param(
            {"spec": {"provider": {"url": "https://api.example.com/v1"}}, "status": {"mode": "Suspended"}},
            True,
            False,
            id="an API-backed service suspended by its budget is not",
        ),
        pytest.param(
            {"spec": {"serving": {}}, "status": {"readyReplicas": 1, "mode": "Fallback"}},
            True,
            False,
            id="a service itself in fallback is not",
        ),
    ],
)
def test_the_health_of_a_chain_step_naming_a_service(obj: Any, exists: bool, healthy: bool) -> None:
    assert service_step_health(obj) == BackendHealth(exists=exists, healthy=healthy)
