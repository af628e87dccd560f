"""Leader election end to end: two operator processes on one Lease, the leader killed with
SIGKILL mid-work, the standby taking over; and two shards splitting the namespaces.

Both processes run under the shipped ServiceAccount and RBAC (conftest's operator_kubeconfig)
with --leader-elect, as manifests/base runs them. What each test checks:

- takeover: the time from the SIGKILL to the Lease naming the standby, measured from a watch
  (recorded, see `record_property`; asserted only against a generous bound, never tightly);
- no action twice: the events counted (threshold events once each; replica changes a chain
  with no step repeated);
- no two leaders at once: the Lease's holder history from a watch (one change of holder, the
  transition counted, the dead holder never back) and the standby's own log (it starts to lead
  only after the kill).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

from aipolicy.policy.lease import lease_name
from tests.e2e.cluster import Cluster, ManagedProcess, Prometheus, Simulator, wait_until
from tests.e2e.conftest import OperatorFactory
from tests.e2e.test_budget import LADDER, THRESHOLD_REASONS, _budget, _status, _threshold_events, _wait_status
from tests.e2e.test_budget_bad_input import GOOD, _source
from tests.e2e.test_scaling import CAPACITY, _deployment_replicas, _isvc, _traffic

LEASE_NAMESPACE = "aipolicy-system"
SHIPPED_LEASE = "aipolicy"  # the name manifests/base/rbac.yaml lets the operator renew
# The goal is 15 s (the design gives at most ~12 s); the assert only catches a broken
# election on a loaded machine, the measured value is what BENCHMARKS.md reports.
TAKEOVER_BOUND = 30.0
LEADS = re.compile(r"(\S+) leads lease")


@dataclass
class LeaseRecord:
    received: float  # time.time() when the watch delivered it
    version: str
    holder: str
    transitions: int
    renew_time: str


@dataclass
class LeaseWatch:
    """`kubectl get lease --watch`, in a thread: every version of one Lease, as it happens."""

    cluster: Cluster
    name: str
    records: list[LeaseRecord] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None

    def start(self) -> LeaseWatch:
        template = (
            '{.metadata.resourceVersion}{"|"}{.spec.holderIdentity}{"|"}{.spec.leaseTransitions}'
            '{"|"}{.spec.renewTime}{"\\n"}'
        )
        self.process = subprocess.Popen(
            [
                self.cluster.kubectl_bin,
                f"--kubeconfig={self.cluster.kubeconfig}",
                "-n",
                LEASE_NAMESPACE,
                "get",
                "leases",
                f"--field-selector=metadata.name={self.name}",
                "--watch",
                f"--output=jsonpath={template}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            parts = line.strip().split("|")
            if len(parts) == 4 and parts[0]:
                version, holder, transitions, renewed = parts
                self.records.append(LeaseRecord(time.time(), version, holder, int(transitions or 0), renewed))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def holder(self) -> str:
        return self.records[-1].holder if self.records else ""

    def holders(self) -> list[str]:
        """The holder history, one entry per change of holder."""
        changes: list[str] = []
        for record in self.records:
            if not changes or changes[-1] != record.holder:
                changes.append(record.holder)
        return changes

    def first_held_by(self, prefix: str, after: float) -> LeaseRecord | None:
        return next((r for r in self.records if r.holder.startswith(prefix) and r.received >= after), None)


def _delete_lease(cluster: Cluster, name: str) -> None:
    cluster.kubectl("-n", LEASE_NAMESPACE, "delete", "lease", name, "--ignore-not-found", timeout=30)


@pytest.fixture
def shipped_lease(cluster: Cluster, operator_kubeconfig: Path) -> Iterator[LeaseWatch]:
    """The shipped installation's Lease, fresh, watched for the whole test."""
    _delete_lease(cluster, SHIPPED_LEASE)
    watch = LeaseWatch(cluster, SHIPPED_LEASE).start()
    yield watch
    watch.stop()
    _delete_lease(cluster, SHIPPED_LEASE)


def _candidate(
    operator_process: OperatorFactory, who: str, namespaces: list[str], lease: str
) -> ManagedProcess:
    # POD_NAME gives the identity its prefix, as the Deployment's downward API does
    return operator_process(
        *namespaces,
        extra_args=["--leader-elect", "--lease-name", lease],
        extra_env={"POD_NAME": who},
    )


@dataclass
class Pair:
    processes: dict[str, ManagedProcess]
    watch: LeaseWatch

    def leader(self) -> str:
        holder = self.watch.holder()
        return next(who for who in self.processes if holder.startswith(f"{who}_"))

    def standby(self) -> str:
        return next(who for who in self.processes if who != self.leader())


