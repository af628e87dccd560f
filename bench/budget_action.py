"""How long from spend crossing a budget threshold (per Prometheus) to the action being applied.

    make cluster-up            # or use the one that runs
    source .cluster/env && PATH=$CLUSTER_BIN:$PATH .venv/bin/python -m bench.budget_action [--repetitions 3]

Each repetition makes an API-backed InferenceService whose spend comes from the simulator's
LiteLLM-style gateway counters, and an AIBudget over it (limit $0.60, Degrade at 50 %, Suspend at
100 %, evaluationInterval 5s) with the operator at its production tick (2 s). Traffic is the
Azure trace replayed 20x faster (about $0.03/s), so both thresholds are crossed within a minute.

* Crossing, per Prometheus: the timestamp of the first scraped sample of the gateway's token
  counters at which tokens x price reach the threshold (the counters start at 0 with the
  service, and the period started before: this is the budget's spend, sample by sample).
* Applied: when the InferenceService's status first shows the mode the action sets (Degraded,
  then Suspended), read every 0.1 s through the API (the mode and its Deployment cap are written
  by the same reconcile).

The goal: one evaluation interval + 2 s. The operator and the simulator are processes this
stops by their pid; the namespace is deleted. Nothing asserts on the numbers.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from kubernetes import client

from aipolicy.sim.model import ServiceId
from aipolicy.sim.targets import service_target_groups, write_json_atomic
from bench.harness import Cluster, Simulator, argument_parser, command_line, finish, live_bench, wait_until

GROUP_VERSION = "aipolicy.dev/v1alpha1"
LIMIT = Decimal("0.60")
THRESHOLDS = ((50, "Degrade", "Degraded"), (100, "Suspend", "Suspended"))
INTERVAL_S = 5
TICK_S = 2  # the operator's production default
INPUT_PER_MILLION, OUTPUT_PER_MILLION = Decimal("0.15"), Decimal("0.60")
TRAFFIC = {"kind": "trace", "speedup": 20, "scale": 1}
POLL_S = 0.1


@dataclass(frozen=True)
class Crossing:
    percent: int
    action: str
    crossed_at: float  # epoch seconds: the sample's timestamp
    applied_at: float  # epoch seconds: first read showing the mode

    @property
    def seconds(self) -> float:
        return self.applied_at - self.crossed_at


def _daily_zone() -> str:
    """A zone where it is about noon now, so no repetition straddles the budget's midnight."""
    offset = (12 - datetime.now(UTC).hour + 12) % 24 - 12
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def _service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name, "labels": {"bench": name}},
        "spec": {
            "model": "gpt-4o-mini",
            "provider": {"url": "https://api.openai.com/v1"},
            "pricing": {
                "inputPerMillionTokens": str(INPUT_PER_MILLION),
                "outputPerMillionTokens": str(OUTPUT_PER_MILLION),
            },
        },
    }


def _budget(name: str, service: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "AIBudget",
        "metadata": {"name": name},
        "spec": {
            "limit": str(LIMIT),
            "period": {"type": "Daily", "timeZone": _daily_zone()},
            "selector": {"matchLabels": {"bench": service}},
            "thresholds": [{"percent": p, "action": a} for p, a, _ in THRESHOLDS],
            "evaluationInterval": f"{INTERVAL_S}s",
        },
    }


def _samples(prometheus_url: str, metric: str, namespace: str, service: str) -> dict[float, float]:
    """Every raw sample of the last 15 minutes of one counter series: {timestamp: value}."""
    selector = f'{metric}{{namespace="{namespace}",service="{service}"}}[15m]'
    query = urllib.parse.urlencode({"query": selector})
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/query?{query}", timeout=30) as response:
        body = json.load(response)
    result = body["data"]["result"]
    if len(result) != 1:
        raise RuntimeError(f"{selector}: {len(result)} series")
    return {float(t): float(v) for t, v in result[0]["values"]}


def crossing_times(prometheus_url: str, namespace: str, service: str) -> dict[int, float]:
    """The first sample timestamp at which the spend reaches each threshold's percent."""
    inputs = _samples(prometheus_url, "litellm_input_tokens_metric_total", namespace, service)
    outputs = _samples(prometheus_url, "litellm_output_tokens_metric_total", namespace, service)
    found: dict[int, float] = {}
    for stamp in sorted(set(inputs) & set(outputs)):  # one target: both counters per scrape
        spent = (
            Decimal(repr(inputs[stamp])) * INPUT_PER_MILLION
            + Decimal(repr(outputs[stamp])) * OUTPUT_PER_MILLION
        ) / Decimal(1_000_000)
        for percent, _, _ in THRESHOLDS:
            if percent not in found and spent * 100 >= LIMIT * percent:
                found[percent] = stamp
    return found


