"""The `aipolicy` command: run the operator or the gateway, generate CRDs, simulate a policy offline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _crds(args: argparse.Namespace) -> int:
    from aipolicy.api import crd

    for output in args.output or ["crds"]:
        for path in crd.write_all(Path(output)):
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
        metrics_preset=args.metrics_preset,
    )


def _simulate(args: argparse.Namespace) -> int:
    from aipolicy.sim.__main__ import main as sim_main

    return sim_main(["simulate", *args.sim_args])


def _sim(args: argparse.Namespace) -> int:
    from aipolicy.sim.__main__ import main as sim_main

    return sim_main(args.sim_args)


def _gateway(args: argparse.Namespace) -> int:
    from aipolicy.gateway.__main__ import run as gateway_run

    return gateway_run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aipolicy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    crds = commands.add_parser("crds", help="write the CustomResourceDefinitions")
    crds.add_argument(
        "--output",
        action="append",
        help="directory to write into (repeatable; default: crds)",
    )
    crds.set_defaults(func=_crds)

    run = commands.add_parser("run", help="run the operator")
    run.add_argument(
        "--namespace", action="append", default=[], help="watch only this namespace (repeatable)"
    )
    run.add_argument("--prometheus-url", default=None, help="Prometheus base URL (env PROMETHEUS_URL)")
    run.add_argument(
        "--metrics-preset",
        choices=("vllm", "vllm-legacy", "sglang", "tgi"),
        default="vllm",
        help="the model servers' metric names where spec.metrics.preset names none, and for "
        "budgets and fallback policies (default: vllm)",
    )
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

    sim = commands.add_parser("sim", help="the model-server simulator (serve | simulate)", add_help=False)
    sim.add_argument("sim_args", nargs=argparse.REMAINDER)
    sim.set_defaults(func=_sim)

    from aipolicy.gateway.__main__ import add_arguments as gateway_arguments

    gateway = commands.add_parser("gateway", help="the OpenAI-compatible front door of one namespace")
    gateway_arguments(gateway)
    gateway.set_defaults(func=_gateway)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # `simulate` and `sim` hand their whole command line to the simulator's own parser
    if words[:1] == ["simulate"]:
        return _simulate(argparse.Namespace(sim_args=words[1:]))
    if words[:1] == ["sim"]:
        return _sim(argparse.Namespace(sim_args=words[1:]))
    args = build_parser().parse_args(words)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
