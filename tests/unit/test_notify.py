"""Budget alerts: what to send (Alertmanager v2 or webhook), when to resolve, retry and resend.

Every step goes through the status the way the controller does: the evaluation, then
plan_alerts over the stored alerts, then after_attempt with what the POST did, and the status
read back from its JSON form (so each step is also what a restarted operator would do).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from aipolicy.api.aibudget import AIBudgetSpec, AIBudgetStatus, AlertDelivery
from aipolicy.api.common import json_dict
from aipolicy.policy.budget import evaluate_budget, updated_status
from aipolicy.policy.notify import (
    BACKOFF_MAX,
    RESEND_FIRING,
    after_attempt,
    alertmanager_alerts,
    backoff,
    due_alerts,
    is_alertmanager,
    plan_alerts,
    webhook_payload,
)
from aipolicy.policy.observations import Unavailable

T0 = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
AM = "http://127.0.0.1:9093/api/v2/alerts"
HOOK = "http://127.0.0.1:8080/hooks/budget"


def _spec(url: str | None = AM, *, enforcement: str = "Enforce") -> AIBudgetSpec:
    return AIBudgetSpec.model_validate(
        {
            "limit": "10",
            "period": {"type": "Rolling", "window": "1h"},
            "thresholds": [{"percent": 50, "action": "Notify"}, {"percent": 80, "action": "Degrade"}],
            "costSources": [{"name": "meter", "query": "sum(x[$window])"}],
            "hysteresisPercent": 5,
            "notification": {"webhookUrl": url} if url else {},
            "enforcement": enforcement,
        }
    )


class Budget:
    """A budget's status across evaluations, stored as JSON in between."""

    def __init__(self, spec: AIBudgetSpec) -> None:
        self.spec = spec
        self.stored: dict[str, object] = {}

    @property
    def status(self) -> AIBudgetStatus:
        return AIBudgetStatus.model_validate(self.stored)

    def evaluate(self, spent: str, now: datetime) -> list[AlertDelivery]:
        previous = self.status
        evaluation = evaluate_budget(self.spec, previous, {}, {"meter": Decimal(spent)}, now, None)
        status = updated_status(previous, evaluation, self.spec, 1)
        status.alerts = plan_alerts(previous.alerts, self.spec, evaluation, now)
        self.stored = json_dict(status)
        return self.status.alerts

    def attempt(self, now: datetime, error: str | None = None) -> list[AlertDelivery]:
        """POST what is due; `error` is what the POST raised, None for a 2xx."""
        url = self.spec.notification.webhook_url
        assert url is not None
        status = self.status
        due = due_alerts(status.alerts, now, alertmanager=is_alertmanager(url))
        status.alerts = [after_attempt(a, now, error) if a in due else a for a in status.alerts]
        self.stored = json_dict(status)
        return due


def test_alertmanager_urls_are_told_from_other_webhooks() -> None:
    assert is_alertmanager(AM)
    assert is_alertmanager("https://am.example.com/prefix/api/v2/alerts/")
    assert not is_alertmanager(HOOK)
    assert not is_alertmanager("http://127.0.0.1:9093/api/v1/alerts")


def test_a_threshold_reached_fires_one_alert_that_is_due_at_once() -> None:
    budget = Budget(_spec())
    assert budget.evaluate("4", T0) == []
    [alert] = budget.evaluate("6", T0 + timedelta(seconds=30))
    assert (alert.percent, alert.action, alert.state, alert.delivered) == (50, "Notify", "Firing", False)
    assert alert.starts_at == T0 + timedelta(seconds=30)
    assert budget.attempt(T0 + timedelta(seconds=30)) == [alert]


def test_the_alertmanager_form_is_a_list_of_v2_alerts() -> None:
    budget = Budget(_spec())
    budget.evaluate("9", T0)
    alerts = alertmanager_alerts("team-a", "gpus", budget.status.alerts)
    assert isinstance(alerts, list) and len(alerts) == 2
    first = alerts[0]
    assert first["labels"] == {
        "alertname": "AIBudgetThreshold",
        "namespace": "team-a",
        "budget": "gpus",
        "action": "Notify",
        "percent": "50",
        "severity": "warning",
    }
    assert alerts[1]["labels"]["severity"] == "critical"
    assert first["startsAt"] == "2026-03-15T12:00:00Z"
    assert "endsAt" not in first  # firing: Alertmanager keeps it until resolve_timeout
    assert "Spent 9.00 of 10.00 USD" in first["annotations"]["description"]
    assert first["annotations"]["summary"] == "AIBudget gpus reached 50% (Notify)"


