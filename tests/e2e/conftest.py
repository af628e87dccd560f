"""e2e fixtures: one real cluster for the whole run, a fresh namespace per test, Prometheus, and
the operator as a subprocess that tests can stop, kill and restart.

--cluster=local (default) starts the loopback cluster of hack/cluster.sh (kube-apiserver, etcd,
controller-manager, scheduler, kwok, kube-state-metrics, Prometheus) in a temporary folder and
stops it, by pid, at the end. --cluster=kind uses pytest-kind on machines with Docker;
--cluster=existing uses KUBECONFIG. For both, unless PROMETHEUS_URL and PROMETHEUS_TARGETS_DIR name a
Prometheus already there, the fixtures start Prometheus and kube-state-metrics on the host against
that cluster (hack/cluster.sh monitor-up), so the simulator has its targets folder as on the local one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import yaml

from tests.e2e.cluster import (
    REPO,
    Cluster,
    ManagedProcess,
    Prometheus,
    Simulator,
    free_port,
    parse_env_file,
    python_module,
    wait_until,
)

pytestmark = pytest.mark.e2e


def _default_cluster_bin() -> str:
    result = subprocess.run(
        [str(REPO / "hack" / "build-cluster-binaries.sh")],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@contextmanager
def _host_monitoring(kubeconfig: Path, cluster_bin: str) -> Iterator[dict[str, str]]:
    """Prometheus and kube-state-metrics on the host for a cluster that is already there (kind or
    existing), as hack/cluster.sh starts them for the local one; stopped by pid at the end.
    Yields its env file's values (PROMETHEUS_URL, PROMETHEUS_TARGETS_DIR)."""
    run_dir = Path(tempfile.mkdtemp(prefix="aipolicy-e2e-monitor-"))
    env = {
        **os.environ,
        "CLUSTER_RUN": str(run_dir),
        "CLUSTER_BIN": cluster_bin,
        "KUBECONFIG": str(kubeconfig),
    }
    script = str(REPO / "hack" / "cluster.sh")
    subprocess.run([script, "monitor-up"], env=env, check=True, timeout=300)
    try:
        yield parse_env_file(run_dir / "env")
    finally:
        subprocess.run([script, "down"], env=env, check=False, timeout=120)
        if os.environ.get("AIPOLICY_KEEP_E2E_LOGS") != "1":
            shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    mode = request.config.getoption("--cluster")
    if mode in ("existing", "kind"):
        cluster_bin = request.config.getoption("--cluster-bin") or _default_cluster_bin()
        if mode == "kind":
            kind_cluster = request.getfixturevalue("kind_cluster")
            kubeconfig = Path(kind_cluster.kubeconfig_path)
        else:
            kubeconfig = Path(
                os.environ.get("KUBECONFIG") or pytest.fail("--cluster=existing needs KUBECONFIG")
            )
        kubectl = shutil.which("kubectl") or f"{cluster_bin}/kubectl"
        url, targets = os.environ.get("PROMETHEUS_URL"), os.environ.get("PROMETHEUS_TARGETS_DIR")
        with ExitStack() as stack:
            if not (url and targets):
                # a Prometheus the simulator can give targets to: start one on the host
                values = stack.enter_context(_host_monitoring(kubeconfig, cluster_bin))
                url, targets = values["PROMETHEUS_URL"], values["PROMETHEUS_TARGETS_DIR"]
            yield Cluster(
                kubeconfig,
                kubectl,
                url,
                run_dir=Path(os.environ["CLUSTER_RUN"]) if "CLUSTER_RUN" in os.environ else None,
                targets_dir=Path(targets),
            )
        return

    cluster_bin = request.config.getoption("--cluster-bin") or _default_cluster_bin()
    run_dir = Path(tempfile.mkdtemp(prefix="aipolicy-e2e-"))
    env = {**os.environ, "CLUSTER_RUN": str(run_dir), "CLUSTER_BIN": cluster_bin}
    script = str(REPO / "hack" / "cluster.sh")
    subprocess.run([script, "up"], env=env, check=True, timeout=600)
    try:
        values = parse_env_file(run_dir / "env")
        yield Cluster(
            kubeconfig=run_dir / "kubeconfig",
            kubectl_bin=f"{cluster_bin}/kubectl",
            prometheus_url=values["PROMETHEUS_URL"],
            run_dir=run_dir,
            env_file=run_dir / "env",
            targets_dir=Path(values["PROMETHEUS_TARGETS_DIR"]),
        )
    finally:
        subprocess.run([script, "down"], env=env, check=False, timeout=300)
        if os.environ.get("AIPOLICY_KEEP_E2E_LOGS") != "1":
            shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def crds_installed(cluster: Cluster) -> None:
    """The aipolicy CRDs, applied as a user would, and served."""
    cluster.install_crds("inferenceservices", "aibudgets", "fallbackpolicies")


