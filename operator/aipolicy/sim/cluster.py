"""Following the cluster: which pods of which InferenceService exist and are Ready.

The simulator learns about pods only from the Kubernetes API (list + watch, never polling
per tick, never connecting to a pod or node address). Pods carry the labels
``aipolicy.dev/service=<InferenceService name>`` and optionally
``aipolicy.dev/model=<model name>``. A pod is capacity only while its ``Ready`` condition is
True; pods that have finished (phase Succeeded/Failed) count as gone.

:class:`PodWatcher` follows them with kube/follow.py's list-then-watch (a thread; a re-list
after 410 Gone, so deletions missed in between are not lost) and hands them to a sink.
"""

from __future__ import annotations

from typing import Any, Protocol

from aipolicy.kube.follow import ListWatch
from aipolicy.sim.fleet import PodInfo

__all__ = ["MODEL_LABEL", "SERVICE_LABEL", "PodSink", "PodWatcher", "pod_info"]

SERVICE_LABEL = "aipolicy.dev/service"
MODEL_LABEL = "aipolicy.dev/model"


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


class PodWatcher(ListWatch):
    """List-then-watch of labelled pods (kube/follow.py) into a :class:`PodSink`."""

    def __init__(
        self,
        core_api: Any,
        sink: PodSink,
        *,
        namespace: str | None = None,
        label_selector: str = SERVICE_LABEL,
        **options: Any,  # ListWatch's: watch_factory, timeout_seconds, backoff_s, max_backoff_s
    ) -> None:
        self.sink = sink
        args: tuple[str, ...] = ()
        if namespace is None:
            list_func = core_api.list_pod_for_all_namespaces
        else:
            list_func, args = core_api.list_namespaced_pod, (namespace,)
        super().__init__(
            list_func, args, self._listed, self._event, what="pod", label_selector=label_selector, **options
        )

    def _listed(self, items: list[Any]) -> None:
        self.sink.replace_pods([p for p in (pod_info(item) for item in items) if p is not None])

    def _event(self, kind: str, obj: Any) -> None:
        if kind == "DELETED":
            self.sink.remove_pod(obj.metadata.namespace, obj.metadata.name)
            return
        info = pod_info(obj)
        if info is not None:
            self.sink.upsert_pod(info)
        elif obj.metadata is not None and obj.metadata.name:
            # finished, or no longer labelled for a service
            self.sink.remove_pod(obj.metadata.namespace, obj.metadata.name)
