"""The one place that turns a Kubernetes object (a kopf body or a dict) into a model.

The CRD schema refuses most bad input at apply time. What it lets through but the operator
cannot act on (an old CRD without a rule, a time zone this Python lacks) becomes `InvalidSpec`:
a message that names the field, one event, a `Ready=False` condition; never a crash loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class InvalidSpec:
    """Why an object cannot be acted on; `message` names the field."""

    message: str


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def describe(error: ValidationError) -> str:
    """One line per problem: `spec.scaling.maxReplicas: Input should be ...`."""
    lines = []
    for problem in error.errors(include_url=False):
        where = _field_path(tuple(problem["loc"])) or "object"
        lines.append(f"{where}: {problem['msg']}")
    return "; ".join(lines)


def read(model: type[M], body: Mapping[str, Any]) -> M | InvalidSpec:
    """Parse an object; status parse errors are tolerated (status is ours and may be old)."""
    data = {
        "metadata": dict(body.get("metadata", {})),
        "spec": dict(body.get("spec", {}) or {}),
        "status": dict(body.get("status", {}) or {}),
    }
    try:
        return model.model_validate(data)
    except ValidationError as error:
        if all(str(p["loc"][0]) == "status" for p in error.errors()):
            # a status written by an older operator: start from a fresh one rather than stall
            data["status"] = {}
            try:
                return model.model_validate(data)
            except ValidationError as second:
                return InvalidSpec(describe(second))
        return InvalidSpec(describe(error))