@contextmanager
def _fresh_namespace(cluster: Cluster, label: str) -> Iterator[str]:
    """A new namespace named after `label`, with its default ServiceAccount ready; deleted after."""
    stem = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    wait_until(
        "the namespace's default ServiceAccount",
        lambda: cluster.kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0,
        timeout=30,
    )
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, with its default ServiceAccount ready."""
    with _fresh_namespace(cluster, request.node.name) as name:
        yield name


@pytest.fixture(scope="module")
def module_namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """One namespace for a module's tests, for the modules whose tests read one expensive setup
    (minutes of traffic) and change nothing in it."""
    with _fresh_namespace(cluster, request.node.name.removesuffix(".py")) as name:
        yield name


def _ready_prometheus(cluster: Cluster) -> Prometheus:
    if not cluster.prometheus_url:
        pytest.fail("this test needs Prometheus: set PROMETHEUS_URL with --cluster=kind or existing")
    handle = Prometheus(cluster.prometheus_url)
    wait_until("Prometheus ready", handle.ready, timeout=30)
    return handle


@pytest.fixture
def prometheus(cluster: Cluster) -> Prometheus:
    # per test: a test before may have stopped or reloaded Prometheus
    return _ready_prometheus(cluster)


@pytest.fixture(scope="module")
def module_prometheus(cluster: Cluster) -> Prometheus:
    return _ready_prometheus(cluster)


OperatorFactory = Callable[..., ManagedProcess]


@pytest.fixture(scope="session")
def operator_kubeconfig(
    cluster: Cluster, crds_installed: None, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A kubeconfig with the operator's own identity: the ServiceAccount of manifests/base with
    exactly the RBAC shipped there. Every e2e test runs the operator with it, so a missing
    permission fails a test, and an excess one is a reviewable line in rbac.yaml."""
    cluster.kubectl("create", "namespace", "aipolicy-system", check=False)
    cluster.kubectl("apply", "-f", str(REPO / "manifests" / "base" / "rbac.yaml"))
    token = cluster.kubectl(
        "-n", "aipolicy-system", "create", "token", "aipolicy", "--duration=24h"
    ).stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": server}],
        "users": [{"name": "aipolicy", "user": {"token": token}}],
        "contexts": [{"name": "aipolicy", "context": {"cluster": "cluster", "user": "aipolicy"}}],
        "current-context": "aipolicy",
    }
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def _operators(cluster: Cluster, operator_kubeconfig: Path, logs: Path) -> Iterator[OperatorFactory]:
    """A factory of operator subprocesses (watching the given namespaces), all stopped at the end."""
    started: list[ManagedProcess] = []
    watched: set[str] = set()

    def start(
        *namespaces: str,
        extra_env: dict[str, str] | None = None,
        metrics_port: int = 0,
        extra_args: Sequence[str] = (),
        kubeconfig: Path | None = None,
    ) -> ManagedProcess:
        # a one-second tick keeps the tests quick; each object's evaluationInterval still applies
        args = python_module("aipolicy", "run", "--metrics-port", str(metrics_port), *extra_args)
        for ns in namespaces:
            args += ["--namespace", ns]
            watched.add(ns)
        if cluster.prometheus_url and "--prometheus-url" not in extra_args:
            args += ["--prometheus-url", cluster.prometheus_url]
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig or operator_kubeconfig),
            "AIPOLICY_TICK_SECONDS": "1",
            **(extra_env or {}),
        }
        process = ManagedProcess(args, env, logs / f"operator-{len(started)}.log").start()
        started.append(process)
        return process

    try:
        yield start
    finally:
        # Delete what the tests made while the operator still runs, so kopf releases its
        # finalizers and the namespaces can go; then stop it.
        for ns in watched:
            cluster.kubectl(
                "delete",
                "inferenceservices,aibudgets,fallbackpolicies",
                "--all",
                "-n",
                ns,
                "--timeout=30s",
                check=False,
                timeout=40,
            )
        for process in started:
            process.stop()


@pytest.fixture
def operator_process(
    cluster: Cluster, operator_kubeconfig: Path, tmp_path: Path
) -> Iterator[OperatorFactory]:
    """Start the operator as a subprocess (watching the given namespaces); stopped at the end."""
    with _operators(cluster, operator_kubeconfig, tmp_path) as start:
        yield start


@pytest.fixture(scope="module")
def module_operator_process(
    cluster: Cluster, operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorFactory]:
    """operator_process for a module-scoped setup (with module_namespace): stopped after the
    module's last test."""
    with _operators(cluster, operator_kubeconfig, tmp_path_factory.mktemp("operator")) as start:
        yield start


@pytest.fixture(scope="session")
def simulator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """One simulator for the run: it follows every namespace's aipolicy pods and serves their
    metrics to Prometheus (file_sd on loopback). Tests give their services traffic and faults."""
    if cluster.targets_dir is None:
        pytest.fail("the simulator needs the local cluster's Prometheus targets folder")
    port = free_port()
    logs = tmp_path_factory.mktemp("simulator")
    args = python_module(
        "aipolicy.sim",
        "serve",
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--port",
        str(port),
        "--targets-dir",
        str(cluster.targets_dir),
        "--tick",
        "0.5",
    )
    process = ManagedProcess(args, {**os.environ}, logs / "simulator.log").start()
    handle = Simulator(f"http://127.0.0.1:{port}", process)
    try:
        wait_until("the simulator", handle.healthy, timeout=30)
        yield handle
    finally:
        process.stop()
