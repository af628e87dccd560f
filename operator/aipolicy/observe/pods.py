"""What a service's pods say about capacity: ready, starting, unschedulable, GPUs held."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class PodCounts:
    total: int = 0
    ready: int = 0
    starting: int = 0
    unschedulable: int = 0
    gpus_held: int = 0
    unschedulable_message: str = ""
    failing: int = 0
    """Pods whose containers cannot start (a subset of ``starting``): a wrong image, a crash
    loop. They still count as starting, so the scaler adds no replicas that would fail alike."""
    failing_message: str = ""


# What the kubelet reports while a container cannot start; none of them cures itself by waiting
# long enough the way a cold start does, so each is worth telling the user.
FAILING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def _failure(pod: Mapping[str, Any]) -> str | None:
    """Why a container of the pod cannot start, as the kubelet says it, or None."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FAILING_REASONS:
            name = pod.get("metadata", {}).get("name", "")
            text = f"pod {name} container {status.get('name', '')}: {waiting['reason']}"
            return f"{text}: {waiting['message']}" if waiting.get("message") else text
    return None


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
    total = ready = starting = unschedulable = gpus = failing = 0
    message = failing_message = ""
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
            failure = _failure(pod)
            if failure is not None:
                failing += 1
                failing_message = failing_message or failure
        if pod.get("spec", {}).get("nodeName") and phase in ("Pending", "Running"):
            gpus += _gpus(pod, gpu_resource)
    return PodCounts(total, ready, starting, unschedulable, gpus, message, failing, failing_message)


def ready_since(pods: Iterable[Mapping[str, Any]]) -> datetime | None:
    """When the longest-Ready pod (not terminating) became Ready: how long the service's metrics
    have had to reach Prometheus. None when no pod is Ready."""
    times: list[datetime] = []
    for pod in pods:
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        ready = _condition(pod, "Ready")
        if ready is None or ready.get("status") != "True":
            continue
        try:
            at = datetime.fromisoformat(str(ready.get("lastTransitionTime", "")).replace("Z", "+00:00"))
        except ValueError:
            continue
        if at.tzinfo is not None:
            times.append(at)
    return min(times) if times else None
