"""Budget alerts delivered to a real Alertmanager: v2 alerts that fire, resolve, and are
retried until Alertmanager takes them.

Spend comes from GPU-hours (kube-state-metrics) of one GPU priced at $3600/h, $1/s: a Rolling
budget of 20 s over a limit of $10 reaches 50 % within a few samples, and falls back to 0 once
the service is gone and its samples leave the window.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.alertmanager import Alertmanager, binary
from tests.e2e.cluster import Cluster, Prometheus, wait_until
from tests.e2e.conftest import OperatorFactory

GROUP_VERSION = "aipolicy.dev/v1alpha1"
LABELS = {"team": "alerts"}
BUDGET = "gpus"


def _service() -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": "llama", "labels": dict(LABELS)},
        "spec": {
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "serving": {
                "image": "vllm/vllm-openai:v0.6.3",
                "gpu": {"count": 1},
                "resources": {"cpu": "1", "memory": "1Gi"},
            },
            "pricing": {"gpuHour": "3600"},
            "scaling": {"minReplicas": 1, "maxReplicas": 1},
        },
    }


def _budget(url: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "AIBudget",
        "metadata": {"name": BUDGET},
        "spec": {
            "limit": "10",
            "period": {"type": "Rolling", "window": "20s"},
            "selector": {"matchLabels": dict(LABELS)},
            "thresholds": [{"percent": 50, "action": "Notify"}],
            "evaluationInterval": "2s",
            "notification": {"webhookUrl": url},
        },
    }


def _status(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return dict((cluster.get("aibudget", BUDGET, namespace) or {}).get("status") or {})


def _alerts_in_status(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return list(_status(cluster, namespace).get("alerts") or [])


def _events(cluster: Cluster, namespace: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.events(namespace, BUDGET) if e["reason"] == reason]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    """An Alertmanager on a free loopback port, not yet started; stopped at the end."""
    if binary() is None:
        pytest.fail("Alertmanager is missing: run `make alertmanager` (Debian's prometheus-alertmanager)")
    handle = Alertmanager(tmp_path)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(autouse=True)
def _crds(crds_installed: None) -> None:
    """Every test here needs the CRDs."""


def test_a_threshold_fires_a_real_alertmanager_alert_that_resolves_when_spend_recovers(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
    alertmanager: Alertmanager,
) -> None:
    alertmanager.start()
    operator_process(namespace)
    cluster.apply(_service(), namespace)
    cluster.apply(_budget(alertmanager.alerts_url), namespace)

    mine = {"namespace": namespace, "budget": BUDGET}
    [alert] = wait_until("the alert in Alertmanager", lambda: alertmanager.alerts(**mine), timeout=120)
    assert alert["labels"] == {
        "alertname": "AIBudgetThreshold",
        "namespace": namespace,
        "budget": BUDGET,
        "action": "Notify",
        "percent": "50",
        "severity": "warning",
    }
    assert alert["status"]["state"] == "active"
    assert alert["annotations"]["summary"] == f"AIBudget {BUDGET} reached 50% (Notify)"
    assert "of 10.00 USD" in alert["annotations"]["description"]

    def delivered() -> dict[str, Any] | None:
        alerts = _alerts_in_status(cluster, namespace)
        return alerts[0] if alerts and alerts[0].get("delivered") else None

    recorded = wait_until("the alert recorded as delivered", delivered, timeout=30)
    assert (recorded["state"], recorded["percent"], recorded["attempts"]) == ("Firing", 50, 1)
    # Alertmanager keeps the operator's startsAt (to the second, as it stores it)
    assert abs((_time(alert["startsAt"]) - _time(recorded["startsAt"])).total_seconds()) < 1
    assert _events(cluster, namespace, "NotificationFailed") == []

    # the spending stops; once its samples leave the 20 s window the budget is back under 45 %
    cluster.kubectl("-n", namespace, "delete", "inferenceservice", "llama")
    wait_until("the alert resolved in Alertmanager", lambda: not alertmanager.alerts(**mine), timeout=120)
    wait_until(
        "the resolved alert delivered and forgotten",
        lambda: _alerts_in_status(cluster, namespace) == [],
        timeout=30,
    )
    assert _status(cluster, namespace)["state"] == "Ok"


def test_an_alert_alertmanager_refused_is_retried_and_delivered_once_it_is_up(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
    alertmanager: Alertmanager,
) -> None:
    # Alertmanager's port is chosen, but nothing listens there yet: every POST is refused
    first = operator_process(namespace)
    cluster.apply(_service(), namespace)
    cluster.apply(_budget(alertmanager.alerts_url), namespace)

    def failing_again() -> dict[str, Any] | None:
        alerts = _alerts_in_status(cluster, namespace)
        return alerts[0] if alerts and alerts[0].get("attempts", 0) >= 2 else None

    pending = wait_until("two refused POSTs recorded in status", failing_again, timeout=120)
    assert pending["delivered"] is False and pending["state"] == "Firing"
    assert pending["lastError"], pending
    assert _time(pending["nextAttempt"]) > _time(pending["startsAt"])
    failed = wait_until(
        "a NotificationFailed event", lambda: _events(cluster, namespace, "NotificationFailed"), timeout=30
    )
    assert len(failed) == 1 and failed[0]["type"] == "Warning", failed  # one, not one per retry

    # what is pending lives in status: a new operator (the old one killed) takes it over
    first.kill()
    operator_process(namespace)
    alertmanager.start()
    mine = {"namespace": namespace, "budget": BUDGET}
    [alert] = wait_until(
        "the retried alert in Alertmanager", lambda: alertmanager.alerts(**mine), timeout=120
    )
    assert alert["labels"]["percent"] == "50"

    def delivered() -> dict[str, Any] | None:
        alerts = _alerts_in_status(cluster, namespace)
        return alerts[0] if alerts and alerts[0].get("delivered") else None

    recorded = wait_until("the alert recorded as delivered", delivered, timeout=30)
    assert recorded["attempts"] >= 3 and recorded.get("lastError", "") == ""
    assert recorded["startsAt"] == pending["startsAt"]  # the same alert, not fired anew
    assert len(_events(cluster, namespace, "NotificationFailed")) == 1
    wait_until(
        "a NotificationDelivered event",
        lambda: _events(cluster, namespace, "NotificationDelivered"),
        timeout=30,
    )
