"""Running the operator: kopf with our handlers, namespaced or cluster-wide."""

from __future__ import annotations

import asyncio
import logging

import kopf


def run_operator(
    *,
    namespace: list[str],
    prometheus_url: str | None,
    metrics_port: int,
    metrics_host: str = "127.0.0.1",
    peering: str | None,
    priority: int,
    verbose: bool,
    metrics_preset: str = "vllm",
) -> int:
    import aipolicy.controllers.handlers  # noqa: F401  (registers the handlers)
    from aipolicy.controllers import connections
    from aipolicy.controllers.metrics import serve_metrics

    kopf.configure(verbose=verbose)
    if not verbose:
        # kopf logs every timer run at INFO ("Timer ... succeeded"): every object, every tick
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    memo = kopf.Memo(prometheus_url=prometheus_url, metrics_preset=metrics_preset)
    memo[connections.NAMESPACES] = len(namespace)

    async def main() -> None:
        tasks = []
        if metrics_port:
            tasks.append(asyncio.create_task(serve_metrics(metrics_port, metrics_host)))
        try:
            await kopf.operator(
                namespaces=namespace,
                clusterwide=not namespace,
                standalone=peering is None,
                peering_name=peering,
                priority=priority,
                memo=memo,
            )
        finally:
            for task in tasks:
                task.cancel()

    asyncio.run(main())
    return 0
