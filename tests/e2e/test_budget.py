"""AIBudget end to end: a real apiserver, a real Prometheus, the simulator, the operator as a process.

Spend comes from the two places a real cluster has it: GPU requests of running pods as
kube-state-metrics exports them (self-hosted, GPU-hours x gpuHour) and a LiteLLM-style gateway's
token counters (API-backed, tokens x price per million). Every spend the operator writes is
checked against PromQL this file computes itself over [periodStart, lastEvaluated].

Budgets here are Daily in a time zone whose midnight is about twelve hours away, so no run ever
straddles a period boundary (a Monthly budget would reset under a test run at the month's end).
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from aipolicy.sim.model import ServiceId
from aipolicy.sim.targets import service_target_groups, write_json_atomic
from tests.e2e.builders import condition_of as _condition
from tests.e2e.builders import status_of as _status
from tests.e2e.cluster import Cluster, Prometheus, Simulator, wait_until
from tests.e2e.conftest import OperatorFactory

GROUP_VERSION = "aipolicy.dev/v1alpha1"
LABELS = {"team": "a"}
THRESHOLD_REASONS = ("ThresholdNotify", "ThresholdDegrade", "ThresholdSuspend")
INPUT_PER_MILLION = Decimal("0.15")
OUTPUT_PER_MILLION = Decimal("0.60")
# The Azure trace replayed 20x faster lasts 3 minutes and spends about $0.032/s at these prices.
TRACE_TRAFFIC = {"kind": "trace", "speedup": 20, "scale": 1}
TOLERANCE = Decimal("0.01")


# ---- manifests -------------------------------------------------------------------------------


def _daily_zone() -> str:
    """An Etc/GMT zone where it is about noon now: its midnight is hours away either side."""
    offset = (12 - datetime.now(UTC).hour + 12) % 24 - 12  # hours east of UTC, in [-12, 11]
    # POSIX-style names: Etc/GMT+7 is UTC-7
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def _budget(
    name: str,
    limit: str,
    thresholds: list[tuple[int, str]],
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "AIBudget",
        "metadata": {"name": name},
        "spec": {
            "limit": limit,
            "currency": "USD",
            "period": {"type": "Daily", "timeZone": _daily_zone()},
            "selector": {"matchLabels": dict(LABELS)},
            "thresholds": [{"percent": p, "action": a} for p, a in thresholds],
            "evaluationInterval": "5s",
            "onMetricsUnavailable": "HoldLastKnown",
            **spec,
        },
    }


LADDER = [(50, "Notify"), (80, "Degrade"), (100, "Suspend")]


def _gpu_service(name: str, gpu_hour: str, replicas: int, degraded_replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name, "labels": dict(LABELS)},
        "spec": {
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "serving": {
                "image": "vllm/vllm-openai:v0.6.3",
                "gpu": {"count": 1},
                "resources": {"cpu": "1", "memory": "1Gi"},
            },
            "pricing": {"gpuHour": gpu_hour},
            # a short scaling interval so that a budget's cap reaches the Deployment quickly
            "scaling": {
                "minReplicas": replicas,
                "maxReplicas": replicas,
                "evaluationInterval": "2s",
                "coldStartSeconds": 3,
            },
            "degraded": {"maxReplicas": degraded_replicas},
        },
    }


def _api_service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name, "labels": dict(LABELS)},
        "spec": {
            "model": "gpt-4o-mini",
            "provider": {"url": "https://api.openai.com/v1"},
            "pricing": {
                "inputPerMillionTokens": str(INPUT_PER_MILLION),
                "outputPerMillionTokens": str(OUTPUT_PER_MILLION),
            },
        },
    }


# ---- reading the cluster and Prometheus --------------------------------------------------------


def _threshold_events(cluster: Cluster, namespace: str, budget: str) -> list[str]:
    """Threshold* event reasons of a budget, in the order they were created."""
    events = [
        e
        for e in cluster.events(namespace, budget)
        if e["involvedObject"].get("kind") == "AIBudget" and e["reason"] in THRESHOLD_REASONS
    ]
    # every kopf event is a new object (count 1); etcd's revision orders their creation
    assert all(e.get("count", 1) == 1 for e in events), events
    return [e["reason"] for e in sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"]))]


def _timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _query_at(prometheus: Prometheus, promql: str, at: datetime) -> float:
    """The value of an instant query at `at`; no series counts as 0 (nothing was counted)."""
    qs = urllib.parse.urlencode({"query": promql, "time": f"{at.timestamp():.3f}"})
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/query?{qs}", timeout=30) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    result = body["data"]["result"]
    assert len(result) <= 1, f"{promql} returned {len(result)} series"
    return float(result[0]["value"][1]) if result else 0.0


def _range(status: dict[str, Any], open_left: bool = False) -> tuple[datetime, str]:
    """lastEvaluated and the PromQL range from periodStart to it (1 ms short when open_left:
    Prometheus 2 ranges include their left end, where a subquery step may sit)."""
    start, end = _timestamp(status["periodStart"]), _timestamp(status["lastEvaluated"])
    return end, f"{round((end - start).total_seconds() * 1000) - int(open_left)}ms"


def _token_spend(prometheus: Prometheus, namespace: str, status: dict[str, Any]) -> Decimal:
    """Gateway tokens x price over [periodStart, lastEvaluated]: what the counters read at
    lastEvaluated minus what they read at periodStart, summed over the namespace's series.

    Raw counter values, no extrapolation: the exact tokens Prometheus saw. (A single
    increase() over the range would extrapolate its right end by up to a scrape interval at
    the range's average rate: some percent off on a counter only a minute or two old.)
    """
    start, end = _timestamp(status["periodStart"]), _timestamp(status["lastEvaluated"])
    _, window = _range(status)
    spend = Decimal(0)
    for metric, price in (
        ("litellm_input_tokens_metric_total", INPUT_PER_MILLION),
        ("litellm_output_tokens_metric_total", OUTPUT_PER_MILLION),
    ):
        counted = f'sum(last_over_time({metric}{{namespace="{namespace}"}}[{window}]))'
        tokens = _query_at(prometheus, counted, end) - _query_at(prometheus, counted, start)
        spend += Decimal(repr(tokens)) * price / Decimal(1_000_000)
    return spend


def _gpu_spend(prometheus: Prometheus, namespace: str, status: dict[str, Any], gpu_hour: str) -> Decimal:
    """GPUs requested by the namespace's Running pods, sampled every 5 s (the grid the operator
    integrates on), times the step in hours and the price, over [periodStart, lastEvaluated]."""
    end, window = _range(status, open_left=True)
    held = (
        f'sum(kube_pod_container_resource_requests{{namespace="{namespace}",resource="nvidia_com_gpu"}}'
        f' * on (namespace, pod) group_left() (kube_pod_status_phase{{namespace="{namespace}",'
        'phase="Running"} == 1))'
    )
    samples = _query_at(prometheus, f"sum_over_time(({held})[{window}:5s])", end)
    return Decimal(repr(samples)) * 5 / 3600 * Decimal(gpu_hour)


def _assert_close(actual: str, expected: Decimal, what: str) -> None:
    spent = Decimal(actual)
    assert expected > 0, f"{what}: nothing to compare (PromQL says 0)"
    error = abs(spent - expected) / expected
    assert error <= TOLERANCE, f"{what}: status {spent} vs PromQL {expected:.6f} ({error:.2%} apart)"


def _wait_status(
    cluster: Cluster,
    namespace: str,
    name: str,
    what: str,
    accept: Any,
    timeout: float = 120,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = _status(cluster, "aibudget", name, namespace)
        return status if status and accept(status) else None

    result: dict[str, Any] = wait_until(what, probe, timeout=timeout)
    return result


def _settled(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """A status whose lastEvaluated moved on after now: counters scraped before it are in."""
    before = _status(cluster, "aibudget", name, namespace).get("lastEvaluated", "")
    return _wait_status(
        cluster,
        namespace,
        name,
        "a fresh evaluation",
        lambda s: (
            s.get("lastEvaluated", "") > before and _condition(s, "MetricsAvailable").get("status") == "True"
        ),
        timeout=30,
    )


def _api_backend(
    simulator: Simulator, prometheus: Prometheus, pin: GatewayPin, namespace: str, name: str
) -> None:
    """Declare an API-backed service to the simulator's gateway, with no traffic yet, and wait
    until Prometheus has its counters at 0: spend then starts from a known zero."""
    pin(namespace, name)
    simulator.configure(
        namespace,
        name,
        {
            "backend": "api",
            "modelName": "gpt-4o-mini",
            "apiCapacity": {"baseLatencySeconds": 0.2, "outputTokensPerSecond": 400},
        },
    )
    series = f'litellm_input_tokens_metric_total{{namespace="{namespace}",service="{name}"}}'
    wait_until(f"the gateway counters of {namespace}/{name} in Prometheus", lambda: prometheus.query(series))
    assert prometheus.value(series) == 0


@dataclass
class Snapshot:
    action: str
    state: str
    spent: str
    mode: str
    replicas: int | None


def _snapshot(cluster: Cluster, namespace: str, budget: str, service: str) -> Snapshot:
    status = _status(cluster, "aibudget", budget, namespace)
    isvc = _status(cluster, "inferenceservice", service, namespace)
    deployment = cluster.get("deployment", service, namespace)
    return Snapshot(
        action=status.get("activeAction", ""),
        state=status.get("state", ""),
        spent=status.get("spent", "0"),
        mode=isvc.get("mode", ""),
        replicas=None if deployment is None else int(deployment["spec"].get("replicas", 0)),
    )


def _watch_until(
    cluster: Cluster, namespace: str, budget: str, service: str, done: Any, timeout: float
) -> list[Snapshot]:
    """Snapshots every half second until `done(snapshot)`: the whole path, not just the end."""
    seen: list[Snapshot] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(_snapshot(cluster, namespace, budget, service))
        if done(seen[-1]):
            return seen
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s; last snapshots: {seen[-5:]}")


def _runs(values: list[str]) -> list[str]:
    """Consecutive duplicates collapsed: the order of the states a thing went through."""
    out: list[str] = []
    for value in values:
        if not out or out[-1] != value:
            out.append(value)
    return out


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _crds(crds_installed: None) -> None:
    """Every test here needs the CRDs."""


@pytest.fixture
def other_namespace(cluster: Cluster) -> Iterator[str]:
    name = f"budget-other-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    wait_until(
        "the namespace's default ServiceAccount",
        lambda: cluster.kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0,
        timeout=30,
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


GatewayPin = Callable[[str, str], None]


@pytest.fixture
def gateway_pin(cluster: Cluster, simulator: Simulator) -> Iterator[GatewayPin]:
    """Keep a gateway's scrape target in a file_sd file of the test's own.

    Every simulator writes the same two file names in the targets folder; on a cluster shared
    by several test sessions they overwrite each other, and a target missing for seconds is a
    hole in the counters (a budget test would see spend arrive in lumps). The simulator's own
    entry, when present, is the same target, which Prometheus scrapes once.
    """
    targets = cluster.targets_dir
    if targets is None:
        pytest.fail("pinning a scrape target needs the local cluster's Prometheus targets folder")
    address = simulator.url.removeprefix("http://")
    files: list[Path] = []

    def pin(namespace: str, service: str) -> None:
        path = targets / f"e2e-budget-{namespace}-{service}.json"
        write_json_atomic(path, service_target_groups(address, [ServiceId(namespace, service)]))
        files.append(path)

    yield pin
    for path in files:
        path.unlink(missing_ok=True)


@dataclass
class Webhook:
    url: str
    received: list[dict[str, Any]]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """An Alertmanager-style receiver on 127.0.0.1 that keeps every JSON body it is POSTed."""
    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: Any) -> None:  # keep pytest's output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Webhook(f"http://127.0.0.1:{server.server_address[1]}/alerts", received)
    finally:
        server.shutdown()
        server.server_close()


# ---- tests -------------------------------------------------------------------------------------


def test_gpu_hours_take_notify_degrade_suspend_in_order(
    cluster: Cluster, namespace: str, prometheus: Prometheus, operator_process: OperatorFactory
) -> None:
    """Two GPUs at $36/h spend $0.02/s: 50 % of $1.20 after ~30 s, 80 % after ~48 s; degraded to
    one GPU, 100 % about 24 s later; suspended, nothing more."""
    operator_process(namespace)
    cluster.apply(_gpu_service("llama", "36", replicas=2, degraded_replicas=1), namespace)
    cluster.apply(_budget("gpus", "1.2", LADDER), namespace)

    seen = _watch_until(
        cluster, namespace, "gpus", "llama", lambda s: s.mode == "Suspended" and s.replicas == 0, timeout=180
    )
    assert _runs([s.action for s in seen if s.action]) == ["Notify", "Degrade", "Suspend"]
    assert _runs([s.state for s in seen if s.state not in ("", "Unknown")]) == [
        "Ok",
        "Warning",
        "Degraded",
        "Exceeded",
    ]
    assert _runs([s.mode for s in seen if s.mode]) == ["Normal", "Degraded", "Suspended"]
    # Degraded caps the Deployment at degraded.maxReplicas; only Suspended takes it to 0
    assert any(s.mode == "Degraded" and s.replicas == 1 for s in seen), seen
    # Before Degrade it ran its 2 replicas. (A snapshot reads the budget, the service, then the
    # Deployment; one whose next snapshot still shows no Degrade read the Deployment before it.)
    calm = [s for s, then in pairwise(seen) if then.action in ("", "Notify")]
    assert calm and all(s.replicas in (None, 2) for s in calm), seen
    assert _threshold_events(cluster, namespace, "gpus") == list(THRESHOLD_REASONS)
    # each change of mode is told once, as a warning (not again by the Degraded condition)
    modes = [
        (e["type"], e["reason"])
        for e in cluster.events(namespace, "llama")
        if e["involvedObject"].get("kind") == "InferenceService"
        and e["reason"] in ("ModeDegraded", "ModeSuspended", "BudgetDegraded", "NotDegraded")
    ]
    assert sorted(modes) == [("Warning", "ModeDegraded"), ("Warning", "ModeSuspended")], modes

    wait_until(
        "the suspended service's pods gone",
        lambda: _status(cluster, "inferenceservice", "llama", namespace).get("replicas") == 0,
        timeout=60,
    )
    status = _settled(cluster, namespace, "gpus")
    assert status["state"] == "Exceeded" and status["activeAction"] == "Suspend"
    assert status["notifiedPercents"] == [50, 80, 100]
    assert [s["name"] for s in status["breakdown"]] == ["llama"]
    _assert_close(status["spent"], _gpu_spend(prometheus, namespace, status, "36"), "GPU spend")


def test_token_spend_matches_promql_and_takes_each_action(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    simulator: Simulator,
    gateway_pin: GatewayPin,
    operator_process: OperatorFactory,
) -> None:
    """An API-backed service: tokens through the gateway x price per million."""
    _api_backend(simulator, prometheus, gateway_pin, namespace, "gpt")
    operator_process(namespace)
    cluster.apply(_api_service("gpt"), namespace)
    cluster.apply(_budget("tokens", "1.5", LADDER), namespace)
    _wait_status(cluster, namespace, "tokens", "a first evaluation", lambda s: s.get("state") == "Ok", 60)
    simulator.traffic(namespace, "gpt", TRACE_TRAFFIC)

    seen = _watch_until(cluster, namespace, "tokens", "gpt", lambda s: s.mode == "Suspended", timeout=150)
    assert _runs([s.action for s in seen if s.action]) == ["Notify", "Degrade", "Suspend"]
    assert _runs([s.mode for s in seen if s.mode]) == ["Normal", "Degraded", "Suspended"]
    assert _threshold_events(cluster, namespace, "tokens") == list(THRESHOLD_REASONS)

    # spend keeps counting while suspended (the gateway still reports); check it several times
    for _ in range(3):
        status = _settled(cluster, namespace, "tokens")
        _assert_close(status["spent"], _token_spend(prometheus, namespace, status), "token spend")
    assert Decimal(status["spent"]) >= Decimal("1.5")
    simulator.stop_traffic(namespace, "gpt")


def test_an_operator_killed_mid_run_loses_no_spend_and_repeats_no_event(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    simulator: Simulator,
    gateway_pin: GatewayPin,
    operator_process: OperatorFactory,
) -> None:
    _api_backend(simulator, prometheus, gateway_pin, namespace, "gpt")
    operator = operator_process(namespace)
    cluster.apply(_api_service("gpt"), namespace)
    cluster.apply(_budget("tokens", "1.5", LADDER), namespace)
    _wait_status(cluster, namespace, "tokens", "a first evaluation", lambda s: s.get("state") == "Ok", 60)
    simulator.traffic(namespace, "gpt", TRACE_TRAFFIC)

    before = _wait_status(
        cluster, namespace, "tokens", "Notify", lambda s: s.get("activeAction") == "Notify", timeout=120
    )
    # once its event is out too: kopf posts events from a queue, and an event still queued at a
    # SIGKILL is lost with the process (the status says it was announced, so it never comes)
    wait_until(
        "the Notify event",
        lambda: _threshold_events(cluster, namespace, "tokens") == ["ThresholdNotify"],
        timeout=30,
    )
    operator.kill()  # SIGKILL: no clean-up, no last status write
    assert not operator.running
    # spend goes on in the counters while nobody evaluates
    at_kill = _status(cluster, "aibudget", "tokens", namespace)
    time.sleep(10)
    assert _status(cluster, "aibudget", "tokens", namespace) == at_kill
    operator.start()

    after = _wait_status(
        cluster,
        namespace,
        "tokens",
        "Suspend after the restart",
        lambda s: s.get("activeAction") == "Suspend",
        timeout=150,
    )
    assert Decimal(after["spent"]) > Decimal(before["spent"])
    # a few more evaluations: nothing announced twice, and the downtime was counted, not lost
    for _ in range(3):
        status = _settled(cluster, namespace, "tokens")
    _assert_close(status["spent"], _token_spend(prometheus, namespace, status), "spend across the restart")
    assert _threshold_events(cluster, namespace, "tokens") == list(THRESHOLD_REASONS)
    assert status["notifiedPercents"] == [50, 80, 100]
    simulator.stop_traffic(namespace, "gpt")


def test_prometheus_down_holds_the_last_known_state_and_catches_up(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    simulator: Simulator,
    gateway_pin: GatewayPin,
    operator_process: OperatorFactory,
) -> None:
    if cluster.run_dir is None:
        pytest.skip("stopping Prometheus needs the local cluster (source .cluster/env, or --cluster=local)")
    _api_backend(simulator, prometheus, gateway_pin, namespace, "gpt")
    operator_process(namespace)
    cluster.apply(_api_service("gpt"), namespace)
    cluster.apply(_budget("tokens", "4", [(25, "Notify"), (100, "Suspend")]), namespace)
    _wait_status(cluster, namespace, "tokens", "a first evaluation", lambda s: s.get("state") == "Ok", 60)
    simulator.traffic(namespace, "gpt", TRACE_TRAFFIC)
    _wait_status(cluster, namespace, "tokens", "Notify", lambda s: s.get("state") == "Warning", 120)
    last_good = _settled(cluster, namespace, "tokens")

    cluster.cluster_script("prometheus-stop")
    try:
        held = _wait_status(
            cluster,
            namespace,
            "tokens",
            "MetricsAvailable=False",
            lambda s: _condition(s, "MetricsAvailable").get("status") == "False",
            timeout=30,
        )
        condition = _condition(held, "MetricsAvailable")
        assert condition["reason"] == "QueryError", condition
        assert "gpt" in condition["message"] and "Connection" in condition["message"], condition
        # HoldLastKnown: spend, state, action and the checkpoint all stay as last known
        for _ in range(8):
            status = _status(cluster, "aibudget", "tokens", namespace)
            assert status["spent"] == last_good["spent"]
            assert status["lastEvaluated"] == last_good["lastEvaluated"]
            assert (status["state"], status["activeAction"]) == ("Warning", "Notify")
            assert _condition(status, "MetricsAvailable")["status"] == "False"
            time.sleep(1)
        assert _condition(status, "ThresholdReached")["reason"] == "MetricsUnavailableHoldLastKnown"
    finally:
        cluster.cluster_script("prometheus-start")
    wait_until("Prometheus ready again", prometheus.ready, timeout=60)

    # The first evaluation after the restart may run before Prometheus scraped again (it then
    # adds nothing and keeps its checkpoint honest); the outage's growth arrives with the next.
    _wait_status(
        cluster,
        namespace,
        "tokens",
        "MetricsAvailable=True and spend growing again",
        lambda s: (
            _condition(s, "MetricsAvailable").get("status") == "True"
            and Decimal(s["spent"]) > Decimal(last_good["spent"])
        ),
        timeout=60,
    )
    status = _settled(cluster, namespace, "tokens")
    # the outage's tokens are in: the counters' increase over the gap was added at once
    _assert_close(status["spent"], _token_spend(prometheus, namespace, status), "spend after the outage")
    simulator.stop_traffic(namespace, "gpt")


def test_a_budget_never_touches_another_namespaces_services(
    cluster: Cluster,
    namespace: str,
    other_namespace: str,
    prometheus: Prometheus,
    simulator: Simulator,
    gateway_pin: GatewayPin,
    operator_process: OperatorFactory,
) -> None:
    """Same service name, same labels in two namespaces; the other one spends three times more."""
    for ns in (namespace, other_namespace):
        _api_backend(simulator, prometheus, gateway_pin, ns, "chat")
    operator_process(namespace, other_namespace)
    for ns in (namespace, other_namespace):
        cluster.apply(_api_service("chat"), ns)
    cluster.apply(_budget("small", "1", LADDER), namespace)
    cluster.apply(_budget("large", "1000", LADDER), other_namespace)
    _wait_status(cluster, namespace, "small", "a first evaluation", lambda s: s.get("state") == "Ok", 60)
    simulator.traffic(namespace, "chat", TRACE_TRAFFIC)
    simulator.traffic(other_namespace, "chat", {**TRACE_TRAFFIC, "scale": 3})

    others: list[str] = []

    def suspended() -> bool:
        others.append(_status(cluster, "inferenceservice", "chat", other_namespace).get("mode", ""))
        return _status(cluster, "inferenceservice", "chat", namespace).get("mode") == "Suspended"

    wait_until("the small budget's service suspended", suspended, timeout=150)
    assert set(others) <= {"", "Normal"}, others

    mine = _settled(cluster, namespace, "small")
    theirs = _settled(cluster, other_namespace, "large")
    assert _status(cluster, "inferenceservice", "chat", other_namespace)["mode"] == "Normal"
    assert (theirs["state"], theirs["activeAction"]) == ("Ok", "")
    assert _threshold_events(cluster, other_namespace, "large") == []
    # each budget counts its own namespace only (the other's spend would be 3x or 4/3x off)
    _assert_close(mine["spent"], _token_spend(prometheus, namespace, mine), "the small budget")
    _assert_close(theirs["spent"], _token_spend(prometheus, other_namespace, theirs), "the large budget")
    assert [s["name"] for s in mine["breakdown"]] == ["chat"]
    for ns in (namespace, other_namespace):
        simulator.stop_traffic(ns, "chat")


def test_notify_posts_an_alertmanager_webhook(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    simulator: Simulator,
    gateway_pin: GatewayPin,
    operator_process: OperatorFactory,
    webhook: Webhook,
) -> None:
    _api_backend(simulator, prometheus, gateway_pin, namespace, "gpt")
    operator_process(namespace)
    cluster.apply(_api_service("gpt"), namespace)
    cluster.apply(
        _budget("alerts", "1", [(20, "Notify")], notification={"webhookUrl": webhook.url}), namespace
    )
    simulator.traffic(namespace, "gpt", TRACE_TRAFFIC)

    wait_until("a webhook POST", lambda: webhook.received, timeout=120)
    payload = webhook.received[0]
    assert payload["version"] == "4" and payload["status"] == "firing"
    [alert] = payload["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "AIBudgetThreshold",
        "namespace": namespace,
        "budget": "alerts",
        "action": "Notify",
        "percent": "20",
        "severity": "warning",
    }
    assert re.search(r"Spent \d+\.\d\d of 1\.00 USD", alert["annotations"]["description"]), alert
    _timestamp(alert["startsAt"])  # an RFC 3339 time
    assert payload["commonLabels"] == alert["labels"]
    # once per period: later evaluations post nothing more
    for _ in range(2):
        _settled(cluster, namespace, "alerts")
    assert len(webhook.received) == 1, webhook.received
    assert _threshold_events(cluster, namespace, "alerts") == ["ThresholdNotify"]
    simulator.stop_traffic(namespace, "gpt")
