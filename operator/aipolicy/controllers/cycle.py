"""Evaluation cycles: one loop per kind evaluates its objects, not one kopf timer per object.

A kopf timer is a task per object that wakes on its own: at a thousand services, five hundred
wake-ups a second went through kopf's handler machinery whether or not anything changed, a fifth
of a core at rest (BENCHMARKS.md). Here each kind has one loop. Every tick it walks the
kind's kopf index (kopf keeps watching and indexing; nothing here reads the API) and starts an
evaluation for each object that has none in flight. So:

* an object is evaluated at most once at a time, and a slow one (a Prometheus query timing out)
  delays only itself;
* at most :data:`PARALLELISM` evaluations of a kind run at once, so a cold start with a thousand
  objects writes at a bounded rate;
* an evaluation is called as kopf calls a handler, with the same keyword arguments (``body``,
  ``patch``, ``memo``, ``logger``, every index), so the controllers are written as handlers and
  do not know what calls them; the status ``patch`` it fills is sent afterwards, as kopf does,
  as a merge patch of the status subresource;
* each object has its own ``memo``, dropped with the object, as kopf's.

A loop starts from the first event kopf hands to its kind's :func:`_start` handler: kopf calls
no resource handler before every index is complete, and the loop inherits the handler's context,
where kopf keeps the queue that :func:`kopf.event` posts to. Leader election gates each
evaluation (controllers/leadership.py :func:`gate_handlers` wraps :attr:`Cycle.evaluate`), never
the start, so a standby's loops run and act from the moment it leads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import kopf
from kubernetes.client.exceptions import ApiException

from aipolicy.kube.client import Kube

__all__ = ["CYCLES", "PARALLELISM", "Cycle", "cycle"]

logger = logging.getLogger("aipolicy.cycle")

Key = tuple[str, str]
Evaluate = Callable[..., Awaitable[Any]]

#: Evaluations of one kind in flight at once. Each is mostly waiting on the API server or
#: Prometheus; kopf's API connections are bounded at 16 (controllers/connections.py).
PARALLELISM = 16
GROUP, VERSION = "aipolicy.dev", "v1alpha1"


@dataclass
class Cycle:
    """One kind's loop: which objects (``index``), how often (``tick``), and what to call."""

    plural: str
    #: the kopf index holding the kind's objects by (namespace, name)
    index: str
    #: the controller's evaluation, as registered
    ungated: Evaluate
    tick: float
    #: seconds after the start before the first pass (kinds start apart, as their timers did)
    initial_delay: float = 0.0
    memos: dict[Key, kopf.Memo] = field(default_factory=dict)
    in_flight: dict[Key, asyncio.Task[None]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    #: what each object's evaluation calls: ``ungated``, or it gated on leading (leadership.py)
    evaluate: Evaluate = field(init=False)

    def __post_init__(self) -> None:
        self.evaluate = self.ungated

    def start(self, memo: kopf.Memo, indexes: Mapping[str, Any]) -> None:
        """Run the loop from now on (once: later calls do nothing)."""
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(memo, dict(indexes)), name=f"cycle {self.plural}")

    async def stop(self) -> None:
        tasks = [t for t in (self.task, *self.in_flight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.task = None

    async def _run(self, base: kopf.Memo, indexes: dict[str, Any]) -> None:
        await asyncio.sleep(self.initial_delay)
        running = asyncio.Semaphore(PARALLELISM)
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            self._pass(base, indexes, running)
            await asyncio.sleep(max(0.0, started + self.tick - loop.time()))

    def _pass(self, base: kopf.Memo, indexes: dict[str, Any], running: asyncio.Semaphore) -> None:
        """Start an evaluation of every live object of the kind that has none in flight."""
        objects: dict[Key, dict[str, Any]] = {}
        for key, store in indexes[self.index].items():
            for body in store:
                objects[key] = body
        for gone in self.memos.keys() - objects.keys():
            del self.memos[gone]
        for key, body in objects.items():
            if key in self.in_flight or body.get("metadata", {}).get("deletionTimestamp"):
                continue
            memo = self.memos.get(key)
            if memo is None:  # not setdefault: a thousand Memo objects a tick for nothing
                memo = self.memos[key] = kopf.Memo(base)
            task = asyncio.create_task(self._one(key, body, memo, indexes, running))
            self.in_flight[key] = task
            task.add_done_callback(lambda _, key=key: self.in_flight.pop(key, None))  # type: ignore[misc]

    async def _one(
        self,
        key: Key,
        raw: dict[str, Any],
        memo: kopf.Memo,
        indexes: dict[str, Any],
        running: asyncio.Semaphore,
    ) -> None:
        namespace, name = key
        body = kopf.Body(cast(kopf.RawBody, raw))
        patch = kopf.Patch()
        async with running:
            try:
                await self.evaluate(
                    body=body,
                    namespace=namespace,
                    name=name,
                    patch=patch,
                    memo=memo,
                    logger=logging.LoggerAdapter(logger, {"object": f"{self.plural}/{namespace}/{name}"}),
                    **indexes,
                )
                if patch:
                    await _patch_status(memo["runtime"].kube, self.plural, namespace, name, patch)
            except asyncio.CancelledError:
                raise
            except Exception:  # one object's fault must not stop its kind; retried next tick
                logger.exception("evaluating %s %s/%s failed; retrying at the next tick", self.plural, *key)


async def _patch_status(kube: Kube, plural: str, namespace: str, name: str, patch: kopf.Patch) -> None:
    """The status the evaluation decided, as a merge patch (kopf sends a handler's patch so)."""
    unexpected = set(patch) - {"status"}
    if unexpected:
        raise ValueError(f"an evaluation may only patch status, not {sorted(unexpected)}")
    try:
        await kube.patch_custom_status(
            GROUP, VERSION, plural, namespace, name, {"status": dict(patch["status"])}
        )
    except ApiException as error:
        if error.status != 404:  # deleted meanwhile: nothing to report on
            raise


#: Every kind's cycle, in registration order (controllers register theirs at import).
CYCLES: list[Cycle] = []
#: The ids of the kopf handlers that start the cycles (never gated on leading).
STARTERS: set[str] = set()


def cycle(
    plural: str, *, index: str, tick: float, initial_delay: float = 0.0
) -> Callable[[Evaluate], Evaluate]:
    """Register ``fn`` as the evaluation of every object of ``plural`` (held in kopf index
    ``index``), every ``tick`` seconds; the loop starts at kopf's first event of the kind."""

    def register(fn: Evaluate) -> Evaluate:
        registered = Cycle(plural, index, fn, tick, initial_delay)
        CYCLES.append(registered)

        async def start(memo: kopf.Memo, **indexes: Any) -> None:
            registered.start(memo, {k: v for k, v in indexes.items() if isinstance(v, kopf.Index)})

        start.__name__ = start.__qualname__ = f"start_{plural}_cycle"
        STARTERS.add(start.__name__)
        kopf.on.event(GROUP, VERSION, plural, id=start.__name__)(start)
        return fn

    return register


async def stop_all() -> None:
    for each in CYCLES:
        await each.stop()
