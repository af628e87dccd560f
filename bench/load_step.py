"""How long from a step in load to the Deployment patch that scales for it, on the local cluster.

    make cluster-up            # or use the one that runs
    source .cluster/env && PATH=$CLUSTER_BIN:$PATH .venv/bin/python -m bench.load_step [--repetitions 3]

A self-hosted InferenceService on one A100 (kwok) scales on RequestsInFlight (target 8 per
replica, 1 to 4 replicas) with the defaults a user gets: evaluationInterval 15s, no scale-up
stabilization, the operator's 2 s tick. The simulator serves it (16 concurrent sequences per
replica) with 2 requests/s; each repetition steps the load to 25 requests/s and times:

* load step -> Deployment patched: from the traffic change to the first read (every 0.1 s,
  through the API) of the Deployment with more replicas;
* over target -> patched: from the first Prometheus sample of requests in flight above the
  target's tolerance to the same read, i.e. the operator's own share (the rest is the requests
  piling up and being scraped).

Then the load steps back and the Deployment returns to one replica before the next repetition.
The operator and the simulator are processes this stops by their pid; the namespace is
deleted. Nothing asserts on the numbers.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from bench.harness import Simulator, argument_parser, command_line, finish, live_bench, wait_until

GROUP_VERSION = "aipolicy.dev/v1alpha1"
SERVICE = "chat"
TARGET = 8.0
TOLERANCE = 0.1
LOW_RATE, HIGH_RATE = 2.0, 25.0
CAPACITY = {
    "capacity": {"prefillTokensPerSecond": 20000, "decodeTokensPerSecond": 3000, "maxConcurrentSequences": 16}
}
POLL_S = 0.1


@dataclass(frozen=True)
class Step:
    to_patch: float  # load step -> Deployment has more replicas
    over_target_to_patch: float  # first sample over target -> Deployment has more replicas
    replicas: int


def _service() -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": SERVICE},
        "spec": {
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "serving": {
                "image": "vllm/vllm-openai:v0.6.3",
                "gpu": {"count": 1, "product": "NVIDIA-A100-SXM4-40GB"},
                "podAnnotations": {"kwok.aipolicy.dev/ready-delay": "2s"},
            },
            "pricing": {"gpuHour": "2.00"},
            "scaling": {
                "minReplicas": 1,
                "maxReplicas": 4,
                "metric": {"type": "RequestsInFlight", "target": TARGET},
                "tolerance": TOLERANCE,
                # back to one replica soon after the load steps down, for the next repetition
                "scaleDownStabilization": "20s",
            },
        },
    }


def _traffic(rate: float) -> dict[str, Any]:
    return {"kind": "constant", "rate": rate, "duration": 900, "promptTokens": 200, "outputTokens": 60}


def _first_over_target(prometheus_url: str, namespace: str, since: float) -> float | None:
    """The first sample after `since` of requests in flight per ready replica above the target's
    tolerance band, from the raw samples of the last two minutes."""
    running = f'sum(vllm:num_requests_running{{namespace="{namespace}",service="{SERVICE}"}})'
    ready = f'sum(kube_deployment_status_replicas_ready{{namespace="{namespace}",deployment="{SERVICE}"}})'
    query = urllib.parse.urlencode(
        {
            "query": f"({running} / {ready})",
            "start": f"{since - 5:.3f}",
            "end": f"{time.time():.3f}",
            "step": "1s",
        }
    )
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/query_range?{query}", timeout=30) as response:
        result = json.load(response)["data"]["result"]
    if not result:
        return None
    for stamp, value in result[0]["values"]:
        if float(stamp) >= since and float(value) > TARGET * (1 + TOLERANCE):
            return float(stamp)
    return None


def repetition(namespace: str, simulator: Simulator, prometheus_url: str) -> Step:
    apps = client.AppsV1Api()

    def replicas() -> int:
        try:
            spec = apps.read_namespaced_deployment(SERVICE, namespace).spec
        except client.ApiException as error:
            if error.status == 404:  # not made yet
                return 0
            raise
        return int(spec.replicas or 0) if spec is not None else 0

    wait_until("one replica before the step", lambda: replicas() == 1, timeout=180)
    simulator.traffic(namespace, SERVICE, _traffic(LOW_RATE))
    time.sleep(20)  # settled at the low load
    stepped = time.time()
    simulator.traffic(namespace, SERVICE, _traffic(HIGH_RATE))
    deadline = time.monotonic() + 120
    while (now_replicas := replicas()) <= 1:
        if time.monotonic() > deadline:
            raise TimeoutError("no scale-up within 120 s of the load step")
        time.sleep(POLL_S)
    patched = time.time()
    time.sleep(2)  # the sample over target is scraped by now
    over = _first_over_target(prometheus_url, namespace, stepped)
    simulator.stop_traffic(namespace, SERVICE)
    return Step(
        to_patch=patched - stepped,
        over_target_to_patch=(patched - over) if over is not None else float("nan"),
        replicas=now_replicas,
    )


def table(steps: list[Step], command: str) -> str:
    lines = [
        "## InferenceService: load step to Deployment patch",
        "",
        f"Command: `{command}` (bench/load_step.py), on the local cluster with the simulator.",
        f"RequestsInFlight target {TARGET:g} per replica, evaluationInterval 15s (the default), operator",
        "tick 2 s, Prometheus scraping every 2 s; the load steps from "
        f"{LOW_RATE:g} to {HIGH_RATE:g} requests/s.",
        "",
        "| repetition | load step -> patch s | over target (per Prometheus) -> patch s | replicas |",
        "|---|---:|---:|---:|",
    ]
    for number, step in enumerate(steps, 1):
        lines.append(
            f"| {number} | {step.to_patch:.1f} | {step.over_target_to_patch:.1f} | 1 -> {step.replicas} |"
        )
    if steps:
        to_patch = [s.to_patch for s in steps]
        over = [s.over_target_to_patch for s in steps]
        lines.append(
            f"| mean / max | {statistics.mean(to_patch):.1f} / {max(to_patch):.1f} "
            f"| {statistics.mean(over):.1f} / {max(over):.1f} | |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args(argv)
    steps: list[Step] = []
    with live_bench("load-step") as bench:
        simulator = bench.start_simulator()
        simulator.configure(bench.namespace, SERVICE, CAPACITY)
        bench.start_operator()
        bench.cluster.apply(_service(), bench.namespace)
        for _ in range(args.repetitions):
            steps.append(repetition(bench.namespace, simulator, bench.prometheus_url))
            print(table(steps, "(partial)"), file=sys.stderr, flush=True)
    return finish(table(steps, command_line("bench.load_step", argv).strip()), bench.logs)


if __name__ == "__main__":
    sys.exit(main())
