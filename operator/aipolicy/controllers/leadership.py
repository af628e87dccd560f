"""Leader election on a Lease: only the leader's handlers act; standbys watch and index.

Every replica runs kopf in full (watches, indexes), so a standby that takes over has warm
indexes and acts at its first tick. What it must not do is act: :func:`gate_handlers` wraps
every evaluation of the evaluation cycles (controllers/cycle.py), and every timer, daemon and
change handler in kopf's registry, so that it returns at once, without touching anything,
unless this replica leads. Indexing handlers are left alone (they only fill memory).

The election itself (policy/lease.py decides, this module reads and writes the Lease):

- a candidate reads the Lease every retry period and writes it only over the resourceVersion
  it read, so of two candidates at most one write lands;
- the leader leads until ``sent + renew_deadline`` of its last successful write (monotonic);
  at that instant, if no renewal landed since, it steps down on its own: in-flight handlers
  are cancelled and their patches dropped, before any standby may take the lease over
  (``sent + lease_duration`` at the earliest);
- on a clean shutdown the leader hands the lease back, so a rolling update hands over within
  one retry period.

Lease API calls run on a thread of their own: a burst of the controllers' own calls in the
shared pool must not delay a renewal past the deadline.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import kopf
import kubernetes
from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter, Gauge

from aipolicy.policy.lease import (
    Decision,
    LeaseSpec,
    Seen,
    Stored,
    Timing,
    decide,
    leading_until,
    released,
)

logger = logging.getLogger("aipolicy.leadership")

IS_LEADER = Gauge("aipolicy_leader", "1 while this replica leads its shard", ["lease"])
LEADERSHIP_CHANGES = Counter(
    "aipolicy_leadership_changes_total", "Times this replica became or stopped being the leader", ["lease"]
)
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
#: Seconds one Lease request may take: less than the renew deadline, so a hung request is
#: abandoned while a retry can still renew in time.
REQUEST_TIMEOUT = 3.0


def default_identity() -> str:
    """Unique per process: the pod's name (or host) and a random suffix, like client-go's.

    A restarted process is a new candidate and waits for its old lease to expire: it cannot
    know that its previous life is really gone.
    """
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def default_lease_namespace() -> str:
    """The operator's own namespace: POD_NAMESPACE, the service account's, or aipolicy-system."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as file:
            return file.read().strip()
    except OSError:
        return "aipolicy-system"


class LeaseNamespaceMissingError(RuntimeError):
    """The Lease cannot be created: its namespace does not exist. Retrying cannot help."""


def _micro_time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def stored_lease(obj: dict[str, Any]) -> Stored:
    """A Lease object as the API returns it (JSON), as the policy reads it."""
    spec = obj.get("spec") or {}
    return Stored(
        LeaseSpec(
            holder=spec.get("holderIdentity") or "",
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=_parse_time(spec.get("acquireTime")),
            renew_time=_parse_time(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
        ),
        str(obj["metadata"]["resourceVersion"]),
    )


def lease_body(name: str, namespace: str, spec: LeaseSpec, guard: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if guard is not None:
        metadata["resourceVersion"] = guard  # the API server refuses the write if it moved on
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": spec.holder,
            "leaseDurationSeconds": spec.duration_seconds,
            "acquireTime": _micro_time(spec.acquire_time),
            "renewTime": _micro_time(spec.renew_time),
            "leaseTransitions": spec.transitions,
        },
    }


