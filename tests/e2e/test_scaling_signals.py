"""What scaling reads, and what it does with it, on a real cluster: metrics presets (the
simulator exports vLLM's names), cold starts measured from kwok's pods, and DryRun scaling."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.cluster import Cluster, Simulator, wait_until
from tests.e2e.conftest import OperatorFactory
from tests.e2e.test_scaling import CAPACITY, _condition, _deployment_replicas, _isvc, _status, _traffic


def _with_preset(spec: dict[str, Any], preset: str) -> dict[str, Any]:
    spec["spec"]["metrics"] = {"preset": preset}
    return spec


def test_a_preset_whose_metric_is_absent_sets_metrics_available_false_naming_it(
    cluster: Cluster, namespace: str, simulator: Simulator, operator_process: OperatorFactory
) -> None:
    # The simulator exports current vLLM's names: vllm:kv_cache_usage_perc, never the old
    # vllm:gpu_cache_usage_perc, and no sglang:* series at all.
    for name in ("new", "legacy", "sglang"):
        simulator.configure(namespace, name, CAPACITY)
    operator_process(namespace)
    kv = {"type": "KVCacheUsage", "target": 0.8}
    cluster.apply(
        [
            _with_preset(_isvc("new", minReplicas=1, maxReplicas=3, metric=kv), "vllm"),
            _with_preset(_isvc("legacy", minReplicas=1, maxReplicas=3, metric=kv), "vllm-legacy"),
            _with_preset(
                _isvc("sglang", minReplicas=1, maxReplicas=3, metric={"type": "QueueDepth", "target": 5}),
                "sglang",
            ),
        ],
        namespace,
    )

    def metrics_condition(name: str, status: str) -> dict[str, Any] | None:
        condition = _condition(_status(cluster, namespace, name), "MetricsAvailable")
        return condition if condition.get("status") == status else None

    legacy = wait_until("legacy: MetricsAvailable=False", lambda: metrics_condition("legacy", "False"), 120)
    assert legacy["reason"] == "MetricsAbsent", legacy
    assert "vllm:gpu_cache_usage_perc" in legacy["message"], legacy
    sglang = wait_until("sglang: MetricsAvailable=False", lambda: metrics_condition("sglang", "False"), 120)
    assert sglang["reason"] == "MetricsAbsent", sglang
    assert "sglang:num_queue_reqs" in sglang["message"], sglang
    # the same metric under the name the server does export is found
    new = wait_until("new: MetricsAvailable=True", lambda: metrics_condition("new", "True"), 60)
    assert "KVCacheUsage" in new["message"], new
    assert any(
        e["reason"] == "MetricsAbsent" and e["type"] == "Warning" for e in cluster.events(namespace, "legacy")
    )
    # an absent metric is not zero load: the default Hold keeps the replica
    assert _deployment_replicas(cluster, namespace, "sglang") == 1


def test_measured_cold_starts_set_the_prewarm_lead_time(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    operator_process(namespace)
    # kwok makes the pods Ready 6 s after they start; the spec says nothing of cold starts, so
    # before any measurement the lead time would be the default 120 s
    spec = _isvc("warm", cold_start="6s", minReplicas=2, maxReplicas=4)
    del spec["spec"]["scaling"]["coldStartSeconds"]
    cluster.apply(spec, namespace)

    def measured() -> dict[str, Any] | None:
        status = _status(cluster, namespace, "warm")
        return status if len(status.get("coldStarts") or []) >= 2 else None

    status = wait_until("two cold starts measured", measured, timeout=90)
    assert status["coldStartSource"] == "Measured", status
    assert all(6 <= s["seconds"] < 30 for s in status["coldStarts"]), status["coldStarts"]
    lead = status["coldStartSeconds"]
    assert 6 <= lead < 30, status

    # A window opening at a minute boundary at least 40 s away, needing 4 replicas: with the
    # measured lead the replicas start about `lead` seconds before it, not 120 s.
    now = datetime.now(UTC)
    opens = (now + timedelta(seconds=40)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    spec["spec"]["scaling"]["prewarm"] = [
        {
            "name": "burst",
            "schedule": f"{opens.minute} {opens.hour} * * *",
            "duration": "10m",
            "minReplicas": 4,
        }
    ]
    cluster.apply(spec, namespace)
    while datetime.now(UTC) < opens - timedelta(seconds=lead + 10):
        assert _deployment_replicas(cluster, namespace, "warm") == 2, "pre-warmed before the measured lead"
        time.sleep(2)
    wait_until(
        "pre-warmed replicas", lambda: _deployment_replicas(cluster, namespace, "warm") == 4, timeout=60
    )
    assert datetime.now(UTC) < opens, "pre-warm came after the window opened"
    status = _status(cluster, namespace, "warm")
    assert status["activePrewarm"] == "burst"
    assert status["decisions"][-1]["reason"] == "Prewarm", status["decisions"]


def test_dry_run_scaling_decides_and_reports_but_never_changes_the_replicas(
    cluster: Cluster, namespace: str, simulator: Simulator, operator_process: OperatorFactory
) -> None:
    simulator.configure(namespace, "advice", CAPACITY)
    operator_process(namespace)
    cluster.apply(
        _isvc(
            "advice",
            minReplicas=1,
            maxReplicas=4,
            enforcement="DryRun",
            metric={"type": "QueueDepth", "target": 5},
        ),
        namespace,
    )
    wait_until(
        "one ready replica",
        lambda: _status(cluster, namespace, "advice").get("readyReplicas") == 1,
        timeout=60,
    )
    simulator.traffic(namespace, "advice", _traffic(25))

    def advised() -> dict[str, Any] | None:
        status = _status(cluster, namespace, "advice")
        return status if status.get("desiredReplicas", 0) >= 2 else None

    status = wait_until("a scale-up decided", advised, timeout=90)
    assert _deployment_replicas(cluster, namespace, "advice") == 1
    assert status["decisions"][-1]["to"] == status["desiredReplicas"], status["decisions"]
    events = [e for e in cluster.events(namespace, "advice") if "would scale" in e["message"]]
    assert events, cluster.events(namespace, "advice")
    for _ in range(10):
        assert _deployment_replicas(cluster, namespace, "advice") == 1
        time.sleep(1.5)
    # one event per decided change, not one per evaluation
    again = [e for e in cluster.events(namespace, "advice") if "would scale" in e["message"]]
    assert sum(e.get("count", 1) for e in again) <= len(_status(cluster, namespace, "advice")["decisions"])
    assert _condition(_status(cluster, namespace, "advice"), "ScalingActive")["message"].startswith("DryRun")
    simulator.stop_traffic(namespace, "advice")


@pytest.mark.usefixtures("crds_installed")
def test_a_preset_without_the_metric_asked_for_is_refused_at_apply_time(
    cluster: Cluster, namespace: str
) -> None:
    spec = _with_preset(_isvc("tgi", metric={"type": "KVCacheUsage", "target": 0.8}), "tgi")
    result = cluster.apply(spec, namespace, check=False)
    assert result.returncode != 0
    assert "KVCacheUsage needs a KV cache metric, and metrics.preset tgi has none" in result.stderr
    # the same metric on a server that has it is accepted
    assert cluster.apply(_with_preset(spec, "sglang"), namespace, check=False).returncode == 0