def _start_pair(operator_process: OperatorFactory, namespace: str, watch: LeaseWatch) -> Pair:
    first = _candidate(operator_process, "op-a", [namespace], watch.name)
    wait_until("op-a to lead", lambda: watch.holder().startswith("op-a_"), timeout=30)
    second = _candidate(operator_process, "op-b", [namespace], watch.name)
    # op-b is up and standing by once it has read op-a's Lease (it logs that once)
    wait_until(
        "op-b to stand by",
        lambda: " stands by: " in second.log_path.read_text(errors="replace"),
        timeout=30,
    )
    return Pair({"op-a": first, "op-b": second}, watch)


def _log_time(line: str) -> float | None:
    """kopf's log lines start with `[YYYY-mm-dd HH:MM:SS,mmm]` in local time."""
    match = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]", line)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(match.group(2)) / 1000


def _lead_times(process: ManagedProcess) -> list[float]:
    times = []
    for line in process.log_path.read_text(errors="replace").splitlines():
        if LEADS.search(line):
            stamp = _log_time(line)
            assert stamp is not None, line
            times.append(stamp)
    return times


def _kill_leader_and_measure(pair: Pair, record_property: Any) -> tuple[str, str, float]:
    """SIGKILL the leader; wait for the standby to hold the Lease; returns (dead, new, seconds)."""
    dead, survivor = pair.leader(), pair.standby()
    killed_at = time.time()
    pair.processes[dead].kill()
    record = wait_until(
        f"{survivor} to take the Lease over",
        lambda: pair.watch.first_held_by(f"{survivor}_", killed_at),
        timeout=60,
    )
    takeover = record.received - killed_at
    record_property("takeover_seconds", f"{takeover:.2f}")
    print(f"takeover after SIGKILL: {takeover:.2f} s")
    assert takeover <= TAKEOVER_BOUND, f"the standby took {takeover:.1f}s to take over"
    # no two leaders: the survivor began to lead only after the kill (its log, its clock)
    lead_times = _lead_times(pair.processes[survivor])
    assert lead_times, pair.processes[survivor].log_tail()
    assert all(t >= killed_at - 0.01 for t in lead_times), (lead_times, killed_at)
    return dead, survivor, takeover


def _assert_one_handover(watch: LeaseWatch, dead: str, survivor: str) -> None:
    """The Lease went from the dead leader to the survivor once, counted as one transition."""
    holders = watch.holders()
    assert len(holders) == 2, holders
    assert holders[0].startswith(f"{dead}_") and holders[1].startswith(f"{survivor}_"), holders
    before = [r for r in watch.records if r.holder == holders[0]]
    after = [r for r in watch.records if r.holder == holders[1]]
    assert after[0].transitions == before[-1].transitions + 1, watch.records


def test_killing_the_leader_during_budget_evaluations_repeats_no_threshold(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    shipped_lease: LeaseWatch,  # before operator_process: the Lease goes after the operators stop
    operator_process: OperatorFactory,
    record_property: Any,
) -> None:
    """A budget of $3 spending $0.25 per 5 s evaluation: Notify at $1.50, Degrade at $2.50,
    Suspend at $3. The leader dies between Notify and Degrade, in the second after an
    evaluation instant (when every budget is evaluated); the standby goes on counting."""
    pair = _start_pair(operator_process, namespace, shipped_lease)
    cluster.apply(_budget("team", "3", LADDER, selector={}, costSources=[_source("gw", GOOD)]), namespace)
    _wait_status(cluster, namespace, "team", "Notify", lambda s: s.get("activeAction") == "Notify", 90)
    # an event still queued at a SIGKILL dies with the process: kill once Notify's is out
    wait_until(
        "the Notify event",
        lambda: _threshold_events(cluster, namespace, "team") == ["ThresholdNotify"],
        timeout=30,
    )
    # evaluations run at the 5 s multiples plus a settling second, on the next 1 s tick
    time.sleep((1.2 - time.time()) % 5)
    spent_at_kill = Decimal(_status(cluster, "aibudget", "team", namespace).get("spent", "0"))
    assert spent_at_kill < Decimal("2.4"), "Degrade came before the kill; the budget moved too fast"

    dead, survivor, _ = _kill_leader_and_measure(pair, record_property)

    final = _wait_status(
        cluster, namespace, "team", "Suspend", lambda s: s.get("activeAction") == "Suspend", 90
    )
    assert final["notifiedPercents"] == [50, 80, 100]
    wait_until(
        "the three threshold events",
        lambda: len(_threshold_events(cluster, namespace, "team")) >= 3,
        timeout=30,
    )
    time.sleep(6)  # one more evaluation: nothing is announced again
    assert _threshold_events(cluster, namespace, "team") == list(THRESHOLD_REASONS)
    assert pair.processes[survivor].running, pair.processes[survivor].log_tail()
    _assert_one_handover(shipped_lease, dead, survivor)


