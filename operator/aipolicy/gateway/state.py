"""What the gateway knows of its namespace: read-only watches, kept on the event loop.

Four watches (InferenceServices, FallbackPolicies, AIBudgets, Pods), each in a thread because
the kubernetes client blocks: list, then watch from the list's resourceVersion, re-list on
410 Gone or any error. Events are handed to the loop with ``call_soon_threadsafe``, so the
:class:`Store` is only touched by one thread, and every change wakes the requests held by
the activator. The gateway only reads: ``get``, ``list`` and ``watch``, never a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import watch as k8s_watch

from aipolicy.api.common import GROUP, VERSION
from aipolicy.gateway.routing import Endpoint, Snapshot

__all__ = ["KINDS", "Store", "Watcher", "ready_endpoints"]

log = logging.getLogger(__name__)

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
    """Lists and watches one kind in one namespace, in a daemon thread."""

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
        self.namespace = namespace
        self.api_client = api_client
        self.loop = loop
        self.store = store
        self.retry_s = retry_s
        self._stop = threading.Event()
        self._watch: Any = None
        if kind == "pods":
            core = client.CoreV1Api(api_client)
            self._list: Callable[..., Any] = core.list_namespaced_pod
            self._args: tuple[Any, ...] = (namespace,)
            self._kwargs: dict[str, Any] = {"label_selector": SERVICE_LABEL}
        else:
            custom = client.CustomObjectsApi(api_client)
            self._list = custom.list_namespaced_custom_object
            self._args = (GROUP, VERSION, namespace, kind)
            self._kwargs = {}

    def _plain(self, obj: Any) -> dict[str, Any]:
        if isinstance(obj, dict):
            return obj
        plain: dict[str, Any] = self.api_client.sanitize_for_serialization(obj)
        return plain

    def _relist(self) -> str:
        result = self._list(*self._args, **self._kwargs)
        if isinstance(result, dict):
            items, rv = result.get("items") or [], result["metadata"]["resourceVersion"]
        else:
            items, rv = result.items, result.metadata.resource_version
        plain = [self._plain(i) for i in items]
        self.loop.call_soon_threadsafe(self.store.replace, self.kind, plain)
        return str(rv)

    def _events(self, rv: str) -> Iterator[tuple[str, dict[str, Any]]]:
        factory: Any = k8s_watch.Watch  # the client is untyped
        self._watch = factory()
        for event in self._watch.stream(
            self._list, *self._args, resource_version=rv, timeout_seconds=60, **self._kwargs
        ):
            if self._stop.is_set():
                return
            kind = event.get("type")
            if kind == "ERROR":
                raise RuntimeError(f"watch error: {event.get('raw_object')}")
            yield str(kind), self._plain(event["object"])

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                rv = self._relist()
                while not self._stop.is_set():
                    last = rv
                    for kind, obj in self._events(rv):
                        self.loop.call_soon_threadsafe(self.store.apply, self.kind, kind, obj)
                        last = obj.get("metadata", {}).get("resourceVersion", last)
                    rv = last
            except Exception as exc:  # re-list after any failure, including 410 Gone
                if self._stop.is_set():
                    return
                log.info("watch of %s restarts: %s", self.kind, type(exc).__name__)
                time.sleep(self.retry_s)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=f"watch-{self.kind}", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
