"""Why a pod is Pending, from the scheduler's own words: not every Pending pod lacks GPUs."""

from __future__ import annotations

import pytest

from aipolicy.observe.unschedulable import (
    INSUFFICIENT_CPU,
    INSUFFICIENT_GPU,
    INSUFFICIENT_MEMORY,
    INSUFFICIENT_RESOURCES,
    NODE_AFFINITY_MISMATCH,
    UNSCHEDULABLE,
    UNTOLERATED_TAINT,
    unschedulable_reason,
)

PREEMPTION = " preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."


@pytest.mark.parametrize(
    ("message", "gpu_resource", "reason"),
    [
        pytest.param(
            "0/3 nodes are available: 3 Insufficient nvidia.com/gpu." + PREEMPTION,
            "nvidia.com/gpu",
            INSUFFICIENT_GPU,
            id="every node out of GPUs",
        ),
        pytest.param(
            "0/4 nodes are available: 1 node(s) had untolerated taint(s), 3 Insufficient nvidia.com/gpu.",
            "nvidia.com/gpu",
            INSUFFICIENT_GPU,
            id="a tainted control plane does not hide a GPU shortage",
        ),
        pytest.param(
            "0/4 nodes are available: 1 Insufficient amd.com/gpu, 3 node(s) didn't match Pod's node "
            "affinity/selector. no new claims to deallocate, preemption: 0/4 nodes are available: 1 No "
            "preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling.",
            "amd.com/gpu",
            INSUFFICIENT_GPU,
            id="kube-scheduler 1.36, as measured on the local cluster",
        ),
        pytest.param(
            "0/2 nodes are available: 2 Insufficient memory",
            "nvidia.com/gpu",
            INSUFFICIENT_MEMORY,
            id="no full stop at the end",
        ),
        pytest.param(
            "0/4 nodes are available: 4 Insufficient amd.com/gpu." + PREEMPTION,
            "amd.com/gpu",
            INSUFFICIENT_GPU,
            id="the service's own GPU resource",
        ),
        pytest.param(
            "0/4 nodes are available: 4 Insufficient nvidia.com/gpu.",
            "amd.com/gpu",
            INSUFFICIENT_RESOURCES,
            id="another GPU resource than the service's is just a resource",
        ),
        pytest.param(
            "0/4 nodes are available: 1 Insufficient memory, 3 node(s) didn't match Pod's node "
            "affinity/selector." + PREEMPTION,
            "nvidia.com/gpu",
            INSUFFICIENT_MEMORY,
            id="memory on the one node the selector allows",
        ),
        pytest.param(
            "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory.",
            "nvidia.com/gpu",
            INSUFFICIENT_MEMORY,
            id="a node short of both: memory first",
        ),
        pytest.param(
            "0/2 nodes are available: 2 Insufficient cpu.",
            "nvidia.com/gpu",
            INSUFFICIENT_CPU,
            id="cpu",
        ),
        pytest.param(
            "0/2 nodes are available: 2 Insufficient ephemeral-storage.",
            "nvidia.com/gpu",
            INSUFFICIENT_RESOURCES,
            id="another resource",
        ),
        pytest.param(
            "0/4 nodes are available: 1 node(s) had untolerated taint(s), 3 node(s) didn't match Pod's "
            "node affinity/selector." + PREEMPTION,
            "nvidia.com/gpu",
            UNTOLERATED_TAINT,
            id="the selected node is tainted (newer schedulers)",
        ),
        pytest.param(
            "0/2 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/master: }, "
            "1 node(s) had untolerated taint {node: node01}.",
            "nvidia.com/gpu",
            UNTOLERATED_TAINT,
            id="taints named, with a colon inside (older schedulers)",
        ),
        pytest.param(
            "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 Insufficient nvidia.com/gpu, "
            "1 Insufficient memory.",
            "nvidia.com/gpu",
            INSUFFICIENT_GPU,
            id="the cause of the most nodes",
        ),
        pytest.param(
            "0/2 nodes are available: 1 node(s) had untolerated taint(s), 1 Insufficient memory.",
            "nvidia.com/gpu",
            INSUFFICIENT_MEMORY,
            id="a tie goes to the resource: that node passed the taint check",
        ),
        pytest.param(
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector." + PREEMPTION,
            "nvidia.com/gpu",
            NODE_AFFINITY_MISMATCH,
            id="no node matches the selector",
        ),
        pytest.param(
            "0/3 nodes are available: 3 node(s) didn't match Pod's node selector.",
            "nvidia.com/gpu",
            NODE_AFFINITY_MISMATCH,
            id="older wording",
        ),
        pytest.param(
            "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports.",
            "nvidia.com/gpu",
            UNSCHEDULABLE,
            id="a cause without a reason of its own",
        ),
        pytest.param("no nodes available to schedule pods", "nvidia.com/gpu", UNSCHEDULABLE, id="no nodes"),
        pytest.param("", "nvidia.com/gpu", UNSCHEDULABLE, id="no message"),
    ],
)
def test_unschedulable_reason(message: str, gpu_resource: str, reason: str) -> None:
    assert unschedulable_reason(message, gpu_resource) == reason


def _pending(message: str) -> dict[str, object]:
    return {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"resources": {"limits": {"amd.com/gpu": "1"}}}]},
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
            ],
        },
    }


def _running(resource: str, gpus: int) -> dict[str, object]:
    return {
        "metadata": {"name": "r"},
        "spec": {"nodeName": "n", "containers": [{"resources": {"limits": {resource: str(gpus)}}}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_pod_counts_give_the_reason_of_most_pending_pods_and_those_short_of_gpus() -> None:
    from aipolicy.observe.pods import count_pods

    gpu = "0/4 nodes are available: 4 Insufficient amd.com/gpu."
    memory = (
        "0/4 nodes are available: 1 Insufficient memory, 3 node(s) didn't match Pod's node affinity/selector."
    )
    counts = count_pods([_pending(memory), _pending(gpu), _pending(gpu)], "amd.com/gpu")
    assert (counts.unschedulable, counts.short_of_gpus) == (3, 2)
    assert (counts.unschedulable_reason, counts.unschedulable_message) == (INSUFFICIENT_GPU, gpu)
    only_memory = count_pods([_pending(memory)], "amd.com/gpu")
    assert (only_memory.unschedulable_reason, only_memory.short_of_gpus) == (INSUFFICIENT_MEMORY, 0)
    # GPUs held are counted in the service's own resource, not nvidia.com/gpu
    assert count_pods([_running("amd.com/gpu", 2)], "amd.com/gpu").gpus_held == 2
    assert count_pods([_running("amd.com/gpu", 2)]).gpus_held == 0
