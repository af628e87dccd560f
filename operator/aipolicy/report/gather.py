"""The report's shell: read the API and Prometheus, hand the facts to model.py.

Reads only: InferenceServices and AIBudgets (a namespace, or every namespace for a team label),
and Prometheus with instant queries at the window's end (one per metric family for all services)
plus a few range queries for the charts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from aipolicy.api.aibudget import AIBudget
from aipolicy.api.inferenceservice import InferenceService
from aipolicy.api.reading import InvalidSpec, read
from aipolicy.observe import presets
from aipolicy.observe.presets import MetricNames, gpu_hours, token_increase
from aipolicy.observe.prometheus import GroupedResult, ServiceKey
from aipolicy.policy.observations import Unavailable
from aipolicy.policy.spend import billed_pricing, parse_money
from aipolicy.report import queries
from aipolicy.report.model import (
    BudgetFacts,
    Charts,
    Report,
    ServiceFacts,
    ServiceReadings,
    bucket_counts,
    budget_line,
    cost_per_1k_series,
    model_line,
)
from aipolicy.report.window import ReportWindow

GROUP, VERSION = "aipolicy.dev", "v1alpha1"


class ScopeError(ValueError):
    """A scope with nothing in it; the message names it."""


@dataclass(frozen=True)
class Scope:
    """A namespace, or a label selector over every namespace (a team label)."""

    namespace: str | None = None
    team_label: str | None = None

    def describe(self) -> str:
        return f"namespace {self.namespace}" if self.namespace else f"label {self.team_label}"


def _list(api: Any, plural: str, scope: Scope) -> list[dict[str, Any]]:
    if scope.namespace:
        answer = api.list_namespaced_custom_object(GROUP, VERSION, scope.namespace, plural)
    else:
        answer = api.list_cluster_custom_object(GROUP, VERSION, plural, label_selector=scope.team_label)
    return list(answer.get("items", []))


def read_objects(api: Any, scope: Scope) -> tuple[list[ServiceFacts], list[BudgetFacts]]:
    """The scope's services and budgets; a team label that matches nothing is an error."""
    services = [s for s in (read(InferenceService, o) for o in _list(api, "inferenceservices", scope))]
    budgets = [b for b in (read(AIBudget, o) for o in _list(api, "aibudgets", scope))]
    if scope.team_label and not services and not budgets:
        raise ScopeError(
            f"no InferenceService or AIBudget in any namespace has the label {scope.team_label}; "
            "check the label's key and value (kubectl get aisvc,aib -A --show-labels)"
        )
    return (
        [_service_facts(s) for s in services if not isinstance(s, InvalidSpec)],
        [_budget_facts(b) for b in budgets if not isinstance(b, InvalidSpec)],
    )


def _service_facts(isvc: InferenceService) -> ServiceFacts:
    return ServiceFacts(
        namespace=isvc.metadata.namespace or "",
        name=isvc.metadata.name,
        model=isvc.spec.model,
        hosting="self-hosted" if isvc.spec.serving is not None else "api",
        pricing=billed_pricing(isvc.spec),  # what budgets charge it: each dollar once
        mode=isvc.status.mode,
    )


def _budget_facts(budget: AIBudget) -> BudgetFacts:
    status = budget.status
    return BudgetFacts(
        namespace=budget.metadata.namespace or "",
        name=budget.metadata.name,
        currency=budget.spec.currency,
        limit=Decimal(budget.spec.limit),
        spent=parse_money(status.spent) if status.last_evaluated is not None else None,
        forecast=parse_money(status.forecast) if status.forecast else None,
        state=status.state,
        breakdown={s.name: parse_money(s.spent) or Decimal(0) for s in status.breakdown},
        period_end=status.period_end,
    )