def _scaling_steps(cluster: Cluster, namespace: str, name: str) -> list[tuple[int, int]]:
    steps = []
    events = [
        e for e in cluster.events(namespace, name) if e["involvedObject"].get("kind") == "InferenceService"
    ]
    for event in sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"])):
        match = re.match(r"(\d+) -> (\d+) replicas", event["message"])
        if match:
            steps.append((int(match.group(1)), int(match.group(2))))
    return steps


def test_killing_the_leader_during_a_scale_up_repeats_no_step(
    cluster: Cluster,
    namespace: str,
    simulator: Simulator,
    prometheus: Prometheus,
    shipped_lease: LeaseWatch,  # before operator_process: the Lease goes after the operators stop
    operator_process: OperatorFactory,
    record_property: Any,
) -> None:
    simulator.configure(namespace, "chat", CAPACITY)
    pair = _start_pair(operator_process, namespace, shipped_lease)
    cluster.apply(
        _isvc(
            "chat", minReplicas=1, maxReplicas=4, maxScaleUpStep=1, metric={"type": "QueueDepth", "target": 5}
        ),
        namespace,
    )
    wait_until(
        "one ready replica",
        lambda: (
            ((cluster.get("inferenceservice", "chat", namespace) or {}).get("status") or {}).get(
                "readyReplicas"
            )
            == 1
        ),
        timeout=90,
    )
    simulator.traffic(namespace, "chat", _traffic(25))
    # mid scale-up: one step taken (and its event out), more to come, one at a time
    wait_until("the first step up", lambda: (_deployment_replicas(cluster, namespace, "chat") or 0) >= 2, 90)
    wait_until("its event", lambda: _scaling_steps(cluster, namespace, "chat")[-1:] == [(1, 2)], 30)

    dead, survivor, _ = _kill_leader_and_measure(pair, record_property)

    wait_until(
        "the scale-up to go on", lambda: (_deployment_replicas(cluster, namespace, "chat") or 0) >= 3, 90
    )
    replicas = _deployment_replicas(cluster, namespace, "chat")
    wait_until(
        "the last step's event",
        lambda: _scaling_steps(cluster, namespace, "chat")[-1:][0][1] == replicas,
        timeout=30,
    )
    steps = _scaling_steps(cluster, namespace, "chat")
    # a chain from the first replica: each step starts where the last ended, none taken twice
    assert steps[:2] == [(0, 1), (1, 2)], steps
    for (_, before), (start, end) in pairwise(steps):
        assert start == before and end > start, steps
    status = (cluster.get("inferenceservice", "chat", namespace) or {})["status"]
    decisions = [(d["from"], d["to"]) for d in status["decisions"]]
    assert decisions == steps[-len(decisions) :], (decisions, steps)
    simulator.stop_traffic(namespace, "chat")
    _assert_one_handover(shipped_lease, dead, survivor)


def test_a_clean_shutdown_hands_the_lease_over_at_once(
    cluster: Cluster,
    namespace: str,
    shipped_lease: LeaseWatch,  # before operator_process: the Lease goes after the operators stop
    operator_process: OperatorFactory,
    record_property: Any,
) -> None:
    """SIGTERM (a rolling update): the leader empties the Lease, the standby takes it at its
    next look, well before a lease duration."""
    pair = _start_pair(operator_process, namespace, shipped_lease)
    leader, standby = pair.leader(), pair.standby()
    stopped_at = time.time()
    pair.processes[leader].stop()
    record = wait_until(
        f"{standby} to lead", lambda: shipped_lease.first_held_by(f"{standby}_", stopped_at), timeout=30
    )
    record_property("handover_seconds", f"{record.received - stopped_at:.2f}")
    assert "" in shipped_lease.holders(), shipped_lease.records  # released before taken
    assert "released lease" in pair.processes[leader].log_path.read_text(errors="replace")


# ---- shards ----------------------------------------------------------------------------------


@pytest.fixture
def shard_leases(cluster: Cluster, operator_kubeconfig: Path) -> Iterator[Any]:
    """Lets the operator renew the given shards' Leases, as a sharded install's RBAC would."""
    granted: list[str] = []

    def grant(*names: str) -> None:
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "aipolicy-e2e-shards", "namespace": LEASE_NAMESPACE},
            "rules": [
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "resourceNames": list(names),
                    "verbs": ["get", "update"],
                }
            ],
        }
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "aipolicy-e2e-shards", "namespace": LEASE_NAMESPACE},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "aipolicy-e2e-shards",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "aipolicy", "namespace": LEASE_NAMESPACE}],
        }
        cluster.apply(yaml.safe_dump_all([role, binding]))
        granted.extend(names)

    yield grant
    for name in granted:
        _delete_lease(cluster, name)
    cluster.kubectl("-n", LEASE_NAMESPACE, "delete", "role,rolebinding", "aipolicy-e2e-shards", check=False)


