"""What the live-cluster benchmarks share: the sourced cluster's environment (kubectl, KUBECONFIG,
PROMETHEUS_URL), loopback ports, the CRDs, a namespace of their own, and the simulator and
operator as processes they stop by pid. The handles themselves are aipolicy.devcluster's, which
the e2e tests drive too; nothing here comes from tests/."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import config

from aipolicy.devcluster import (
    REPO,
    Cluster,
    ManagedProcess,
    Simulator,
    free_port,
    python_module,
    wait_until,
)

__all__ = [
    "REPO",
    "Cluster",
    "LiveBench",
    "ManagedProcess",
    "Simulator",
    "argument_parser",
    "bench_namespace",
    "command_line",
    "finish",
    "free_port",
    "kubectl",
    "kubectl_path",
    "live_bench",
    "python_module",
    "required",
    "sourced_cluster",
    "sourced_with_crds",
    "start_operator",
    "start_simulator",
    "wait_until",
]


def kubectl_path() -> str:
    found = os.path.join(os.environ.get("CLUSTER_BIN", ""), "kubectl")
    if os.access(found, os.X_OK):
        return found
    return shutil.which("kubectl") or sys.exit("kubectl not found: source .cluster/env first")


def required(name: str) -> str:
    return os.environ.get(name) or sys.exit(f"{name} is not set: source .cluster/env first")


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    """kubectl against the sourced cluster (KUBECONFIG), its stdout; raises on failure if check."""
    result = subprocess.run(
        [kubectl_path(), *args], input=stdin, capture_output=True, text=True, timeout=600, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def sourced_cluster() -> Cluster:
    """The cluster of the sourced `.cluster/env` (make bench sources it)."""
    return Cluster(Path(required("KUBECONFIG")), kubectl_path(), required("PROMETHEUS_URL"))


@contextmanager
def bench_namespace(cluster: Cluster, stem: str, processes: Sequence[ManagedProcess]) -> Iterator[str]:
    """A new namespace `bench-<stem>-<random>`; at the end the processes (started meanwhile,
    appended to the list) stop by pid, newest first, and the namespace goes."""
    namespace = f"bench-{stem}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        yield namespace
    finally:
        for managed in reversed(processes):
            managed.stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """How the benchmark was run, for its table's caption."""
    return f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:])


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's parser, its module docstring as the help text."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def sourced_with_crds() -> str:
    """Apply crds/ to the sourced cluster (exit when none is sourced); its Prometheus URL."""
    url = os.environ.get("PROMETHEUS_URL")
    if not url or not os.environ.get("KUBECONFIG"):
        sys.exit("needs the local cluster: source .cluster/env (make cluster-up starts one)")
    kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    return url


def finish(table: str, logs: Path) -> int:
    """Print the benchmark's table (stdout is what `python -m bench --cluster` collects) and
    where the logs went; the exit status."""
    print(table)
    print(f"\noperator logs: {logs}")
    return 0


def start_simulator(kubeconfig: Path, targets: str, logs: Path, processes: list[ManagedProcess]) -> Simulator:
    """The simulator on a free loopback port (0.5 s tick), added to `processes` to be stopped."""
    port = free_port()
    args = python_module(
        "aipolicy.sim",
        "serve",
        "--kubeconfig",
        str(kubeconfig),
        "--port",
        str(port),
        "--targets-dir",
        targets,
        "--tick",
        "0.5",
    )
    process = ManagedProcess(args, dict(os.environ), logs / "simulator.log").start()
    processes.append(process)
    simulator = Simulator(f"http://127.0.0.1:{port}", process)
    wait_until("the simulator", simulator.healthy, timeout=60)
    return simulator


def start_operator(
    namespace: str,
    prometheus_url: str,
    kubeconfig: Path,
    logs: Path,
    processes: list[ManagedProcess],
    tick_seconds: float | None = None,
) -> None:
    """The operator watching `namespace` (its default tick unless given), added to `processes`."""
    args = python_module(
        "aipolicy", "run", "--metrics-port", "0", "--namespace", namespace, "--prometheus-url", prometheus_url
    )
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    if tick_seconds is not None:
        env["AIPOLICY_TICK_SECONDS"] = f"{tick_seconds:g}"
    processes.append(ManagedProcess(args, env, logs / "operator.log").start())


@dataclass
class LiveBench:
    """A benchmark's run on the sourced cluster: its namespace, logs folder and the processes it
    started (stopped by pid when live_bench ends)."""

    cluster: Cluster
    namespace: str
    logs: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    @property
    def prometheus_url(self) -> str:
        return required("PROMETHEUS_URL")

    @property
    def targets(self) -> str:
        return required("PROMETHEUS_TARGETS_DIR")

    def start_simulator(self) -> Simulator:
        return start_simulator(self.kubeconfig, self.targets, self.logs, self.processes)

    def start_operator(self, tick_seconds: float | None = None) -> None:
        start_operator(
            self.namespace, self.prometheus_url, self.kubeconfig, self.logs, self.processes, tick_seconds
        )


@contextmanager
def live_bench(stem: str, *served_crds: str) -> Iterator[LiveBench]:
    """The sourced cluster with the CRDs applied (the named ones Established), the kubernetes
    client configured for it, a logs folder and a namespace `bench-<stem>-<random>`, deleted at
    the end after the run's processes stop."""
    cluster = sourced_cluster()
    config.load_kube_config(str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    cluster.install_crds(*served_crds)
    logs = Path(tempfile.mkdtemp(prefix=f"aipolicy-bench-{stem}-"))
    processes: list[ManagedProcess] = []
    with bench_namespace(cluster, stem, processes) as namespace:
        yield LiveBench(cluster, namespace, logs, processes)
