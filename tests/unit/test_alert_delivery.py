"""How alerts are POSTed and what each outcome records and tells (policy/notify.py
delivery_batches and record_deliveries): tables whose ids are sentences, with plain data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aipolicy.api.aibudget import AlertDelivery
from aipolicy.policy.notify import delivery_batches, record_deliveries

NOW = datetime(2026, 3, 15, 12, 0, 0, tzinfo=UTC)
HOOK = "http://127.0.0.1:9/hook"
ALERTMANAGER = "http://127.0.0.1:9/api/v2/alerts"


def alert(percent: int, **fields: Any) -> AlertDelivery:
    return AlertDelivery(
        percent=percent, action="Notify", state="Firing", starts_at=NOW - timedelta(minutes=5), **fields
    )


NEW = alert(50)
FAILED_ONCE = alert(50, attempts=1, last_error="refused", next_attempt=NOW - timedelta(seconds=1))
DELIVERED = alert(50, attempts=1, delivered=True, delivered_at=NOW - timedelta(minutes=2))

EVENTS = [
    pytest.param(
        NEW,
        "connection refused",
        [("Warning", "NotificationFailed")],
        id="the first failed POST of an alert posts a Warning",
    ),
    pytest.param(FAILED_ONCE, "connection refused", [], id="a retry that fails again posts nothing"),
    pytest.param(
        FAILED_ONCE,
        None,
        [("Normal", "NotificationDelivered")],
        id="a POST that gets through after failing posts a Normal event",
    ),
    pytest.param(NEW, None, [], id="a POST that gets through at once posts nothing"),
    pytest.param(
        DELIVERED,
        "connection refused",
        [("Warning", "NotificationFailed")],
        id="a resend that fails after a delivery is a first failure again",
    ),
]


@pytest.mark.parametrize(("before", "error", "events"), EVENTS)
def test_delivery_events(before: AlertDelivery, error: str | None, events: list[tuple[str, str]]) -> None:
    after, posted = record_deliveries(HOOK, [before], {before.percent: error}, NOW)
    assert [(e.type, e.reason) for e in posted] == events
    assert after[0].delivered is (error is None)
    assert after[0].attempts == before.attempts + 1


def test_an_alert_not_posted_is_kept_as_it_is() -> None:
    after, posted = record_deliveries(HOOK, [NEW, alert(80)], {80: None}, NOW)
    assert after[0] == NEW
    assert after[1].delivered
    assert posted == []


BATCHES = [
    pytest.param(
        ALERTMANAGER, [NEW, alert(80)], [(50, 80)], id="an Alertmanager gets every due alert in one POST"
    ),
    pytest.param(HOOK, [NEW, alert(80)], [(50,), (80,)], id="another webhook gets one POST per alert"),
    pytest.param(HOOK, [DELIVERED], [], id="a delivered alert is not posted to a webhook again"),
    pytest.param(
        HOOK,
        [alert(50, attempts=1, next_attempt=NOW + timedelta(seconds=3))],
        [],
        id="a failed alert waits for its backoff",
    ),
]


@pytest.mark.parametrize(("url", "alerts", "percents"), BATCHES)
def test_delivery_batches(url: str, alerts: list[AlertDelivery], percents: list[tuple[int, ...]]) -> None:
    assert [b.percents for b in delivery_batches("team-a", "team", url, alerts, NOW)] == percents
