"""Generate CustomResourceDefinitions from the pydantic models (``aipolicy crds``).

pydantic emits JSON Schema; Kubernetes wants a *structural* OpenAPI v3 schema: no ``$ref``, no
``anyOf`` with null, boolean ``exclusiveMinimum``, ``x-kubernetes-preserve-unknown-fields`` for
free-form objects. This module turns one into the other and wraps it in a CRD with printer
columns, short names, the ``ai`` category and the status subresource.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from aipolicy.api import aibudget, fallbackpolicy, inferenceservice
from aipolicy.api.common import GROUP, VERSION

CATEGORY = "ai"
_DROP_KEYS = {"title", "additionalProperties", "propertyNames"}


@dataclass(frozen=True)
class Kind:
    """What a CRD needs to know of one kind."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    printer_columns: list[dict[str, Any]]
    description: str


KINDS = (
    Kind(
        inferenceservice.KIND,
        inferenceservice.PLURAL,
        inferenceservice.SHORT_NAMES,
        inferenceservice.InferenceServiceSpec,
        inferenceservice.InferenceServiceStatus,
        inferenceservice.PRINTER_COLUMNS,
        "InferenceService is a model endpoint, self-hosted on GPUs or backed by an API provider, "
        "with its prices and how it scales.",
    ),
    Kind(
        aibudget.KIND,
        aibudget.PLURAL,
        aibudget.SHORT_NAMES,
        aibudget.AIBudgetSpec,
        aibudget.AIBudgetStatus,
        aibudget.PRINTER_COLUMNS,
        "AIBudget is a spend limit per period over the InferenceServices it selects in its "
        "namespace, with thresholds that notify, degrade and suspend, and a forecast.",
    ),
    Kind(
        fallbackpolicy.KIND,
        fallbackpolicy.PLURAL,
        fallbackpolicy.SHORT_NAMES,
        fallbackpolicy.FallbackPolicySpec,
        fallbackpolicy.FallbackPolicyStatus,
        fallbackpolicy.PRINTER_COLUMNS,
        "FallbackPolicy switches an InferenceService's front door to a fallback when it is down, "
        "slow, erroring, out of GPUs or over budget, and back once healthy.",
    ),
)


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a model, every reference inlined."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    return _convert(raw, definitions)


def _convert(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**_convert(target, definitions)}
        # the field's own description and default win over the referenced model's
        for key in ("description", "default"):
            if key in node:
                merged[key] = node[key]
        return merged
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"a union is not structural: {node}")
        merged = {**_convert(options[0], definitions)}
        if "description" in node:
            merged["description"] = node["description"]
        if node.get("default") is not None:
            merged["default"] = node["default"]
        return merged

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS or (key == "default" and value is None):
            continue
        if key == "properties":
            out["properties"] = {name: _convert(sub, definitions) for name, sub in value.items()}
        elif key == "items":
            out["items"] = _convert(value, definitions)
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        else:
            out[key] = value

    if node.get("type") == "object" and "properties" not in node:
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            out["additionalProperties"] = _convert(extra, definitions)
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _schema_with_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """Add the defaults that pydantic computes with default factories, so that the apiserver
    fills nested objects and lists too (and CEL rules can rely on their presence)."""
    schema = structural_schema(model)
    _fill_factory_defaults(model, schema)
    return schema


def _fill_factory_defaults(model: type[BaseModel], schema: dict[str, Any]) -> None:
    for name, field in model.model_fields.items():
        alias = field.alias or name
        sub = schema.get("properties", {}).get(alias)
        if sub is None:
            continue
        if field.default_factory is not None:
            value = field.default_factory()  # type: ignore[call-arg]
            sub["default"] = _to_json(value)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            _fill_factory_defaults(annotation, sub)
        elif getattr(annotation, "__origin__", None) is list:
            (item,) = annotation.__args__  # type: ignore[union-attr]
            if isinstance(item, type) and issubclass(item, BaseModel) and "items" in sub:
                _fill_factory_defaults(item, sub["items"])
        else:
            for arg in getattr(annotation, "__args__", ()):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    _fill_factory_defaults(arg, sub)


def _to_json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def crd(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    spec_schema = _schema_with_defaults(kind.spec)
    status_schema = structural_schema(kind.status)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "aipolicy",
                "app.kubernetes.io/part-of": "aipolicy",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": list(kind.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": kind.printer_columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": kind.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {
                                    "type": "string",
                                    "description": "APIVersion of the object.",
                                },
                                "kind": {"type": "string", "description": "Kind of the object."},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render(kind: Kind) -> str:
    """The CRD of one kind as YAML, with a header saying it is generated."""
    header = "# Generated by `make crds` from operator/aipolicy/api/; do not edit.\n"
    return header + yaml.safe_dump(crd(kind), sort_keys=False, width=100)


def write_all(directory: Path) -> list[Path]:
    """Write every CRD into directory; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = directory / f"{GROUP}_{kind.plural}.yaml"
        path.write_text(render(kind))
        written.append(path)
    return written
