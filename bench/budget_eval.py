"""How AIBudget evaluation scales with the number of budgets, on the live local cluster.

    make cluster-up            # or use the one that runs
    source .cluster/env && .venv/bin/python -m bench.budget_eval [--sizes 1,10,50] [--cycles 6]

For each size N it makes a namespace with N AIBudgets (evaluationInterval 5s) and K API-backed
InferenceServices for each (`--services-per-budget`, 1 by default; 100 budgets over 1,000
services is `--sizes 100 --services-per-budget 10`), runs the operator as a process watching that namespace
(production tick, its own /metrics on a loopback port), lets every budget catch up, then
measures over `--cycles` evaluation cycles:

* Prometheus queries per cycle: `aipolicy_prometheus_queries_total` (the query cache counts
  what it really sends, after coalescing identical queries at one evaluation instant);
* budget evaluations per cycle and the mean time of one (`aipolicy_evaluation_seconds`);
* the operator's resident memory (VmRSS, and its peak VmHWM) at the end.

API-backed services need no GPUs, so the benchmark leaves the cluster's GPUs to others. The
operator is stopped by its pid and everything it made is deleted. Nothing asserts on the numbers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import REPO, argument_parser, command_line, finish, free_port, kubectl, sourced_with_crds

INTERVAL_SECONDS = 5
GROUP_VERSION = "aipolicy.dev/v1alpha1"


@dataclass(frozen=True)
class Row:
    budgets: int
    services: int
    cycles: int
    queries_per_cycle: float
    evaluations_per_cycle: float
    mean_evaluation_ms: float
    catch_up_seconds: float
    rss_mib: float
    peak_rss_mib: float


def manifests(count: int, services_per_budget: int = 1) -> list[dict[str, Any]]:
    """`count` budgets (Daily, UTC, evaluated every 5s), each over its own
    `services_per_budget` API-backed services."""
    objects: list[dict[str, Any]] = []
    for s in range(count * services_per_budget):
        i = s % count
        objects.append(
            {
                "apiVersion": GROUP_VERSION,
                "kind": "InferenceService",
                "metadata": {"name": f"svc-{s}", "labels": {"slot": str(i)}},
                "spec": {
                    "model": "gpt-4o-mini",
                    "provider": {"url": "https://api.openai.com/v1"},
                    "pricing": {"inputPerMillionTokens": "0.15", "outputPerMillionTokens": "0.60"},
                },
            }
        )
    for i in range(count):
        objects.append(
            {
                "apiVersion": GROUP_VERSION,
                "kind": "AIBudget",
                "metadata": {"name": f"budget-{i}"},
                "spec": {
                    "limit": "1000000",
                    "period": {"type": "Daily"},
                    "selector": {"matchLabels": {"slot": str(i)}},
                    "thresholds": [{"percent": 80, "action": "Notify"}],
                    "evaluationInterval": f"{INTERVAL_SECONDS}s",
                },
            }
        )
    return objects


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The operator's /metrics as {(sample name, labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _budget_sample(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return values.get((name, (("kind", "AIBudget"),)), 0.0)


def _memory_mib(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM (peak) of a process, in MiB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(rest.split()[0]) / 1024  # kB
    return fields["VmRSS"], fields["VmHWM"]


def _all_caught_up(namespace: str, count: int) -> bool:
    """Every budget evaluated up to the last or the previous cycle (not still catching up)."""
    items = json.loads(kubectl("-n", namespace, "get", "aibudgets", "-o", "json"))["items"]
    horizon = time.time() - 3 * INTERVAL_SECONDS
    done = 0
    for item in items:
        last = (item.get("status") or {}).get("lastEvaluated")
        if last and datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp() >= horizon:
            done += 1
    return done == count


def _next_cycle_phase(phase: float) -> None:
    """Sleep until `phase` seconds into the next evaluation cycle (cycles start on multiples of
    the interval), so that both samples of a window sit at the same point of a cycle."""
    now = time.time()
    start = (now // INTERVAL_SECONDS + 1) * INTERVAL_SECONDS
    time.sleep(start + phase - now)


def measure(count: int, services_per_budget: int, cycles: int, prometheus_url: str, logs: Path) -> Row:
    namespace = f"bench-budget-{count}-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", namespace)
    port = free_port()
    log = (logs / f"operator-{count}.log").open("wb")
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aipolicy",
            "run",
            "--namespace",
            namespace,
            "--metrics-port",
            str(port),
            "--prometheus-url",
            prometheus_url,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env=dict(os.environ),
        start_new_session=True,
    )
    try:
        objects = yaml.safe_dump_all(manifests(count, services_per_budget))
        kubectl("-n", namespace, "apply", "--server-side", "-f", "-", stdin=objects)
        started = time.monotonic()
        deadline = started + 300
        while not _all_caught_up(namespace, count):
            if operator.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"budgets did not catch up; see {log.name}")
            time.sleep(1)
        catch_up = time.monotonic() - started
        # mid-cycle: every budget of the previous cycle is done (tick 2 s + 1 s settle)
        _next_cycle_phase(INTERVAL_SECONDS - 1)
        before = scrape(port)
        time.sleep(cycles * INTERVAL_SECONDS)
        after = scrape(port)
        rss, peak = _memory_mib(operator.pid)

        def delta(name: str) -> float:
            return after.get((name, ()), 0.0) - before.get((name, ()), 0.0)

        evaluations = _budget_sample(after, "aipolicy_evaluation_seconds_count") - _budget_sample(
            before, "aipolicy_evaluation_seconds_count"
        )
        seconds = _budget_sample(after, "aipolicy_evaluation_seconds_sum") - _budget_sample(
            before, "aipolicy_evaluation_seconds_sum"
        )
        return Row(
            budgets=count,
            services=count * services_per_budget,
            cycles=cycles,
            queries_per_cycle=delta("aipolicy_prometheus_queries_total") / cycles,
            evaluations_per_cycle=evaluations / cycles,
            mean_evaluation_ms=1000 * seconds / evaluations if evaluations else float("nan"),
            catch_up_seconds=catch_up,
            rss_mib=rss,
            peak_rss_mib=peak,
        )
    finally:
        # delete while the operator still runs, so that it releases its finalizers
        kubectl(
            "-n", namespace, "delete", "aibudgets,inferenceservices", "--all", "--timeout=60s", check=False
        )
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(timeout=20)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait(timeout=10)
        log.close()
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def table(rows: list[Row], command: str) -> str:
    lines = [
        "## AIBudget evaluation against the number of budgets",
        "",
        f"Command: `{command}` (bench/budget_eval.py), on the local cluster and its Prometheus.",
        "Budgets each over their own API-backed services, evaluationInterval "
        f"{INTERVAL_SECONDS}s, the operator's default",
        "2 s tick; measured over whole cycles after every budget caught up.",
        "",
        "| budgets | services | cycles | Prometheus queries per cycle | evaluations per cycle "
        "| mean evaluation ms | catch-up s | RSS MiB | peak RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.budgets} | {r.services} | {r.cycles} | {r.queries_per_cycle:.1f} "
            f"| {r.evaluations_per_cycle:.1f} "
            f"| {r.mean_evaluation_ms:.1f} | {r.catch_up_seconds:.0f} | {r.rss_mib:.0f} "
            f"| {r.peak_rss_mib:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--sizes", default="1,10,50", help="numbers of budgets, comma-separated")
    parser.add_argument("--cycles", type=int, default=6, help="evaluation cycles measured per size")
    parser.add_argument("--services-per-budget", type=int, default=1, help="services each budget selects")
    args = parser.parse_args(argv)
    url = sourced_with_crds()
    logs = Path(tempfile.mkdtemp(prefix="aipolicy-bench-budget-"))
    rows = [
        measure(int(size), args.services_per_budget, args.cycles, url, logs) for size in args.sizes.split(",")
    ]
    return finish(table(rows, command_line("bench.budget_eval", argv).strip()), logs)


if __name__ == "__main__":
    sys.exit(main())
