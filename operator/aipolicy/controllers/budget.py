"""AIBudget controller: accumulates spend from Prometheus and records the budget's state.

Evaluations are aligned to the clock (every `evaluationInterval`, on its multiples), so all
budgets ask Prometheus the same queries at the same instant: one query per metric family per
cycle, however many budgets there are (the query cache shares one answer per instant). Each
evaluation adds the usage since the last one (`status.lastEvaluated`): token counters' growth
between the two instants, which adds up exactly from one window to the next, and GPU-hours on a
5 s grid; a restart or a Prometheus gap catches up from the counters, in steps of at most
MAX_CATCH_UP.
Actions are level-triggered: `status.activeAction` is read by the InferenceService controller,
which degrades or suspends the services this budget selects.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import kopf

from aipolicy.api.aibudget import AIBudget, AIBudgetSpec, AlertDelivery
from aipolicy.api.common import ConditionStatus, json_dict, parse_duration
from aipolicy.api.conditions import (
    BUDGET_DEGRADED,
    BUDGET_EXCEEDED,
    DEGRADED,
    EXCEEDED,
    METRICS_AVAILABLE,
    NOT_DEGRADED,
    NOTIFICATION_DELIVERED,
    NOTIFICATION_FAILED,
    PRICING_COMPLETE,
    READY,
    THRESHOLD_REACHED,
    WITHIN_LIMIT,
    threshold_event_reason,
)
from aipolicy.api.inferenceservice import InferenceService
from aipolicy.api.reading import InvalidSpec, read
from aipolicy.controllers import metrics
from aipolicy.controllers.events import StatusConditions, report_invalid_spec, write_status
from aipolicy.controllers.indexes import Key
from aipolicy.controllers.runtime import Runtime
from aipolicy.observe import presets
from aipolicy.observe.prometheus import GroupedResult
from aipolicy.policy.budget import (
    ConditionUpdate,
    evaluate_budget,
    pricing_condition,
    query_interval,
    ready_condition,
    updated_status,
)
from aipolicy.policy.cycles import aligned
from aipolicy.policy.notify import (
    after_attempt,
    alertmanager_alerts,
    due_alerts,
    is_alertmanager,
    plan_alerts,
    webhook_payload,
)
from aipolicy.policy.observations import Unavailable, Value
from aipolicy.policy.spend import (
    ServiceCost,
    ServiceUsage,
    billed_pricing,
    cost_source_cost,
    display_money,
    service_cost,
)

logger = logging.getLogger(__name__)
TICK = Runtime.default_tick()
# A scrape stamped just before an evaluation's instant may still be on its way into the TSDB;
# read an instant only this long after it, so that the next window does not start past a sample
# this one never saw.
SETTLE = timedelta(seconds=1)
# Token counters missing for less than this (a failed scrape, a target briefly gone) are
# counted in full when they come back.
GAP_LOOKBACK = "10m"
# The most one evaluation accounts for. A budget created late in the month, or back from a long
# Prometheus outage, catches up in steps of this, one per tick: in one step, the GPU subquery
# over four weeks took 10 s, past the query timeout, and was retried every tick, never counted.
MAX_CATCH_UP = timedelta(hours=6)
WARN_WHEN: dict[str, ConditionStatus] = {
    READY: "False",
    METRICS_AVAILABLE: "False",
    PRICING_COMPLETE: "False",
    DEGRADED: "True",
    EXCEEDED: "True",
}


def selected_services(
    budget: AIBudget, inferenceservices: kopf.Index[Key, dict[str, Any]]
) -> list[InferenceService]:
    """The budget's services: its own namespace only, whatever its selector says.

    The selector is matched on the labels as stored, and only the services it selects are
    parsed: parsing every service of the namespace for every budget made an evaluation of 100
    budgets over 1,000 services take 3 s (BENCHMARKS.md).
    """
    found = []
    for (namespace, _), bodies in inferenceservices.items():
        if namespace != budget.metadata.namespace:
            continue
        for body in bodies:
            labels = (body.get("metadata") or {}).get("labels") or {}
            if not budget.spec.selector.matches(labels):
                continue
            parsed = read(InferenceService, body)
            if isinstance(parsed, InferenceService):
                found.append(parsed)
    return found


Usage = tuple[GroupedResult, GroupedResult, dict[str, GroupedResult]]
"""Input tokens, output tokens, and GPU-hours by GPU resource name, by (namespace, service)."""


def _gpu_resource(isvc: InferenceService) -> str | None:
    """The resource that counts the service's GPUs; None for an API-backed service."""
    return isvc.spec.serving.gpu.resource_name if isvc.spec.serving is not None else None


