"""Manifests go through the operator's own models: what the operator refuses, the simulator
refuses with the same message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from aipolicy.api.inferenceservice import InferenceService
from aipolicy.api.reading import InvalidSpec, read
from aipolicy.whatif.manifests import ManifestError, load_manifests

SAMPLES = Path(__file__).resolve().parents[3] / "manifests" / "samples"


def _isvc(**scaling: Any) -> dict[str, Any]:
    return {
        "apiVersion": "aipolicy.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "serving": {"image": "vllm/vllm-openai:v0.6.3", "gpu": {"product": "NVIDIA-H100-80GB-HBM3"}},
            "pricing": {"gpuHour": "3.00"},
            "scaling": {"minReplicas": 1, "maxReplicas": 4, **scaling},
        },
    }


def _write(tmp_path: Path, body: dict[str, Any]) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_samples_load() -> None:
    m = load_manifests([SAMPLES])
    names = {s.metadata.name for s in m.services}
    assert {"llama-8b", "llama-70b", "llama-1b", "gpt-4o-mini"} <= names
    # budgets and fallback policies are read through their models, and simulated
    assert [b.metadata.name for b in m.budgets] == ["team-a-monthly"]
    assert [p.metadata.name for p in m.policies] == ["llama-70b-fallback"]
    assert "AIBudget/team-a-monthly" not in m.others


def test_refused_with_the_operators_message(tmp_path: Path) -> None:
    body = _isvc(maxReplicas=0, metric={"type": "QueueDepth", "target": -1})
    operator_says = read(InferenceService, body)
    assert isinstance(operator_says, InvalidSpec)
    with pytest.raises(ManifestError) as err:
        load_manifests([_write(tmp_path, body)])
    assert str(err.value).endswith(f"InferenceService/m: {operator_says.message}")
    assert "spec.scaling.maxReplicas" in str(err.value)


@pytest.mark.parametrize(
    ("scaling", "message"),
    [
        ({"minReplicas": 5}, "minReplicas must be less than or equal to maxReplicas"),
        ({"metric": {"type": "SLO"}}, "slo is required when metric.type is SLO"),
        ({"scaleToZeroAfter": "5m"}, "scaleToZeroAfter needs minReplicas: 0"),
    ],
)
def test_cel_rules_are_refused_with_the_crds_message(
    tmp_path: Path, scaling: dict[str, Any], message: str
) -> None:
    with pytest.raises(ManifestError, match=message):
        load_manifests([_write(tmp_path, _isvc(**scaling))])


def test_slo_spec_is_accepted(tmp_path: Path) -> None:
    body = _isvc(metric={"type": "SLO"}, slo={"ttftP95": 1.5, "overflow": {"inferenceService": "api"}})
    (svc,) = load_manifests([_write(tmp_path, body)]).services
    assert svc.spec.scaling.slo is not None and svc.spec.scaling.slo.ttft_p95 == 1.5
