"""`make bench`: run the benchmarks and write BENCHMARKS.md with the command behind each number.

    python -m bench --write BENCHMARKS.md            # pure core + simulator (no cluster)
    python -m bench --write BENCHMARKS.md --cluster  # also the live-cluster benchmarks

Numbers are measurements of this machine at this commit; no test asserts on any of them.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.core import run_core, run_simulator

REPO = Path(__file__).resolve().parents[1]


def _machine() -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"commit {commit or 'unknown'}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


def core_section() -> str:
    lines = [
        "## Pure core: one decision",
        "",
        "Command: `.venv/bin/python -m bench` (bench/core.py). Mean wall time per call over many calls,",
        "and the peak memory Python allocates during one call (tracemalloc).",
        "",
        "| decision | calls | µs per call | peak KiB |",
        "|---|---:|---:|---:|",
    ]
    for r in run_core():
        lines.append(f"| {r.name} | {r.calls} | {r.per_call_us:.1f} | {r.peak_kib:.1f} |")
    seconds, requests, gpu_hours = run_simulator()
    lines += [
        "",
        "## Simulator: the whole Azure trace offline",
        "",
        "Command: `.venv/bin/python -m bench` (bench/core.py `run_simulator`), the same as",
        "`python -m aipolicy.sim simulate --replicas 3 --gpu-hour-rate 2.50` (the fleet model the",
        "live simulator serves; the what-if section below measures `aipolicy simulate`).",
        "",
        "| requests | wall seconds | requests per second | result |",
        "|---:|---:|---:|---|",
        f"| {requests} | {seconds:.2f} | {requests / seconds:,.0f} | {gpu_hours} |",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="file to write (default: print)")
    parser.add_argument("--cluster", action="store_true", help="also run the live-cluster benchmarks")
    args = parser.parse_args()
    from bench.whatif import run_all, section

    sections = [f"# Benchmarks\n\nMachine: {_machine()}.", core_section(), section(run_all())]
    if args.cluster:
        from bench.cluster import cluster_sections

        sections += cluster_sections()
    else:
        existing = args.write.read_text() if args.write and args.write.exists() else ""
        kept = existing.split("<!-- cluster -->", 1)
        if len(kept) == 2:
            sections.append("<!-- cluster -->" + kept[1].rstrip())
    text = "\n\n".join(sections) + "\n"
    if args.write:
        args.write.write_text(text)
        print(f"wrote {args.write}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
