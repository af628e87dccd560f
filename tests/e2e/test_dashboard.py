"""The shipped rules and dashboard against a real Prometheus after a demo-like run: the
recording and alerting rules load and evaluate without error, and every query of every
dashboard panel returns data (self-hosted traffic, an idle GPU service, a budget, the operator
scraped), but for the two series this run cannot have (NOT_IN_THIS_RUN)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.builders import aibudget, steady_gpu_service
from tests.e2e.cluster import REPO, Cluster, Prometheus, Simulator, free_port, wait_until
from tests.e2e.conftest import OperatorFactory

MONITORING = REPO / "manifests" / "monitoring"


def _budget() -> dict[str, Any]:
    return aibudget(
        "team",
        {
            "selector": {"matchLabels": {"team": "dash"}},
            "limit": "1000",
            "period": {"type": "Daily", "timeZone": "UTC"},
            "evaluationInterval": "5s",
            "forecast": {"window": "1m"},
        },
    )


def _api(prometheus: Prometheus, path: str) -> Any:
    with urllib.request.urlopen(f"{prometheus.url}{path}", timeout=10) as response:
        return json.load(response)["data"]


@pytest.fixture
def rules_loaded(cluster: Cluster, prometheus: Prometheus) -> Any:
    if cluster.run_dir is None:
        pytest.fail("loading rules needs the local cluster's Prometheus (hack/cluster.sh)")
    spec = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())["spec"]
    rules = Path(cluster.run_dir) / "prometheus" / "rules" / "aipolicy.yaml"
    rules.write_text(yaml.safe_dump(spec))
    cluster.cluster_script("prometheus-reload")
    wait_until("the rules loaded", lambda: _api(prometheus, "/api/v1/rules")["groups"], timeout=30)
    yield
    rules.unlink()
    cluster.cluster_script("prometheus-reload")


def test_every_rule_evaluates_and_every_panel_shows_data(
    cluster: Cluster,
    namespace: str,
    simulator: Simulator,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
    rules_loaded: None,
) -> None:
    port = free_port()
    operator_process(namespace, metrics_port=port)
    assert cluster.targets_dir is not None
    target = cluster.targets_dir / f"operator-{namespace}.json"
    target.write_text(
        json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"job": "aipolicy-operator"}}])
    )
    try:
        for name in ("busy", "idle"):
            cluster.apply(steady_gpu_service(name, labels={"team": "dash"}), namespace)
        cluster.apply(_budget(), namespace)
        wait_until(
            "both services' pods Ready",
            lambda: all(
                ((cluster.get("inferenceservice", n, namespace) or {}).get("status") or {}).get(
                    "readyReplicas"
                )
                for n in ("busy", "idle")
            ),
            timeout=90,
        )
        simulator.traffic(
            namespace,
            "busy",
            {"kind": "constant", "rate": 3, "duration": 300, "promptTokens": 200, "outputTokens": 60},
        )
        dashboard = json.loads((MONITORING / "dashboard.json").read_text())

        missing: list[str] = []

        def all_panels_have_data() -> bool:
            missing[:] = [
                f"{panel['title']}: {target['legendFormat']}"
                for panel in dashboard["panels"]
                for target in panel["targets"]
                if (panel["title"], target["legendFormat"]) not in NOT_IN_THIS_RUN
                and not prometheus.query(_concrete(target["expr"], namespace))
            ]
            return not missing

        try:
            wait_until("every dashboard panel with data", all_panels_have_data, timeout=240, interval=5)
        except AssertionError as error:
            raise AssertionError(f"panels without data: {missing}") from error
        idle = prometheus.value(f'aipolicy:service_idle_gpus:sum{{namespace="{namespace}",service="idle"}}')
        assert idle == 1
        busy = prometheus.query(f'aipolicy:service_idle_gpus:sum{{namespace="{namespace}",service="busy"}}')
        assert busy == [], "a service under load has no idle GPUs"
        groups = _api(prometheus, "/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
        assert sum(1 for rule in rules if rule["type"] == "alerting") == 6
    finally:
        simulator.stop_traffic(namespace, "busy")
        target.unlink(missing_ok=True)


# Series this run cannot have: no FallbackPolicy switches and no gateway serves here (the
# gateway's and the fallback's own e2e tests make them).
NOT_IN_THIS_RUN = {
    ("Mode and fallback timeline", "fallback {{policy}}"),
    ("Error rate by model", "{{service}} (gateway 5xx)"),
}


def _concrete(expr: str, namespace: str) -> str:
    """A panel's query with Grafana's variables as the dashboard would fill them for this test."""
    return expr.replace("$__rate_interval", "1m").replace("$namespace", namespace)