async def _usage(
    rt: Runtime, window: str, at: datetime, gpu_resources: set[str], *, accounting: bool
) -> Usage:
    """Usage over (at - window, at]: for accounting, counter growth that adds up exactly from
    one evaluation to the next and bridges scrape gaps; for a rate, plain increase(). GPU-hours
    take one query per GPU resource in use (nvidia.com/gpu, amd.com/gpu...)."""
    assert rt.prometheus is not None
    names = rt.metric_names

    def tokens(which: str) -> str:
        if accounting:
            return presets.token_growth(names, which, window, GAP_LOOKBACK)
        return presets.token_increase(names, which, window)

    gpus = {
        resource: await rt.prometheus.grouped(presets.gpu_hours(window, resource_name=resource), at)
        for resource in sorted(gpu_resources)
    }
    return (
        await rt.prometheus.grouped(tokens("input"), at),
        await rt.prometheus.grouped(tokens("output"), at),
        gpus,
    )


async def service_costs(
    rt: Runtime,
    spec: AIBudgetSpec,
    services: list[InferenceService],
    window: str,
    at: datetime,
    *,
    accounting: bool = True,
) -> dict[str, ServiceCost | Unavailable]:
    """Each service's cost over (at - window, at], from batched queries."""
    resources = {r for r in map(_gpu_resource, services) if r is not None}
    inputs, outputs, gpus = await _usage(rt, window, at, resources, accounting=accounting)
    costs: dict[str, ServiceCost | Unavailable] = {}
    for isvc in services:
        key = (isvc.metadata.namespace, isvc.metadata.name)
        if isvc.spec.pricing.currency != spec.currency:
            costs[isvc.metadata.name] = Unavailable(
                "Ambiguous",
                f"{isvc.metadata.name} is priced in {isvc.spec.pricing.currency}, "
                f"the budget in {spec.currency}",
            )
            continue
        resource = _gpu_resource(isvc)
        usage = ServiceUsage(
            service=isvc.metadata.name,
            # counters summed over pods: an answered query without a series means no usage
            input_tokens=inputs.reading_or_zero_when_answered(key),
            output_tokens=outputs.reading_or_zero_when_answered(key),
            # an API-backed service holds no GPUs (and is not billed for any)
            gpu_hours=Value(0.0) if resource is None else gpus[resource].reading_or_zero_when_answered(key),
        )
        costs[isvc.metadata.name] = service_cost(billed_pricing(isvc.spec), usage)
    return costs


async def extra_costs(
    rt: Runtime, spec: AIBudgetSpec, window: str, at: datetime
) -> dict[str, Decimal | Unavailable]:
    assert rt.prometheus is not None
    extra: dict[str, Decimal | Unavailable] = {}
    for source in spec.cost_sources:
        reading = await rt.prometheus.scalar(source.query.replace("$window", window), at)
        extra[source.name] = cost_source_cost(source, reading)
    return extra


async def burn_rate(
    rt: Runtime, spec: AIBudgetSpec, services: list[InferenceService], at: datetime
) -> Decimal | None:
    """Spend per hour over the forecast window (None when any part is unknown)."""
    window = spec.forecast.window
    costs = await service_costs(rt, spec, services, window, at, accounting=False)
    extra = await extra_costs(rt, spec, window, at)
    total = Decimal(0)
    for cost in [*costs.values(), *extra.values()]:
        if isinstance(cost, Unavailable):
            return None
        total += cost.total if isinstance(cost, ServiceCost) else cost
    hours = Decimal(str(parse_duration(window).total_seconds() / 3600))
    return total / hours


