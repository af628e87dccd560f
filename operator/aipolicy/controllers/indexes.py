"""In-memory indexes kopf keeps current from its watches; handlers read these, not the API.

Each index keeps only the fields its readers use, never whole bodies: a Deployment as stored
carries its managedFields and pod template, several kilobytes each that become tens of
kilobytes as Python objects; at a thousand services whole bodies made the operator's memory
grow by hundreds of MiB (BENCHMARKS.md). The slimming functions are pure and tested; a reader
that needs a new field adds it here.

(The type-ignores: kopf's handler protocols list every kwarg, our functions take the few they use.)

kopf guarantees every index is fully populated before any resource handler runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import kopf

from aipolicy.gateway import manifests as gateway_manifests
from aipolicy.kube.children import HASH_ANNOTATION, SERVICE_LABEL
from aipolicy.kube.gateway import Observed

Key = tuple[str, str]  # (namespace, name)

# Annotations that only repeat the object (kubectl's and kopf's copies of the last applied
# spec): the largest part of metadata after managedFields, and nobody here reads them.
_BULKY_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "aipolicy.dev/last-handled-configuration",
)
_METADATA_KEPT = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "labels",
    "annotations",
    "deletionTimestamp",
)


def _version(metadata: Mapping[str, Any]) -> dict[str, Any]:
    # resourceVersion tells a reader that nothing changed since it last looked (the
    # InferenceService controller skips a tick whose inputs all kept theirs)
    return {"resourceVersion": metadata["resourceVersion"]} if "resourceVersion" in metadata else {}


def slim_resource(body: Mapping[str, Any]) -> dict[str, Any]:
    """Our own resources as the handlers read them: identity, labels, spec and status, without
    managedFields and the annotations that copy the spec."""
    metadata = body.get("metadata") or {}
    kept = {k: metadata[k] for k in _METADATA_KEPT if k in metadata}
    if "annotations" in kept:
        kept["annotations"] = {k: v for k, v in kept["annotations"].items() if k not in _BULKY_ANNOTATIONS}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": kept,
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


def slim_child(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Deployment, Service or PodDisruptionBudget the operator owns: what it applied last, the
    replicas, and a Deployment's ReplicaFailure."""
    metadata = body.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    slim: dict[str, Any] = {"metadata": _version(metadata)}
    if HASH_ANNOTATION in annotations:
        slim["metadata"]["annotations"] = {HASH_ANNOTATION: annotations[HASH_ANNOTATION]}
    replicas = (body.get("spec") or {}).get("replicas")
    if replicas is not None:
        slim["spec"] = {"replicas": replicas}
    # a Deployment whose pods admission refuses (a ServiceAccount or PriorityClass that does not
    # exist) says so only here: observe/pods.py tells the user
    failures = [
        {k: c[k] for k in ("type", "status", "reason", "message") if k in c}
        for c in (body.get("status") or {}).get("conditions") or []
        if c.get("type") == "ReplicaFailure" and c.get("status") == "True"
    ]
    if failures:
        slim["status"] = {"conditions": failures}
    return slim


def slim_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """What capacity is made of (observe/pods.py): deletion, node, GPU limits, phase, the
    Ready and PodScheduled conditions, and containers waiting (with the kubelet's reason)."""
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    containers = [
        {"resources": {"limits": dict((c.get("resources") or {}).get("limits") or {})}}
        for c in spec.get("containers") or []
    ]
    conditions = [
        {k: c[k] for k in ("type", "status", "reason", "message", "lastTransitionTime") if k in c}
        for c in status.get("conditions") or []
        if c.get("type") in ("Ready", "PodScheduled")
    ]
    waiting = [
        {"name": c.get("name"), "state": {"waiting": dict(c["state"]["waiting"])}}
        for c in status.get("containerStatuses") or []
        if (c.get("state") or {}).get("waiting")
    ]
    slim: dict[str, Any] = {
        # creationTimestamp and Ready's lastTransitionTime: the cold start (policy/coldstart.py)
        "metadata": {"name": metadata.get("name"), **_version(metadata)},
        "spec": {"containers": containers},
        "status": {"conditions": conditions},
    }
    if waiting:  # why a container cannot start (a wrong image): observe/pods.py reports it
        slim["status"]["containerStatuses"] = waiting
    if metadata.get("creationTimestamp"):
        slim["metadata"]["creationTimestamp"] = metadata["creationTimestamp"]
    if metadata.get("deletionTimestamp"):
        slim["metadata"]["deletionTimestamp"] = metadata["deletionTimestamp"]
    if spec.get("nodeName"):
        slim["spec"]["nodeName"] = spec["nodeName"]
    if status.get("phase"):
        slim["status"]["phase"] = status["phase"]
    return slim


