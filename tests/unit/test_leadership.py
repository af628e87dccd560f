"""The leadership gate and the start-up permission list, without a cluster.

The election against a real API server is tested in tests/e2e/test_leader_election.py; here,
the parts that need none: which handlers are gated, what the gate does with a handler that
runs when leadership ends, the Lease's JSON, and the permissions asked for.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import kopf
import pytest

from aipolicy.cli import namespaces
from aipolicy.controllers import permissions
from aipolicy.controllers.leadership import Leadership, gate_handlers, lease_body, stored_lease
from aipolicy.policy.lease import LeaseSpec, Timing


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _leadership(clock: FakeClock) -> Leadership:
    return Leadership("aipolicy", "aipolicy-system", "me", Timing(), clock)


def test_every_evaluation_cycle_of_the_operator_is_gated_and_its_start_is_not() -> None:
    import aipolicy.controllers.handlers  # noqa: F401  (registers the handlers)
    from aipolicy.controllers import cycle

    registry = kopf.get_default_registry()
    plurals = {each.plural for each in cycle.CYCLES}
    assert plurals == {"inferenceservices", "aibudgets", "fallbackpolicies"}
    assert not registry._spawning.get_all_handlers()  # no timer per object any more
    fresh = kopf.OperatorRegistry()
    for handler in registry._watching.get_all_handlers():
        fresh._watching.append(handler)
    for handler in registry._indexing.get_all_handlers():
        fresh._indexing.append(handler)
    saved = {each.plural: each.evaluate for each in cycle.CYCLES}
    try:
        leadership = _leadership(FakeClock())
        assert gate_handlers(fresh, leadership) == len(cycle.CYCLES)
        for each in cycle.CYCLES:
            assert each.evaluate is not each.ungated
            assert each.evaluate.__wrapped__ is each.ungated  # type: ignore[attr-defined]
        # a standby's cycles run (their evaluations return at once): their starts are not gated
        starts = {h.id: h.fn for h in fresh._watching.get_all_handlers()}
        assert starts.keys() >= cycle.STARTERS
        originals = {h.id: h.fn for h in registry._watching.get_all_handlers()}
        assert all(starts[id] is originals[id] for id in cycle.STARTERS)
        # indexes go on filling on standbys: untouched
        assert list(fresh._indexing.get_all_handlers()) == list(registry._indexing.get_all_handlers())
    finally:
        for each in cycle.CYCLES:
            each.evaluate = saved[each.plural]


async def test_a_standby_does_not_call_the_handler() -> None:
    calls: list[str] = []

    async def handler(**_: Any) -> str:
        calls.append("called")
        return "done"

    gated = _leadership(FakeClock()).only_when_leading(handler)
    assert await gated(patch=kopf.Patch()) is None
    assert calls == []


async def test_the_leader_calls_the_handler_until_its_deadline() -> None:
    clock = FakeClock()
    leadership = _leadership(clock)
    calls: list[str] = []

    async def handler(**_: Any) -> str:
        calls.append("called")
        return "done"

    gated = leadership.only_when_leading(handler)
    leadership._extend(clock.now + 7)
    assert await gated(patch=kopf.Patch()) == "done"
    clock.now += 7  # the renew deadline passed without a renewal
    assert await gated(patch=kopf.Patch()) is None
    assert calls == ["called"]
    leadership.step_down("test over")


async def test_stepping_down_cancels_a_running_handler_and_drops_its_patch() -> None:
    clock = FakeClock()
    leadership = _leadership(clock)
    started = asyncio.Event()
    finished: list[str] = []

    async def handler(patch: kopf.Patch, **_: Any) -> None:
        patch.status["replicas"] = 5  # decided while leading...
        started.set()
        await asyncio.sleep(30)  # ...waiting on Prometheus when the lease is lost
        finished.append("wrote")

    gated = leadership.only_when_leading(handler)
    leadership._extend(clock.now + 7)
    patch = kopf.Patch()
    run = asyncio.create_task(gated(patch=patch))
    await started.wait()
    leadership.step_down("lost the lease")
    assert await asyncio.wait_for(run, 5) is None  # kopf sees a quiet success, not an error
    assert finished == []
    assert dict(patch) == {}  # kopf will write nothing


async def test_a_handler_finishing_after_the_deadline_writes_nothing() -> None:
    clock = FakeClock()
    leadership = _leadership(clock)

    async def handler(patch: kopf.Patch, **_: Any) -> None:
        patch.status["replicas"] = 5
        clock.now += 10  # a slow pass: the deadline passed while it ran

    leadership._extend(clock.now + 7)
    patch = kopf.Patch()
    await leadership.only_when_leading(handler)(patch=patch)
    assert dict(patch) == {}
    leadership.step_down("test over")


async def test_kopf_cancelling_a_handler_is_not_swallowed() -> None:
    clock = FakeClock()
    leadership = _leadership(clock)
    started = asyncio.Event()

    async def handler(**_: Any) -> None:
        started.set()
        await asyncio.sleep(30)

    leadership._extend(clock.now + 7)
    run = asyncio.create_task(leadership.only_when_leading(handler)(patch=kopf.Patch()))
    await started.wait()
    run.cancel()  # kopf stopping the timer: the object is gone, or the operator stops
    with pytest.raises(asyncio.CancelledError):
        await run
    leadership.step_down("test over")


def test_the_lease_json_round_trips() -> None:
    wall = datetime(2026, 12, 1, 21, 0, 0, 123456, tzinfo=UTC)
    spec = LeaseSpec("pod-a_1234", 10, acquire_time=wall, renew_time=wall, transitions=2)
    body = lease_body("aipolicy", "aipolicy-system", spec, guard="42")
    assert body["metadata"]["resourceVersion"] == "42"
    assert body["spec"]["renewTime"] == "2026-12-01T21:00:00.123456Z"
    stored = stored_lease(body)
    assert stored.spec == spec
    assert stored.version == "42"
    assert "resourceVersion" not in lease_body("aipolicy", "ns", spec, guard=None)["metadata"]


def test_a_lease_written_by_another_tool_with_empty_fields_reads_as_released() -> None:
    stored = stored_lease({"metadata": {"resourceVersion": "7"}, "spec": {}})
    assert stored.spec.holder == ""


def test_namespaces_are_repeatable_and_comma_lists() -> None:
    assert namespaces(["a,b", "c", "b", " d , "]) == ["a", "b", "c", "d"]
    assert namespaces([]) == []


def test_the_permissions_checked_are_per_namespace_and_name_the_lease() -> None:
    needed = permissions.required(["team-b", "team-a"], ("aipolicy-system", "aipolicy.team-a.team-b"))
    described = [a.describe() for a in needed]
    assert "patch inferenceservices.aipolicy.dev/status in namespace team-a" in described
    assert "create deployments.apps in namespace team-b" in described
    assert 'update leases.coordination.k8s.io "aipolicy.team-a.team-b" in namespace aipolicy-system' in (
        described
    )
    assert "create leases.coordination.k8s.io in namespace aipolicy-system" in described
    assert "list customresourcedefinitions.apiextensions.k8s.io (cluster-wide)" in described
    cluster_wide = [a.describe() for a in permissions.required([], None)]
    assert "watch pods (cluster-wide)" in cluster_wide
    assert not any("leases" in line for line in cluster_wide)


def test_the_message_names_each_missing_verb_and_resource() -> None:
    denied = [permissions.Access("update", "coordination.k8s.io", "leases", "ops", name="aipolicy")]
    message = permissions.missing_message(denied, "system:serviceaccount:ops:aipolicy")
    assert "system:serviceaccount:ops:aipolicy is not allowed to" in message
    assert 'update leases.coordination.k8s.io "aipolicy" in namespace ops' in message


def _grants(rules: list[dict[str, Any]], access: permissions.Access) -> bool:
    resource = f"{access.resource}/{access.subresource}" if access.subresource else access.resource
    for rule in rules:
        if (
            access.group in rule.get("apiGroups", [])
            and resource in rule.get("resources", [])
            and access.verb in rule.get("verbs", [])
            and (not rule.get("resourceNames") or access.name in rule["resourceNames"])
        ):
            return True
    return False


def test_the_shipped_rbac_grants_exactly_what_start_up_checks() -> None:
    """What the start-up check asks for is in manifests/base/rbac.yaml, so the shipped
    installation starts; a permission added to the code but not to the manifest fails here."""
    from pathlib import Path

    import yaml

    docs = list(yaml.safe_load_all((Path(__file__).parents[2] / "manifests/base/rbac.yaml").read_text()))
    cluster_rules = next(d for d in docs if d["kind"] == "ClusterRole")["rules"]
    lease_role = next(d for d in docs if d["kind"] == "Role")
    assert lease_role["metadata"]["namespace"] == "aipolicy-system"
    for access in permissions.required([], ("aipolicy-system", "aipolicy")):
        rules = lease_role["rules"] if access.resource == "leases" else cluster_rules
        assert _grants(rules, access), f"rbac.yaml does not grant: {access.describe()}"
    # least privilege: the Lease rules name the Lease wherever RBAC can
    for rule in lease_role["rules"]:
        assert rule["verbs"] == ["create"] or rule.get("resourceNames") == ["aipolicy"]
