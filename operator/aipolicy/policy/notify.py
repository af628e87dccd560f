"""Budget alerts: which to send to spec.notification.webhookUrl, in which form, and when.

Pure: the controller calls :func:`plan_alerts` after each evaluation, POSTs the
:func:`delivery_batches` (of what :func:`due_alerts` returns), records the outcomes with
:func:`record_deliveries` (:func:`after_attempt` per alert, and the events), and writes the
alerts to status. What is pending lives there, so an operator that restarts sends what the
last one had not delivered, and nothing twice except a POST whose status write it never made
(at least once: Alertmanager merges a repeated alert by its labels).

Rules:

* One alert per threshold. It fires when the threshold is first reached in a period (the
  budget's ``new_notifications``, so announce-once holds) and stays firing while spend stays at
  it or within its hysteresis band; it resolves (``endsAt``) once spend falls below the band
  or the threshold leaves the spec. Missing metrics neither fire nor resolve anything.
* Each change of an alert (fired, resolved) is due at once and retried with exponential
  backoff (2 s doubling, at most 5 min) until the receiver answers 2xx; only then is it
  ``delivered``. A resolved alert, once delivered, is forgotten.
* An Alertmanager (a URL ending in /api/v2/alerts) gets a JSON array of v2 alerts; firing
  alerts are re-sent every minute, because Alertmanager resolves an alert it has not heard of
  for its resolve_timeout (5 min by default). Any other URL gets Alertmanager's
  webhook-receiver payload (version 4), once per change.
* No URL, or a DryRun budget: no alerts are kept or sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aipolicy.api.aibudget import AIBudgetSpec, AlertDelivery
from aipolicy.api.conditions import NOTIFICATION_DELIVERED, NOTIFICATION_FAILED
from aipolicy.policy.budget import BudgetEvaluation
from aipolicy.policy.outcome import Event

ALERT_NAME = "AIBudgetThreshold"
RESEND_FIRING = timedelta(minutes=1)
"""How often a firing alert is re-sent to Alertmanager (Prometheus resends every minute too)."""
BACKOFF_BASE = timedelta(seconds=2)
BACKOFF_MAX = timedelta(minutes=5)
_ERROR_KEPT = 300  # characters of a failure kept in status


def is_alertmanager(url: str) -> bool:
    """An Alertmanager's alerts API, which takes v2 alerts rather than a webhook payload."""
    return urlsplit(url).path.rstrip("/").endswith("/api/v2/alerts")


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed POST in a row: 2 s, 4 s, 8 s ... at most 5 min."""
    doublings: int = min(max(attempts - 1, 0), 16)
    return min(BACKOFF_BASE * (1 << doublings), BACKOFF_MAX)


def plan_alerts(
    previous: Sequence[AlertDelivery], spec: AIBudgetSpec, evaluation: BudgetEvaluation, now: datetime
) -> list[AlertDelivery]:
    """The alerts after this evaluation: new ones firing, those no longer held resolved."""
    if not spec.notification.webhook_url or spec.enforcement == "DryRun":
        return []
    alerts = {a.percent: a for a in previous}
    for threshold in evaluation.new_notifications:
        alerts[threshold.percent] = AlertDelivery(
            percent=threshold.percent,
            action=threshold.action,
            state="Firing",
            starts_at=now,
            summary=f"reached {threshold.percent}% ({threshold.action})",
            description=evaluation.message,
            next_attempt=now,
        )
    if evaluation.metrics_available:
        held = set(evaluation.held_percents)
        for percent, alert in list(alerts.items()):
            if alert.state == "Firing" and percent not in held:
                alerts[percent] = alert.model_copy(
                    update={
                        "state": "Resolved",
                        "ends_at": now,
                        "description": evaluation.message,
                        "delivered": False,
                        "attempts": 0,
                        "next_attempt": now,
                        "last_error": "",
                    }
                )
    kept = [a for a in alerts.values() if not (a.state == "Resolved" and a.delivered)]
    return sorted(kept, key=lambda a: a.percent)


def due_alerts(alerts: Sequence[AlertDelivery], now: datetime, *, alertmanager: bool) -> list[AlertDelivery]:
    """The alerts to POST now: undelivered ones whose backoff has passed, and (to an
    Alertmanager) firing ones last delivered RESEND_FIRING ago."""
    due = []
    for alert in alerts:
        if not alert.delivered:
            retry = alert.next_attempt is None or now >= alert.next_attempt
            if retry:
                due.append(alert)
            continue
        refresh = alertmanager and alert.state == "Firing"
        if refresh and (alert.delivered_at is None or now - alert.delivered_at >= RESEND_FIRING):
            due.append(alert)
    return due


def after_attempt(alert: AlertDelivery, now: datetime, error: str | None) -> AlertDelivery:
    """The alert after one POST of it: delivered on success (error None), else due again after
    the backoff, with the error kept."""
    attempts = alert.attempts + 1
    if error is None:
        return alert.model_copy(
            update={
                "delivered": True,
                "delivered_at": now,
                "attempts": attempts,
                "next_attempt": None,
                "last_error": "",
            }
        )
    return alert.model_copy(
        update={
            "delivered": False,
            "attempts": attempts,
            "next_attempt": now + backoff(attempts),
            "last_error": error[:_ERROR_KEPT],
        }
    )


@dataclass(frozen=True)
class Batch:
    """One POST: the alerts it carries (by threshold percent) and its JSON body."""

    percents: tuple[int, ...]
    payload: Any


def delivery_batches(
    namespace: str, budget: str, url: str, alerts: Sequence[AlertDelivery], now: datetime
) -> list[Batch]:
    """The POSTs due now: an Alertmanager gets every due alert in one array, another webhook
    one payload per alert."""
    alertmanager = is_alertmanager(url)
    due = due_alerts(alerts, now, alertmanager=alertmanager)
    if alertmanager:
        return (
            [Batch(tuple(a.percent for a in due), alertmanager_alerts(namespace, budget, due))] if due else []
        )
    return [Batch((a.percent,), webhook_payload(namespace, budget, a)) for a in due]


def record_deliveries(
    url: str, alerts: Sequence[AlertDelivery], errors: Mapping[int, str | None], now: datetime
) -> tuple[list[AlertDelivery], list[Event]]:
    """The alerts after the POSTs whose outcome `errors` gives by percent (None: delivered), and
    the events: one when an alert's first POST fails and one when it gets through after
    failing, never one per retry."""
    updated: list[AlertDelivery] = []
    events: list[Event] = []
    for alert in alerts:
        if alert.percent not in errors:
            updated.append(alert)
            continue
        error = errors[alert.percent]
        after = after_attempt(alert, now, error)
        what = f"{alert.state.lower()} alert of the {alert.percent}% threshold"
        if error is not None and (alert.attempts == 0 or alert.delivered):  # the first failure in a row
            events.append(
                Event("Warning", NOTIFICATION_FAILED, f"POST {url} ({what}): {error}; retrying with backoff")
            )
        elif error is None and alert.attempts > 0 and not alert.delivered:
            events.append(
                Event(
                    "Normal",
                    NOTIFICATION_DELIVERED,
                    f"POST {url} ({what}) delivered after {after.attempts} attempts",
                )
            )
        updated.append(after)
    return updated, events


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _labels(namespace: str, budget: str, alert: AlertDelivery) -> dict[str, str]:
    return {
        "alertname": ALERT_NAME,
        "namespace": namespace,
        "budget": budget,
        "action": alert.action,
        "percent": str(alert.percent),
        "severity": "warning" if alert.action == "Notify" else "critical",
    }


def _annotations(budget: str, alert: AlertDelivery) -> dict[str, str]:
    return {"summary": f"AIBudget {budget} {alert.summary}", "description": alert.description}


def alertmanager_alerts(namespace: str, budget: str, alerts: Sequence[AlertDelivery]) -> list[dict[str, Any]]:
    """The body of POST /api/v2/alerts: a list of postable alerts."""
    body = []
    for alert in alerts:
        item: dict[str, Any] = {
            "labels": _labels(namespace, budget, alert),
            "annotations": _annotations(budget, alert),
            "startsAt": _time(alert.starts_at),
        }
        if alert.state == "Resolved" and alert.ends_at is not None:
            item["endsAt"] = _time(alert.ends_at)
        body.append(item)
    return body


def webhook_payload(namespace: str, budget: str, alert: AlertDelivery) -> dict[str, Any]:
    """Alertmanager's webhook-receiver payload (version 4) for one alert."""
    status = "resolved" if alert.state == "Resolved" else "firing"
    labels = _labels(namespace, budget, alert)
    annotations = _annotations(budget, alert)
    item: dict[str, Any] = {
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": _time(alert.starts_at),
    }
    if alert.ends_at is not None:
        item["endsAt"] = _time(alert.ends_at)
    return {
        "version": "4",
        "status": status,
        "receiver": "aipolicy",
        "groupLabels": {"budget": budget},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "alerts": [item],
    }
