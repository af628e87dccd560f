"""The manifests a user would ``kubectl apply``, read through the operator's own models.

Every InferenceService is parsed by :func:`aipolicy.api.reading.read`, the one place the
operator turns an object into a model, so a spec the operator refuses is refused here with the
same message (the field path and the problem). The models' CEL rules (cross-field checks the
apiserver runs at apply time) are checked too, for the rules the simulator depends on.
AIBudgets and FallbackPolicies are read through their models too and simulated with the
service they govern (:mod:`aipolicy.whatif.governance`); other kinds are listed, not simulated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from aipolicy.api.aibudget import KIND as BUDGET_KIND
from aipolicy.api.aibudget import AIBudget
from aipolicy.api.common import API_VERSION
from aipolicy.api.fallbackpolicy import KIND as POLICY_KIND
from aipolicy.api.fallbackpolicy import FallbackPolicy
from aipolicy.api.inferenceservice import KIND, InferenceService
from aipolicy.api.reading import InvalidSpec, read

__all__ = ["ManifestError", "Manifests", "load_manifests"]


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and the object."""


@dataclass(frozen=True)
class Manifests:
    services: tuple[InferenceService, ...]
    others: tuple[str, ...]
    """Kind/name of the objects read but not simulated."""
    budgets: tuple[AIBudget, ...] = ()
    policies: tuple[FallbackPolicy, ...] = ()

    def in_namespace(self, namespace: str) -> tuple[InferenceService, ...]:
        return tuple(s for s in self.services if s.metadata.namespace == namespace)

    def budgets_selecting(self, isvc: InferenceService) -> tuple[AIBudget, ...]:
        """The AIBudgets of the service's namespace whose selector matches its labels."""
        return tuple(
            b for b in self.budgets
            if b.metadata.namespace == isvc.metadata.namespace
            and b.spec.selector.matches(isvc.metadata.labels)
        )  # fmt: skip

    def policy_for(self, isvc: InferenceService) -> FallbackPolicy | None:
        """The FallbackPolicy targeting the service (the first by name, as the gateway picks)."""
        mine = [
            p for p in self.policies
            if p.metadata.namespace == isvc.metadata.namespace and p.spec.target == isvc.metadata.name
        ]  # fmt: skip
        return min(mine, key=lambda p: p.metadata.name) if mine else None

    def find(self, namespace: str, name: str) -> InferenceService | None:
        for s in self.services:
            if s.metadata.namespace == namespace and s.metadata.name == name:
                return s
        return None