def _evaluations(cluster: Cluster, namespace: str) -> str:
    return str(_status(cluster, "aibudget", "team", namespace).get("lastEvaluated", ""))


def test_two_shards_each_act_only_in_their_own_namespaces(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    shard_leases: Any,
    operator_process: OperatorFactory,
) -> None:
    """Shard one: this test's namespace; shard two: a second and a third, given as a comma
    list. Each shard has its own Lease and leads it; a budget is evaluated only while its own
    shard runs."""
    others = [f"{namespace[:50]}-b", f"{namespace[:50]}-c"]
    for other in others:
        cluster.kubectl("create", "namespace", other)
    try:
        one, two = lease_name([namespace]), lease_name(others)
        assert one != two
        shard_leases(one, two)
        budget = _budget("team", "1000", LADDER, selector={}, costSources=[_source("gw", GOOD)])
        for ns in [namespace, *others]:
            cluster.apply(budget, ns)

        first = operator_process(namespace, extra_args=["--leader-elect"], extra_env={"POD_NAME": "shard-1"})
        _wait_status(
            cluster, namespace, "team", "shard one to evaluate", lambda s: bool(s.get("lastEvaluated")), 60
        )
        time.sleep(6)  # more than an evaluation interval: shard one leaves the others alone
        assert all(_evaluations(cluster, ns) == "" for ns in others), "shard one acted outside its namespace"

        second = operator_process(
            extra_args=["--leader-elect", "--namespace", ",".join(others)], extra_env={"POD_NAME": "shard-2"}
        )
        for ns in others:
            _wait_status(
                cluster, ns, "team", f"shard two to evaluate {ns}", lambda s: bool(s.get("lastEvaluated")), 60
            )

        # one Lease per shard, each held by its own operator, both leading at once
        holders = {
            name: (cluster.get("lease", name, LEASE_NAMESPACE) or {})
            .get("spec", {})
            .get("holderIdentity", "")
            for name in (one, two)
        }
        assert holders[one].startswith("shard-1_") and holders[two].startswith("shard-2_"), holders

        # shard one gone: its namespace stands still, shard two's go on
        first.kill()
        time.sleep(2)
        frozen = _evaluations(cluster, namespace)
        moving = {ns: _evaluations(cluster, ns) for ns in others}
        time.sleep(11)
        assert _evaluations(cluster, namespace) == frozen, "shard two acted in shard one's namespace"
        for ns in others:
            assert _evaluations(cluster, ns) > moving[ns], f"shard two stopped evaluating {ns}"
        assert second.running, second.log_tail()
        # shard one back (a new process: it waits for its dead self's Lease to expire)
        first.start()
        wait_until("shard one to evaluate again", lambda: _evaluations(cluster, namespace) > frozen, 60)
    finally:
        for other in others:
            cluster.kubectl(
                "delete", "aibudgets", "--all", "-n", other, "--timeout=30s", check=False, timeout=40
            )
            cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_a_frozen_leader_stands_down_when_it_wakes(
    cluster: Cluster,
    namespace: str,
    shipped_lease: LeaseWatch,  # before operator_process: the Lease goes after the operators stop
    operator_process: OperatorFactory,
) -> None:
    """A leader frozen past its lease (SIGSTOP: a long pause, a partition) stands down on waking
    and stays a standby: the Lease is the other's now. (That its handlers are refused from the
    instant its renew deadline passes, whatever wakes first, is the clock-based gate's unit test:
    tests/unit/test_leadership.py.)"""
    pair = _start_pair(operator_process, namespace, shipped_lease)
    leader, standby = pair.leader(), pair.standby()
    frozen = pair.processes[leader].process
    assert frozen is not None
    frozen_at = time.time()
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        wait_until(f"{standby} to lead", lambda: shipped_lease.first_held_by(f"{standby}_", frozen_at), 60)
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    woke_at = time.time()
    log = pair.processes[leader].log_path
    wait_until("the woken leader to stand down", lambda: "stopped leading" in log.read_text(), timeout=30)
    time.sleep(5)  # a few of its own retry periods: it must not take the Lease back
    assert shipped_lease.holders()[-1].startswith(f"{standby}_"), shipped_lease.holders()
    assert len(_lead_times(pair.processes[leader])) == 1, log.read_text()  # led once, before the pause
    # "no renewal within 7s" (its deadline) or "held by" (its first read): both on waking
    stood_down = [line for line in log.read_text().splitlines() if "stopped leading" in line]
    assert stood_down, log.read_text()
    stamp = _log_time(stood_down[0])
    assert stamp is not None and stamp >= woke_at - 1, (stood_down, woke_at)
