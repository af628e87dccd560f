"""When the economics of a minute are asked: SETTLE after its start, once, at the minute's instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aipolicy.api.economics import UnitEconomics
from aipolicy.controllers.economics import SETTLE, due, next_refresh

NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_a_minute_is_asked_only_once_its_scrapes_have_settled() -> None:
    before = UnitEconomics(evaluated_at=NOON - timedelta(minutes=1))
    assert due(before, NOON + SETTLE / 2) is None  # noon's scrapes may still be in flight
    assert due(before, NOON + SETTLE) == NOON  # about noon, not about when it was asked
    assert due(UnitEconomics(evaluated_at=NOON), NOON + SETTLE + timedelta(seconds=5)) is None


def test_the_next_refresh_is_the_next_minute_plus_settle() -> None:
    assert next_refresh(NOON + SETTLE / 2) == NOON + SETTLE
    assert next_refresh(NOON + SETTLE) == NOON + timedelta(minutes=1) + SETTLE


def test_a_service_with_no_economics_yet_is_asked_about_the_last_settled_minute() -> None:
    assert due(None, NOON + SETTLE / 2) == NOON - timedelta(minutes=1)
