"""Applying owned children with server-side apply, off the event loop.

The official `kubernetes` client is synchronous; every call here runs in a worker thread so
kopf's event loop never blocks. Server-side apply with our field manager makes each apply
idempotent: applying the same manifest twice changes nothing, and applying after someone edited
a field we own puts it back (drift repair).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from aipolicy.kube.children import FIELD_MANAGER

APPLY = "application/apply-patch+yaml"


def load_config() -> None:
    """In-cluster config when running in a pod, else KUBECONFIG / ~/.kube/config."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]


class Kube:
    """The few API calls the controllers make besides kopf's watches and status patches."""

    def __init__(self) -> None:
        self.apps = kubernetes.client.AppsV1Api()
        self.core = kubernetes.client.CoreV1Api()
        self.policy = kubernetes.client.PolicyV1Api()
        self.rbac = kubernetes.client.RbacAuthorizationV1Api()

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply a child we own (Deployment, Service, PodDisruptionBudget); returns the
        object as stored."""
        return await asyncio.to_thread(self._apply, manifest)

    def _apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        kwargs: dict[str, Any] = {
            "field_manager": FIELD_MANAGER,
            "force": True,
            "_content_type": APPLY,
            "_preload_content": False,
        }
        response: Any  # an urllib3 response: _preload_content=False skips model decoding
        if manifest["kind"] == "Deployment":
            response = self.apps.patch_namespaced_deployment(
                meta["name"], meta["namespace"], manifest, **kwargs
            )
        elif manifest["kind"] == "Service":
            response = self.core.patch_namespaced_service(meta["name"], meta["namespace"], manifest, **kwargs)
        elif manifest["kind"] == "PodDisruptionBudget":
            response = self.policy.patch_namespaced_pod_disruption_budget(
                meta["name"], meta["namespace"], manifest, **kwargs
            )
        elif manifest["kind"] == "ServiceAccount":
            response = self.core.patch_namespaced_service_account(
                meta["name"], meta["namespace"], manifest, **kwargs
            )
        elif manifest["kind"] == "Role":
            response = self.rbac.patch_namespaced_role(meta["name"], meta["namespace"], manifest, **kwargs)
        elif manifest["kind"] == "RoleBinding":
            response = self.rbac.patch_namespaced_role_binding(
                meta["name"], meta["namespace"], manifest, **kwargs
            )
        else:
            raise ValueError(f"cannot apply a {manifest['kind']}")
        stored: dict[str, Any] = json.loads(response.data)
        return stored

    async def delete_deployment(self, namespace: str, name: str) -> None:
        def delete() -> None:
            try:
                self.apps.delete_namespaced_deployment(name, namespace)
            except ApiException as error:
                if error.status != 404:
                    raise

        await asyncio.to_thread(delete)

    async def delete_disruption_budget(self, namespace: str, name: str) -> None:
        def delete() -> None:
            try:
                self.policy.delete_namespaced_pod_disruption_budget(name, namespace)
            except ApiException as error:
                if error.status != 404:
                    raise

        await asyncio.to_thread(delete)

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete one of the gateway's objects; already gone is fine."""
        calls = {
            "ServiceAccount": self.core.delete_namespaced_service_account,
            "Role": self.rbac.delete_namespaced_role,
            "RoleBinding": self.rbac.delete_namespaced_role_binding,
            "Service": self.core.delete_namespaced_service,
            "Deployment": self.apps.delete_namespaced_deployment,
        }
        call = calls[kind]

        def delete() -> None:
            try:
                call(name, namespace)
            except ApiException as error:
                if error.status != 404:
                    raise

        await asyncio.to_thread(delete)