@dataclass
class PrometheusReader:
    """Instant queries at the window's end as GroupedResults; range queries as series."""

    url: str
    timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        self._client = PrometheusConnect(url=self.url, retry=Retry(total=0), timeout=self.timeout_seconds)

    def instant(self, query: str, window: ReportWindow) -> list[dict[str, Any]] | Unavailable:
        """The query's series at the window's end, labels whole; a failure is a reading."""
        try:
            result = self._client.custom_query(query, params={"time": window.end.timestamp()})
        except Exception as error:
            return Unavailable("QueryError", str(error)[:300])
        return list(result)

    def grouped(self, query: str, window: ReportWindow) -> GroupedResult:
        """Values keyed by (namespace, service), as the operator reads them."""
        result = self.instant(query, window)
        if isinstance(result, Unavailable):
            return GroupedResult({}, result)
        values: dict[ServiceKey, float] = {}
        for series in result:
            labels = series.get("metric", {})
            values[(labels.get("namespace", ""), labels.get("service", ""))] = float(series["value"][1])
        return GroupedResult(values)

    def series(
        self, query: str, window: ReportWindow, key: Callable[[Mapping[str, str]], str]
    ) -> dict[str, list[tuple[float, float]]]:
        step = max(window.seconds // 200, 15)
        try:
            result = self._client.custom_query_range(
                query, start_time=window.start, end_time=window.end, step=f"{step}s"
            )
        except Exception:
            return {}
        found: dict[str, list[tuple[float, float]]] = {}
        for series in result:
            points = [(float(t), float(v)) for t, v in series["values"] if math.isfinite(float(v))]
            found[key(series.get("metric", {}))] = points
        return found


def gather(
    api: Any, prometheus: PrometheusReader, scope: Scope, window: ReportWindow, names: MetricNames
) -> Report:
    services, budgets = read_objects(api, scope)
    span = window.promql_range
    asked: dict[str, str | None] = {
        "requests": presets.requests_finished(names, span),
        "failed_requests": presets.requests_failed(names, span),
        "input_tokens": token_increase(names, "input", span),
        "output_tokens": token_increase(names, "output", span),
        "gpu_hours": gpu_hours(span, 15),
        "idle_gpu_hours": queries.idle_gpu_hours(names, span),
        "ttft_p50": presets.service_latency_quantile(names, "ttft", 0.5, span),
        "ttft_p95": presets.service_latency_quantile(names, "ttft", 0.95, span),
        "ttft_p99": presets.service_latency_quantile(names, "ttft", 0.99, span),
        "e2e_p95": presets.service_latency_quantile(names, "e2e", 0.95, span),
        "seconds_in_fallback": queries.seconds_in_mode("Fallback", span),
        "seconds_degraded": queries.seconds_in_mode("Degraded", span),
    }
    not_exported = GroupedResult({}, Unavailable("NoData", "the model server exports no such metric"))
    answers = {
        field: prometheus.grouped(query, window) if query is not None else not_exported
        for field, query in asked.items()
    }
    # Counters and integrals that answered without a series for a service mean none happened.
    zero_when_absent = {
        "failed_requests",
        "gpu_hours",
        "idle_gpu_hours",
        "seconds_in_fallback",
        "seconds_degraded",
    }
    models = []
    for facts in services:
        key = (facts.namespace, facts.name)
        readings = {
            field: answer.reading_or_zero_when_answered(key)
            if field in zero_when_absent
            else answer.reading(key)
            for field, answer in answers.items()
        }
        models.append(model_line(facts, ServiceReadings(**readings)))
    hosting = {facts.name: facts.hosting for facts in services}
    return Report(
        scope=scope.describe(),
        window=window,
        budgets=[budget_line(b, hosting) for b in budgets],
        models=models,
        charts=_charts(prometheus, services, budgets, window, names),
    )


def _charts(
    prometheus: PrometheusReader,
    services: list[ServiceFacts],
    budgets: list[BudgetFacts],
    window: ReportWindow,
    names: MetricNames,
) -> Charts:
    def by_service(labels: Mapping[str, str]) -> str:
        return f"{labels.get('namespace', '')}/{labels.get('service', '')}"

    def by_budget(labels: Mapping[str, str]) -> str:
        return f"{labels.get('namespace', '')}/{labels.get('budget', '')}"

    spend: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(dict)
    for line, metric in (
        ("spent", "aipolicy_budget_spent"),
        ("limit", "aipolicy_budget_limit"),
        ("forecast", "aipolicy_budget_forecast"),
    ):
        for budget, points in prometheus.series(metric, window, by_budget).items():
            spend[budget][line] = points
    wanted_budgets = {f"{b.namespace}/{b.name}" for b in budgets}
    gpus = prometheus.series(queries.gpus_now(), window, by_service)
    inputs = prometheus.series(queries.token_rate(names, "input"), window, by_service)
    outputs = prometheus.series(queries.token_rate(names, "output"), window, by_service)
    rates = prometheus.series(queries.request_rate(names), window, by_service)
    cost_per_1k = {}
    for facts in services:
        key = f"{facts.namespace}/{facts.name}"
        cost_per_1k[key] = cost_per_1k_series(
            facts,
            gpus=gpus.get(key, []),
            input_rate=inputs.get(key, []),
            output_rate=outputs.get(key, []),
            request_rate=rates.get(key, []),
        )
    histogram = _histograms(prometheus, services, window, names)
    return Charts(
        spend={k: v for k, v in spend.items() if k in wanted_budgets},
        cost_per_1k_requests=cost_per_1k,
        ttft_histogram=histogram,
    )


def _histograms(
    prometheus: PrometheusReader, services: list[ServiceFacts], window: ReportWindow, names: MetricNames
) -> dict[str, list[tuple[float, float]]]:
    query = queries.ttft_buckets(names, window.promql_range)
    result = prometheus.instant(query, window)
    if isinstance(result, Unavailable):
        return {}
    cumulative: dict[str, dict[float, float]] = defaultdict(dict)
    for series in result:
        labels = series.get("metric", {})
        le = float(labels.get("le", "nan"))
        if math.isfinite(le):
            cumulative[f"{labels.get('namespace', '')}/{labels.get('service', '')}"][le] = float(
                series["value"][1]
            )
    wanted = {f"{s.namespace}/{s.name}" for s in services}
    return {key: bucket_counts(values) for key, values in cumulative.items() if key in wanted}
