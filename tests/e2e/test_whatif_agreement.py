"""The what-if is the operator: the same spec and the same load step give the same replica
decisions in `aipolicy simulate` (offline, on its own serving model) and on the local cluster
(the live operator, Prometheus and the fleet simulator).

The spec sizes replicas for an SLO (metric type SLO, the L4/8B profile): the decisions depend
on the request rate and token sizes, which both worlds observe alike as long as neither
saturates, so the offline run uses a fast engine (H100/8B) and the live simulator a replica
that serves ~10 requests/s. 8 requests/s need 8 / 6.4 = 1.25 replicas: one scale-up to 2, and
after the load, one scale-down to 1. Decisions are compared as sequences (from, to, reason);
their times are not asserted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aipolicy.api.inferenceservice import InferenceService
from aipolicy.policy.serving import PROFILES
from aipolicy.whatif.run import OperatorScaler, run
from aipolicy.whatif.traces import Trace
from tests.e2e.cluster import Cluster, Prometheus, Simulator, wait_until
from tests.e2e.conftest import OperatorFactory
from tests.e2e.test_scaling import CAPACITY, _deployment_replicas, _isvc, _status

RATE, SECONDS, PROMPT, OUTPUT = 8.0, 90.0, 200, 60


def _spec() -> dict[str, Any]:
    slo = {"ttftP95": 2, "profile": "L4/8B"}
    return _isvc("agree", minReplicas=1, maxReplicas=4, metric={"type": "SLO"}, slo=slo)


def _offline(namespace: str) -> list[tuple[int, int, str]]:
    body = _spec()
    isvc = InferenceService.model_validate({**body, "metadata": {"name": "agree", "namespace": namespace}})
    n = int(RATE * SECONDS)
    trace = Trace(
        tuple(i / RATE for i in range(n)), (PROMPT,) * n, (OUTPUT,) * n, datetime.now(UTC), "load step"
    )
    engine = PROFILES["H100/8B"]
    scaler = OperatorScaler(isvc, engine, trace.start, initial=1)
    run(
        trace,
        engine,
        scaler,
        initial=1,
        cold_start_median_s=2.0,
        cold_start_cv=0.0,
        first_decision_s=scaler.first_decision(),
        horizon_s=SECONDS + 150.0,
    )
    return [(d.from_replicas, d.to_replicas, d.reason) for d in scaler.status.decisions]


def test_simulate_and_the_live_operator_make_the_same_decisions(
    cluster: Cluster,
    namespace: str,
    simulator: Simulator,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
) -> None:
    offline = _offline(namespace)
    assert offline == [(1, 2, "ScaleUp"), (2, 1, "ScaleDown")], offline

    simulator.configure(namespace, "agree", CAPACITY)
    operator_process(namespace)
    cluster.apply(_spec(), namespace)
    wait_until(
        "one ready replica",
        lambda: _status(cluster, namespace, "agree").get("readyReplicas") == 1,
        timeout=60,
    )
    traffic = {"kind": "constant", "rate": RATE, "duration": SECONDS, "promptTokens": PROMPT,
               "outputTokens": OUTPUT}  # fmt: skip
    simulator.traffic(namespace, "agree", traffic)
    wait_until("the scale-up", lambda: _deployment_replicas(cluster, namespace, "agree") == 2, timeout=150)
    wait_until("the scale-down", lambda: _deployment_replicas(cluster, namespace, "agree") == 1, timeout=240)
    live = [
        (d["from"], d["to"], d["reason"])
        for d in _status(cluster, namespace, "agree")["decisions"]
        if d["from"] > 0  # the creation's 0 -> minReplicas has no offline counterpart
    ]
    assert live == offline
