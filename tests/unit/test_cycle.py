"""The evaluation cycle's bookkeeping (controllers/cycle.py), on a real event loop.

What an evaluation decides is tested elsewhere; here, what the cycle promises: each object
evaluated once per pass and never twice at a time, its own memo, a bounded number at once, the
status patch sent after, one object's fault kept to itself. The API is a recorder of the status
patches the cycle sends: the cycle's own logic is under test, not the API server's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from aipolicy.controllers import cycle as cycles
from aipolicy.controllers.cycle import Cycle


class StatusRecorder:
    def __init__(self) -> None:
        self.patches: list[tuple[str, str, str, dict[str, Any]]] = []

    async def patch_custom_status(
        self, group: str, version: str, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        self.patches.append((plural, namespace, name, patch))


class Runtime:
    def __init__(self) -> None:
        self.kube = StatusRecorder()


def body(name: str, *, deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "ns", "uid": name}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    return {"apiVersion": "aipolicy.dev/v1alpha1", "kind": "AIBudget", "metadata": metadata}


def index(*bodies: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    return {("ns", b["metadata"]["name"]): [b] for b in bodies}


async def one_pass(each: Cycle, base: kopf.Memo, indexes: dict[str, Any], running: int = 16) -> None:
    each._pass(base, indexes, asyncio.Semaphore(running))
    await asyncio.gather(*list(each.in_flight.values()))


async def test_every_object_is_evaluated_with_the_keywords_kopf_gives_a_handler() -> None:
    seen: list[dict[str, Any]] = []

    async def evaluate(**kwargs: Any) -> None:
        seen.append(kwargs)
        kwargs["patch"].status["spent"] = kwargs["name"]

    runtime = Runtime()
    each = Cycle("aibudgets", "budgets_by_key", evaluate, tick=2)
    indexes = {"budgets_by_key": index(body("a"), body("b")), "other_index": {}}
    await one_pass(each, kopf.Memo(runtime=runtime), indexes)

    assert sorted(k["name"] for k in seen) == ["a", "b"]
    first = next(k for k in seen if k["name"] == "a")
    assert first["namespace"] == "ns" and first["body"]["metadata"]["uid"] == "a"
    assert first["memo"]["runtime"] is runtime
    assert first["other_index"] == {} and "budgets_by_key" in first
    assert sorted(runtime.kube.patches) == [
        ("aibudgets", "ns", "a", {"status": {"spent": "a"}}),
        ("aibudgets", "ns", "b", {"status": {"spent": "b"}}),
    ]


async def test_an_evaluation_that_writes_nothing_sends_no_patch() -> None:
    async def evaluate(**_: Any) -> None:
        return None

    runtime = Runtime()
    each = Cycle("aibudgets", "by_key", evaluate, tick=2)
    await one_pass(each, kopf.Memo(runtime=runtime), {"by_key": index(body("a"))})
    assert runtime.kube.patches == []


async def test_an_object_still_in_flight_is_not_started_again() -> None:
    release = asyncio.Event()
    calls: list[str] = []

    async def evaluate(name: str, **_: Any) -> None:
        calls.append(name)
        await release.wait()

    each = Cycle("aibudgets", "by_key", evaluate, tick=2)
    indexes = {"by_key": index(body("slow"))}
    base, running = kopf.Memo(runtime=Runtime()), asyncio.Semaphore(16)
    each._pass(base, indexes, running)
    await asyncio.sleep(0)
    each._pass(base, indexes, running)  # the next tick, while the first is waiting
    await asyncio.sleep(0)
    assert calls == ["slow"]
    release.set()
    await asyncio.gather(*list(each.in_flight.values()))
    assert each.in_flight == {}
    each._pass(base, indexes, running)
    await asyncio.gather(*list(each.in_flight.values()))
    assert calls == ["slow", "slow"]


async def test_no_more_than_the_bound_run_at_once() -> None:
    now_running, most = 0, 0

    async def evaluate(**_: Any) -> None:
        nonlocal now_running, most
        now_running += 1
        most = max(most, now_running)
        await asyncio.sleep(0.01)
        now_running -= 1

    each = Cycle("aibudgets", "by_key", evaluate, tick=2)
    indexes = {"by_key": index(*(body(f"b{i}") for i in range(20)))}
    await one_pass(each, kopf.Memo(runtime=Runtime()), indexes, running=3)
    assert most == 3


async def test_each_object_keeps_its_memo_until_it_leaves_the_index() -> None:
    async def evaluate(name: str, memo: kopf.Memo, **_: Any) -> None:
        memo["passes"] = memo.get("passes", 0) + 1

    each = Cycle("aibudgets", "by_key", evaluate, tick=2)
    base = kopf.Memo(runtime=Runtime())
    both = {"by_key": index(body("a"), body("b"))}
    await one_pass(each, base, both)
    await one_pass(each, base, both)
    assert {k: m["passes"] for k, m in each.memos.items()} == {("ns", "a"): 2, ("ns", "b"): 2}
    assert "passes" not in base  # each object's own, as kopf's per-object memo

    await one_pass(each, base, {"by_key": index(body("a"))})  # b deleted
    assert each.memos.keys() == {("ns", "a")}
    await one_pass(each, base, both)  # b created again: a fresh memo
    assert each.memos[("ns", "b")]["passes"] == 1


async def test_an_object_being_deleted_is_left_alone() -> None:
    calls: list[str] = []

    async def evaluate(name: str, **_: Any) -> None:
        calls.append(name)

    each = Cycle("aibudgets", "by_key", evaluate, tick=2)
    indexes = {"by_key": index(body("live"), body("going", deleting=True))}
    await one_pass(each, kopf.Memo(runtime=Runtime()), indexes)
    assert calls == ["live"]


async def test_one_objects_fault_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    async def evaluate(name: str, patch: kopf.Patch, **_: Any) -> None:
        calls.append(name)
        if name == "broken":
            raise RuntimeError("boom")
        if name == "meddling":
            patch.spec["replicas"] = 3  # not ours to write: refused, never sent

    runtime = Runtime()
    each = Cycle("aibudgets", "by_key", evaluate, tick=2)
    indexes = {"by_key": index(body("broken"), body("meddling"), body("fine"))}
    await one_pass(each, kopf.Memo(runtime=runtime), indexes)
    assert sorted(calls) == ["broken", "fine", "meddling"]
    assert runtime.kube.patches == []
    messages = [r.getMessage() for r in caplog.records]
    assert any("broken failed" in m for m in messages)
    assert any("meddling failed" in m for m in messages)


async def test_the_loop_ticks_until_stopped() -> None:
    calls: list[str] = []
    three = asyncio.Event()

    async def evaluate(name: str, **_: Any) -> None:
        calls.append(name)
        if len(calls) == 3:
            three.set()

    each = Cycle("aibudgets", "by_key", evaluate, tick=0.01)
    each.start(kopf.Memo(runtime=Runtime()), {"by_key": index(body("a"))})
    first = each.task
    each.start(kopf.Memo(runtime=Runtime()), {"by_key": index(body("a"))})  # once only
    assert each.task is first
    await asyncio.wait_for(three.wait(), timeout=30)  # three ticks
    await each.stop()
    assert each.task is None and first is not None and first.cancelled()


def test_every_kind_registers_one_cycle_over_its_own_index() -> None:
    import aipolicy.controllers.handlers  # noqa: F401  (registers the handlers)
    from aipolicy.controllers import indexes

    by_plural = {each.plural: each.index for each in cycles.CYCLES}
    assert by_plural == {
        "inferenceservices": "inferenceservices_by_key",
        "aibudgets": "aibudgets_by_key",
        "fallbackpolicies": "fallbackpolicies_by_key",
    }
    for index_name in by_plural.values():
        assert callable(getattr(indexes, index_name))
