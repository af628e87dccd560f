"""`make demo`: aipolicy on a local cluster, with the real Azure trace replayed as traffic.

It starts (or reuses) the loopback cluster, installs the CRDs, starts the simulator and the
operator, applies hack/demo/manifests.yaml, then narrates a few minutes: traffic scales the
large model up, the budget fills and notifies then degrades, an injected error storm switches
the large model's front door to the small model, and it switches back once healthy. It ends with
`aipolicy report` for the demo's namespace, as a table and as an HTML page whose path it prints.
At the end everything it started is stopped by pid (the cluster too, unless it was already
running). With ``--screenshots DIR`` it also writes the README's pictures there: the output of
`kubectl get aisvc -o wide` while traffic flows, and the HTML report rendered by headless Chromium.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "aipolicy-demo"


class Demo:
    def __init__(self, cluster_bin: str, run_dir: Path, screenshots: Path | None = None) -> None:
        self.cluster_bin = cluster_bin
        self.run_dir = run_dir
        self.screenshots = screenshots
        self.env = {**os.environ, "CLUSTER_RUN": str(run_dir), "CLUSTER_BIN": cluster_bin}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.started_cluster = False
        self.sim_url = ""
        self.gateway_url = ""
        self.clients: Any = None
        self.prometheus_url = ""
        self.operator_target: Path | None = None

    # -- plumbing ---------------------------------------------------------------------------
    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [f"{self.cluster_bin}/kubectl", f"--kubeconfig={self.run_dir}/kubeconfig", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)}: {result.stderr}")
        return result.stdout

    def cluster(self, command: str) -> None:
        subprocess.run([str(REPO / "hack" / "cluster.sh"), command], env=self.env, check=True, timeout=600)

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = (self.run_dir / "logs" / f"demo-{name}.log").open("wb")
        process = subprocess.Popen(args, env=env or self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        self.processes.append(process)

    def sim(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        request = urllib.request.Request(
            f"{self.sim_url}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).close()

    def say(self, text: str) -> None:
        print(f"\n\033[1m== {text}\033[0m", flush=True)

    def show(self) -> None:
        print(self.kubectl("get", "ai", "-n", NAMESPACE), flush=True)
        if self.clients is not None:
            print(self.clients.summary(), flush=True)

    def watch(self, seconds: float, every: float = 15) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(min(every, max(0.0, end - time.monotonic())))
            self.show()

    # -- the story ----------------------------------------------------------------------------
    def up(self) -> None:
        if (self.run_dir / "env").exists() and subprocess.run(
            [str(REPO / "hack" / "cluster.sh"), "status"], env=self.env, capture_output=True, text=True
        ).stdout.count("running") >= 7:
            self.say("using the local cluster that already runs")
        else:
            self.say(
                "starting the local cluster (etcd, kube-apiserver, scheduler, kwok GPU nodes, Prometheus)"
            )
            self.cluster("up")
            self.started_cluster = True
        env = dict(line.removeprefix("export ").split("=", 1) for line in _env_lines(self.run_dir / "env"))
        print(self.kubectl("get", "nodes", "-L", "nvidia.com/gpu.product"))
        self.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        self.kubectl("wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/part-of=aipolicy")
        self.kubectl("create", "namespace", NAMESPACE, check=False)

        port, metrics_port = _free_port(), _free_port()
        self.sim_url = f"http://127.0.0.1:{port}"
        self.spawn(
            "simulator",
            sys.executable,
            "-m",
            "aipolicy.sim",
            "serve",
            "--kubeconfig",
            f"{self.run_dir}/kubeconfig",
            "--namespace",
            NAMESPACE,
            "--port",
            str(port),
            "--targets-dir",
            env["PROMETHEUS_TARGETS_DIR"],
            "--tick",
            "0.5",
        )
        self.spawn(
            "operator",
            sys.executable,
            "-m",
            "aipolicy",
            "run",
            "--namespace",
            NAMESPACE,
            "--prometheus-url",
            env["PROMETHEUS_URL"],
            "--metrics-port",
            str(metrics_port),
            env={**self.env, "KUBECONFIG": f"{self.run_dir}/kubeconfig", "AIPOLICY_TICK_SECONDS": "1"},
        )
        # Prometheus scrapes the operator as job aipolicy-operator (loopback, file_sd), so the
        # report and the dashboard see modes, fallbacks and budget spend over time.
        self.operator_target = Path(env["PROMETHEUS_TARGETS_DIR"]) / "aipolicy-operator.json"
        self.operator_target.write_text(
            json.dumps([{"targets": [f"127.0.0.1:{metrics_port}"], "labels": {"job": "aipolicy-operator"}}])
        )
        self.prometheus_url = env["PROMETHEUS_URL"]
        _wait(lambda: _ok(f"{self.sim_url}/healthz"), "the simulator")
        gateway_port = _free_port()
        self.gateway_url = f"http://127.0.0.1:{gateway_port}"
        self.spawn(
            "gateway",
            sys.executable,
            "-m",
            "aipolicy",
            "gateway",
            "--namespace",
            NAMESPACE,
            "--port",
            str(gateway_port),
            "--kubeconfig",
            f"{self.run_dir}/kubeconfig",
            "--pod-url-template",
            self.sim_url + "/pods/{namespace}/{pod}",
            "--targets-dir",
            env["PROMETHEUS_TARGETS_DIR"],
        )
        _wait(lambda: _ok(f"{self.gateway_url}/healthz"), "the gateway")

    def story(self) -> None:
        self.say("applying a large model, a small model, a fallback policy and a team budget")
        print(self.kubectl("apply", "-n", NAMESPACE, "-f", str(REPO / "hack" / "demo" / "manifests.yaml")))
        for name, capacity in (("llama-70b", 12000), ("llama-1b", 30000)):
            self.sim(
                "PUT",
                f"/services/{NAMESPACE}/{name}",
                {"capacity": {"prefillTokensPerSecond": capacity, "decodeTokensPerSecond": capacity / 5}},
            )
        # an API-backed model: its status prices its own traffic on the GPUs it names
        self.sim(
            "PUT",
            f"/services/{NAMESPACE}/gpt-4o-mini",
            {
                "backend": "api",
                "modelName": "gpt-4o-mini",
                "apiCapacity": {"baseLatencySeconds": 0.3, "outputTokensPerSecond": 120},
            },
        )
        self.watch(20, every=10)

        from demo_gateway import GatewayClients  # hack/, next to this script

        self.say(f"real clients: 2 requests/s through the gateway ({self.gateway_url}), sized from the trace")
        self.clients = GatewayClients(self.gateway_url, "meta-llama/Llama-3.1-70B-Instruct")
        self.clients.start()

        self.say("replaying the Azure LLM trace (one real hour, 5x faster) into llama-70b")
        self.sim("PUT", f"/traffic/{NAMESPACE}/llama-70b", {"kind": "trace", "speedup": 5, "scale": 1})
        self.sim("PUT", f"/traffic/{NAMESPACE}/llama-1b", {"kind": "constant", "rate": 1, "duration": 900})
        self.sim(
            "PUT",
            f"/traffic/{NAMESPACE}/gpt-4o-mini",
            {"kind": "constant", "rate": 3, "duration": 900, "promptTokens": 1500, "outputTokens": 200},
        )
        self.watch(60)

        self.say("injecting errors into llama-70b: its front door should switch to llama-1b")
        self.sim("PUT", f"/faults/{NAMESPACE}/llama-70b", {"errorRate": 0.6})
        self.watch(45)
        print(self.kubectl("get", "service", "llama-70b", "-n", NAMESPACE, "-o", "wide"))

        self.say("clearing the fault: llama-70b gets its traffic back after the 30 s recovery hold")
        self.sim("DELETE", f"/faults/{NAMESPACE}/llama-70b")
        self.watch(60)
        self.say("unit economics: cost per 1,000 requests, latency, errors, idle GPU-hours")
        wide = self.kubectl("get", "aisvc", "-n", NAMESPACE, "-o", "wide")
        print(wide, flush=True)
        if self.screenshots is not None:
            self.screenshots.mkdir(parents=True, exist_ok=True)
            (self.screenshots / "kubectl-get-aisvc-wide.txt").write_text(wide)

        self.say("lowering the team budget's limit: it suspends the team, the gateway answers 429")
        self.kubectl(
            "patch",
            "aibudget",
            "demo-daily",
            "-n",
            NAMESPACE,
            "--type=merge",
            "-p",
            '{"spec":{"limit":"0.01"}}',
        )
        self.watch(30, every=10)
        if self.clients is not None:
            print(f"the client read: {self.clients.last_refusal or '(no 429 yet)'}", flush=True)
            self.clients.stop()

        self.say("what happened, as events")
        print(
            self.kubectl(
                "get",
                "events",
                "-n",
                NAMESPACE,
                "--field-selector",
                "involvedObject.apiVersion=aipolicy.dev/v1alpha1",
                "--sort-by=.lastTimestamp",
            )
        )

    def report(self) -> None:
        self.say("what it cost and how it served: aipolicy report for the last 10 minutes")
        env = {**self.env, "KUBECONFIG": f"{self.run_dir}/kubeconfig", "PROMETHEUS_URL": self.prometheus_url}
        command = [sys.executable, "-m", "aipolicy", "report", "-n", NAMESPACE, "--since", "10m"]
        subprocess.run(command, env=env, check=True, timeout=120, cwd=REPO)
        page = self.run_dir / "aipolicy-report.html"
        subprocess.run(
            [*command, "-o", "html", "--file", str(page)], env=env, check=True, timeout=120, cwd=REPO
        )
        self.say(f"the HTML report (opens offline in a browser): {page}")
        if self.screenshots is not None:
            self.screenshot(page, self.screenshots / "aipolicy-report.png")

    def screenshot(self, page: Path, png: Path) -> None:
        """The page as headless Chromium draws it (as tests/e2e/test_report.py renders it)."""
        chromium = shutil.which("chromium")
        if chromium is None:
            raise SystemExit("--screenshots needs chromium (hack/install-chromium.sh)")
        png.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={self.run_dir / 'chromium-profile'}", "--hide-scrollbars",
                f"--screenshot={png}", "--window-size=1280,1780", page.as_uri(),
            ],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        self.say(f"screenshots written to {png.parent}")

    def down(self) -> None:
        self.say("cleaning up")
        if self.operator_target is not None:
            self.operator_target.unlink(missing_ok=True)
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self.started_cluster:
            self.cluster("down")
        else:
            self.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def _env_lines(path: Path) -> list[str]:
    return [word for line in path.read_text().splitlines() for word in line.removeprefix("export ").split()]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ok(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except OSError:
        return False
    return True


def _wait(probe: Any, what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cluster-bin", required=True)
    parser.add_argument("--run-dir", default=str(REPO / ".cluster"))
    parser.add_argument("--screenshots", type=Path, help="write the README's pictures into this folder")
    args = parser.parse_args()
    demo = Demo(args.cluster_bin, Path(args.run_dir), args.screenshots)
    try:
        demo.up()
        demo.story()
        demo.report()
    finally:
        demo.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
