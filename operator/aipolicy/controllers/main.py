"""Running the operator: kopf with our handlers, namespaced or cluster-wide, led or not."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from aipolicy.controllers import leadership
from aipolicy.policy.lease import Timing

logger = logging.getLogger("aipolicy")

#: Exit status when the operator cannot work as configured (missing permission, no namespace
#: for its Lease): retrying at once would not help, so it stops rather than spins.
CANNOT_RUN = 3


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
    leader_elect: bool = False,
    lease_name: str | None = None,
    lease_namespace: str | None = None,
    timing: Timing | None = None,
    check_permissions: bool = True,
) -> int:
    """Run until kopf stops; the exit status (CANNOT_RUN when the configuration cannot work)."""
    import aipolicy.controllers.handlers  # noqa: F401  (registers the handlers)
    from aipolicy.controllers import connections
    from aipolicy.kube.client import load_config

    _configure_logging(verbose)
    memo = kopf.Memo(prometheus_url=prometheus_url, metrics_preset=metrics_preset)
    memo[connections.NAMESPACES] = len(namespace)

    load_config()
    election = _election(namespace, lease_name, lease_namespace, timing) if leader_elect else None
    if check_permissions and not _permitted(namespace, election):
        return CANNOT_RUN
    operator = kopf.operator(
        namespaces=namespace,
        clusterwide=not namespace,
        standalone=peering is None,
        peering_name=peering,
        priority=priority,
        memo=memo,
    )
    return asyncio.run(_serve(operator, election, metrics_port, metrics_host))


def _configure_logging(verbose: bool) -> None:
    kopf.configure(verbose=verbose)
    if not verbose:
        # kopf logs every timer run at INFO ("Timer ... succeeded"): every object, every tick
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


def _election(
    namespace: list[str], lease_name: str | None, lease_namespace: str | None, timing: Timing | None
) -> leadership.Leadership:
    """The Lease campaign, with every handler gated on leading."""
    from aipolicy.policy.lease import lease_name as shard_lease_name

    election = leadership.Leadership(
        name=lease_name or shard_lease_name(namespace),
        namespace=lease_namespace or leadership.default_lease_namespace(),
        identity=leadership.default_identity(),
        timing=timing or Timing(),
    )
    gated = leadership.gate_handlers(kopf.get_default_registry(), election)
    logger.info("leader election on lease %s/%s: %d handlers act only when leading",
                election.namespace, election.name, gated)  # fmt: skip
    return election


def _permitted(namespace: list[str], election: leadership.Leadership | None) -> bool:
    """Every permission the operator needs is granted; else say which, on stderr."""
    from aipolicy.controllers import permissions

    lease = (election.namespace, election.name) if election else None
    try:
        denied = permissions.check(permissions.required(namespace, lease))
    except (ApiException, HTTPError, OSError) as error:
        print(f"aipolicy cannot run: the permission check failed: {error}", file=sys.stderr)
        return False
    if denied:
        print(permissions.missing_message(denied, permissions.who_am_i()), file=sys.stderr)
    return not denied


async def _serve(
    operator: Coroutine[Any, Any, None],
    election: leadership.Leadership | None,
    metrics_port: int,
    metrics_host: str,
) -> int:
    """kopf, the metrics endpoint and the Lease campaign, until kopf or the campaign ends."""
    from aipolicy.controllers.metrics import serve_metrics

    tasks = [asyncio.create_task(serve_metrics(metrics_port, metrics_host))] if metrics_port else []
    campaign = asyncio.create_task(election.run()) if election else None
    running = asyncio.create_task(operator)
    try:
        await asyncio.wait([running] + ([campaign] if campaign else []), return_when=asyncio.FIRST_COMPLETED)
        if campaign is not None and campaign.done():
            # the campaign only ends on a fault no retry can mend: without it this replica
            # would stand by forever, so stop
            print(f"aipolicy cannot run: {campaign.exception()}", file=sys.stderr)
            return CANNOT_RUN
        await running
        return 0
    finally:
        if campaign is not None:
            # no renewal may race the release, nor re-acquire the Lease after it
            campaign.cancel()
            await asyncio.gather(campaign, return_exceptions=True)
        if election is not None:
            await election.release()  # stop acting first, then hand the Lease over
        for task in [*tasks, running]:
            task.cancel()
