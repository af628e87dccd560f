"""Following the cluster: which pods of which InferenceService exist and are Ready.

The simulator learns about pods only from the Kubernetes API (list + watch, never polling
per tick, never connecting to a pod or node address). Pods carry the labels
``aipolicy.dev/service=<InferenceService name>`` and optionally
``aipolicy.dev/model=<model name>``. A pod is capacity only while its ``Ready`` condition is
True; pods that have finished (phase Succeeded/Failed) count as gone.

:class:`PodWatcher` runs in a thread (the kubernetes client is blocking): it lists, hands
the full set to the sink, then watches from the list's resourceVersion. When the watch
expires (HTTP 410 Gone) it lists again, so deletions missed in between are not lost; the
watch's own timeout just resumes from the last resourceVersion seen.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from aipolicy.sim.fleet import PodInfo

__all__ = ["MODEL_LABEL", "SERVICE_LABEL", "PodSink", "PodWatcher", "pod_info"]

log = logging.getLogger(__name__)

SERVICE_LABEL = "aipolicy.dev/service"
MODEL_LABEL = "aipolicy.dev/model"
_GONE = 410


def pod_info(pod: Any) -> PodInfo | None:
    """The simulator's view of a ``V1Pod``; None if it is not ours or has terminated."""
    meta = pod.metadata
    labels = (meta.labels or {}) if meta is not None else {}
    service = labels.get(SERVICE_LABEL)
    if meta is None or not service or not meta.name or not meta.namespace:
        return None
    status = pod.status
    phase = getattr(status, "phase", None)
    if phase in ("Succeeded", "Failed"):
        return None
    conditions = getattr(status, "conditions", None) or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    if meta.deletion_timestamp is not None:
        ready = False  # terminating: it drains, and goes when the DELETED event comes
    return PodInfo(meta.namespace, meta.name, service, labels.get(MODEL_LABEL) or None, ready)


class PodSink(Protocol):
    """Receives the cluster's pod state; called from the watcher thread."""

    def replace_pods(self, pods: list[PodInfo]) -> None: ...
    def upsert_pod(self, pod: PodInfo) -> None: ...
    def remove_pod(self, namespace: str, name: str) -> None: ...


class _WatchLike(Protocol):
    def stream(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Any]: ...
    def stop(self) -> None: ...


class PodWatcher:
    """List-then-watch of labelled pods; bounded by a stop event, backs off on errors."""

    def __init__(
        self,
        core_api: Any,
        sink: PodSink,
        *,
        namespace: str | None = None,
        label_selector: str = SERVICE_LABEL,
        watch_factory: Callable[[], _WatchLike] = k8s_watch.Watch,
        timeout_seconds: int = 60,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.api = core_api
        self.sink = sink
        self.namespace = namespace
        self.label_selector = label_selector
        self.watch_factory = watch_factory
        self.timeout_seconds = timeout_seconds
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.relists = 0
        self._stop = threading.Event()
        self._watch: _WatchLike | None = None

    def stop(self) -> None:
        self._stop.set()
        w = self._watch
        if w is not None:
            w.stop()

    def _list_args(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        if self.namespace is None:
            return self.api.list_pod_for_all_namespaces, ()
        return self.api.list_namespaced_pod, (self.namespace,)

    def relist(self) -> str:
        """List every labelled pod, replace the sink's set, return the resourceVersion."""
        func, args = self._list_args()
        result = func(*args, label_selector=self.label_selector)
        pods = [p for p in (pod_info(item) for item in result.items) if p is not None]
        self.sink.replace_pods(pods)
        self.relists += 1
        return str(result.metadata.resource_version)

    def _watch_once(self, rv: str) -> str | None:
        """Watch from ``rv``; return the last resourceVersion, or None to re-list."""
        func, args = self._list_args()
        w = self._watch = self.watch_factory()
        try:
            for event in w.stream(
                func,
                *args,
                label_selector=self.label_selector,
                resource_version=rv,
                timeout_seconds=self.timeout_seconds,
                allow_watch_bookmarks=True,
            ):
                if self._stop.is_set():
                    return rv
                kind = event.get("type")
                raw = event.get("raw_object") or {}
                if kind == "ERROR":  # 410 Gone or another failure: start again from a list
                    log.info("pod watch error event (code %s); re-listing", raw.get("code"))
                    return None
                new_rv = (raw.get("metadata") or {}).get("resourceVersion")
                if new_rv:
                    rv = str(new_rv)
                if kind == "BOOKMARK":
                    continue
                obj = event.get("object")
                if kind == "DELETED":
                    meta = obj.metadata
                    self.sink.remove_pod(meta.namespace, meta.name)
                elif kind in ("ADDED", "MODIFIED"):
                    info = pod_info(obj)
                    if info is not None:
                        self.sink.upsert_pod(info)
                    elif obj.metadata is not None and obj.metadata.name:
                        # finished, or no longer labelled for a service
                        self.sink.remove_pod(obj.metadata.namespace, obj.metadata.name)
        except ApiException as exc:
            if exc.status == _GONE:
                log.info("pod watch expired (410 Gone); re-listing")
                return None
            raise
        finally:
            self._watch = None
        return rv

    def run(self) -> None:
        """Follow the cluster until :meth:`stop`. Errors are logged and retried with backoff."""
        backoff = self.backoff_s
        rv: str | None = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self.relist()
                rv = self._watch_once(rv)
                backoff = self.backoff_s
            except Exception:  # the API server may be restarting; keep following
                log.exception("pod watch failed; re-listing in %.1fs", backoff)
                rv = None
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, self.max_backoff_s)

    def start_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.run, name="aipolicy-sim-pod-watch", daemon=True)
        t.start()
        return t
