"""scaling.metric.type SLO on a real cluster: the live operator sizes replicas from the request
rate and token sizes it reads from Prometheus, through the same decide_replicas and policy.slo
that `aipolicy simulate` runs, and keeps the forecast's memory in status.slo."""

from __future__ import annotations

from typing import Any

from tests.e2e.cluster import Cluster, Prometheus, Simulator, wait_until
from tests.e2e.conftest import OperatorFactory
from tests.e2e.test_scaling import CAPACITY, _deployment_replicas, _isvc, _status, _traffic


def _scaling_active(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == "ScalingActive"), {})


def test_slo_sizing_scales_up_under_load_and_back_down(
    cluster: Cluster,
    namespace: str,
    simulator: Simulator,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
) -> None:
    simulator.configure(namespace, "sized", CAPACITY)
    operator_process(namespace)
    # the L4 profile sustains a few requests/s at this SLO: 25 requests/s need more than one
    slo = {"ttftP95": 2, "profile": "L4/8B", "forecast": {"period": "24h"}}
    cluster.apply(_isvc("sized", minReplicas=1, maxReplicas=4, metric={"type": "SLO"}, slo=slo), namespace)
    wait_until(
        "one ready replica",
        lambda: _status(cluster, namespace, "sized").get("readyReplicas") == 1,
        timeout=60,
    )

    simulator.traffic(namespace, "sized", _traffic(25))
    wait_until(
        "a scale-up", lambda: (_deployment_replicas(cluster, namespace, "sized") or 0) >= 2, timeout=120
    )
    status = _status(cluster, namespace, "sized")
    ups = [d for d in status["decisions"] if d["reason"] == "ScaleUp"]
    assert ups, status["decisions"]
    assert "req/s per replica at p95 TTFT 2s on L4/8B" in ups[-1]["message"]
    assert status["slo"]["seasonal"], "the forecast's memory is kept in status"

    simulator.stop_traffic(namespace, "sized")
    wait_until(
        "a scale-down to minReplicas",
        lambda: _deployment_replicas(cluster, namespace, "sized") == 1,
        timeout=180,
    )
