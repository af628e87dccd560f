"""The `aipolicy` command: run the operator, generate CRDs, simulate a policy offline, report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _crds(args: argparse.Namespace) -> int:
    from aipolicy.api import crd

    for path in crd.write_all(Path(args.output)):
        print(f"wrote {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from aipolicy.controllers.main import run_operator

    return run_operator(
        namespace=args.namespace,
        prometheus_url=args.prometheus_url,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        peering=args.peering,
        priority=args.priority,
        verbose=args.verbose,
    )


def _simulate(args: argparse.Namespace) -> int:
    from aipolicy.sim.__main__ import main as sim_main

    return sim_main(["simulate", *args.sim_args])


def _sim(args: argparse.Namespace) -> int:
    from aipolicy.sim.__main__ import main as sim_main

    return sim_main(args.sim_args)


def _report(args: argparse.Namespace) -> int:
    from aipolicy.report.__main__ import main as report_main

    return report_main(args.report_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aipolicy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    crds = commands.add_parser("crds", help="write the CustomResourceDefinitions")
    crds.add_argument("--output", default="crds", help="directory to write into (default: crds)")
    crds.set_defaults(func=_crds)

    run = commands.add_parser("run", help="run the operator")
    run.add_argument(
        "--namespace", action="append", default=[], help="watch only this namespace (repeatable)"
    )
    run.add_argument("--prometheus-url", default=None, help="Prometheus base URL (env PROMETHEUS_URL)")
    run.add_argument(
        "--metrics-port", type=int, default=8080, help="port of /metrics and /healthz (0 disables)"
    )
    run.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address to serve metrics on (in a pod: 0.0.0.0)",
    )
    run.add_argument("--peering", default=None, help="kopf peering name, for active/standby replicas")
    run.add_argument("--priority", type=int, default=0, help="peering priority of this replica")
    run.add_argument("--verbose", action="store_true")
    run.set_defaults(func=_run)

    simulate = commands.add_parser(
        "simulate", help="replay a trace against a scaling policy, offline", add_help=False
    )
    simulate.add_argument("sim_args", nargs=argparse.REMAINDER)
    simulate.set_defaults(func=_simulate)

    report = commands.add_parser(
        "report", help="cost, latency, errors and idle GPUs of a namespace or team", add_help=False
    )
    report.add_argument("report_args", nargs=argparse.REMAINDER)
    report.set_defaults(func=_report)

    sim = commands.add_parser("sim", help="the model-server simulator (serve | simulate)", add_help=False)
    sim.add_argument("sim_args", nargs=argparse.REMAINDER)
    sim.set_defaults(func=_sim)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # `simulate` and `sim` hand their whole command line to the simulator's own parser
    if words[:1] == ["simulate"]:
        return _simulate(argparse.Namespace(sim_args=words[1:]))
    if words[:1] == ["sim"]:
        return _sim(argparse.Namespace(sim_args=words[1:]))
    if words[:1] == ["report"]:
        return _report(argparse.Namespace(report_args=words[1:]))
    args = build_parser().parse_args(words)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
