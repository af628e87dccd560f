"""Pure manifests of one namespace's gateway: ServiceAccount, Role, RoleBinding, Deployment, Service.

One gateway per namespace that needs one (see docs/design.md, "The front door gateway"):

* its Role reads (get/list/watch) the three aipolicy kinds and Pods of its own namespace, and
  may ``get`` only the Secrets its InferenceServices and FallbackPolicies name
  (``resourceNames``): no cluster-wide Secret access, and no write at all;
* its Deployment mounts each named Secret (``optional: true``, so a missing one is a clear
  503 naming it, not a pod that cannot start) under ``/var/run/aipolicy/secrets/<name>``,
  so in a real cluster the key is read from a file and the Role's ``get`` is the fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "NAME",
    "SECRETS_DIR",
    "deployment",
    "referenced_secrets",
    "role",
    "role_binding",
    "service",
    "service_account",
]

NAME = "aipolicy-gateway"
SECRETS_DIR = "/var/run/aipolicy/secrets"
_LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/managed-by": "aipolicy"}
#: The gateway pods' label: the gateway Service and every L7 front door select on it.
SELECTOR = {"app.kubernetes.io/name": NAME}
#: The port the gateway container listens on.
PORT = 8000


def referenced_secrets(
    services: Iterable[Mapping[str, Any]], policies: Iterable[Mapping[str, Any]]
) -> list[str]:
    """Every Secret a provider of the namespace names (services' and chain steps'), sorted."""
    names: set[str] = set()
    for svc in services:
        secret = ((svc.get("spec") or {}).get("provider") or {}).get("apiKeySecret")
        if secret:
            names.add(secret)
    for policy in policies:
        for step in (policy.get("spec") or {}).get("chain") or []:
            secret = (step.get("provider") or {}).get("apiKeySecret")
            if secret:
                names.add(secret)
    return sorted(names)


def service_account(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": NAME, "namespace": namespace, "labels": _LABELS},
    }


def role(namespace: str, secrets: list[str]) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {
            "apiGroups": ["aipolicy.dev"],
            "resources": ["inferenceservices", "fallbackpolicies", "aibudgets"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    ]
    if secrets:  # an empty resourceNames would grant every Secret: leave the rule out instead
        rules.append(
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": list(secrets), "verbs": ["get"]}
        )
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": NAME, "namespace": namespace, "labels": _LABELS},
        "rules": rules,
    }


def role_binding(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": NAME, "namespace": namespace, "labels": _LABELS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
    }


def service(namespace: str) -> dict[str, Any]:
    """The Service `aipolicy-gateway`: one name for the namespace's gateway pods (its metrics are
    scraped through it; front doors select the pods directly and keep their own names)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "namespace": namespace, "labels": _LABELS},
        "spec": {
            "type": "ClusterIP",
            "selector": dict(SELECTOR),
            "ports": [{"name": "http", "port": PORT, "targetPort": PORT, "protocol": "TCP"}],
        },
    }


def deployment(
    namespace: str, image: str, secrets: list[str], *, replicas: int = 2, port: int = PORT
) -> dict[str, Any]:
    volumes = [
        {
            "name": f"secret-{i}",
            "secret": {"secretName": s, "optional": True, "items": [{"key": "apiKey", "path": "apiKey"}]},
        }
        for i, s in enumerate(secrets)
    ]
    mounts = [
        {"name": f"secret-{i}", "mountPath": f"{SECRETS_DIR}/{s}", "readOnly": True}
        for i, s in enumerate(secrets)
    ]
    container = {
        "name": "gateway",
        "image": image,
        "args": [
            "gateway",
            "--namespace",
            namespace,
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--secrets-dir",
            SECRETS_DIR,
        ],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2},
        "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": namespace, "labels": _LABELS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(SELECTOR)},
            "template": {
                "metadata": {"labels": _LABELS},
                "spec": {"serviceAccountName": NAME, "containers": [container], "volumes": volumes},
            },
        },
    }
