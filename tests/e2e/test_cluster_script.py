"""hack/cluster.sh on bad input: a clear message, exit status, and nothing left running."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.e2e.cluster import REPO

SCRIPT = str(REPO / "hack" / "cluster.sh")


def _run(command: str, run_dir: Path, cluster_bin: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLUSTER_RUN": str(run_dir), "CLUSTER_BIN": str(cluster_bin)}
    return subprocess.run([SCRIPT, command], env=env, capture_output=True, text=True, timeout=120)


def test_down_with_nothing_running_says_so_and_succeeds(tmp_path: Path) -> None:
    result = _run("down", tmp_path / "run", tmp_path / "bin")
    assert result.returncode == 0
    assert "nothing to stop" in result.stderr


def test_up_with_a_missing_binary_says_what_to_run(tmp_path: Path) -> None:
    result = _run("up", tmp_path / "run", tmp_path / "empty-bin")
    assert result.returncode != 0
    assert "is missing" in result.stderr and "make cluster-binaries" in result.stderr


def test_up_with_a_corrupt_binary_says_so_and_starts_nothing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
        "kwok",
        "kube-state-metrics",
    ):
        path = bin_dir / name
        path.write_bytes(b"\x7fELF garbage")
        path.chmod(0o755)
    result = _run("up", tmp_path / "run", bin_dir)
    assert result.returncode != 0
    assert "does not run (corrupt?)" in result.stderr
    assert not list((tmp_path / "run").glob("pids/*.pid"))


def test_up_while_a_cluster_runs_refuses_and_leaves_it_alone(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "pids").mkdir(parents=True)
    # a stand-in for a running etcd of an earlier cluster
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (run_dir / "pids" / "etcd.pid").write_text(str(sleeper.pid))
        result = _run("up", run_dir, tmp_path / "bin")
        assert result.returncode != 0
        assert "a cluster already runs" in result.stderr and "make cluster-down" in result.stderr
        assert sleeper.poll() is None, "up stopped the running cluster"
    finally:
        sleeper.send_signal(signal.SIGTERM)
        sleeper.wait(timeout=10)
