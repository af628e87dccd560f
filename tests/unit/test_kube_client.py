"""The table of kinds the operator writes names real methods of the kubernetes client."""

from __future__ import annotations

import kubernetes
import pytest

from aipolicy.kube.client import OWNED_KINDS

# The attribute of Kube that holds each API group, and the class it is.
_GROUPS = {
    "apps": kubernetes.client.AppsV1Api,
    "core": kubernetes.client.CoreV1Api,
    "policy": kubernetes.client.PolicyV1Api,
    "rbac": kubernetes.client.RbacAuthorizationV1Api,
}


@pytest.mark.parametrize("kind", sorted(OWNED_KINDS))
@pytest.mark.parametrize("verb", ["patch", "delete"])
def test_every_owned_kind_can_be_applied_and_deleted(kind: str, verb: str) -> None:
    group, resource = OWNED_KINDS[kind]
    assert callable(getattr(_GROUPS[group], f"{verb}_namespaced_{resource}"))


def test_the_gateway_and_the_service_children_are_all_owned_kinds() -> None:
    assert set(OWNED_KINDS) == {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ServiceAccount",
        "Role",
        "RoleBinding",
    }
