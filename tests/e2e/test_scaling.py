"""Autoscaling on a real cluster: the simulator's vLLM metrics in Prometheus drive the
operator's decisions; kwok's pods start with a cold start; GPUs are the nodes' real capacity."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.builders import inference_service, ready_after
from tests.e2e.cluster import Cluster, Prometheus, Simulator, wait_until
from tests.e2e.conftest import OperatorFactory

# A replica decodes 16 sequences at 40 tokens/s each: ~10 requests/s of 60 output tokens.
CAPACITY = {
    "capacity": {"prefillTokensPerSecond": 20000, "decodeTokensPerSecond": 3000, "maxConcurrentSequences": 16}
}


def _isvc(
    name: str,
    *,
    gpus: int = 1,
    product: str = "NVIDIA-A100-SXM4-40GB",
    cold_start: str = "2s",
    **scaling: Any,
) -> dict[str, Any]:
    return inference_service(
        name,
        serving={"gpu": {"count": gpus, "product": product}, "podAnnotations": ready_after(cold_start)},
        scaling={
            "evaluationInterval": "2s",
            "scaleDownStabilization": "10s",
            "coldStartSeconds": 2,
            **scaling,
        },
    )


def _status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return (cluster.get("inferenceservice", name, namespace) or {}).get("status") or {}


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def _deployment_replicas(cluster: Cluster, namespace: str, name: str) -> int | None:
    deployment = cluster.get("deployment", name, namespace)
    return None if deployment is None else int(deployment["spec"].get("replicas", 0))


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _traffic(rate: float) -> dict[str, Any]:
    return {"kind": "constant", "rate": rate, "duration": 900, "promptTokens": 200, "outputTokens": 60}


def test_a_burst_scales_up_and_silence_scales_down(
    cluster: Cluster,
    namespace: str,
    simulator: Simulator,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
) -> None:
    simulator.configure(namespace, "chat", CAPACITY)
    operator_process(namespace)
    cluster.apply(
        _isvc("chat", minReplicas=1, maxReplicas=4, metric={"type": "QueueDepth", "target": 5}), namespace
    )
    wait_until(
        "one ready replica", lambda: _status(cluster, namespace, "chat").get("readyReplicas") == 1, timeout=60
    )

    simulator.traffic(namespace, "chat", _traffic(25))
    wait_until("a scale-up", lambda: (_deployment_replicas(cluster, namespace, "chat") or 0) >= 3, timeout=90)
    status = _status(cluster, namespace, "chat")
    ups = [d for d in status["decisions"] if d["to"] > d["from"]]
    assert ups and all(d["reason"] for d in ups)
    events = [e for e in cluster.events(namespace, "chat") if "replicas:" in e["message"]]
    assert any("->" in e["message"] for e in events)

    simulator.stop_traffic(namespace, "chat")
    wait_until(
        "a scale-down to minReplicas",
        lambda: _deployment_replicas(cluster, namespace, "chat") == 1,
        timeout=120,
    )
    assert len(_status(cluster, namespace, "chat")["decisions"]) <= 5


def test_silence_scales_to_zero_after_the_idle_period_and_demand_wakes_it(
    cluster: Cluster, namespace: str, simulator: Simulator, operator_process: OperatorFactory
) -> None:
    simulator.configure(namespace, "nightly", CAPACITY)
    operator_process(namespace)
    started = time.monotonic()
    cluster.apply(
        _isvc(
            "nightly",
            minReplicas=0,
            maxReplicas=2,
            scaleToZeroAfter="15s",
            metric={"type": "QueueDepth", "target": 5},
        ),
        namespace,
    )
    # minReplicas 0 starts at zero; demand at the front door starts one replica
    simulator.traffic(namespace, "nightly", _traffic(2))
    wait_until(
        "scale from zero on demand",
        lambda: (_deployment_replicas(cluster, namespace, "nightly") or 0) >= 1,
        timeout=90,
    )
    wait_until(
        "a ready replica",
        lambda: _status(cluster, namespace, "nightly").get("readyReplicas", 0) >= 1,
        timeout=60,
    )
    reasons = [d["reason"] for d in _status(cluster, namespace, "nightly")["decisions"]]
    assert "ScaleFromZero" in reasons, reasons

    simulator.stop_traffic(namespace, "nightly")
    quiet = time.monotonic()
    wait_until("scale to zero", lambda: _deployment_replicas(cluster, namespace, "nightly") == 0, timeout=120)
    assert time.monotonic() - quiet >= 15, "scaled to zero before the idle period"
    status = _status(cluster, namespace, "nightly")
    assert status["decisions"][-1]["to"] == 0
    assert _condition(status, "Ready")["reason"] == "ScaledToZero"
    assert time.monotonic() - started < 300


def test_a_prewarm_schedule_starts_replicas_cold_start_seconds_before_its_window(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    operator_process(namespace)
    # A window opening at the start of a minute 2 to 3 minutes from now, in Paris time; with a
    # cold start of 100 s, replicas must appear 100 s before it opens, not earlier.
    now = datetime.now(UTC)
    opens = (now + timedelta(minutes=3)).replace(second=0, microsecond=0)
    if (opens - now).total_seconds() < 150:
        opens += timedelta(minutes=1)
    paris = opens.astimezone(ZoneInfo("Europe/Paris"))
    schedule = f"{paris.minute} {paris.hour} * * *"
    spec = _isvc("morning", minReplicas=0, maxReplicas=3, scaleToZeroAfter="1h")
    spec["spec"]["scaling"]["coldStartSeconds"] = 100
    spec["spec"]["scaling"]["prewarm"] = [
        {
            "name": "daily",
            "schedule": schedule,
            "timeZone": "Europe/Paris",
            "duration": "10m",
            "minReplicas": 2,
        }
    ]
    cluster.apply(spec, namespace)
    prewarm_at = opens - timedelta(seconds=100)
    wait_until(
        "the service evaluated",
        lambda: (
            _status(cluster, namespace, "morning").get("decisions") is not None
            or _condition(_status(cluster, namespace, "morning"), "ScalingActive")
        ),
        timeout=30,
    )
    while datetime.now(UTC) < prewarm_at - timedelta(seconds=5):
        assert (_deployment_replicas(cluster, namespace, "morning") or 0) == 0, "pre-warmed too early"
        time.sleep(2)
    wait_until(
        "pre-warmed replicas", lambda: _deployment_replicas(cluster, namespace, "morning") == 2, timeout=30
    )
    assert datetime.now(UTC) < opens, "pre-warm came after the window opened"
    # the Deployment is scaled before the status is written: wait for the status to say why
    wait_until(
        "status naming the pre-warm",
        lambda: _status(cluster, namespace, "morning").get("activePrewarm") == "daily",
        timeout=30,
    )
    wait_until(
        "ready before the window opens",
        lambda: _status(cluster, namespace, "morning").get("readyReplicas") == 2,
        timeout=30,
    )
    assert datetime.now(UTC) < opens


def test_gpu_exhaustion_sets_capacity_unavailable_and_stops_the_climb(
    cluster: Cluster, namespace: str, simulator: Simulator, operator_process: OperatorFactory
) -> None:
    simulator.configure(namespace, "big", CAPACITY)
    operator_process(namespace)
    # 3 GPUs per replica on the 4-GPU L4 node: one replica fits, a second cannot
    cluster.apply(
        _isvc(
            "big",
            gpus=3,
            product="NVIDIA-L4",
            minReplicas=1,
            maxReplicas=4,
            maxScaleUpStep=1,
            metric={"type": "QueueDepth", "target": 2},
        ),
        namespace,
    )
    wait_until(
        "one ready replica", lambda: _status(cluster, namespace, "big").get("readyReplicas") == 1, timeout=60
    )
    simulator.traffic(namespace, "big", _traffic(40))

    def capacity_false() -> dict[str, Any] | None:
        condition = _condition(_status(cluster, namespace, "big"), "CapacityAvailable")
        return condition if condition.get("status") == "False" else None

    condition = wait_until("CapacityAvailable=False", capacity_false, timeout=90)
    assert condition["reason"] == "InsufficientGPU"
    assert "cannot be scheduled" in condition["message"]
    # the load wants 4 replicas; the climb stops at the one that fits plus the one pending
    for _ in range(10):
        assert (_deployment_replicas(cluster, namespace, "big") or 0) <= 2
        time.sleep(1.5)
    assert any(
        e["reason"] == "InsufficientGPU" and e["type"] == "Warning" for e in cluster.events(namespace, "big")
    )
    simulator.stop_traffic(namespace, "big")


def test_pausing_autoscaling_with_an_annotation(
    cluster: Cluster, namespace: str, simulator: Simulator, operator_process: OperatorFactory
) -> None:
    simulator.configure(namespace, "held", CAPACITY)
    operator_process(namespace)
    cluster.apply(
        _isvc("held", minReplicas=1, maxReplicas=4, metric={"type": "QueueDepth", "target": 5}), namespace
    )
    wait_until(
        "one ready replica", lambda: _status(cluster, namespace, "held").get("readyReplicas") == 1, timeout=60
    )
    cluster.kubectl(
        "-n", namespace, "annotate", "inferenceservice", "held", "aipolicy.dev/autoscaling-paused=true"
    )
    simulator.traffic(namespace, "held", _traffic(25))
    wait_until(
        "ScalingActive=False Paused",
        lambda: _condition(_status(cluster, namespace, "held"), "ScalingActive").get("reason") == "Paused",
        timeout=30,
    )
    for _ in range(10):
        assert _deployment_replicas(cluster, namespace, "held") == 1
        time.sleep(1.5)
    cluster.kubectl(
        "-n", namespace, "annotate", "inferenceservice", "held", "aipolicy.dev/autoscaling-paused-"
    )
    wait_until(
        "scaling resumes", lambda: (_deployment_replicas(cluster, namespace, "held") or 0) > 1, timeout=60
    )
    simulator.stop_traffic(namespace, "held")


def test_restarting_the_operator_mid_scale_up_loses_nothing_and_repeats_nothing(
    cluster: Cluster,
    namespace: str,
    simulator: Simulator,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
) -> None:
    simulator.configure(namespace, "steady", CAPACITY)
    first = operator_process(namespace)
    # Slow cold starts: the kill lands while new replicas are still starting. Requests in flight
    # on the one ready replica saturate at its 16 slots and stay there until the new replicas
    # are Ready: a steady signal, so any further step during the cold start is a cascade.
    # (Waiting requests would not do: a backlog that grows while replicas start is more load,
    # and the policy follows it by design.)
    steady = _isvc(
        "steady",
        cold_start="45s",
        minReplicas=1,
        maxReplicas=6,
        maxScaleUpStep=4,
        metric={"type": "RequestsInFlight", "target": 5},
    )
    cluster.apply(steady, namespace)
    wait_until(
        "one ready replica",
        lambda: _status(cluster, namespace, "steady").get("readyReplicas") == 1,
        timeout=60,
    )
    # paused until the load is in Prometheus whole, so the first decision sees all of it
    cluster.kubectl(
        "-n", namespace, "annotate", "inferenceservice", "steady", "aipolicy.dev/autoscaling-paused=true"
    )
    wait_until(
        "ScalingActive=False Paused",
        lambda: _condition(_status(cluster, namespace, "steady"), "ScalingActive").get("reason") == "Paused",
        timeout=30,
    )
    simulator.traffic(namespace, "steady", _traffic(30))
    running = f'sum(vllm:num_requests_running{{namespace="{namespace}",service="steady"}})'
    wait_until("the ready replica saturated", lambda: prometheus.value(running) == 16, timeout=60)
    loaded_at = datetime.now(UTC)
    cluster.kubectl(
        "-n", namespace, "annotate", "inferenceservice", "steady", "aipolicy.dev/autoscaling-paused-"
    )

    def scale_up_recorded() -> bool:
        # The Deployment is patched during the pass and the decision lands in status when the
        # pass ends: wait for both, so the kill comes after a recorded scale-up.
        decisions = _status(cluster, namespace, "steady").get("decisions") or []
        recorded = any(d["to"] > d["from"] and _time(d["time"]) >= loaded_at for d in decisions)
        return recorded and (_deployment_replicas(cluster, namespace, "steady") or 0) >= 3

    wait_until("a scale-up under way and recorded", scale_up_recorded, timeout=90)
    before = _status(cluster, namespace, "steady")
    first_up = next(d for d in before["decisions"] if d["to"] > d["from"] and _time(d["time"]) >= loaded_at)
    # the first scale-up's replicas are starting until this (kwok's ready-delay, from the decision)
    warm_at = _time(first_up["time"]) + timedelta(seconds=45)
    first.kill()

    restarted_at = datetime.now(UTC)
    operator_process(namespace)
    # Watch the rest of the cold start, and make sure the restarted operator decided in it
    # (each evaluation records its recommendation in status): otherwise nothing was tested.
    seen: list[int | None] = []
    evaluated = False
    while datetime.now(UTC) < warm_at:
        seen.append(_deployment_replicas(cluster, namespace, "steady"))
        recommendations = _status(cluster, namespace, "steady").get("recommendations") or []
        evaluated = evaluated or any(_time(r["time"]) > restarted_at for r in recommendations)
        time.sleep(0.5)
    assert evaluated, "the restarted operator made no decision during the cold start"
    after = _status(cluster, namespace, "steady")
    # the history survived the restart: every earlier decision still in the window is kept
    kept = [d for d in before["decisions"] if d["time"] >= after["decisions"][0]["time"]]
    assert kept == [d for d in after["decisions"] if d["time"] <= before["decisions"][-1]["time"]]
    assert (_deployment_replicas(cluster, namespace, "steady") or 0) >= 3
    ups = [(d["from"], d["to"]) for d in after["decisions"] if d["to"] > d["from"]]
    assert len(ups) == len(set(ups)), f"a scale-up was repeated: {ups}"
    # No cascade: while the first scale-up's replicas were starting, the new ones count as
    # capacity on its way, so replicas stay at that count (before the kill and after the
    # restart); only once they are Ready may load ask for more.
    during = [d for d in after["decisions"] if _time(first_up["time"]) <= _time(d["time"]) < warm_at]
    assert during and all(d["to"] == first_up["to"] for d in during), (first_up, after["decisions"])
    assert seen and all(replicas == first_up["to"] for replicas in seen), (first_up, seen)
    simulator.stop_traffic(namespace, "steady")


@pytest.mark.usefixtures("crds_installed")
def test_stopping_prometheus_sets_metrics_unavailable_and_holds(
    cluster: Cluster, namespace: str, simulator: Simulator, operator_process: OperatorFactory
) -> None:
    if cluster.run_dir is None:
        pytest.skip("needs the local cluster, whose Prometheus this test stops and starts")
    simulator.configure(namespace, "held", CAPACITY)
    operator_process(namespace)
    cluster.apply(
        _isvc("held", minReplicas=1, maxReplicas=4, metric={"type": "QueueDepth", "target": 5}), namespace
    )
    simulator.traffic(namespace, "held", _traffic(25))
    wait_until("a scale-up", lambda: (_deployment_replicas(cluster, namespace, "held") or 0) >= 2, timeout=90)
    cluster.cluster_script("prometheus-stop")
    try:

        def unavailable() -> dict[str, Any] | None:
            condition = _condition(_status(cluster, namespace, "held"), "MetricsAvailable")
            return condition if condition.get("status") == "False" else None

        condition = wait_until("MetricsAvailable=False", unavailable, timeout=60)
        assert condition["reason"] == "MetricsQueryError", condition
        assert "Hold" in condition["message"]
        held = _deployment_replicas(cluster, namespace, "held")
        simulator.stop_traffic(namespace, "held")  # without metrics, nothing may react to this
        for _ in range(8):
            assert _deployment_replicas(cluster, namespace, "held") == held
            time.sleep(1.5)
    finally:
        cluster.cluster_script("prometheus-start")
    wait_until(
        "MetricsAvailable=True again",
        lambda: _condition(_status(cluster, namespace, "held"), "MetricsAvailable").get("status") == "True",
        timeout=90,
    )
