"""AIBudget controller: accumulates spend from Prometheus and records the budget's state.

Evaluations are aligned to the clock (every `evaluationInterval`, on its multiples), so all
budgets ask Prometheus the same queries at the same instant: one query per metric family per
cycle, however many budgets there are (the query cache shares one answer per instant). Each
evaluation adds the usage since the last one (`status.lastEvaluated`): token counters' growth
between the two instants, which adds up exactly from one window to the next, and GPU-hours on a
5 s grid; a restart or a Prometheus gap catches up from the counters, in steps of at most
MAX_CATCH_UP (policy/budget_outcome.py).
Actions are level-triggered: `status.activeAction` is read by the InferenceService controller,
which degrades or suspends the services this budget selects.

The shell only gathers, calls and applies: when it is due, the interval to account, and every
condition and event are decided in policy/budget_outcome.py (alerts in policy/notify.py);
reading the spec and writing the outcome are controllers/evaluation.py's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from datetime import datetime
from decimal import Decimal
from typing import Any

import kopf

from aipolicy.api.aibudget import AIBudget, AIBudgetSpec, AlertDelivery
from aipolicy.api.common import ConditionStatus, json_dict, parse_duration
from aipolicy.api.conditions import DEGRADED, EXCEEDED, METRICS_AVAILABLE, PRICING_COMPLETE, READY
from aipolicy.api.inferenceservice import InferenceService
from aipolicy.api.reading import read
from aipolicy.controllers import metrics
from aipolicy.controllers.cycle import cycle
from aipolicy.controllers.evaluation import Step, begin, finish, post_events
from aipolicy.controllers.events import write_status
from aipolicy.controllers.indexes import Key
from aipolicy.controllers.runtime import Runtime
from aipolicy.observe import presets
from aipolicy.observe.prometheus import GroupedResult
from aipolicy.policy.budget import BudgetEvaluation
from aipolicy.policy.budget_outcome import BudgetInputs, budget_due, budget_outcome, spend_window
from aipolicy.policy.notify import delivery_batches, record_deliveries
from aipolicy.policy.observations import Unavailable, Value
from aipolicy.policy.outcome import Event
from aipolicy.policy.spend import (
    ServiceCost,
    ServiceUsage,
    billed_pricing,
    cost_source_cost,
    service_cost,
)

logger = logging.getLogger(__name__)
TICK = Runtime.default_tick()
# Token counters missing for less than this (a failed scrape, a target briefly gone) are
# counted in full when they come back.
GAP_LOOKBACK = "10m"
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


Usage = tuple[GroupedResult, GroupedResult, dict[str, GroupedResult], GroupedResult]
"""Input tokens, output tokens, and GPU-hours by GPU resource name, by (namespace, service)."""


def _gpu_resource(isvc: InferenceService) -> str | None:
    """The resource that counts the service's GPUs; None for an API-backed service."""
    return isvc.spec.serving.gpu.resource_name if isvc.spec.serving is not None else None


