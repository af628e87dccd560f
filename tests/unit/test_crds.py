"""The CRDs in crds/ are generated from the models, structural, and up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from aipolicy.api import crd

CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.mark.parametrize("kind", crd.KINDS, ids=lambda k: k.kind)
def test_crds_directory_is_up_to_date(kind: crd.Kind) -> None:
    path = CRDS / f"aipolicy.dev_{kind.plural}.yaml"
    assert path.exists(), f"{path} is missing: run `make crds`"
    assert path.read_text() == crd.render(kind), f"{path} is stale: run `make crds` and commit it"


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found.extend(_walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_walk(value, f"{path}[{i}]"))
    return found


@pytest.mark.parametrize("kind", crd.KINDS, ids=lambda k: k.kind)
def test_schema_is_structural_and_documented(kind: crd.Kind) -> None:
    schema = crd.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node, path
        assert "anyOf" not in node and "oneOf" not in node, path
        assert node.get("type") != "null", path
    spec = schema["properties"]["spec"]
    undocumented = [
        f"spec{path}.{name}"
        for path, node in _walk(spec)
        if isinstance(node.get("properties"), dict) and node.get("type") == "object"
        for name, prop in node["properties"].items()
        if not prop.get("description")
    ]
    assert not undocumented, f"{kind.kind}: fields without a description: {undocumented}"


def test_every_kind_has_short_names_and_the_ai_category() -> None:
    shorts = {k.kind: crd.crd(k)["spec"]["names"]["shortNames"] for k in crd.KINDS}
    assert shorts == {"InferenceService": ["aisvc"], "AIBudget": ["aib"], "FallbackPolicy": ["fbp"]}
    for kind in crd.KINDS:
        assert crd.crd(kind)["spec"]["names"]["categories"] == ["ai"]


def test_generated_yaml_round_trips() -> None:
    for kind in crd.KINDS:
        assert yaml.safe_load(crd.render(kind)) == crd.crd(kind)
