"""Stalled (kstatus' abnormal-true condition): set only by an evaluation that finds the spec
unusable, dropped by every other, its lastTransitionTime kept while it stays, and never an event
of its own (Ready's InvalidSpec tells it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aipolicy.api.common import Condition, find_condition
from aipolicy.controllers.events import StatusConditions

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _invalid_pass(previous: list[Condition], now: datetime) -> StatusConditions:
    conditions = StatusConditions(previous, 3, now)
    conditions.set("Ready", "False", "InvalidSpec", "spec.x: bad")
    conditions.stalled("InvalidSpec", "spec.x: bad")
    return conditions


def test_an_unusable_spec_is_stalled_and_only_ready_is_told() -> None:
    conditions = _invalid_pass([], T0)
    stalled = find_condition(conditions.conditions, "Stalled")
    assert stalled is not None and (stalled.status, stalled.reason) == ("True", "InvalidSpec")
    assert stalled.observed_generation == 3
    assert [c.type for c in conditions.changed] == ["Ready"]


def test_stalled_keeps_its_transition_time_and_order_while_it_stays() -> None:
    first = _invalid_pass([], T0).conditions
    second = _invalid_pass(first, T0 + timedelta(minutes=5))
    assert second.conditions == first
    assert second.changed == []


def test_any_other_evaluation_drops_stalled() -> None:
    first = _invalid_pass([], T0).conditions
    fixed = StatusConditions(first, 4, T0 + timedelta(minutes=1))
    fixed.set("Ready", "True", "ReplicasReady", "1 of 1 replicas are ready")
    assert [c.type for c in fixed.conditions] == ["Ready"]
