"""An object the operator cannot act on still reports the generation it read (issue 13, item 7).

kstatus and Argo CD trust a status only once status.observedGeneration reaches
metadata.generation; an InvalidSpec that leaves it behind looks forever in progress.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.cluster import Cluster, wait_until
from tests.e2e.conftest import OperatorFactory

GROUP_VERSION = "aipolicy.dev/v1alpha1"


@pytest.fixture(autouse=True)
def _crds(crds_installed: None) -> None:
    """Every test here needs the CRDs."""


def _isvc(schedule: str) -> dict[str, Any]:
    """A cron of the right shape with impossible values passes the CRD; the operator cannot use it."""
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": "odd"},
        "spec": {
            "model": "m",
            "serving": {"image": "vllm/vllm-openai:v0.6.3"},
            "pricing": {"gpuHour": "1"},
            "scaling": {
                "minReplicas": 1,
                "maxReplicas": 2,
                "prewarm": [{"name": "am", "schedule": schedule, "duration": "1h", "minReplicas": 1}],
            },
        },
    }


def _invalid_at_its_generation(cluster: Cluster, namespace: str) -> dict[str, Any] | None:
    obj = cluster.get("inferenceservice", "odd", namespace) or {}
    status = obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    generation = obj.get("metadata", {}).get("generation")
    if ready.get("reason") == "InvalidSpec" and status.get("observedGeneration") == generation:
        return obj
    return None


def test_an_invalid_spec_is_reported_at_the_objects_generation(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    operator_process(namespace)
    cluster.apply(_isvc("99 8 * * *"), namespace)
    first = wait_until(
        "InvalidSpec with observedGeneration == metadata.generation",
        lambda: _invalid_at_its_generation(cluster, namespace),
        timeout=60,
    )
    assert first["metadata"]["generation"] == 1
    [ready] = [c for c in first["status"]["conditions"] if c["type"] == "Ready"]
    assert ready["observedGeneration"] == 1 and "prewarm[0].schedule" in ready["message"]

    # still invalid after an edit: the new generation is observed too
    cluster.apply(_isvc("8 99 * * *"), namespace)
    second = wait_until(
        "InvalidSpec at generation 2",
        lambda: (
            (obj := _invalid_at_its_generation(cluster, namespace)) and obj["metadata"]["generation"] == 2
        ),
        timeout=60,
    )
    assert second
