"""Pure manifests of the children an InferenceService owns: its Deployment and its front door.

Server-side applied with the operator's field manager and owned by the InferenceService, so
they are garbage-collected with it (no finalizer) and drift is repaired on the next apply.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aipolicy.api.common import API_VERSION
from aipolicy.api.inferenceservice import InferenceService
from aipolicy.gateway import manifests as gateway_manifests
from aipolicy.kube import pod_spec as pod_spec_fields
from aipolicy.policy.backends import Backend

SERVICE_LABEL = "aipolicy.dev/service"
MODEL_LABEL = "aipolicy.dev/model"
MANAGED_BY = {"app.kubernetes.io/managed-by": "aipolicy"}
FIELD_MANAGER = "aipolicy"
#: The hash of what the operator last applied to a child (replicas aside): comparing it with
#: the manifest it would apply now tells whether an apply is needed, without keeping the
#: child's whole body in memory.
HASH_ANNOTATION = "aipolicy.dev/applied-hash"


def manifest_hash(manifest: dict[str, Any]) -> str:
    """What :data:`HASH_ANNOTATION` holds: metadata and spec, replicas aside (the scaling policy
    owns them, and a change of replicas alone is compared directly)."""
    spec = {k: v for k, v in manifest["spec"].items() if k != "replicas"}
    digest = hashlib.sha256(json.dumps([manifest["metadata"], spec], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def with_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest, annotated with its own hash (in place, and returned)."""
    manifest["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = manifest_hash(manifest)
    return manifest


def applied_hash(obj: dict[str, Any] | None) -> str | None:
    """The hash a child was last applied with; None for no child or one applied without it."""
    if obj is None:
        return None
    annotations = obj.get("metadata", {}).get("annotations") or {}
    hashed: str | None = annotations.get(HASH_ANNOTATION)
    return hashed


#: "selector" (L4: the Service selects the backend's pods) or "gateway" (L7).
FRONT_DOOR_ANNOTATION = "aipolicy.dev/front-door"
#: The front door's port for an API-backed service (it has no server port of its own).
GATEWAY_SERVICE_PORT = 80


def owner_reference(isvc: InferenceService) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "name": isvc.metadata.name,
        "uid": isvc.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_labels(isvc: InferenceService) -> dict[str, str]:
    """Labels that tie pods (and the metrics scraped from them) to their InferenceService."""
    return {SERVICE_LABEL: isvc.metadata.name}


def _label_value(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)[:63].strip("-_.")
    return cleaned or "model"


def deployment(isvc: InferenceService, replicas: int) -> dict[str, Any]:
    """The Deployment of a self-hosted InferenceService at `replicas`."""
    serving = isvc.spec.serving
    assert serving is not None, "only self-hosted services have a Deployment"
    name = isvc.metadata.name
    selector = pod_labels(isvc)
    gpu = serving.gpu
    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": serving.resources.cpu, "memory": serving.resources.memory},
        "limits": {"memory": serving.resources.memory},
    }
    if gpu.count > 0:
        # extended resources must be equal in requests and limits
        resources["requests"][gpu.resource_name] = str(gpu.count)
        resources["limits"][gpu.resource_name] = str(gpu.count)
    node_selector = dict(serving.node_selector)
    if gpu.product:
        node_selector["nvidia.com/gpu.product"] = gpu.product
    container: dict[str, Any] = {
        "name": "server",
        "image": serving.image,
        "ports": [{"name": "http", "containerPort": serving.port, "protocol": "TCP"}],
        "resources": resources,
        "readinessProbe": {
            "httpGet": {"path": serving.readiness_probe.path, "port": "http"},
            "initialDelaySeconds": serving.readiness_probe.initial_delay_seconds,
            "periodSeconds": serving.readiness_probe.period_seconds,
            "failureThreshold": serving.readiness_probe.failure_threshold,
        },
    }
    if serving.command:
        container["command"] = list(serving.command)
    if serving.args:
        container["args"] = list(serving.args)
    container.update(pod_spec_fields.container_fields(serving, isvc.spec.scaling.cold_start_seconds))
    pod_spec: dict[str, Any] = {"containers": [container]}
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if serving.tolerations:
        pod_spec["tolerations"] = [
            t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in serving.tolerations
        ]
    if serving.affinity:
        pod_spec["affinity"] = serving.affinity
    pod_spec.update(pod_spec_fields.pod_fields(serving, selector))
    template_labels = {
        **serving.pod_labels,
        **MANAGED_BY,
        **selector,
        MODEL_LABEL: _label_value(isvc.spec.model),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": isvc.metadata.namespace,
            "labels": {**MANAGED_BY, **selector},
            "ownerReferences": [owner_reference(isvc)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            # A new replica must be Ready before an old one goes: a model server's cold start
            # is minutes, and a rollout must not drop capacity meanwhile.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": template_labels,
                    "annotations": dict(serving.pod_annotations),
                },
                "spec": pod_spec,
            },
        },
    }


