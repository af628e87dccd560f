"""Command line: ``python -m aipolicy.sim serve|simulate ...``.

``main(argv)`` is the entry point the ``aipolicy`` CLI can delegate to (``aipolicy sim ...``).

serve
    Follow the cluster's labelled pods, simulate them, serve their metrics on loopback and
    keep Prometheus file_sd files up to date::

        python -m aipolicy.sim serve --kubeconfig kubeconfig --port 9400 \\
            --targets-dir /tmp/prom/targets --config sim.yaml

simulate
    Replay a trace against a scaling policy with no cluster and print a cost/latency table::

        python -m aipolicy.sim simulate --speedup 1 --replicas 3 --gpu-hour-rate 2.50 --ttft-slo 2

    (Scaling policies: ``aipolicy simulate -f <manifests> --trace <csv>``, aipolicy.whatif.)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

from aipolicy.sim.config import ConfigError, load_config
from aipolicy.sim.model import PodCapacity
from aipolicy.sim.offline import ScalingPolicy, fixed_replicas, simulate
from aipolicy.sim.server import ServeOptions, serve
from aipolicy.sim.traffic import TraceError, TraceReplay, load_trace

__all__ = ["build_parser", "main"]


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError("must be a finite number >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aipolicy-sim", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="simulate the cluster's pods and serve their metrics")
    s.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster or ~/.kube)")
    s.add_argument("--context", help="kubeconfig context")
    s.add_argument("--namespace", help="watch only this namespace (default: all)")
    s.add_argument("--port", type=int, default=9400, help="loopback port, 0 = any free port")
    s.add_argument("--targets-dir", type=Path, required=True, help="Prometheus file_sd dir")
    s.add_argument("--config", type=Path, help="YAML: namespace/service -> traffic, capacity")
    s.add_argument("--tick", type=float, default=1.0, help="seconds between fleet steps")
    s.add_argument("--no-cluster", action="store_true", help="do not watch Kubernetes")

    m = sub.add_parser("simulate", help="offline: a trace against a scaling policy")
    m.add_argument("--trace", type=Path, help="trace CSV (.gz ok); default: packaged Azure")
    m.add_argument("--speedup", type=float, default=1.0)
    m.add_argument("--scale", type=float, default=1.0)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--window", type=float, nargs=2, metavar=("START", "END"),
                   help="replay only trace seconds [START, END)")  # fmt: skip
    # scaling policies live in `aipolicy simulate` (the operator's own decide_replicas)
    m.add_argument("--policy", choices=("fixed",), default="fixed")
    m.add_argument("--replicas", type=int, default=2, help="fixed: replica count")
    m.add_argument("--initial", type=int, help="replicas Ready at t=0 (default: --replicas/--min)")
    m.add_argument("--min", type=int, default=1, dest="min_replicas")
    m.add_argument("--max", type=int, default=8, dest="max_replicas")
    m.add_argument("--cold-start", type=float, default=60.0, help="seconds until a replica serves")
    m.add_argument("--interval", type=float, default=15.0, help="seconds between decisions")
    m.add_argument("--prefill-tps", type=float, default=PodCapacity.prefill_tokens_per_s)
    m.add_argument("--decode-tps", type=float, default=PodCapacity.decode_tokens_per_s)
    m.add_argument("--max-seqs", type=int, default=PodCapacity.max_concurrent_sequences)
    m.add_argument("--per-seq-tps", type=float, default=PodCapacity.per_sequence_decode_tokens_per_s)
    m.add_argument("--gpus-per-replica", type=int, default=1)
    m.add_argument("--gpu-hour-rate", type=_decimal, default=Decimal("2.50"))
    m.add_argument("--ttft-slo", type=float, default=2.0, help="seconds, for violation minutes")
    m.add_argument("--queue-timeout", type=float, help="fail requests queued this long")
    return parser


def _run_simulate(args: argparse.Namespace) -> int:
    trace = load_trace(args.trace)
    if args.window:
        trace = trace.window(args.window[0], args.window[1])
    traffic = TraceReplay(trace, speedup=args.speedup, scale=args.scale, seed=args.seed)
    policy: ScalingPolicy = fixed_replicas(args.replicas)
    initial = args.replicas if args.initial is None else args.initial
    capacity = PodCapacity(
        prefill_tokens_per_s=args.prefill_tps,
        decode_tokens_per_s=args.decode_tps,
        max_concurrent_sequences=args.max_seqs,
        per_sequence_decode_tokens_per_s=args.per_seq_tps,
    )
    report = simulate(
        traffic,
        policy=policy,
        capacity=capacity,
        initial_replicas=initial,
        cold_start_s=args.cold_start,
        decision_interval_s=args.interval,
        gpus_per_replica=args.gpus_per_replica,
        gpu_hour_rate=args.gpu_hour_rate,
        ttft_slo_s=args.ttft_slo,
        queue_timeout_s=args.queue_timeout,
        seed=args.seed,
    )
    print(
        f"traffic: {trace.source}, {len(trace)} requests, speedup {args.speedup:g}, "
        f"scale {args.scale:g} (Azure LLM inference trace 2023, CC-BY 4.0, Patel et al., "
        f"Splitwise, ISCA 2024)"
    )
    print(f"policy: {args.policy}")
    print(report.table())
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    options = ServeOptions(
        targets_dir=args.targets_dir,
        port=args.port,
        config=config,
        config_dir=args.config.parent if args.config else None,
        kubeconfig=args.kubeconfig,
        context=args.context,
        namespace=args.namespace,
        tick_s=args.tick,
        watch_cluster=not args.no_cluster,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(
            options,
            stop,
            started=lambda _sim, port: print(f"listening on 127.0.0.1:{port}", flush=True),
        )

    asyncio.run(run())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "simulate":
            return _run_simulate(args)
        return _run_serve(args)
    except (ConfigError, TraceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
