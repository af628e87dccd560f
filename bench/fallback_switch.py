"""How fast a FallbackPolicy moves the front door, on the live local cluster.

    make cluster-up            # or use the one that runs
    source .cluster/env && PATH=$CLUSTER_BIN:$PATH .venv/bin/python -m bench.fallback_switch [--repetitions 3]

It makes a namespace with a large model (one A100 GPU) and a small one (one L4 GPU), starts the
operator (1 s tick, as the e2e tests) and, unless `--simulator-url` names a running one, the
simulator, both as processes it stops by pid. The large model gets steady traffic and a
FallbackPolicy (ErrorRate > 0.2 over 10s for 5s, evaluationInterval 2s, holdFor 10s). Each
repetition injects errorRate 1.0, times until the front door Service selects the small model's
pods, clears the fault, and times until it selects the large model's again. It also notes when
the policy's status decided each switch, to tell the decision from the front door's follow-up.

The goals: fault -> switch within `for` + evaluationInterval + 2 s (one scrape); clear -> switch
back within window + holdFor + evaluationInterval + 2 s (the errors must first leave the rate
window before any trigger reads clear and the hold starts). Nothing asserts on the numbers.
"""

from __future__ import annotations

import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from bench.harness import (
    Cluster,
    LiveBench,
    ManagedProcess,
    Simulator,
    argument_parser,
    live_bench,
    wait_until,
)

GROUP_VERSION = "aipolicy.dev/v1alpha1"
SERVICE_LABEL = "aipolicy.dev/service"
LARGE, SMALL, POLICY = "large", "small", "fallback"
WINDOW_S, FOR_S, EVALUATION_S, HOLD_S, SCRAPE_S = 10, 5, 2, 10, 2
POLL_S = 0.1


@dataclass(frozen=True)
class Repetition:
    decided: float  # fault -> status.active (the policy's decision, in the API)
    switched: float  # fault -> front door selects the small model
    decided_back: float  # clear -> status.active false
    switched_back: float  # clear -> front door selects the large model again


def _isvc(name: str, product: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "model": f"example/{name}",
            "serving": {
                "image": "vllm/vllm-openai:v0.6.3",
                "gpu": {"count": 1, "product": product},
                "resources": {"cpu": "1", "memory": "4Gi"},
            },
            "pricing": {"gpuHour": "2.50"},
            "scaling": {"minReplicas": 1, "maxReplicas": 1},
        },
    }


def _policy() -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "FallbackPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "target": LARGE,
            "triggers": [
                {"type": "ErrorRate", "threshold": 0.2, "window": f"{WINDOW_S}s", "for": f"{FOR_S}s"}
            ],
            "chain": [{"inferenceService": SMALL}],
            # the next repetition's switch must not wait for the last one (default 30s)
            "recovery": {"holdFor": f"{HOLD_S}s", "minSwitchInterval": "2s"},
            "evaluationInterval": f"{EVALUATION_S}s",
        },
    }


