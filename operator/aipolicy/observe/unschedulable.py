"""Why the scheduler left a pod Pending, in one CamelCase word, from its own message.

The scheduler says, per node, the first filter that ruled it out (taints, then node affinity,
then resources), in a message such as::

    0/5 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint(s),
    3 node(s) didn't match Pod's node affinity/selector. preemption: ...

One reason is chosen for conditions and triggers:

1. Nodes that fail the pod's node selector or affinity are set aside: the pod asked not to run
   there, so they are not what keeps it Pending. If every node fails it, the reason is
   :data:`NODE_AFFINITY_MISMATCH` (the selector names no node that exists).
2. Of the other causes, the one that rules out the most nodes wins; a tie goes to a resource
   shortage (GPU, memory, CPU, others, in that order) before a taint, because a node that got as
   far as the resource check passed the taint and affinity checks: it is a node the pod wants.

The full message always goes with the reason, so what this rule does not see stays readable.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = [
    "INSUFFICIENT_CPU",
    "INSUFFICIENT_GPU",
    "INSUFFICIENT_MEMORY",
    "INSUFFICIENT_RESOURCES",
    "NODE_AFFINITY_MISMATCH",
    "UNSCHEDULABLE",
    "UNTOLERATED_TAINT",
    "unschedulable_reason",
]

INSUFFICIENT_GPU = "InsufficientGPU"
"""No node has the free GPUs (serving.gpu.resourceName) a replica needs."""
INSUFFICIENT_MEMORY = "InsufficientMemory"
"""No node has the free memory a replica requests."""
INSUFFICIENT_CPU = "InsufficientCPU"
"""No node has the free CPU a replica requests."""
INSUFFICIENT_RESOURCES = "InsufficientResources"
"""Another resource is short: ephemeral storage, pod slots, another extended resource."""
UNTOLERATED_TAINT = "UntoleratedTaint"
"""The nodes that could take the pod carry a taint it does not tolerate (serving.tolerations)."""
NODE_AFFINITY_MISMATCH = "NodeAffinityMismatch"
"""No node matches the pod's node selector or affinity (serving.nodeSelector, affinity, gpu.product)."""
UNSCHEDULABLE = "Unschedulable"
"""Anything else (ports, volumes, topology spread, no nodes at all): the message says what."""

# A tie between causes goes to the first of these.
_PRECEDENCE = (
    INSUFFICIENT_GPU,
    INSUFFICIENT_MEMORY,
    INSUFFICIENT_CPU,
    INSUFFICIENT_RESOURCES,
    UNTOLERATED_TAINT,
    UNSCHEDULABLE,
)
# The causes end at the first full stop: what follows ("preemption: ...", and on Kubernetes
# 1.36 "no new claims to deallocate, preemption: ...") is about other things. Resource names
# have dots too, never followed by a space.
_AVAILABLE = re.compile(r"\d+/\d+ nodes are available: (?P<causes>.*?)(?:\.(?:\s|$)|$)", re.S)
_CAUSE = re.compile(r"(?P<count>\d+) (?P<text>.+?)(?=, \d+ |$)", re.S)


def _classify(text: str, gpu_resource: str) -> str | None:
    """A cause's reason; None for a selector or affinity mismatch (set aside by the rule)."""
    if text.startswith("Insufficient "):
        resource = text.removeprefix("Insufficient ").strip()
        if resource == gpu_resource:
            return INSUFFICIENT_GPU
        return {"memory": INSUFFICIENT_MEMORY, "cpu": INSUFFICIENT_CPU}.get(resource, INSUFFICIENT_RESOURCES)
    if "untolerated taint" in text or "had taint" in text:
        return UNTOLERATED_TAINT
    if "node affinity" in text or "node selector" in text:
        return None
    return UNSCHEDULABLE


def unschedulable_reason(message: str, gpu_resource: str = "nvidia.com/gpu") -> str:
    """The reason of a PodScheduled=False/Unschedulable message (see the module's rule)."""
    found = _AVAILABLE.search(message)
    if found is None:
        return UNSCHEDULABLE
    nodes: Counter[str] = Counter()
    mismatched = 0
    for cause in _CAUSE.finditer(found.group("causes")):
        reason = _classify(cause.group("text"), gpu_resource)
        if reason is None:
            mismatched += int(cause.group("count"))
        else:
            nodes[reason] += int(cause.group("count"))
    if not nodes:
        return NODE_AFFINITY_MISMATCH if mismatched else UNSCHEDULABLE
    return max(_PRECEDENCE, key=lambda reason: (nodes[reason], -_PRECEDENCE.index(reason)))
