"""Pure: whether a namespace needs its gateway, and the objects of that gateway.

Ownership (docs/design.md, "Who owns the gateway"): every object of a namespace's gateway has
one owner reference (not a controller one) per InferenceService of the namespace that needs
L7. Kubernetes' garbage collector deletes an object once all its owners are gone, so deleting
the last such service removes the gateway even while the operator is down; the operator
deletes it itself when the services remain but none needs L7 any more (a chain that lost its
provider), which owner references alone cannot express.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aipolicy.api.common import API_VERSION
from aipolicy.api.fallbackpolicy import FallbackStep
from aipolicy.api.inferenceservice import InferenceService
from aipolicy.gateway import manifests
from aipolicy.kube.children import HASH_ANNOTATION
from aipolicy.policy.frontdoor import l7_reason

#: The gateway's objects, in the order they are applied (the Deployment last: its pods need
#: the ServiceAccount, and the Role must exist before they start reading).
KINDS = ("ServiceAccount", "Role", "RoleBinding", "Service", "Deployment")


@dataclass(frozen=True)
class GatewayNeed:
    """What the namespace's gateway must look like: its owners and the Secrets it may read.
    No owner: the namespace needs no gateway."""

    owners: tuple[tuple[str, str], ...] = ()  # (name, uid), sorted
    secrets: tuple[str, ...] = ()


def gateway_need(services: Iterable[tuple[InferenceService, list[FallbackStep]]]) -> GatewayNeed:
    """From each service of a namespace with its governing FallbackPolicy's chain."""
    services = list(services)
    api = frozenset(isvc.metadata.name for isvc, _ in services if isvc.spec.provider is not None)
    owners: set[tuple[str, str]] = set()
    secrets: set[str] = set()
    for isvc, chain in services:
        if l7_reason(isvc, chain, api) is None:
            continue
        owners.add((isvc.metadata.name, isvc.metadata.uid))
        if isvc.spec.provider is not None and isvc.spec.provider.api_key_secret:
            secrets.add(isvc.spec.provider.api_key_secret)
        for step in chain:
            if step.provider is not None and step.provider.api_key_secret:
                secrets.add(step.provider.api_key_secret)
    return GatewayNeed(tuple(sorted(owners)), tuple(sorted(secrets)))


def gateway_objects(namespace: str, image: str, need: GatewayNeed) -> list[dict[str, Any]]:
    """The five objects, each owned by every service that needs the gateway."""
    assert need.owners, "a namespace without L7 services has no gateway"
    secrets = list(need.secrets)
    objects = [
        manifests.service_account(namespace),
        manifests.role(namespace, secrets),
        manifests.role_binding(namespace),
        manifests.service(namespace),
        manifests.deployment(namespace, image, secrets),
    ]
    owners = [
        {"apiVersion": API_VERSION, "kind": "InferenceService", "name": name, "uid": uid}
        for name, uid in need.owners
    ]
    for obj in objects:
        obj["metadata"] = {**obj["metadata"], "ownerReferences": owners}
        # all of it, replicas included: nobody else scales the gateway
        digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
        obj["metadata"]["annotations"] = {HASH_ANNOTATION: digest}
    return objects


@dataclass(frozen=True)
class Observed:
    """One gateway object as the operator's watch last saw it."""

    applied_hash: str | None = None
    replicas: int | None = None  # a Deployment's spec.replicas
    generation: int | None = None  # a Deployment's metadata.generation


def to_repair(
    wanted: list[dict[str, Any]], observed: Mapping[str, Observed], applied_generation: int | None = None
) -> list[dict[str, Any]]:
    """The wanted objects (in apply order) that are missing or differ from what was applied.

    Drift is seen without reading the API: an object deleted is missing from the watch, one
    whose annotation holds another hash was applied from another need, and a Deployment whose
    replicas were changed (``kubectl scale``) or whose spec was edited since the operator's own
    apply (its generation moved past ``applied_generation``, known until a restart) is put back.
    """
    repair = []
    for obj in wanted:
        seen = observed.get(obj["kind"])
        drifted = seen is None or seen.applied_hash != obj["metadata"]["annotations"][HASH_ANNOTATION]
        if seen is not None and obj["kind"] == "Deployment":
            drifted = drifted or seen.replicas != obj["spec"]["replicas"]
            # a generation below ours is the watch not having caught up with our own apply yet
            if seen.generation is not None and applied_generation is not None:
                drifted = drifted or seen.generation > applied_generation
        if drifted:
            repair.append(obj)
    return repair