def test_spend_falling_below_the_band_resolves_the_alert_with_an_end_time() -> None:
    budget = Budget(_spec())
    budget.evaluate("6", T0)
    budget.attempt(T0)
    assert budget.status.alerts[0].delivered
    # 46 % is inside the 5 % hysteresis band of 50 %: still firing, nothing due
    budget.evaluate("4.6", T0 + timedelta(seconds=30))
    assert budget.status.alerts[0].state == "Firing"
    assert budget.attempt(T0 + timedelta(seconds=30)) == []
    later = T0 + timedelta(seconds=60)
    [resolved] = budget.evaluate("4", later)
    assert (resolved.state, resolved.ends_at, resolved.delivered) == ("Resolved", later, False)
    [sent] = alertmanager_alerts("ns", "b", budget.attempt(later))
    assert sent["endsAt"] == "2026-03-15T12:01:00Z"
    # delivered and resolved: nothing is left to remember
    assert budget.evaluate("4", later + timedelta(seconds=30)) == []


def test_a_failed_post_is_not_delivered_and_is_retried_with_growing_backoff() -> None:
    budget = Budget(_spec())
    budget.evaluate("6", T0)
    now = T0
    waits = []
    for attempt in range(1, 5):
        assert budget.attempt(now, "connection refused"), f"attempt {attempt} is due"
        [alert] = budget.status.alerts
        assert (alert.delivered, alert.attempts, alert.last_error) == (False, attempt, "connection refused")
        assert alert.next_attempt is not None
        waits.append(alert.next_attempt - now)
        # not before the backoff has passed, even across evaluations
        budget.evaluate("6", now + waits[-1] / 2)
        assert budget.attempt(now + waits[-1] / 2) == []
        now = alert.next_attempt
    assert waits == sorted(waits) and waits[0] < waits[-1]
    assert budget.attempt(now)  # then it gets through
    [alert] = budget.status.alerts
    assert (alert.delivered, alert.delivered_at, alert.last_error) == (True, now, "")


def test_backoff_doubles_and_is_capped() -> None:
    assert backoff(2) == 2 * backoff(1)
    assert backoff(100) == BACKOFF_MAX


def test_firing_alerts_are_resent_to_alertmanager_but_not_to_a_webhook() -> None:
    for url, resent in ((AM, True), (HOOK, False)):
        budget = Budget(_spec(url))
        budget.evaluate("6", T0)
        budget.attempt(T0)
        budget.evaluate("6", T0 + RESEND_FIRING)
        assert bool(budget.attempt(T0 + RESEND_FIRING)) is resent, url


def test_missing_metrics_neither_fire_nor_resolve() -> None:
    budget = Budget(_spec())
    budget.evaluate("6", T0)
    budget.attempt(T0)
    previous = budget.status
    gone = Unavailable("QueryError", "Prometheus timed out")
    missing = evaluate_budget(budget.spec, previous, {}, {"meter": gone}, T0 + timedelta(seconds=30), None)
    assert plan_alerts(previous.alerts, budget.spec, missing, T0 + timedelta(seconds=30)) == previous.alerts


@pytest.mark.parametrize(
    ("url", "enforcement"), [(None, "Enforce"), (AM, "DryRun")], ids=["no-url", "dry-run"]
)
def test_nothing_is_kept_without_a_url_or_in_dry_run(url: str | None, enforcement: str) -> None:
    budget = Budget(_spec(url, enforcement=enforcement))
    assert budget.evaluate("9", T0) == []


def test_the_webhook_form_is_alertmanagers_receiver_payload() -> None:
    budget = Budget(_spec(HOOK))
    budget.evaluate("6", T0)
    [alert] = budget.status.alerts
    payload = webhook_payload("ns", "b", alert)
    assert payload["version"] == "4" and payload["status"] == "firing"
    assert payload["alerts"][0]["labels"]["percent"] == "50"
    assert payload["commonLabels"] == payload["alerts"][0]["labels"]
    resolved = alert.model_copy(update={"state": "Resolved", "ends_at": T0 + timedelta(minutes=1)})
    assert webhook_payload("ns", "b", resolved)["status"] == "resolved"
