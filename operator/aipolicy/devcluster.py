"""Handles on a live development cluster, its Prometheus, the simulator and the operator as
processes stopped by pid: what the e2e tests (tests/e2e) and the live-cluster benchmarks
(bench/) both drive. Not used by the operator itself; it needs a checkout (REPO), since it
runs hack/cluster.sh and starts processes from the repository's root.

Everything here talks to 127.0.0.1 only: the apiserver, Prometheus, and processes we start.
"""

from __future__ import annotations

import builtins
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = [
    "REPO",
    "Cluster",
    "ManagedProcess",
    "Prometheus",
    "Simulator",
    "free_port",
    "http_ready",
    "parse_env_file",
    "python_module",
    "started",
    "wait_until",
]

#: the checkout this package is installed from (editable): operator/aipolicy/devcluster.py
REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.5) -> T:
    """Poll probe until it returns something truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass
class Cluster:
    """A cluster reachable with kubectl; kubectl is the real, built one."""

    kubeconfig: Path
    kubectl_bin: str
    prometheus_url: str | None
    run_dir: Path | None = None
    env_file: Path | None = None
    targets_dir: Path | None = None

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}{result.stdout}")
        return result

    def apply(
        self,
        manifest: str | dict[str, Any] | list[dict[str, Any]],
        namespace: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        text = (
            manifest
            if isinstance(manifest, str)
            else yaml.safe_dump_all(manifest if isinstance(manifest, list) else [manifest])
        )
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        return self.kubectl(*args, stdin=text, check=check)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
        result = self.kubectl(*args, check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise AssertionError(result.stderr)
        obj: dict[str, Any] = json.loads(result.stdout)
        return obj

    def list(
        self, kind: str, namespace: str | None = None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        args = ["get", kind, "-o", "json"]
        args += ["-n", namespace] if namespace else ["-A"]
        if selector:
            args += ["-l", selector]
        items: list[dict[str, Any]] = json.loads(self.kubectl(*args).stdout)["items"]
        return items

    # (builtins.list: inside the class, `list` is the method above)
    def events(self, namespace: str, involved: str | None = None) -> builtins.list[dict[str, Any]]:
        items = self.list("events", namespace)
        return [e for e in items if involved is None or e["involvedObject"].get("name") == involved]

    def install_crds(self, *served: str) -> None:
        """Apply crds/ server-side, as a user would; wait until the named ones (plural names)
        are Established. Polled, not `kubectl wait`: right after the apply a CRD may have no
        conditions yet, and `kubectl wait` then fails instead of waiting."""
        self.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        for crd in served:
            wait_until(f"crd/{crd}.aipolicy.dev Established", partial(self._established, crd), timeout=60)

    def _established(self, crd: str) -> bool:
        query = '{.status.conditions[?(@.type=="Established")].status}'
        result = self.kubectl("get", f"crd/{crd}.aipolicy.dev", "-o", f"jsonpath={query}", check=False)
        return result.stdout.strip() == "True"

    def cluster_script(self, *args: str) -> None:
        """Run hack/cluster.sh against this (local) cluster, e.g. prometheus-stop."""
        assert self.run_dir is not None, "only the local cluster can be driven by hack/cluster.sh"
        env = {**os.environ, "CLUSTER_RUN": str(self.run_dir)}
        subprocess.run([str(REPO / "hack" / "cluster.sh"), *args], check=True, env=env, timeout=120)


@dataclass
class Prometheus:
    """A Prometheus HTTP API handle (loopback)."""

    url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        qs = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{qs}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, promql: str) -> float | None:
        """The single value of a query, or None when it has no result."""
        result = self.query(promql)
        if not result:
            return None
        assert len(result) == 1, f"{promql} returned {len(result)} series"
        return float(result[0]["value"][1])

    def ready(self) -> bool:
        return http_ready(self.url)


@dataclass
class ManagedProcess:
    """A process an e2e test started; stopped by its pid, never by name."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None)

    def start(self) -> ManagedProcess:
        assert self.process is None or self.process.poll() is not None, "already running"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        log.close()
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """Die like a crash: SIGKILL, no clean-up."""
        self.stop(signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def http_ready(url: str) -> bool:
    """`url`/-/ready answers 200 (Prometheus, Alertmanager)."""
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


@contextmanager
def started(process: ManagedProcess) -> Iterator[ManagedProcess]:
    process.start()
    try:
        yield process
    finally:
        process.stop()


def parse_env_file(path: Path) -> dict[str, str]:
    """Read hack/cluster.sh's `env` file (lines of `export A=1 B=2`)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        for word in line.removeprefix("export ").split():
            key, _, value = word.partition("=")
            values[key] = value
    return values


def free_port() -> int:
    """A loopback port free now (the caller binds it soon after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Simulator:
    """The model-server simulator (a subprocess): its control API on 127.0.0.1."""

    url: str
    process: ManagedProcess

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        try:
            return json.loads(text) if text else None
        except ValueError:
            return text.decode()

    def configure(self, namespace: str, service: str, spec: dict[str, Any]) -> None:
        self._call("PUT", f"/services/{namespace}/{service}", spec)

    def traffic(self, namespace: str, service: str, spec: dict[str, Any]) -> None:
        self._call("PUT", f"/traffic/{namespace}/{service}", spec)

    def stop_traffic(self, namespace: str, service: str) -> None:
        self._call("DELETE", f"/traffic/{namespace}/{service}")

    def fault(self, namespace: str, service: str, **fault: Any) -> None:
        self._call("PUT", f"/faults/{namespace}/{service}", fault)

    def clear_fault(self, namespace: str, service: str) -> None:
        self._call("DELETE", f"/faults/{namespace}/{service}")

    def state(self) -> Any:
        return self._call("GET", "/state")

    def healthy(self) -> bool:
        try:
            self._call("GET", "/healthz")
        except OSError:
            return False
        return True