@kopf.index("aipolicy.dev", "v1alpha1", "inferenceservices")  # type: ignore[arg-type]
def inferenceservices_by_key(
    namespace: str, name: str, body: kopf.Body, **_: Any
) -> dict[Key, dict[str, Any]]:
    return {(namespace, name): slim_resource(body)}


@kopf.index("aipolicy.dev", "v1alpha1", "inferenceservices")  # type: ignore[arg-type]
def inferenceservices_by_namespace(namespace: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """Every service of a namespace: whether the namespace needs its gateway depends on all."""
    return {namespace: slim_resource(body)}


@kopf.index("aipolicy.dev", "v1alpha1", "aibudgets")  # type: ignore[arg-type]
def aibudgets_by_key(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]]:
    """Every budget: the objects its evaluation cycle walks (controllers/cycle.py)."""
    return {(namespace, name): slim_resource(body)}


@kopf.index("aipolicy.dev", "v1alpha1", "fallbackpolicies")  # type: ignore[arg-type]
def fallbackpolicies_by_key(
    namespace: str, name: str, body: kopf.Body, **_: Any
) -> dict[Key, dict[str, Any]]:
    """Every policy: the objects its evaluation cycle walks (controllers/cycle.py)."""
    return {(namespace, name): slim_resource(body)}


@kopf.index("aipolicy.dev", "v1alpha1", "aibudgets")  # type: ignore[arg-type]
def aibudgets_by_namespace(namespace: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {namespace: slim_resource(body)}


@kopf.index("aipolicy.dev", "v1alpha1", "fallbackpolicies")  # type: ignore[arg-type]
def fallbackpolicies_by_target(
    namespace: str, spec: kopf.Spec, body: kopf.Body, **_: Any
) -> dict[Key, dict[str, Any]]:
    return {(namespace, str(spec.get("target", ""))): slim_resource(body)}


def _by_service(
    group: str, version: str, plural: str, slim: Callable[[Mapping[str, Any]], dict[str, Any]], *, id: str
) -> Callable[..., dict[Key, dict[str, Any]]]:
    """Index one kind of the children the operator labels with their InferenceService, slimmed;
    `id` is the index's name, the keyword the handlers take it by."""

    def index(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]]:
        return {(namespace, labels[SERVICE_LABEL]): slim(body)}

    index.__name__ = index.__qualname__ = id
    kopf.index(group, version, plural, labels={SERVICE_LABEL: kopf.PRESENT}, id=id)(index)  # type: ignore[arg-type]
    return index


pods_by_service = _by_service("", "v1", "pods", slim_pod, id="pods_by_service")
deployments_by_service = _by_service("apps", "v1", "deployments", slim_child, id="deployments_by_service")
services_by_service = _by_service("", "v1", "services", slim_child, id="services_by_service")
disruption_budgets_by_service = _by_service(
    "policy", "v1", "poddisruptionbudgets", slim_child, id="disruption_budgets_by_service"
)


def observed_gateway_object(body: Mapping[str, Any]) -> Observed:
    """One of a namespace's gateway objects, as much as drift repair compares (kube/gateway.py)."""
    metadata = body.get("metadata") or {}
    replicas = (body.get("spec") or {}).get("replicas") if body.get("kind") == "Deployment" else None
    generation = metadata.get("generation") if body.get("kind") == "Deployment" else None
    return Observed((metadata.get("annotations") or {}).get(HASH_ANNOTATION), replicas, generation)


def _gateway_object(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[str, Observed] | None:
    return {namespace: observed_gateway_object(body)} if name == gateway_manifests.NAME else None


# The gateway's own objects, one index per kind, by namespace: someone deleting or editing one is
# seen here and repaired on the next tick (inferenceservice._reconcile_gateway).
_GATEWAY_RESOURCES = {
    "ServiceAccount": ("", "serviceaccounts"),
    "Role": ("rbac.authorization.k8s.io", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings"),
    "Service": ("", "services"),
    "Deployment": ("apps", "deployments"),
}
GATEWAY_INDEXES = {kind: f"gateway_{plural}" for kind, (_, plural) in _GATEWAY_RESOURCES.items()}
for kind, (group, plural) in _GATEWAY_RESOURCES.items():
    kopf.index(group, "v1", plural, id=GATEWAY_INDEXES[kind], labels=gateway_manifests.SELECTOR)(
        _gateway_object  # type: ignore[arg-type]
    )


def observed_gateway(indexes: Mapping[str, Any], namespace: str) -> dict[str, Observed]:
    """The namespace's gateway objects by kind, from the indexes kopf passes every handler."""
    found = {kind: one(indexes[index], namespace) for kind, index in GATEWAY_INDEXES.items()}
    return {kind: obj for kind, obj in found.items() if obj is not None}


def one(index: kopf.Index[Any, Any], key: Any) -> Any | None:
    """The single value an index holds for a key, or None."""
    store = index.get(key)
    if not store:
        return None
    for value in store:
        return value
    return None
