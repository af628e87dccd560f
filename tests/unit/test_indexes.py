"""The indexes keep only what their readers use: each reader gives the same answer on the slim
form as on the whole body."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipolicy.api.inferenceservice import InferenceService
from aipolicy.api.reading import read
from aipolicy.controllers.indexes import slim_child, slim_pod, slim_resource
from aipolicy.kube.children import HASH_ANNOTATION
from aipolicy.observe.pods import count_pods

MANAGED_FIELDS = [{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {"f:x": {}}}}]


def _isvc() -> dict[str, Any]:
    return {
        "apiVersion": "aipolicy.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {
            "name": "chat",
            "namespace": "team-a",
            "uid": "u-1",
            "generation": 4,
            "resourceVersion": "991",
            "creationTimestamp": "2026-11-29T10:00:00Z",
            "labels": {"team": "a"},
            "annotations": {
                "aipolicy.dev/autoscaling-paused": "true",
                "kubectl.kubernetes.io/last-applied-configuration": '{"spec": "a copy"}',
                "aipolicy.dev/last-handled-configuration": '{"spec": "another copy"}',
            },
            "managedFields": MANAGED_FIELDS,
        },
        "spec": {"model": "m", "provider": {"url": "https://api.example.com/v1"}, "pricing": {}},
        "status": {"mode": "Degraded", "readyReplicas": 2},
    }


def test_a_slim_resource_reads_as_the_same_model_without_managed_fields_and_copies() -> None:
    body = _isvc()
    slim = slim_resource(body)
    whole_model, slim_model = read(InferenceService, body), read(InferenceService, slim)
    assert isinstance(whole_model, InferenceService) and isinstance(slim_model, InferenceService)
    assert slim_model.spec == whole_model.spec and slim_model.status == whole_model.status
    assert slim_model.metadata.model_dump(exclude={"annotations"}) == whole_model.metadata.model_dump(
        exclude={"annotations"}
    )
    assert "managedFields" not in slim["metadata"] and slim["metadata"]["resourceVersion"] == "991"
    assert slim["metadata"]["annotations"] == {"aipolicy.dev/autoscaling-paused": "true"}
    assert slim["status"] == body["status"]
    assert body["metadata"]["managedFields"] == MANAGED_FIELDS  # the input is left alone


def test_a_slim_child_keeps_the_applied_hash_and_replicas_only() -> None:
    deployment = {
        "metadata": {
            "name": "chat",
            "resourceVersion": "17",
            "annotations": {HASH_ANNOTATION: "abc", "deployment.kubernetes.io/revision": "3"},
            "managedFields": MANAGED_FIELDS,
        },
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "x"}]}}},
        "status": {"readyReplicas": 3},
    }
    assert slim_child(deployment) == {
        "metadata": {"resourceVersion": "17", "annotations": {HASH_ANNOTATION: "abc"}},
        "spec": {"replicas": 3},
    }
    # a Service (no replicas) applied by someone else (no hash): nothing to compare with
    assert slim_child({"metadata": {"name": "chat"}, "spec": {"type": "ClusterIP"}}) == {"metadata": {}}


def test_a_slim_child_keeps_zero_replicas() -> None:
    assert slim_child({"spec": {"replicas": 0}})["spec"] == {"replicas": 0}


conditions = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["Ready", "PodScheduled", "ContainersReady", "Initialized"]),
            "status": st.sampled_from(["True", "False", "Unknown"]),
        },
        optional={
            "reason": st.sampled_from(["Unschedulable", "ContainersNotReady"]),
            "message": st.sampled_from(["0/3 nodes are available", ""]),
            "lastTransitionTime": st.just("2026-11-29T10:00:00Z"),
        },
    ),
    max_size=4,
)
waiting_reasons = st.sampled_from(
    ["ContainerCreating", "ImagePullBackOff", "CrashLoopBackOff", "ErrImagePull"]
)
container_statuses = st.lists(
    st.one_of(
        st.builds(
            lambda r: {"name": "c", "state": {"waiting": {"reason": r, "message": "m"}}}, waiting_reasons
        ),
        st.just({"name": "c", "state": {"running": {"startedAt": "2026-11-29T10:00:00Z"}}, "ready": True}),
    ),
    max_size=2,
)
pods = st.builds(
    lambda phase, node, deleting, gpus, conds, statuses: {
        "metadata": {
            "name": "p",
            "labels": {"aipolicy.dev/service": "chat"},
            **({"deletionTimestamp": "2026-11-29T10:00:00Z"} if deleting else {}),
            "managedFields": MANAGED_FIELDS,
        },
        "spec": {
            **({"nodeName": node} if node else {}),
            "containers": [
                {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": str(g)}}} for g in gpus
            ],
        },
        "status": {"phase": phase, "conditions": conds, "podIP": "10.0.0.1", "containerStatuses": statuses},
    },
    st.sampled_from(["Pending", "Running", "Succeeded", "Failed"]),
    st.sampled_from([None, "gpu-a100-0"]),
    st.booleans(),
    st.lists(st.integers(0, 8), max_size=3),
    conditions,
    container_statuses,
)


@given(st.lists(pods, max_size=6))
def test_pods_count_the_same_slim_as_whole(whole: list[dict[str, Any]]) -> None:
    before = copy.deepcopy(whole)
    assert count_pods([slim_pod(p) for p in whole]) == count_pods(whole)
    assert whole == before


@pytest.mark.parametrize("drop", ["metadata", "spec", "status"])
def test_slimming_a_body_missing_a_part_does_not_fail(drop: str) -> None:
    body = _isvc()
    del body[drop]
    slim_resource(body)
    slim_child(body)
    slim_pod(body)


def test_a_gateway_object_as_observed_is_what_was_applied_and_nothing_of_its_bulk() -> None:
    """Applied as kube/gateway.py builds it, the watch's form of each gateway object needs no
    repair; the slim form keeps only the hash, and a Deployment's replicas and generation."""
    from aipolicy.controllers.indexes import observed_gateway_object
    from aipolicy.kube.gateway import GatewayNeed, gateway_objects, to_repair

    wanted = gateway_objects("team-a", "img", GatewayNeed(owners=(("api", "uid-api"),), secrets=("k",)))
    stored = []
    for obj in copy.deepcopy(wanted):
        obj["metadata"] |= {"managedFields": MANAGED_FIELDS, "resourceVersion": "9", "generation": 3}
        obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
        stored.append(obj)
    observed = {o["kind"]: observed_gateway_object(o) for o in stored}
    assert to_repair(wanted, observed, applied_generation=3) == []
    assert observed["Deployment"].replicas == 2 and observed["Deployment"].generation == 3
    assert observed["Role"].replicas is None and observed["Role"].generation is None
