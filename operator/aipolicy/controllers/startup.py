"""Operator start-up: kopf settings fixed on day one, and the shared runtime."""

from __future__ import annotations

import os
from typing import Any

import kopf

from aipolicy.controllers import cycle, metrics
from aipolicy.controllers.runtime import Runtime
from aipolicy.kube.client import Kube, load_config
from aipolicy.observe import presets
from aipolicy.observe.prometheus import QueryCache

PREFIX = "aipolicy.dev"


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    # kopf's own bookkeeping lives under our prefix; changing these later would make kopf
    # treat every object as never handled, so they are fixed here once.
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.posting.reporting_component = "aipolicy"
    settings.posting.level = 20  # INFO: our explicit events, not kopf's debug chatter
    # Watches end and restart regularly, so a silently stalled stream cannot freeze the operator.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.inactivity_timeout = 600
    settings.networking.request_timeout = 30

    load_config()
    url = memo.get("prometheus_url") or os.environ.get("PROMETHEUS_URL")
    cache = (
        QueryCache(url, on_error=metrics.PROMETHEUS_ERRORS.inc, on_query=metrics.PROMETHEUS_QUERIES.inc)
        if url
        else None
    )
    names = presets.PRESETS[memo.get("metrics_preset") or presets.DEFAULT_PRESET]
    memo["runtime"] = Runtime(prometheus=cache, kube=Kube(), metric_names=names)
    if not url:
        logger.warning("no Prometheus URL: metrics are unavailable and every policy says so")


@kopf.on.cleanup()
async def stop_cycles(**_: Any) -> None:
    """The evaluation cycles end with the operator, their evaluations in flight cancelled."""
    await cycle.stop_all()