def _post_json(url: str, payload: Any) -> None:
    """POST JSON; raises OSError (urllib's errors are OSErrors) unless the answer is 2xx."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5):
        pass  # urlopen raises HTTPError for 4xx and 5xx


async def deliver_alerts(
    body: kopf.Body, budget: AIBudget, alerts: list[AlertDelivery], now: datetime
) -> list[AlertDelivery]:
    """POST the alerts that are due; the alerts with each outcome recorded.

    An Alertmanager gets every due alert in one array; another webhook one payload per alert.
    One event when an alert's first POST fails and one when it gets through after failing,
    never one per retry.
    """
    url = budget.spec.notification.webhook_url
    if url is None:
        return alerts
    alertmanager = is_alertmanager(url)
    due = due_alerts(alerts, now, alertmanager=alertmanager)
    if not due:
        return alerts
    ns, name = budget.metadata.namespace, budget.metadata.name
    batches = [due] if alertmanager else [[alert] for alert in due]
    outcome: dict[int, str | None] = {}
    for batch in batches:
        payload: Any = (
            alertmanager_alerts(ns, name, batch) if alertmanager else webhook_payload(ns, name, batch[0])
        )
        try:
            await asyncio.to_thread(_post_json, url, payload)
            error = None
        except (OSError, ValueError) as failure:
            error = str(failure) or type(failure).__name__
        for alert in batch:
            outcome[alert.percent] = error
    updated = []
    for alert in alerts:
        if alert.percent not in outcome:
            updated.append(alert)
            continue
        error = outcome[alert.percent]
        after = after_attempt(alert, now, error)
        what = f"{alert.state.lower()} alert of the {alert.percent}% threshold"
        if error is not None and (alert.attempts == 0 or alert.delivered):  # the first failure in a row
            kopf.event(
                body,
                type="Warning",
                reason=NOTIFICATION_FAILED,
                message=f"POST {url} ({what}): {error}; retrying with backoff",
            )
        elif error is None and alert.attempts > 0 and not alert.delivered:
            kopf.event(
                body,
                type="Normal",
                reason=NOTIFICATION_DELIVERED,
                message=f"POST {url} ({what}) delivered after {after.attempts} attempts",
            )
        updated.append(after)
    return updated


@kopf.timer("aipolicy.dev", "v1alpha1", "aibudgets", interval=TICK, initial_delay=1.5)  # type: ignore[arg-type]
async def evaluate_aibudget(
    body: kopf.Body,
    namespace: str,
    name: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    inferenceservices_by_key: kopf.Index[Key, dict[str, Any]],
    **_: Any,
) -> None:
    rt: Runtime = memo["runtime"]
    now = datetime.now(UTC)
    old_status = dict(body.get("status") or {})
    generation = int(body.metadata.get("generation") or 0)
    parsed = read(AIBudget, body)
    if isinstance(parsed, InvalidSpec):
        report_invalid_spec(body, patch, old_status, parsed.message, WARN_WHEN, now)
        return
    budget = parsed
    spec = budget.spec
    at = aligned(now - SETTLE, parse_duration(spec.evaluation_interval))
    previous = budget.status
    if (
        previous.last_evaluated is not None
        and previous.last_evaluated >= at
        and previous.observed_generation == generation
    ):
        # Not due for an evaluation; an alert may still be due for a retry or a resend.
        alerts = await deliver_alerts(body, budget, previous.alerts, now)
        if alerts != previous.alerts:
            kept = {k: v for k, v in old_status.items() if k != "kopf"}  # kopf's own, not ours
            write_status(patch, old_status, {**kept, "alerts": [json_dict(a) for a in alerts]})
        return
    started = time.monotonic()
    services = selected_services(budget, inferenceservices_by_key)
    conditions = StatusConditions(previous.conditions, generation, now)

    if rt.prometheus is None:
        costs: dict[str, ServiceCost | Unavailable] = {
            s.metadata.name: Unavailable("QueryError", "no Prometheus configured") for s in services
        }
        extra: dict[str, Decimal | Unavailable] = {}
        burn = None
        frm = to = at
    else:
        frm, to = query_interval(spec, previous, at)
        if spec.period.type != "Rolling":  # a rolling window is re-counted whole, never in steps
            to = min(to, frm + MAX_CATCH_UP)
        # whole milliseconds, not seconds: truncating a fractional interval (7.5s) to 7s would
        # leave a slice of every interval uncounted
        milliseconds = round((to - frm).total_seconds() * 1000)
        if milliseconds > 0:
            window = f"{milliseconds}ms"
            costs = await service_costs(rt, spec, services, window, to)
            extra = await extra_costs(rt, spec, window, to)
        else:
            costs, extra = {}, {}
        burn = await burn_rate(rt, spec, services, to)
    # as of `to`: while catching up, the checkpoint moves to the end of the step just counted
    evaluation = evaluate_budget(spec, previous, costs, extra, to, burn)

    status = updated_status(previous, evaluation, spec, generation)
    status.observed_generation = generation
    dry = spec.enforcement == "DryRun"
    for threshold in evaluation.new_notifications:
        verb = "would" if dry else "will"
        action_text = {
            "Notify": "notify",
            "Degrade": f"{verb} degrade its services",
            "Suspend": f"{verb} suspend its services",
        }[threshold.action]
        kopf.event(
            body,
            type="Normal" if threshold.action == "Notify" else "Warning",
            reason=threshold_event_reason(threshold.action),
            message=(
                f"spent {display_money(evaluation.spent, spec.currency)} {spec.currency} of {spec.limit} "
                f"({evaluation.percent_used}%): reached {threshold.percent}%, {action_text}"
            ),
        )
        metrics.BUDGET_NOTIFICATIONS.labels(namespace, name, threshold.action).inc()
    status.alerts = await deliver_alerts(
        body, budget, plan_alerts(previous.alerts, spec, evaluation, now), now
    )

    # the same values updated_status wrote: set again so that a change posts an event
    conditions.set(
        METRICS_AVAILABLE,
        "True" if evaluation.metrics_available else "False",
        evaluation.metrics_reason,
        evaluation.metrics_message or "All spend queries answered.",
    )
    conditions.set(
        THRESHOLD_REACHED,
        "True" if evaluation.active_action else "False",
        evaluation.reason,
        evaluation.message,
    )
    conditions.set(
        DEGRADED,
        "True" if evaluation.state == "Degraded" else "False",
        BUDGET_DEGRADED if evaluation.state == "Degraded" else NOT_DEGRADED,
        evaluation.message,
    )
    conditions.set(
        EXCEEDED,
        "True" if evaluation.state == "Exceeded" else "False",
        BUDGET_EXCEEDED if evaluation.state == "Exceeded" else WITHIN_LIMIT,
        evaluation.message,
    )
    inputs: list[ConditionUpdate] = [
        pricing_condition({s.metadata.name: billed_pricing(s.spec) for s in services}),
        ready_condition(spec, namespace, [s.metadata.name for s in services], evaluation),
    ]
    for condition in inputs:
        conditions.set(condition.type, condition.status, condition.reason, condition.message)
    conditions.post_changes(body, WARN_WHEN)
    status.conditions = conditions.conditions

    metrics.BUDGET_SPENT.labels(namespace, name, spec.currency).set(float(evaluation.spent))
    metrics.BUDGET_LIMIT.labels(namespace, name, spec.currency).set(float(spec.limit))
    metrics.BUDGET_UTILISATION.labels(namespace, name).set(evaluation.percent_used / 100)
    forecast = None if evaluation.forecast is None else float(evaluation.forecast)
    metrics.set_or_clear(metrics.BUDGET_FORECAST, (namespace, name, spec.currency), forecast)
    metrics.EVALUATION_SECONDS.labels("AIBudget").observe(time.monotonic() - started)
    new = json_dict(status)
    write_status(patch, old_status, new)
