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
MERGE = "application/merge-patch+json"

#: The kinds the operator writes, by their API group attribute of :class:`Kube` and the resource
#: part of the client's method names (``patch_namespaced_<resource>``, ``delete_namespaced_...``).
OWNED_KINDS: dict[str, tuple[str, str]] = {
    "Deployment": ("apps", "deployment"),
    "Service": ("core", "service"),
    "PodDisruptionBudget": ("policy", "pod_disruption_budget"),
    "ServiceAccount": ("core", "service_account"),
    "Role": ("rbac", "role"),
    "RoleBinding": ("rbac", "role_binding"),
}


#: Connections the client keeps open to the API server: one per worker thread that may call it
#: at once (asyncio's default pool is at most 32). With the client's default of 4, a burst of
#: status patches from several threads opened, and closed, a TLS connection per call: a third of
#: the operator's CPU at rest at 1,000 services went to handshakes (BENCHMARKS.md).
CONNECTIONS_KEPT = 32


def load_config() -> None:
    """In-cluster config when running in a pod, else KUBECONFIG / ~/.kube/config; keeping
    :data:`CONNECTIONS_KEPT` connections open."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    configuration = kubernetes.client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = CONNECTIONS_KEPT
    kubernetes.client.Configuration.set_default(configuration)


class Kube:
    """The few API calls the controllers make besides kopf's watches and status patches."""

    def __init__(self) -> None:
        self.apps = kubernetes.client.AppsV1Api()
        self.core = kubernetes.client.CoreV1Api()
        self.policy = kubernetes.client.PolicyV1Api()
        self.rbac = kubernetes.client.RbacAuthorizationV1Api()
        self.custom = kubernetes.client.CustomObjectsApi()

    def _call(self, verb: str, kind: str) -> Any:
        """The client method that does `verb` (patch, delete) to a namespaced `kind` we own."""
        if kind not in OWNED_KINDS:
            raise ValueError(f"cannot {verb} a {kind}")
        api, resource = OWNED_KINDS[kind]
        return getattr(getattr(self, api), f"{verb}_namespaced_{resource}")

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
        call = self._call("patch", manifest["kind"])
        # an urllib3 response: _preload_content=False skips model decoding
        response: Any = call(meta["name"], meta["namespace"], manifest, **kwargs)
        return _read_json(response)

    async def patch_custom_status(
        self, group: str, version: str, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        """A JSON merge patch of one of our own resources' status subresource (a null removes a
        field)."""

        def patch_status() -> None:
            options: dict[str, Any] = {"_content_type": MERGE, "_preload_content": False}
            call = self.custom.patch_namespaced_custom_object_status
            _read_json(call(group, version, namespace, plural, name, patch, **options))

        await asyncio.to_thread(patch_status)

    async def delete_deployment(self, namespace: str, name: str) -> None:
        await self.delete("Deployment", namespace, name)

    async def delete_disruption_budget(self, namespace: str, name: str) -> None:
        await self.delete("PodDisruptionBudget", namespace, name)

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete a child we own (the gateway's objects, a Deployment, a PodDisruptionBudget);
        already gone is fine."""
        call = self._call("delete", kind)

        def delete() -> None:
            try:
                call(name, namespace)
            except ApiException as error:
                if error.status != 404:
                    raise

        await asyncio.to_thread(delete)


def _read_json(response: Any) -> dict[str, Any]:
    """The body of an urllib3 response asked for with _preload_content=False (no model decoding),
    and its connection back in the pool: urllib3 returns such a connection only when told, and
    without it every call opened a TLS connection of its own."""
    try:
        body: dict[str, Any] = json.loads(response.data)
        return body
    finally:
        response.release_conn()