#: A service with this many replicas or more gets a PodDisruptionBudget. Below it, a budget of
#: maxUnavailable 1 would protect nothing, and at zero it would only be clutter.
DISRUPTION_BUDGET_MIN_REPLICAS = 2


def wants_disruption_budget(isvc: InferenceService, replicas: int) -> bool:
    """Whether a service at `replicas` (what its Deployment is set to) gets a PodDisruptionBudget."""
    return isvc.spec.serving is not None and replicas >= DISRUPTION_BUDGET_MIN_REPLICAS


def disruption_budget(isvc: InferenceService) -> dict[str, Any]:
    """The PodDisruptionBudget `<name>`: node drains evict one replica at a time.

    maxUnavailable rather than minAvailable, so it never holds scaling back (the Deployment
    deletes pods, it does not evict them) and a drain waits at most for one replacement to be
    Ready. Unhealthy pods may always be evicted: replicas that are not Ready (a failing image, a
    cold start, GPUs that are missing) count as disrupted already, and with the default policy
    they would hold every drain until they recover, which may be never.
    """
    name = isvc.metadata.name
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": name,
            "namespace": isvc.metadata.namespace,
            "labels": {**MANAGED_BY, SERVICE_LABEL: name},
            "ownerReferences": [owner_reference(isvc)],
        },
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": pod_labels(isvc)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def front_door(isvc: InferenceService, backend: Backend, *, via_gateway: bool = False) -> dict[str, Any]:
    """The stable Service `<name>` clients call, pointed at the active backend.

    L4 (a plain self-hosted service): its selector picks the active backend's pods. L7
    (`via_gateway`, see policy/frontdoor.py): its selector picks the namespace's gateway pods,
    which route each request to the active backend themselves; never an ExternalName, which
    could carry neither the provider's path, key nor model name. A provider backend always
    goes through the gateway.
    """
    name = isvc.metadata.name
    meta = {
        "name": name,
        "namespace": isvc.metadata.namespace,
        "labels": {**MANAGED_BY, SERVICE_LABEL: name},
        "annotations": {
            "aipolicy.dev/active-backend": backend.describe(),
            FRONT_DOOR_ANNOTATION: "gateway" if via_gateway or backend.external_host else "selector",
        },
        "ownerReferences": [owner_reference(isvc)],
    }
    # the port clients already use: the server's, or plain HTTP for an API-backed service
    port = isvc.spec.serving.port if isvc.spec.serving else GATEWAY_SERVICE_PORT
    if via_gateway or backend.external_host is not None:
        selector = dict(gateway_manifests.SELECTOR)
        target_port = gateway_manifests.PORT
    else:
        selector = {SERVICE_LABEL: backend.service or name}
        target_port = backend.target_port or port
    spec: dict[str, Any] = {
        "type": "ClusterIP",
        "selector": selector,
        "ports": [{"name": "http", "port": port, "targetPort": target_port, "protocol": "TCP"}],
    }
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}