@dataclass
class Leadership:
    """This replica's candidacy for one Lease, and the gate the handlers consult."""

    name: str
    namespace: str
    identity: str
    timing: Timing = field(default_factory=Timing)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._valid_until = -math.inf
        self._leading = False  # as last announced (log, metric); the truth is the clock
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._fenced: set[asyncio.Task[Any]] = set()
        self._deadline: asyncio.TimerHandle | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")
        self._api: Any = None
        IS_LEADER.labels(self.name).set(0)

    # ---- the gate ----

    def leading(self) -> bool:
        return self.clock() < self._valid_until

    def only_when_leading(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """``fn`` runs only while this replica leads, and is cancelled (its patch dropped) the
        moment leadership ends."""

        @functools.wraps(fn)
        async def gated(**kwargs: Any) -> Any:
            if not self.leading():
                return None
            task = asyncio.ensure_future(fn(**kwargs))
            self._in_flight.add(task)
            try:
                result = await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if task not in self._fenced or (current is not None and current.cancelling()):
                    raise  # kopf cancelled it (object gone, shutdown): kopf's business
                _drop_patch(kwargs)
                return None
            finally:
                self._in_flight.discard(task)
                self._fenced.discard(task)
            if not self.leading():
                _drop_patch(kwargs)  # finished after the deadline: its writes are not ours to make
                return None
            return result

        return gated

    def _extend(self, until: float) -> None:
        self._valid_until = until
        loop = asyncio.get_running_loop()
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = loop.call_later(max(0.0, until - self.clock()), self._check_deadline)
        if not self._leading:
            self._leading = True
            IS_LEADER.labels(self.name).set(1)
            LEADERSHIP_CHANGES.labels(self.name).inc()
            logger.info("%s leads lease %s/%s", self.identity, self.namespace, self.name)

    def _check_deadline(self) -> None:
        remaining = self._valid_until - self.clock()
        if remaining > 0:  # the loop may wake a hair early (its clock resolution): look again
            self._deadline = asyncio.get_running_loop().call_later(remaining, self._check_deadline)
        elif self._leading:
            self.step_down(f"no renewal within {self.timing.renew_deadline:g}s")

    def step_down(self, why: str) -> None:
        """Stop acting now: no handler starts, the running ones are cancelled."""
        self._valid_until = -math.inf
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        for task in self._in_flight:
            if not task.done():
                self._fenced.add(task)
                task.cancel()
        if self._leading:
            self._leading = False
            IS_LEADER.labels(self.name).set(0)
            LEADERSHIP_CHANGES.labels(self.name).inc()
            logger.warning(
                "%s stopped leading lease %s/%s: %s", self.identity, self.namespace, self.name, why
            )

    # ---- the election ----

    def _client(self) -> Any:
        if self._api is None:
            self._api = kubernetes.client.CoordinationV1Api()
        return self._api

    async def _call(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def read(self) -> Stored | None:
        def read() -> Stored | None:
            try:
                response = self._client().read_namespaced_lease(
                    self.name, self.namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                )
            except ApiException as error:
                if error.status == 404:
                    return None
                raise
            return stored_lease(json.loads(response.data))

        result: Stored | None = await self._call(read)
        return result

    async def write(self, decision: Decision) -> Stored:
        assert decision.spec is not None
        body = lease_body(self.name, self.namespace, decision.spec, decision.guard)

        def write() -> Stored:
            api = self._client()
            kwargs: dict[str, Any] = {"_preload_content": False, "_request_timeout": REQUEST_TIMEOUT}
            try:
                if decision.action == "create":
                    response = api.create_namespaced_lease(self.namespace, body, **kwargs)
                else:
                    response = api.replace_namespaced_lease(self.name, self.namespace, body, **kwargs)
            except ApiException as error:
                if error.status == 404 and decision.action == "create":
                    raise LeaseNamespaceMissingError(
                        f"cannot create Lease {self.name} in namespace {self.namespace}: "
                        f"{_api_message(error)}; create the namespace or pass --lease-namespace"
                    ) from error
                raise
            return stored_lease(json.loads(response.data))

        result: Stored = await self._call(write)
        return result

    async def run(self) -> None:
        """Campaign and renew until cancelled. Raises LeaseNamespaceMissingError (fatal)."""
        seen: Seen | None = None
        standing_by = ""
        logger.info("%s is a candidate for lease %s/%s", self.identity, self.namespace, self.name)
        while True:
            wait = self.timing.retry_period
            try:
                stored = await self.read()
                decision = decide(stored, seen, self.identity, self.clock(), datetime.now(UTC), self.timing)
                if stored is not None and stored.spec.holder not in (self.identity, standing_by):
                    # once per holder: what a standby waits on, for whoever reads the log
                    standing_by = stored.spec.holder
                    logger.info("%s stands by: lease %s is held by %s", self.identity, self.name,
                                standing_by or "nobody")  # fmt: skip
                seen = decision.seen
                if stored is not None and stored.spec.holder != self.identity:
                    self.step_down(f"the lease is held by {stored.spec.holder or 'nobody'}")
                wait = decision.wait
                if decision.action != "wait":
                    sent = self.clock()
                    written = await self.write(decision)
                    self._extend(leading_until(sent, self.timing))
                    seen = Seen(written.version, self.identity, self.clock())
            except ApiException as error:
                # 409: another candidate wrote first (or renewed): read again next round.
                # Anything else: the deadline, not this error, decides when we stop acting.
                level = logging.DEBUG if error.status == 409 else logging.WARNING
                logger.log(level, "lease %s: %s", self.name, _api_message(error))
            except LeaseNamespaceMissingError:
                raise
            except Exception as error:  # a timeout, a refused connection: try again
                logger.warning("lease %s: %s: %s", self.name, type(error).__name__, error)
            await asyncio.sleep(wait)

    async def release(self) -> None:
        """Hand the lease back (clean shutdown), after stopping acting."""
        was_leading = self._leading
        self.step_down("shutting down")
        if not was_leading:
            return
        try:
            stored = await self.read()
            if stored is None:
                return
            spec = released(stored.spec, self.identity, datetime.now(UTC))
            if spec is not None:
                await self.write(Decision("update", spec, stored.version, None, 0, "release"))
                logger.info("released lease %s/%s", self.namespace, self.name)
        except Exception as error:  # the standby then waits for the lease to expire
            logger.warning("could not release lease %s: %s", self.name, error)
        finally:
            self._pool.shutdown(wait=False)


def _drop_patch(kwargs: dict[str, Any]) -> None:
    patch = kwargs.get("patch")
    if patch is not None:
        patch.clear()


def _api_message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        return f"{error.status} {error.reason}"


def gate_handlers(registry: kopf.OperatorRegistry, leadership: Leadership) -> int:
    """Make every evaluation of the evaluation cycles, and every acting handler of
    ``registry``, run only on the leader; returns how many.

    kopf has no public hook for this (its peering pauses whole watch streams, indexes
    included, and takes up to a minute to hand over), so the handlers are swapped in its
    registry, each for a gated copy with the same id: kopf keeps calling them as before. The
    handlers that start the cycles are left alone: a standby's cycles must run, so that its
    evaluations act the moment it leads (controllers/cycle.py). tests/unit/test_leadership.py
    checks that every cycle of the operator is gated, so a kopf release that moves the registry
    fails loudly.
    """
    from aipolicy.controllers import cycle

    gated = 0
    parts: tuple[Any, ...] = (registry._spawning, registry._changing, registry._watching)
    for part in parts:
        handlers = []
        for handler in part._handlers:
            if handler.id in cycle.STARTERS:
                handlers.append(handler)
                continue
            if not asyncio.iscoroutinefunction(handler.fn):
                raise TypeError(f"{handler.id}: only async handlers can be gated")
            handlers.append(replace(handler, fn=leadership.only_when_leading(handler.fn)))
            gated += 1
        part._handlers = handlers
    for each in cycle.CYCLES:
        each.evaluate = leadership.only_when_leading(each.ungated)
        gated += 1
    return gated
