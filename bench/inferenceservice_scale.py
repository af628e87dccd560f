"""How the InferenceService controller scales with the number of services, on the local cluster.

    source .cluster/env && .venv/bin/python -m bench.inferenceservice_scale [--sizes 10,100,1000]

For each size N (a fresh namespace each):

1. the raw apiserver write rate: N Deployments server-side applied, one after another, with the
   operator's own client code (`aipolicy.kube.client.Kube.apply`), then deleted;
2. reconcile from cold: N InferenceServices (minReplicas 0 with scale to zero, so no pods and
   no GPUs: the Deployments are the writes being measured) are created, then the operator starts
   and the time until all N Deployments and N front doors exist is taken;
3. over six 15 s evaluation cycles, Prometheus queries per cycle
   (`aipolicy_prometheus_queries_total`) and the operator's CPU at rest (user plus system time
   from /proc over those 90 s, as a share of one core), then its RSS; they start two cycles
   after the reconcile, once its own watch events have arrived.

The reconcile rate counts every object a service's first pass writes (its Deployment, its front
door and its status), against the raw rate of single writes.

The operator is stopped by its pid and the namespace deleted. Nothing asserts on the numbers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.budget_eval import _memory_mib, scrape
from bench.harness import REPO, argument_parser, command_line, finish, free_port, kubectl, sourced_with_crds

GROUP_VERSION = "aipolicy.dev/v1alpha1"
CYCLE_SECONDS = 15
#: after the reconcile, before measuring at rest
SETTLE_SECONDS = 2 * CYCLE_SECONDS
#: what a service's first pass writes: its Deployment, its front door and its status
OBJECTS_PER_SERVICE = 3


@dataclass(frozen=True)
class Row:
    services: int
    raw_writes_per_s: float
    reconcile_s: float
    reconcile_services_per_s: float
    queries_per_cycle: float
    rest_cpu_share: float
    rss_mib: float


def _isvc(i: int) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": f"svc-{i}"},
        "spec": {
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "serving": {"image": "vllm/vllm-openai:v0.6.3"},
            "pricing": {"gpuHour": "2.00"},
            "scaling": {
                "minReplicas": 0,
                "maxReplicas": 2,
                "scaleToZeroAfter": "10m",
                "evaluationInterval": f"{CYCLE_SECONDS}s",
            },
        },
    }


def raw_write_rate(namespace: str, count: int) -> float:
    """Deployments per second through Kube.apply, sequentially (what one reconcile writes)."""
    from aipolicy.kube.client import Kube, load_config

    load_config()
    kube = Kube()

    def manifest(i: int) -> dict[str, Any]:
        labels = {"bench": "raw", "i": str(i)}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"raw-{i}", "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "registry.invalid/x:1"}]},
                },
            },
        }

    async def run() -> float:
        start = time.perf_counter()
        for i in range(count):
            await kube.apply(manifest(i))
        return count / (time.perf_counter() - start)

    rate = asyncio.run(run())
    # gone before the operator starts: kopf lists and tracks every Deployment of the namespace,
    # so leftovers would be measured as the operator's own load
    kubectl("-n", namespace, "delete", "deployments", "-l", "bench=raw", "--wait=false")
    deadline = time.monotonic() + 600
    while kubectl("-n", namespace, "get", "deployments", "-l", "bench=raw", "-o", "name").strip():
        if time.monotonic() > deadline:
            raise RuntimeError("the raw Deployments were not deleted within 10 minutes")
        time.sleep(1)
    return rate


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _count(namespace: str, kind: str) -> int:
    return len(kubectl("-n", namespace, "get", kind, "-o", "name").split())


def measure(count: int, prometheus_url: str, logs: Path) -> Row:
    namespace = f"bench-isvc-{count}-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", namespace)
    process: subprocess.Popen[bytes] | None = None
    try:
        raw = raw_write_rate(namespace, count)
        kubectl(
            "-n",
            namespace,
            "apply",
            "--server-side",
            "-f",
            "-",
            stdin=yaml.safe_dump_all([_isvc(i) for i in range(count)]),
        )
        port = free_port()
        with (logs / f"operator-{count}.log").open("wb") as log:
            started = time.perf_counter()
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aipolicy",
                    "run",
                    "--namespace",
                    namespace,
                    "--prometheus-url",
                    prometheus_url,
                    "--metrics-port",
                    str(port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        deadline = time.monotonic() + 1200
        while _count(namespace, "deployments") < count or _count(namespace, "services") < count:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"reconcile of {count} did not finish; see {logs}")
            time.sleep(1)
        reconcile = time.perf_counter() - started

        def queries() -> float:
            return sum(
                v for (name, _), v in scrape(port).items() if name == "aipolicy_prometheus_queries_total"
            )

        time.sleep(SETTLE_SECONDS)  # the reconcile's own watch events still arriving are not rest
        before, cpu_before, wall_before = queries(), cpu_seconds(process.pid), time.monotonic()
        time.sleep(6 * CYCLE_SECONDS)
        per_cycle = (queries() - before) / 6
        rest_cpu = (cpu_seconds(process.pid) - cpu_before) / (time.monotonic() - wall_before)
        rss, _ = _memory_mib(process.pid)
        return Row(count, raw, reconcile, count / reconcile, per_cycle, rest_cpu, rss)
    finally:
        # Delete the namespace while the operator still runs, so kopf can release its
        # finalizers; whatever is left after a minute goes with the cluster. The operator is
        # stopped by its pid whatever happens here.
        try:
            kubectl("delete", "namespace", namespace, "--wait=false", check=False)
            time.sleep(60 if count >= 100 else 10)
        finally:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def table(rows: list[Row], command: str) -> str:
    lines = [
        "## InferenceService controller against the number of services",
        "",
        f"Command: `{command}` (bench/inferenceservice_scale.py), on the local cluster. Services at zero",
        "replicas (no pods): a service's first pass writes its Deployment, its front door and its",
        "status; objects/s reconciled counts all three, against the raw rate of single writes.",
        f"Queries per {CYCLE_SECONDS} s evaluation cycle and CPU at rest (share of one core) over",
        "six cycles after the reconcile; RSS at the end.",
        "",
        "| services | raw Deployment applies/s | reconcile from cold s | objects/s reconciled "
        "| reconcile / raw | Prometheus queries per cycle | CPU at rest | RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        objects_per_s = OBJECTS_PER_SERVICE * r.reconcile_services_per_s
        lines.append(
            f"| {r.services} | {r.raw_writes_per_s:.1f} | {r.reconcile_s:.1f} "
            f"| {objects_per_s:.1f} | {objects_per_s / r.raw_writes_per_s:.2f} | {r.queries_per_cycle:.1f} "
            f"| {r.rest_cpu_share:.1%} | {r.rss_mib:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--sizes", default="10,100,1000")
    args = parser.parse_args(argv)
    url = sourced_with_crds()
    logs = Path(tempfile.mkdtemp(prefix="aipolicy-bench-isvc-"))
    rows = []
    for size in args.sizes.split(","):
        rows.append(measure(int(size), url, logs))
        print(table(rows, "(partial)"), file=sys.stderr, flush=True)  # survives a later failure
    return finish(table(rows, command_line("bench.inferenceservice_scale", argv).strip()), logs)


if __name__ == "__main__":
    sys.exit(main())