async def _usage(
    rt: Runtime, window: str, at: datetime, gpu_resources: set[str], currency: str, *, accounting: bool
) -> Usage:
    """Usage over (at - window, at], and the money spent at fallback providers in `currency`
    (the budget's) for each service's clients: for accounting, counter growth that adds up
    exactly from one evaluation to the next and bridges scrape gaps; for a rate, plain
    increase(). GPU-hours take one query per GPU resource in use (nvidia.com/gpu, amd.com/gpu...)."""
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
    lookback = GAP_LOOKBACK if accounting else None
    return (
        await rt.prometheus.grouped(tokens("input"), at),
        await rt.prometheus.grouped(tokens("output"), at),
        gpus,
        await rt.prometheus.grouped(presets.fallback_provider_spend(names, currency, window, lookback), at),
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
    inputs, outputs, gpus, fallback = await _usage(
        rt, window, at, resources, spec.currency, accounting=accounting
    )
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
            fallback_spend=fallback.reading_or_zero_when_answered(key),
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


async def _post(url: str, payload: Any) -> str | None:
    """POST it; the error, or None when the receiver answered 2xx."""
    try:
        await asyncio.to_thread(_post_json, url, payload)
    except (OSError, ValueError) as failure:
        return str(failure) or type(failure).__name__
    return None


async def deliver_alerts(
    budget: AIBudget, alerts: list[AlertDelivery], now: datetime
) -> tuple[list[AlertDelivery], list[Event]]:
    """POST the alerts that are due (policy/notify.py says which, in which form); the alerts with
    each outcome recorded, and the events that tells."""
    url = budget.spec.notification.webhook_url
    if url is None:
        return alerts, []
    batches = delivery_batches(budget.metadata.namespace, budget.metadata.name, url, alerts, now)
    if not batches:
        return alerts, []
    errors: dict[int, str | None] = {}
    for batch in batches:
        errors.update(dict.fromkeys(batch.percents, await _post(url, batch.payload)))
    return record_deliveries(url, alerts, errors, now)


async def _retry_alerts(step: Step[AIBudget]) -> None:
    """Between evaluations: an alert may still be due for a retry or a resend."""
    previous = step.model.status.alerts
    alerts, events = await deliver_alerts(step.model, previous, step.now)
    post_events(step.body, events)
    if alerts != previous:
        kept = {k: v for k, v in step.old_status.items() if k != "kopf"}  # kopf's own, not ours
        write_status(step.patch, step.old_status, {**kept, "alerts": [json_dict(a) for a in alerts]})


async def gather(
    rt: Runtime, budget: AIBudget, services: list[InferenceService], at: datetime
) -> BudgetInputs:
    """The selected services' prices and the costs of the interval this evaluation accounts."""
    spec = budget.spec
    pricing = {s.metadata.name: billed_pricing(s.spec) for s in services}
    if rt.prometheus is None:
        unknown = Unavailable("QueryError", "no Prometheus configured")
        return BudgetInputs(pricing, dict.fromkeys(pricing, unknown), {}, None, at)
    window = spend_window(spec, budget.status, at)
    costs: dict[str, ServiceCost | Unavailable] = {}
    extra: dict[str, Decimal | Unavailable] = {}
    if window.window is not None:
        costs = await service_costs(rt, spec, services, window.window, window.to)
        extra = await extra_costs(rt, spec, window.window, window.to)
    burn = await burn_rate(rt, spec, services, window.to)
    return BudgetInputs(pricing, costs, extra, burn, window.to)


def record_metrics(budget: AIBudget, evaluation: BudgetEvaluation) -> None:
    namespace, name, spec = budget.metadata.namespace, budget.metadata.name, budget.spec
    for threshold in evaluation.new_notifications:
        metrics.BUDGET_NOTIFICATIONS.labels(namespace, name, threshold.action).inc()
    metrics.BUDGET_SPENT.labels(namespace, name, spec.currency).set(float(evaluation.spent))
    metrics.BUDGET_LIMIT.labels(namespace, name, spec.currency).set(float(spec.limit))
    metrics.BUDGET_UTILISATION.labels(namespace, name).set(evaluation.percent_used / 100)
    forecast = None if evaluation.forecast is None else float(evaluation.forecast)
    metrics.set_or_clear(metrics.BUDGET_FORECAST, (namespace, name, spec.currency), forecast)


@cycle("aibudgets", index="aibudgets_by_key", tick=TICK, initial_delay=1.5)
async def evaluate_aibudget(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    inferenceservices_by_key: kopf.Index[Key, dict[str, Any]],
    **_: Any,
) -> None:
    step = begin(AIBudget, body, patch, WARN_WHEN)
    if step is None:
        return
    budget = step.model
    due = budget_due(budget, step.generation, step.now)
    if not due.due:
        await _retry_alerts(step)
        return
    services = selected_services(budget, inferenceservices_by_key)
    inputs = await gather(memo["runtime"], budget, services, due.at)
    result = budget_outcome(budget, inputs, generation=step.generation, now=step.now)
    status = result.outcome.status
    status.alerts, delivery_events = await deliver_alerts(budget, status.alerts, step.now)
    record_metrics(budget, result.evaluation)
    finish(step, result.outcome, WARN_WHEN, events=delivery_events)
