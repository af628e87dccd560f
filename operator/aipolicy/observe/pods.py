"""What a service's pods say about capacity: ready, starting, unschedulable, GPUs held."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from aipolicy.observe.unschedulable import INSUFFICIENT_GPU, unschedulable_reason


@dataclass(frozen=True)
class PodCounts:
    total: int = 0
    ready: int = 0
    starting: int = 0
    unschedulable: int = 0
    gpus_held: int = 0
    unschedulable_message: str = ""
    """The scheduler's message about one pod Pending for :attr:`unschedulable_reason`."""
    failing: int = 0
    """Pods whose containers cannot start (a subset of ``starting``): a wrong image, a crash
    loop. They still count as starting, so the scaler adds no replicas that would fail alike."""
    failing_message: str = ""
    unschedulable_reason: str = ""
    """Why most unschedulable pods are Pending (observe/unschedulable.py), such as InsufficientGPU."""
    short_of_gpus: int = 0
    """Unschedulable pods whose reason is a shortage of the service's GPU resource."""
    not_created: str = ""
    """Why the Deployment cannot create pods (its ReplicaFailure condition), such as a
    ServiceAccount or PriorityClass that does not exist: admission refuses the pods."""


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


@dataclass(frozen=True)
class MissingReference:
    """A Secret or ConfigMap (or one of its keys) a pod refers to and the kubelet cannot find."""

    kind: str
    """Secret or ConfigMap."""
    name: str
    key: str | None = None

    @property
    def reason(self) -> str:
        """The condition reason: SecretNotFound, ConfigMapKeyNotFound, ..."""
        return f"{self.kind}{'Key' if self.key is not None else ''}NotFound"

    def describe(self, namespace: str) -> str:
        """A sentence naming it: `Secret hf-token does not exist in namespace team-a`."""
        where = "" if self.kind in ("PriorityClass", "RuntimeClass") else f" in namespace {namespace}"
        if self.key is not None:
            return f"{self.kind} {self.name}{where} has no key {self.key}"
        return f"{self.kind} {self.name} does not exist{where}"


# How the kubelet words it (pkg/kubelet/kubelet_pods.go, and the NotFound of its Secret and
# ConfigMap managers): `secret "hf-token" not found`, `couldn't find key token in Secret ns/hf-token`;
# and admission, when a Deployment cannot create pods: `serviceaccount "vllm" not found`,
# `no PriorityClass with name x was found`, `RuntimeClass "x" not found`.
_NOT_FOUND = re.compile(
    r'\b(secrets?|configmaps?|serviceaccounts?|runtimeclass(?:es)?) "([^"]+)" not found', re.IGNORECASE
)
_KEY_NOT_FOUND = re.compile(
    r"couldn't find key (\S+) in (Secret|ConfigMap) (?:[^/\s]+/)?([^\s:]+)", re.IGNORECASE
)
_PRIORITY_CLASS_NOT_FOUND = re.compile(r"no PriorityClass with name (\S+) was found")
_KINDS = {
    spelling: kind
    for kind, spellings in {
        "Secret": ("secret", "secrets"),
        "ConfigMap": ("configmap", "configmaps"),
        "ServiceAccount": ("serviceaccount", "serviceaccounts"),
        "RuntimeClass": ("runtimeclass", "runtimeclasses"),
    }.items()
    for spelling in spellings
}


def missing_reference(message: str) -> MissingReference | None:
    """The object a pod cannot start (or be created) without, from the kubelet's message for
    CreateContainerConfigError or admission's refusal; None when the message is about something
    else."""
    if found := _KEY_NOT_FOUND.search(message):
        return MissingReference(_KINDS[found.group(2).lower()], found.group(3), found.group(1))
    if found := _NOT_FOUND.search(message):
        return MissingReference(_KINDS[found.group(1).lower()], found.group(2))
    if found := _PRIORITY_CLASS_NOT_FOUND.search(message):
        return MissingReference("PriorityClass", found.group(1))
    return None


def with_creation_failure(counts: PodCounts, deployment: Mapping[str, Any] | None) -> PodCounts:
    """The counts, plus why the Deployment cannot create pods, if its ReplicaFailure says so."""
    for condition in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return replace(counts, not_created=str(condition.get("message") or condition.get("reason") or ""))
    return counts


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
    """Terminating pods are ignored: they are capacity on its way out.

    ``gpu_resource`` is the service's serving.gpu.resourceName: the GPUs held, and which
    unschedulable pods lack GPUs rather than memory, CPU or a toleration.
    """
    total = ready = starting = unschedulable = gpus = failing = 0
    failing_message = ""
    reasons: Counter[str] = Counter()
    messages: dict[str, str] = {}
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
            said = str(scheduled.get("message", ""))
            reason = unschedulable_reason(said, gpu_resource)
            reasons[reason] += 1
            messages.setdefault(reason, said)
        elif phase in ("Pending", "Running"):
            starting += 1
            failure = _failure(pod)
            if failure is not None:
                failing += 1
                failing_message = failing_message or failure
        if pod.get("spec", {}).get("nodeName") and phase in ("Pending", "Running"):
            gpus += _gpus(pod, gpu_resource)
    # the reason of the most pods; a tie goes to the first seen
    reason = max(reasons, key=lambda r: reasons[r], default="")
    return PodCounts(
        total,
        ready,
        starting,
        unschedulable,
        gpus,
        messages.get(reason, ""),
        failing,
        failing_message,
        unschedulable_reason=reason,
        short_of_gpus=reasons[INSUFFICIENT_GPU],
    )


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
