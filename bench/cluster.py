"""The live-cluster benchmarks, run as their own processes against the sourced local cluster.

Each prints a markdown section; `python -m bench --cluster` collects them into BENCHMARKS.md
after a `<!-- cluster -->` marker, which a later run without `--cluster` keeps as it is.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    ["bench.budget_eval", "--sizes", "1,10,100", "--services-per-budget", "10", "--cycles", "6"],
    ["bench.budget_action", "--repetitions", "3"],
    ["bench.fallback_switch", "--repetitions", "3"],
    ["bench.load_step", "--repetitions", "3"],
    ["bench.inferenceservice_scale", "--sizes", "10,100,1000"],
    ["bench.leader_failover", "--kills", "10"],
)


def cluster_sections() -> list[str]:
    sections = ["<!-- cluster -->\n# On the local cluster"]
    for module, *args in BENCHMARKS:
        result = subprocess.run(
            [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=1800, check=False
        )
        if result.returncode != 0:
            sections.append(
                f"## {module}\n\nFailed (exit {result.returncode}):\n\n```\n{result.stderr[-2000:]}\n```"
            )
            continue
        # the table, without the trailing notes about where logs went
        sections.append(result.stdout.split("\noperator logs:", 1)[0].strip())
    return sections
