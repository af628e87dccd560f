"""What a service's pods say about capacity: ready, starting, unschedulable, GPUs held."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PodCounts:
    total: int = 0
    ready: int = 0
    starting: int = 0
    unschedulable: int = 0
    gpus_held: int = 0
    unschedulable_message: str = ""


def _condition(pod: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == type_:
            return dict(condition)
    return None


def _gpus(pod: Mapping[str, Any], resource_name: str) -> int:
    total = 0
    for container in pod.get("spec", {}).get("containers") or []:
        limits = (container.get("resources") or {}).get("limits") or {}
        total += int(limits.get(resource_name, 0) or 0)
    return total


def count_pods(pods: Iterable[Mapping[str, Any]], gpu_resource: str = "nvidia.com/gpu") -> PodCounts:
    """Terminating pods are ignored: they are capacity on its way out."""
    total = ready = starting = unschedulable = gpus = 0
    message = ""
    for pod in pods:
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        total += 1
        phase = pod.get("status", {}).get("phase")
        ready_condition = _condition(pod, "Ready")
        scheduled = _condition(pod, "PodScheduled")
        if ready_condition is not None and ready_condition.get("status") == "True":
            ready += 1
        elif (
            scheduled is not None
            and scheduled.get("status") == "False"
            and scheduled.get("reason") == "Unschedulable"
        ):
            unschedulable += 1
            message = str(scheduled.get("message", ""))
        elif phase in ("Pending", "Running"):
            starting += 1
        if pod.get("spec", {}).get("nodeName") and phase in ("Pending", "Running"):
            gpus += _gpus(pod, gpu_resource)
    return PodCounts(total, ready, starting, unschedulable, gpus, message)
