"""In-memory indexes kopf keeps current from its watches; handlers read these, not the API.

(The type-ignores: kopf's handler protocols list every kwarg, our functions take the few they use.)

kopf guarantees every index is fully populated before any resource handler runs.
"""

from __future__ import annotations

from typing import Any

import kopf

from aipolicy.kube.children import SERVICE_LABEL

Key = tuple[str, str]  # (namespace, name)


@kopf.index("aipolicy.dev", "v1alpha1", "inferenceservices")  # type: ignore[arg-type]
def inferenceservices_by_key(
    namespace: str, name: str, body: kopf.Body, **_: Any
) -> dict[Key, dict[str, Any]]:
    return {(namespace, name): dict(body)}


@kopf.index("aipolicy.dev", "v1alpha1", "aibudgets")  # type: ignore[arg-type]
def aibudgets_by_namespace(namespace: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {namespace: dict(body)}


@kopf.index("aipolicy.dev", "v1alpha1", "fallbackpolicies")  # type: ignore[arg-type]
def fallbackpolicies_by_target(
    namespace: str, spec: kopf.Spec, body: kopf.Body, **_: Any
) -> dict[Key, dict[str, Any]]:
    return {(namespace, str(spec.get("target", ""))): dict(body)}


@kopf.index("", "v1", "pods", labels={SERVICE_LABEL: kopf.PRESENT})  # type: ignore[arg-type]
def pods_by_service(
    namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, dict[str, Any]]:
    return {
        (namespace, labels[SERVICE_LABEL]): {
            "metadata": dict(body.metadata),
            "spec": dict(body.spec),
            "status": dict(body.status),
        }
    }


@kopf.index("apps", "v1", "deployments", labels={SERVICE_LABEL: kopf.PRESENT})  # type: ignore[arg-type]
def deployments_by_service(
    namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, dict[str, Any]]:
    return {(namespace, labels[SERVICE_LABEL]): dict(body)}


@kopf.index("", "v1", "services", labels={SERVICE_LABEL: kopf.PRESENT})  # type: ignore[arg-type]
def services_by_service(
    namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, dict[str, Any]]:
    return {(namespace, labels[SERVICE_LABEL]): dict(body)}


def one(index: kopf.Index[Any, Any], key: Any) -> Any | None:
    """The single value an index holds for a key, or None."""
    store = index.get(key)
    if not store:
        return None
    for value in store:
        return value
    return None