def repetition(
    index: int, namespace: str, simulator: Simulator, prometheus_url: str, cluster: Cluster, targets: Path
) -> list[Crossing]:
    service, budget = f"chat-{index}", f"budget-{index}"
    pin = targets / f"bench-budget-action-{namespace}-{service}.json"
    write_json_atomic(
        pin, service_target_groups(simulator.url.removeprefix("http://"), [ServiceId(namespace, service)])
    )
    custom = client.CustomObjectsApi()
    try:
        simulator.configure(
            namespace,
            service,
            {
                "backend": "api",
                "modelName": "gpt-4o-mini",
                "apiCapacity": {"baseLatencySeconds": 0.2, "outputTokensPerSecond": 400},
            },
        )
        series = f'litellm_input_tokens_metric_total{{namespace="{namespace}",service="{service}"}}'
        query = urllib.parse.urlencode({"query": series})

        def counters_at_zero() -> bool:
            with urllib.request.urlopen(f"{prometheus_url}/api/v1/query?{query}", timeout=10) as response:
                result = json.load(response)["data"]["result"]
            return bool(result) and float(result[0]["value"][1]) == 0

        wait_until(f"{service}'s gateway counters at 0 in Prometheus", counters_at_zero, timeout=60)
        cluster.apply([_service(service), _budget(budget, service)], namespace)

        def evaluated() -> bool:
            body: Any = custom.get_namespaced_custom_object(
                "aipolicy.dev", "v1alpha1", namespace, "aibudgets", budget
            )
            return (body.get("status") or {}).get("state") == "Ok"

        wait_until(f"{budget}'s first evaluation", evaluated, timeout=60)
        simulator.traffic(namespace, service, TRAFFIC)
        applied: dict[str, float] = {}
        deadline = time.monotonic() + 180
        while len(applied) < len(THRESHOLDS):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service} reached modes {sorted(applied)} only")
            isvc: Any = custom.get_namespaced_custom_object(
                "aipolicy.dev", "v1alpha1", namespace, "inferenceservices", service
            )
            mode = (isvc.get("status") or {}).get("mode")
            stamp = time.time()
            for _, _, wanted in THRESHOLDS:
                # Suspended outranks Degraded: seeing it first means both were applied by now
                if wanted not in applied and (mode == wanted or mode == "Suspended"):
                    applied[wanted] = stamp
            time.sleep(POLL_S)
        simulator.stop_traffic(namespace, service)
        time.sleep(3)  # the last scrapes land
        crossed = crossing_times(prometheus_url, namespace, service)
        return [
            Crossing(percent, action, crossed[percent], applied[mode]) for percent, action, mode in THRESHOLDS
        ]
    finally:
        pin.unlink(missing_ok=True)


def table(crossings: list[list[Crossing]], command: str) -> str:
    lines = [
        "## AIBudget: threshold crossed to action applied",
        "",
        f"Command: `{command}` (bench/budget_action.py), on the local cluster. An API-backed",
        f"service's gateway tokens priced per million, a ${LIMIT} Daily budget, evaluationInterval",
        f"{INTERVAL_S}s, operator tick {TICK_S} s, Prometheus scraping every 2 s. Crossing: the first",
        "Prometheus sample at which tokens x price reach the threshold; applied: the first read of",
        "the InferenceService's status in the new mode (polled every 0.1 s).",
        "",
        "| repetition | Degrade at 50 %: s | Suspend at 100 %: s |",
        "|---|---:|---:|",
    ]
    for number, row in enumerate(crossings, 1):
        lines.append(f"| {number} | {row[0].seconds:.1f} | {row[1].seconds:.1f} |")
    columns = [[row[i].seconds for row in crossings] for i in range(len(THRESHOLDS))]
    lines.append(
        "| mean / max | " + " | ".join(f"{statistics.mean(c):.1f} / {max(c):.1f}" for c in columns) + " |"
    )
    lines.append(f"| goal | {INTERVAL_S + 2} (interval + 2 s) | {INTERVAL_S + 2} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args(argv)
    results: list[list[Crossing]] = []
    with live_bench("budget-action") as bench:
        simulator = bench.start_simulator()
        bench.start_operator(tick_seconds=TICK_S)
        for index in range(args.repetitions):
            results.append(
                repetition(
                    index,
                    bench.namespace,
                    simulator,
                    bench.prometheus_url,
                    bench.cluster,
                    Path(bench.targets),
                )
            )
            print(table(results, "(partial)"), file=sys.stderr, flush=True)
    return finish(table(results, command_line("bench.budget_action", argv).strip()), bench.logs)


if __name__ == "__main__":
    sys.exit(main())
