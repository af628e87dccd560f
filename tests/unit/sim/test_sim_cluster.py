"""Following the cluster with a scripted API and watch: readiness, deletes, 410 re-lists."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.client import (
    V1ListMeta,
    V1ObjectMeta,
    V1Pod,
    V1PodCondition,
    V1PodList,
    V1PodStatus,
)
from kubernetes.client.exceptions import ApiException

from aipolicy.sim.cluster import PodWatcher, pod_info
from aipolicy.sim.fleet import Fleet, PodInfo


def make_pod(
    name: str,
    *,
    ready: bool = True,
    service: str | None = "chat",
    model: str | None = None,
    phase: str = "Running",
    deleting: bool = False,
    rv: str = "1",
) -> V1Pod:
    labels = {}
    if service:
        labels["aipolicy.dev/service"] = service
    if model:
        labels["aipolicy.dev/model"] = model
    return V1Pod(
        metadata=V1ObjectMeta(
            name=name,
            namespace="team-a",
            labels=labels,
            resource_version=rv,
            deletion_timestamp=datetime.now(UTC) if deleting else None,
        ),
        status=V1PodStatus(
            phase=phase,
            conditions=[V1PodCondition(type="Ready", status="True" if ready else "False")],
        ),
    )


def test_pod_info_reads_labels_and_readiness() -> None:
    assert pod_info(make_pod("a", model="llama")) == PodInfo("team-a", "a", "chat", "llama", True)
    info = pod_info(make_pod("b", ready=False))
    assert info is not None
    assert not info.ready
    deleting = pod_info(make_pod("c", deleting=True))
    assert deleting is not None
    assert not deleting.ready
    assert pod_info(make_pod("d", service=None)) is None
    assert pod_info(make_pod("e", phase="Failed")) is None
    assert pod_info(V1Pod(metadata=V1ObjectMeta(name="f", namespace="x",
                                                labels={"aipolicy.dev/service": "s"}))) == (
        PodInfo("x", "f", "s", None, False)
    )  # fmt: skip


class FleetSink:
    def __init__(self) -> None:
        self.fleet = Fleet()

    def replace_pods(self, pods: list[PodInfo]) -> None:
        self.fleet.replace_pods(pods)

    def upsert_pod(self, pod: PodInfo) -> None:
        self.fleet.upsert_pod(pod)

    def remove_pod(self, namespace: str, name: str) -> None:
        self.fleet.remove_pod(namespace, name)

    def names(self) -> list[tuple[str, bool]]:
        out = []
        for sid, name in self.fleet.pods():
            st = self.fleet.pod_status(sid.namespace, name)
            assert st is not None
            out.append((name, st.ready))
        return out


class FakeApi:
    def __init__(self, lists: list[list[V1Pod]]) -> None:
        self.lists = lists
        self.calls: list[dict[str, Any]] = []

    def list_pod_for_all_namespaces(self, **kwargs: Any) -> V1PodList:
        self.calls.append(kwargs)
        items = self.lists.pop(0)
        return V1PodList(items=items, metadata=V1ListMeta(resource_version=str(100 + len(self.calls))))


Script = Callable[[dict[str, Any]], Iterator[dict[str, Any]]]


class FakeWatch:
    """Plays one scripted stream per ``stream`` call; fails the test if called too often."""

    def __init__(self, scripts: list[Script], watcher: list[PodWatcher]) -> None:
        self.scripts = scripts
        self.watcher = watcher
        self.kwargs: list[dict[str, Any]] = []

    def __call__(self) -> FakeWatch:
        return self

    def stream(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.kwargs.append(kwargs)
        if not self.scripts:
            self.watcher[0].stop()
            return iter(())
        return self.scripts.pop(0)(kwargs)

    def stop(self) -> None:
        pass


def ev(kind: str, pod: V1Pod) -> dict[str, Any]:
    return {
        "type": kind,
        "object": pod,
        "raw_object": {"metadata": {"resourceVersion": pod.metadata.resource_version}},
    }


def test_watch_follows_events_and_relists_after_410() -> None:
    api = FakeApi([
        [make_pod("p1"), make_pod("p2", ready=False)],
        [make_pod("p1"), make_pod("p4")],  # after 410: p3 was deleted while we were away
    ])  # fmt: skip

    def first(kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        assert kwargs["resource_version"] == "101"
        assert kwargs["label_selector"] == "aipolicy.dev/service"
        yield ev("ADDED", make_pod("p3", rv="102"))
        yield ev("MODIFIED", make_pod("p2", ready=True, rv="103"))
        yield {
            "type": "BOOKMARK",
            "object": {},
            "raw_object": {"metadata": {"resourceVersion": "150"}},
        }
        yield ev("DELETED", make_pod("p1", rv="151"))
        yield ev("MODIFIED", make_pod("p2", phase="Succeeded", rv="152"))

    def resumed(kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        assert kwargs["resource_version"] == "152"  # the watch timed out: resume, no re-list
        raise ApiException(status=410, reason="Gone")
        yield  # pragma: no cover

    def after_relist(kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        assert kwargs["resource_version"] == "102"
        yield {"type": "ERROR", "object": {}, "raw_object": {"code": 410}}

    holder: list[PodWatcher] = []
    sink = FleetSink()
    snapshots: list[list[tuple[str, bool]]] = []
    original_upsert = sink.upsert_pod

    def upsert(pod: PodInfo) -> None:
        original_upsert(pod)
        snapshots.append(sink.names())

    sink.upsert_pod = upsert  # type: ignore[method-assign]
    api.lists.append([make_pod("p5")])  # the ERROR event makes a third list
    watch = FakeWatch([first, resumed, after_relist], holder)
    w = PodWatcher(api, sink, watch_factory=watch, backoff_s=0.0)
    holder.append(w)
    w.run()
    assert snapshots[0] == [("p1", True), ("p2", False), ("p3", True)]
    assert snapshots[1] == [("p1", True), ("p2", True), ("p3", True)]
    assert w.relists == 3
    assert sink.names() == [("p5", True)]


def test_unexpected_errors_back_off_and_relist() -> None:
    api = FakeApi([[make_pod("p1")], [make_pod("p2")]])

    def boom(kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        raise ApiException(status=500, reason="etcd sad")
        yield  # pragma: no cover

    holder: list[PodWatcher] = []
    sink = FleetSink()
    w = PodWatcher(api, sink, watch_factory=FakeWatch([boom], holder), backoff_s=0.0)
    holder.append(w)
    w.run()
    assert w.relists == 2
    assert sink.names() == [("p2", True)]


def test_namespaced_watch_uses_namespaced_calls() -> None:
    class NsApi:
        def __init__(self) -> None:
            self.args: list[Any] = []

        def list_namespaced_pod(self, namespace: str, **kwargs: Any) -> V1PodList:
            self.args.append(namespace)
            return V1PodList(items=[make_pod("p1")], metadata=V1ListMeta(resource_version="7"))

    holder: list[PodWatcher] = []
    api = NsApi()
    watch = FakeWatch([], holder)
    w = PodWatcher(api, FleetSink(), namespace="team-a", watch_factory=watch)
    holder.append(w)
    w.run()
    assert api.args == ["team-a"]
    assert watch.kwargs[0]["resource_version"] == "7"


@pytest.mark.parametrize("kind", ["ADDED", "MODIFIED"])
def test_unlabelled_pod_event_removes_it(kind: str) -> None:
    api = FakeApi([[make_pod("p1")]])

    def relabel(kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield ev(kind, make_pod("p1", service=None, rv="105"))

    holder: list[PodWatcher] = []
    sink = FleetSink()
    w = PodWatcher(api, sink, watch_factory=FakeWatch([relabel], holder))
    holder.append(w)
    w.run()
    assert sink.names() == []