class Watcher:
    """Reads the front door and the policy through the API client: a kubectl process per poll
    would add ~0.1 s of its own to every reading."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.core = client.CoreV1Api()
        self.custom = client.CustomObjectsApi()

    def selected(self) -> str | None:
        spec = self.core.read_namespaced_service(LARGE, self.namespace).spec
        selector: dict[str, str] = (spec.selector if spec is not None else None) or {}
        return selector.get(SERVICE_LABEL)

    def active(self) -> bool:
        body: dict[str, Any] = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
            "aipolicy.dev", "v1alpha1", self.namespace, "fallbackpolicies", POLICY
        )
        return bool((body.get("status") or {}).get("active"))

    def time_both(
        self, started: float, want_active: bool, want_selected: str, timeout: float
    ) -> tuple[float, float]:
        """Seconds from `started` until the policy decided and until the front door followed."""
        decided = switched = None
        deadline = started + timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            if decided is None and self.active() == want_active:
                decided = now - started
            if switched is None and self.selected() == want_selected:
                switched = time.monotonic() - started
            if decided is not None and switched is not None:
                return decided, switched
            time.sleep(POLL_S)
        raise TimeoutError(f"no switch to {want_selected} within {timeout:.0f}s")


def _ready(cluster: Cluster, namespace: str, name: str) -> Callable[[], bool]:
    def ready() -> bool:
        status = (cluster.get("inferenceservice", name, namespace) or {}).get("status") or {}
        return bool(status.get("readyReplicas") == 1)

    return ready


def run(repetitions: int, simulator_url: str | None) -> tuple[list[Repetition], Path]:
    with live_bench("fallback", "inferenceservices", "fallbackpolicies") as bench:
        try:
            return _repetitions(bench, repetitions, simulator_url), bench.logs
        finally:
            # delete while the operator runs, so kopf releases its finalizers; the end of
            # live_bench then stops the processes by pid
            bench.cluster.kubectl(
                "delete",
                "fallbackpolicies,inferenceservices",
                "--all",
                "-n",
                bench.namespace,
                "--timeout=60s",
                check=False,
            )


def _repetitions(bench: LiveBench, repetitions: int, simulator_url: str | None) -> list[Repetition]:
    cluster, namespace = bench.cluster, bench.namespace
    if simulator_url is None:
        simulator = bench.start_simulator()
    else:  # someone else's: never started, so never stopped, here
        simulator = Simulator(simulator_url, ManagedProcess([], {}, bench.logs / "none.log"))
    bench.start_operator(tick_seconds=1)

    cluster.apply([_isvc(LARGE, "NVIDIA-A100-SXM4-40GB"), _isvc(SMALL, "NVIDIA-L4")], namespace)
    for name in (LARGE, SMALL):
        wait_until(f"{name} ready", _ready(cluster, namespace, name), timeout=120)
    traffic = {"kind": "constant", "rate": 5, "duration": 3600, "promptTokens": 100, "outputTokens": 20}
    simulator.traffic(namespace, LARGE, traffic)
    cluster.apply(_policy(), namespace)
    watcher = Watcher(namespace)

    def watching() -> bool:
        body = cluster.get("fallbackpolicy", POLICY, namespace) or {}
        conditions = (body.get("status") or {}).get("conditions") or []
        return any(c["type"] == "FallbackActive" and c["reason"] == "TriggersClear" for c in conditions)

    wait_until("the policy reading a clear error rate", watching, timeout=120)
    results = []
    for n in range(repetitions):
        started = time.monotonic()
        simulator.fault(namespace, LARGE, errorRate=1.0)
        decided, switched = watcher.time_both(started, True, SMALL, timeout=120)
        started = time.monotonic()
        simulator.clear_fault(namespace, LARGE)
        decided_back, switched_back = watcher.time_both(started, False, LARGE, timeout=120)
        results.append(Repetition(decided, switched, decided_back, switched_back))
        print(f"repetition {n + 1}: switch {switched:.1f}s, back {switched_back:.1f}s", file=sys.stderr)
    simulator.stop_traffic(namespace, LARGE)
    return results


def table(results: list[Repetition], command: str) -> str:
    goal = FOR_S + EVALUATION_S + SCRAPE_S
    goal_back = WINDOW_S + HOLD_S + EVALUATION_S + SCRAPE_S

    def stats(values: list[float]) -> str:
        return f"{statistics.mean(values):.1f} / {max(values):.1f}"

    lines = [
        f"Command: `{command}`",
        "",
        f"Policy: ErrorRate > 0.2 over {WINDOW_S}s for {FOR_S}s, evaluationInterval {EVALUATION_S}s, "
        f"holdFor {HOLD_S}s; Prometheus scrapes every {SCRAPE_S}s; operator tick 1s; fault errorRate 1.0.",
        "",
        "| repetition | fault → policy decides (s) | fault → front door switched (s) "
        "| clear → policy decides (s) | clear → front door back (s) |",
        "|---|---|---|---|---|",
    ]
    for n, r in enumerate(results, 1):
        lines.append(
            f"| {n} | {r.decided:.1f} | {r.switched:.1f} | {r.decided_back:.1f} | {r.switched_back:.1f} |"
        )
    lines += [
        f"| mean / max | {stats([r.decided for r in results])} | {stats([r.switched for r in results])} "
        f"| {stats([r.decided_back for r in results])} | {stats([r.switched_back for r in results])} |",
        f"| goal | | {goal} (for + evaluationInterval + 2 s) | "
        f"| {goal_back} (window + holdFor + evaluationInterval + 2 s) |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--simulator-url", help="a running simulator (default: start one)")
    options = parser.parse_args()
    results, logs = run(options.repetitions, options.simulator_url)
    command = "python -m bench.fallback_switch " + shlex.join(sys.argv[1:])
    print(table(results, command.strip()))
    print(f"\n(logs: {logs})", file=sys.stderr)


if __name__ == "__main__":
    main()
