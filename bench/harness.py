"""What the live-cluster benchmarks share: the sourced cluster's environment, and the simulator
and operator as processes they stop by pid."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from tests.e2e.cluster import ManagedProcess, Simulator, free_port, python_module, wait_until


def kubectl_path() -> str:
    found = os.path.join(os.environ.get("CLUSTER_BIN", ""), "kubectl")
    if os.access(found, os.X_OK):
        return found
    return shutil.which("kubectl") or sys.exit("kubectl not found: source .cluster/env first")


def required(name: str) -> str:
    return os.environ.get(name) or sys.exit(f"{name} is not set: source .cluster/env first")


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
