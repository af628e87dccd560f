"""The indexes of the children by their service: registered under the names handlers take."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from aipolicy.controllers import indexes
from aipolicy.kube.children import SERVICE_LABEL

BY_SERVICE = {
    "pods_by_service": ("", "pods", indexes.slim_pod),
    "deployments_by_service": ("apps", "deployments", indexes.slim_child),
    "services_by_service": ("", "services", indexes.slim_child),
    "disruption_budgets_by_service": ("policy", "poddisruptionbudgets", indexes.slim_child),
}


def _registered() -> dict[str, Any]:
    return {h.id: h for h in kopf.get_default_registry()._indexing.get_all_handlers()}


@pytest.mark.parametrize("name", sorted(BY_SERVICE))
def test_each_child_index_is_registered_under_the_keyword_handlers_take(name: str) -> None:
    group, plural, _ = BY_SERVICE[name]
    handler = _registered()[name]
    selector = handler.selector
    assert (selector.group, selector.version, selector.any_name) == (group, "v1", plural)
    assert handler.labels == {SERVICE_LABEL: kopf.PRESENT}


@pytest.mark.parametrize("name", sorted(BY_SERVICE))
def test_each_child_index_keys_a_slimmed_child_by_its_namespace_and_service(name: str) -> None:
    _, _, slim = BY_SERVICE[name]
    body: dict[str, Any] = {
        "metadata": {"name": "chat-7f9", "namespace": "team-a", "labels": {SERVICE_LABEL: "chat"}},
        "spec": {},
        "status": {},
    }
    index = getattr(indexes, name)
    assert index(namespace="team-a", labels=body["metadata"]["labels"], body=body) == {
        ("team-a", "chat"): slim(body)
    }
