"""The `aipolicy` command: run the operator or the gateway, generate CRDs, simulate, report."""

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
    from aipolicy.policy.lease import Timing

    try:
        timing = Timing(args.lease_duration, args.renew_deadline, args.retry_period)
    except ValueError as error:
        raise SystemExit(f"aipolicy run: {error}") from error
    return run_operator(
        namespace=namespaces(args.namespace),
        prometheus_url=args.prometheus_url,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        peering=args.peering,
        priority=args.priority,
        verbose=args.verbose,
        metrics_preset=args.metrics_preset,
        leader_elect=args.leader_elect,
        lease_name=args.lease_name,
        lease_namespace=args.lease_namespace,
        timing=timing,
    )


def namespaces(values: Sequence[str]) -> list[str]:
    """--namespace given several times, as comma lists, or both; in order, each once."""
    found: list[str] = []
    for value in values:
        for name in value.split(","):
            if name.strip() and name.strip() not in found:
                found.append(name.strip())
    return found


def _simulate(args: argparse.Namespace) -> int:
    from aipolicy.whatif.cli import main as whatif_main

    return whatif_main(args.sim_args)


def _sim(args: argparse.Namespace) -> int:
    from aipolicy.sim.__main__ import main as sim_main

    return sim_main(args.sim_args)


def _gateway(args: argparse.Namespace) -> int:
    from aipolicy.gateway.__main__ import run as gateway_run

    return gateway_run(args)


def _report(args: argparse.Namespace) -> int:
    from aipolicy.report.__main__ import main as report_main

    return report_main(args.report_args)


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
        "--namespace",
        action="append",
        default=[],
        help="watch only these namespaces (repeatable, or a comma list); default: all. One operator "
        "per set of namespaces (a shard), each with its own Lease",
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
    run.add_argument(
        "--peering", default=None, help="kopf peering name (slow handover, no fencing: prefer --leader-elect)"
    )
    run.add_argument("--priority", type=int, default=0, help="peering priority of this replica")
    run.add_argument(
        "--leader-elect",
        action="store_true",
        help="elect a leader among replicas on a Lease; only the leader acts (on in manifests/base)",
    )
    run.add_argument(
        "--lease-name",
        default=None,
        help="the Lease (default: aipolicy, or aipolicy.<namespaces> for a shard)",
    )
    run.add_argument(
        "--lease-namespace",
        default=None,
        help="namespace of the Lease (default: POD_NAMESPACE, the pod's own, or aipolicy-system)",
    )
    run.add_argument("--lease-duration", type=float, default=10.0, help="seconds a standby waits (10)")
    run.add_argument(
        "--renew-deadline", type=float, default=7.0, help="seconds the leader acts without renewing (7)"
    )
    run.add_argument("--retry-period", type=float, default=2.0, help="seconds between lease reads (2)")
    run.add_argument("--verbose", action="store_true")
    run.set_defaults(func=_run)

    simulate = commands.add_parser(
        "simulate", help="what-if: the operator's scaling and baselines on a trace, offline", add_help=False
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
    if words[:1] == ["report"]:
        return _report(argparse.Namespace(report_args=words[1:]))
    args = build_parser().parse_args(words)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
