"""What the gateway knows of its namespace: read-only watches, kept on the event loop.

Four watches (InferenceServices, FallbackPolicies, AIBudgets, Pods), each in a thread because
the kubernetes client blocks (kube/follow.py: list, then watch from the list's
resourceVersion, re-list on 410 Gone or any error). Events are handed to the loop with
``call_soon_threadsafe``, so the :class:`Store` is only touched by one thread, and every
change wakes the requests held by the activator. The gateway only reads: ``get``, ``list``
and ``watch``, never a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from aipolicy.api.common import GROUP, VERSION
from aipolicy.gateway.routing import Endpoint, Snapshot
from aipolicy.kube.follow import ListWatch

__all__ = ["KINDS", "Store", "Watcher", "ready_endpoints"]

SERVICE_LABEL = "aipolicy.dev/service"
KINDS = ("inferenceservices", "fallbackpolicies", "aibudgets", "pods")


def ready_endpoints(pods: dict[str, dict[str, Any]]) -> dict[str, tuple[Endpoint, ...]]:
    """Ready, not terminating pods by their InferenceService, sorted by name."""
    out: dict[str, list[Endpoint]] = {}
    for name in sorted(pods):
        pod = pods[name]
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        service = (meta.get("labels") or {}).get(SERVICE_LABEL)
        if not service or meta.get("deletionTimestamp"):
            continue
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        if ready:
            out.setdefault(service, []).append(Endpoint(name, status.get("podIP") or ""))
    return {k: tuple(v) for k, v in out.items()}


class Store:
    """The namespace's objects by kind and name; a fresh :class:`Snapshot` after each change."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self.synced: set[str] = set()
        self.version = 0
        self._snapshot: Snapshot | None = None
        self._changed = asyncio.Event()

    def replace(self, kind: str, items: list[dict[str, Any]]) -> None:
        self.objects[kind] = {o["metadata"]["name"]: o for o in items}
        self.synced.add(kind)
        self._bump()

    def apply(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if event_type == "DELETED":
            self.objects[kind].pop(name, None)
        else:
            self.objects[kind][name] = obj
        self._bump()

    def _bump(self) -> None:
        self.version += 1
        self._snapshot = None
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self.synced == set(KINDS)

    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            self._snapshot = Snapshot(
                self.namespace,
                dict(self.objects["inferenceservices"]),
                tuple(self.objects["fallbackpolicies"].values()),
                tuple(self.objects["aibudgets"].values()),
                ready_endpoints(self.objects["pods"]),
            )
        return self._snapshot

    async def changed(self, within_s: float) -> None:
        """Wait for the next change, at most ``within_s`` seconds."""
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), within_s)


class Watcher:
    """Lists and watches one kind in one namespace (kube/follow.py), in a daemon thread; what
    it sees reaches the :class:`Store` on the event loop."""

    def __init__(
        self,
        kind: str,
        namespace: str,
        api_client: Any,
        loop: asyncio.AbstractEventLoop,
        store: Store,
        *,
        retry_s: float = 1.0,
    ) -> None:
        from kubernetes import client

        self.kind = kind
        self.api_client = api_client
        self.loop = loop
        self.store = store
        if kind == "pods":
            list_func: Callable[..., Any] = client.CoreV1Api(api_client).list_namespaced_pod
            args: tuple[Any, ...] = (namespace,)
            selector: str | None = SERVICE_LABEL
        else:
            list_func = client.CustomObjectsApi(api_client).list_namespaced_custom_object
            args, selector = (GROUP, VERSION, namespace, kind), None
        self.follow = ListWatch(
            list_func,
            args,
            self._listed,
            self._event,
            what=kind,
            label_selector=selector,
            backoff_s=retry_s,
        )

    def _plain(self, obj: Any) -> dict[str, Any]:
        if isinstance(obj, dict):
            return obj
        plain: dict[str, Any] = self.api_client.sanitize_for_serialization(obj)
        return plain

    def _listed(self, items: list[Any]) -> None:
        self.loop.call_soon_threadsafe(self.store.replace, self.kind, [self._plain(i) for i in items])

    def _event(self, event_type: str, obj: Any) -> None:
        self.loop.call_soon_threadsafe(self.store.apply, self.kind, event_type, self._plain(obj))

    def start(self) -> threading.Thread:
        return self.follow.start_thread()

    def stop(self) -> None:
        self.follow.stop()