def _files(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml", ".json"))
        elif p.exists():
            out.append(p)
        else:
            raise ManifestError(f"{p}: no such file or directory")
    return out


def _cel_checks(isvc: InferenceService) -> str | None:
    """The Scaling CEL rules, evaluated on the model (the apiserver's message for each)."""
    s = isvc.spec.scaling
    rules = [
        (s.min_replicas <= s.max_replicas, "minReplicas must be less than or equal to maxReplicas"),
        (s.scale_to_zero_after is None or s.min_replicas == 0, "scaleToZeroAfter needs minReplicas: 0"),
        (
            all(p.min_replicas <= s.max_replicas for p in s.prewarm),
            "each prewarm minReplicas must be at most maxReplicas",
        ),
        (len({p.name for p in s.prewarm}) == len(s.prewarm), "prewarm names must be unique"),
        (s.metric.type != "SLO" or s.slo is not None, "slo is required when metric.type is SLO"),
        (s.metric.type != "PromQL" or s.metric.query is not None, "query is required when type is PromQL"),
    ]
    for ok, message in rules:
        if not ok:
            return f'spec.scaling: Invalid value: "object": {message}'
    spec = isvc.spec
    if (spec.serving is None) == (spec.provider is None):
        return 'spec: Invalid value: "object": exactly one of serving and provider must be set'
    if spec.serving is not None and spec.pricing.gpu_hour is None:
        return (
            'spec: Invalid value: "object": pricing.gpuHour is required for a self-hosted (serving) service'
        )
    return None


def _governing_checks(obj: AIBudget | FallbackPolicy) -> str | None:
    """The CEL rules of budgets and policies the simulation depends on (the apiserver's message)."""
    rules: list[tuple[str, bool, str]]
    if isinstance(obj, AIBudget):
        b = obj.spec
        percents = [t.percent for t in b.thresholds]
        rules = [
            ("spec", Decimal(b.limit) > 0, "limit must be greater than zero"),
            (
                "spec.period",
                (b.period.type == "Rolling") == (b.period.window is not None),
                "window is required for Rolling periods and only allowed for them",
            ),
            ("spec", len(set(percents)) == len(percents), "thresholds must have distinct percents"),
            ("spec", percents == sorted(percents), "thresholds must be sorted by ascending percent"),
        ]
    else:
        p = obj.spec
        rules = []
        for i, t in enumerate(p.triggers):
            where = f"spec.triggers[{i}]"
            rules += [
                (
                    where,
                    t.type not in ("ErrorRate", "Latency", "PromQL") or t.threshold is not None,
                    "threshold is required for ErrorRate, Latency and PromQL triggers",
                ),
                (
                    where,
                    t.type != "Budget" or t.budget is not None,
                    "budget is required for a Budget trigger",
                ),
            ]
        for i, step in enumerate(p.chain):
            one = (step.inference_service is not None) + (step.provider is not None) + bool(step.degraded)
            rules.append(
                (
                    f"spec.chain[{i}]",
                    one == 1,
                    "each fallback step needs exactly one of inferenceService, provider and degraded: true",
                )
            )
        rules.append(
            (
                "spec",
                all(s.inference_service != p.target for s in p.chain),
                "the chain must not lead back to the target itself",
            )
        )
    for where, ok, message in rules:
        if not ok:
            return f'{where}: Invalid value: "object": {message}'
    return None


def _with_namespace(obj: AIBudget | FallbackPolicy) -> AIBudget | FallbackPolicy:
    if obj.metadata.namespace:
        return obj
    meta = obj.metadata.model_copy(update={"namespace": "default"})
    return obj.model_copy(update={"metadata": meta})


def parse_object(
    body: dict[str, Any], where: str
) -> InferenceService | AIBudget | FallbackPolicy | str | None:
    """An InferenceService, AIBudget or FallbackPolicy (through the operator's models), or
    ``Kind/name`` for another kind, or None for an empty document."""
    if not body:
        return None
    kind = body.get("kind")
    name = (body.get("metadata") or {}).get("name", "?")
    if kind not in (KIND, BUDGET_KIND, POLICY_KIND):
        return f"{kind}/{name}"
    if body.get("apiVersion") != API_VERSION:
        raise ManifestError(f"{where}: {kind}/{name}: apiVersion must be {API_VERSION}")
    if kind in (BUDGET_KIND, POLICY_KIND):
        other = read(AIBudget, body) if kind == BUDGET_KIND else read(FallbackPolicy, body)
        if isinstance(other, InvalidSpec):
            raise ManifestError(f"{where}: {kind}/{name}: {other.message}")
        refused = _governing_checks(other)
        if refused:
            raise ManifestError(f"{where}: {kind}/{name}: {refused}")
        return _with_namespace(other)
    parsed = read(InferenceService, body)
    if isinstance(parsed, InvalidSpec):
        raise ManifestError(f"{where}: {kind}/{name}: {parsed.message}")
    refused = _cel_checks(parsed)
    if refused:
        raise ManifestError(f"{where}: {kind}/{name}: {refused}")
    if not parsed.metadata.namespace:
        parsed = parsed.model_copy(
            update={"metadata": parsed.metadata.model_copy(update={"namespace": "default"})}
        )
    return parsed


def load_manifests(paths: Iterable[str | Path]) -> Manifests:
    services: list[InferenceService] = []
    budgets: list[AIBudget] = []
    policies: list[FallbackPolicy] = []
    others: list[str] = []
    for path in _files(paths):
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except (OSError, yaml.YAMLError) as exc:
            raise ManifestError(f"{path}: {exc}") from None
        for i, body in enumerate(documents):
            where = f"{path}" + (f" (document {i + 1})" if len(documents) > 1 else "")
            if body is not None and not isinstance(body, dict):
                raise ManifestError(f"{where}: not a Kubernetes object")
            parsed = parse_object(body or {}, where)
            if isinstance(parsed, InferenceService):
                services.append(parsed)
            elif isinstance(parsed, AIBudget):
                budgets.append(parsed)
            elif isinstance(parsed, FallbackPolicy):
                policies.append(parsed)
            elif parsed:
                others.append(parsed)
    if not services:
        raise ManifestError("no InferenceService in the manifests given")
    return Manifests(tuple(services), tuple(others), tuple(budgets), tuple(policies))
