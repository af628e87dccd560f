"""`aipolicy report`: the command line around gather and render."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from aipolicy.kube.client import load_config
from aipolicy.observe.presets import MetricNames
from aipolicy.report import render
from aipolicy.report.gather import PrometheusReader, Scope, ScopeError, gather
from aipolicy.report.window import WindowError, resolve_window


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aipolicy report", description=__doc__)
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--namespace", "-n", help="report on one namespace")
    scope.add_argument(
        "--team-label", help="report on every namespace's objects with this label, e.g. team=a"
    )
    parser.add_argument("--since", help="the window: this long back from --to (default 24h)")
    parser.add_argument("--from", dest="start", type=datetime.fromisoformat, help="window start (ISO 8601)")
    parser.add_argument(
        "--to", dest="end", type=datetime.fromisoformat, help="window end (ISO 8601; default now)"
    )
    parser.add_argument(
        "--prometheus-url", default=os.environ.get("PROMETHEUS_URL"), help="(env PROMETHEUS_URL)"
    )
    parser.add_argument("--kubeconfig", default=None, help="(default: KUBECONFIG or in-cluster)")
    parser.add_argument("--output", "-o", choices=("table", "json", "html"), default="table")
    parser.add_argument("--file", type=Path, help="write to this file instead of standard output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.prometheus_url:
        print("error: give --prometheus-url or set PROMETHEUS_URL", file=sys.stderr)
        return 2
    try:
        window = resolve_window(since=args.since, start=args.start, end=args.end, now=datetime.now(UTC))
    except WindowError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from kubernetes import client

    if args.kubeconfig:
        os.environ["KUBECONFIG"] = str(args.kubeconfig)
    load_config()
    scope = Scope(namespace=args.namespace, team_label=args.team_label)
    prometheus = PrometheusReader(args.prometheus_url)
    try:
        report = gather(client.CustomObjectsApi(), prometheus, scope, window, MetricNames())
    except ScopeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = {"table": render.table, "json": render.as_json, "html": render.as_html}[args.output](report)
    if args.file:
        args.file.write_text(text)
        print(f"wrote {args.file}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
