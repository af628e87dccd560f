"""How long a standby takes to lead after the leader is killed (SIGKILL), over many kills.

    make cluster-up            # or use the one that runs
    source .cluster/env && PATH=$CLUSTER_BIN:$PATH .venv/bin/python -m bench.leader_failover [--kills 10]

Two operator processes run with --leader-elect on one Lease (the production timing: 10 s lease,
7 s renew deadline, 2 s retry) and one watched namespace. Each round: wait until the standby
has read the leader's Lease (it logs "stands by"), 5 s more and a random 0-2 s (so the kill
lands anywhere in the renewal cycle); SIGKILL the leader and time, from the kill, the first
read of the Lease that names the standby (read every 50 ms through the API). The killed
process is then started again, as a new candidate, for the next round.

The design bound is retry period + lease duration = 12 s (policy/lease.py); the issue's goal is
15 s. Processes are stopped by pid, the namespaces deleted. Nothing asserts on the numbers.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from kubernetes import client, config

from bench.harness import (
    ManagedProcess,
    argument_parser,
    command_line,
    finish,
    python_module,
    required,
    sourced_cluster,
    wait_until,
)

LEASE = "aipolicy-bench"
POLL_S = 0.05


def _holder(api: client.CoordinationV1Api, namespace: str) -> str:
    try:
        lease = api.read_namespaced_lease(LEASE, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return ""
        raise
    return str(lease.spec.holder_identity or "")


def _operator(
    who: str, namespace: str, lease_namespace: str, prometheus_url: str, logs: Path
) -> ManagedProcess:
    args = python_module("aipolicy", "run", "--metrics-port", "0", "--namespace", namespace)
    args += ["--prometheus-url", prometheus_url, "--leader-elect"]
    args += ["--lease-name", LEASE, "--lease-namespace", lease_namespace]
    env = {**os.environ, "POD_NAME": who}
    return ManagedProcess(args, env, logs / f"{who}.log")


def _standing_by(process: ManagedProcess) -> bool:
    """The standby has read the leader's Lease (it logs that once per holder)."""
    return " stands by: " in process.log_path.read_text(errors="replace")


def table(takeovers: list[float], command: str) -> str:
    lines = [
        "## Leader failover: SIGKILL of the leader to the standby leading",
        "",
        f"Command: `{command}` (bench/leader_failover.py). Two operator processes on one Lease, "
        "10 s lease, 7 s renew deadline, 2 s retry; the leader killed at a random point of its "
        "renewal cycle; the time from the kill to the first read of the Lease naming the standby "
        "(read every 50 ms). Design bound 12 s (retry period + lease duration); goal 15 s.",
        "",
        "| kills | mean s | median s | min s | max s |",
        "|---:|---:|---:|---:|---:|",
    ]
    if takeovers:
        lines.append(
            f"| {len(takeovers)} | {statistics.mean(takeovers):.2f} | {statistics.median(takeovers):.2f} "
            f"| {min(takeovers):.2f} | {max(takeovers):.2f} |"
        )
        lines += ["", "Each kill, in order: " + ", ".join(f"{t:.2f}" for t in takeovers) + " s."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args(argv)
    cluster = sourced_cluster()
    kubeconfig, prometheus_url = cluster.kubeconfig, required("PROMETHEUS_URL")
    config.load_kube_config(str(kubeconfig))  # type: ignore[no-untyped-call]
    api = client.CoordinationV1Api()
    logs = Path(tempfile.mkdtemp(prefix="aipolicy-bench-failover-"))
    suffix = uuid.uuid4().hex[:5]
    watched, lease_namespace = f"bench-failover-{suffix}", f"bench-failover-lease-{suffix}"
    for namespace in (watched, lease_namespace):
        cluster.kubectl("create", "namespace", namespace)
    jitter = random.Random(args.seed)
    operators = {
        who: _operator(who, watched, lease_namespace, prometheus_url, logs) for who in ("op-a", "op-b")
    }
    takeovers: list[float] = []
    try:
        for process in operators.values():
            process.start()
        for kill in range(args.kills):
            wait_until("a leader", lambda: _holder(api, lease_namespace), timeout=60, interval=POLL_S)
            holder = _holder(api, lease_namespace)
            leader = next(who for who in operators if holder.startswith(f"{who}_"))
            standby = next(who for who in operators if who != leader)
            ready = operators[standby]
            wait_until("the standby to stand by", lambda: _standing_by(ready), timeout=60)  # noqa: B023
            # a standby that just started is slow for its first seconds (kopf starting up in
            # the same loop): a standby of some standing is the case that matters
            time.sleep(5 + jitter.uniform(0, 2))
            killed_at = time.monotonic()
            operators[leader].kill()
            print(
                f"killed {leader} at {time.time():.3f} (monotonic {killed_at:.2f})",
                file=sys.stderr,
                flush=True,
            )
            wait_until(
                "the standby to lead",
                lambda: _holder(api, lease_namespace).startswith(f"{standby}_"),  # noqa: B023
                timeout=60,
                interval=POLL_S,
            )
            takeovers.append(time.monotonic() - killed_at)
            print(f"kill {kill + 1}: {takeovers[-1]:.2f} s", file=sys.stderr, flush=True)
            operators[leader].log_path.rename(logs / f"{leader}-{kill}.log")  # a new life, a new log
            operators[leader].start()
    finally:
        for process in operators.values():
            process.stop()
        for namespace in (watched, lease_namespace):
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    return finish(table(takeovers, command_line("bench.leader_failover", argv).strip()), logs)


if __name__ == "__main__":
    sys.exit(main())
