"""Pure: what `spec.serving`'s deployment fields (api/serving.py) add to the server's pod.

children.deployment() builds the Deployment; this module adds env from Secrets and ConfigMaps,
volumes and mounts (with /dev/shm from shmSize), probes, and the pod-level fields.
"""

from __future__ import annotations

import math
from typing import Any

from aipolicy.api.inferenceservice import Serving
from aipolicy.api.serving import SHM_PATH, SHM_VOLUME, wire

#: A startup probe never gives up sooner than this, whatever coldStartSeconds says: an image
#: pull alone can take that long.
MIN_STARTUP_SECONDS = 60
#: The startup budget is this many cold starts. coldStartSeconds is how long a start usually
#: takes (pre-warm leads by it); a slow node, a cold image cache or weights read from a cold
#: volume can take twice as long, and a restart in the middle of loading starts the load over, so
#: a budget of exactly one cold start would restart some servers forever.
STARTUP_COLD_STARTS = 2


#: The startup budget when no cold start is given (a scaling.coldStartSeconds left to be
#: measured): generous, because the pod template must not follow a measurement (each new one
#: would roll the Deployment) and a budget too short restarts a loading server forever.
UNKNOWN_COLD_START_BUDGET_SECONDS = 1800


def startup_failure_threshold(cold_start_seconds: int | None, period_seconds: int) -> int:
    """Failed startup probes before the kubelet restarts the container: failureThreshold x
    periodSeconds covers STARTUP_COLD_STARTS cold starts, and at least MIN_STARTUP_SECONDS."""
    if cold_start_seconds is None:
        budget = UNKNOWN_COLD_START_BUDGET_SECONDS
    else:
        budget = max(STARTUP_COLD_STARTS * cold_start_seconds, MIN_STARTUP_SECONDS)
    return max(1, math.ceil(budget / period_seconds))


def _http_probe(path: str, period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def probes(serving: Serving, cold_start_seconds: int | None) -> dict[str, Any]:
    """The container's startupProbe and livenessProbe (each unless disabled)."""
    out: dict[str, Any] = {}
    startup = serving.startup_probe
    if startup.enabled:
        failures = startup.failure_threshold or startup_failure_threshold(
            cold_start_seconds, startup.period_seconds
        )
        out["startupProbe"] = _http_probe(
            startup.path or serving.readiness_probe.path,
            startup.period_seconds,
            startup.timeout_seconds,
            failures,
        )
    liveness = serving.liveness_probe
    if liveness.enabled:
        out["livenessProbe"] = _http_probe(
            liveness.path or serving.readiness_probe.path,
            liveness.period_seconds,
            liveness.timeout_seconds,
            liveness.failure_threshold,
        )
    return out


def env(serving: Serving) -> list[dict[str, Any]]:
    """The container's env: literal values, and valueFrom keys of Secrets and ConfigMaps."""
    variables: list[dict[str, Any]] = []
    for variable in serving.env:
        if variable.value_from is not None:
            variables.append({"name": variable.name, "valueFrom": wire(variable.value_from)})
        else:
            variables.append({"name": variable.name, "value": variable.value or ""})
    return variables


def container_fields(serving: Serving, cold_start_seconds: int | None) -> dict[str, Any]:
    """What the server's container gets besides image, ports, resources and readiness."""
    fields: dict[str, Any] = probes(serving, cold_start_seconds)
    if serving.env:
        fields["env"] = env(serving)
    if serving.env_from:
        fields["envFrom"] = [wire(source) for source in serving.env_from]
    mounts = [wire(mount) for mount in serving.volume_mounts]
    if serving.shm_size:
        mounts.append({"name": SHM_VOLUME, "mountPath": SHM_PATH})
    if mounts:
        fields["volumeMounts"] = mounts
    return fields


def pod_fields(serving: Serving, own_pods: dict[str, str]) -> dict[str, Any]:
    """What the pod spec gets besides its container, node selector, tolerations and affinity.

    own_pods: the labels of this service's pods, which a topology spread constraint without a
    labelSelector counts.
    """
    fields: dict[str, Any] = {}
    volumes = [wire(volume) for volume in serving.volumes]
    if serving.shm_size:
        volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": serving.shm_size}})
    if volumes:
        fields["volumes"] = volumes
    if serving.image_pull_secrets:
        fields["imagePullSecrets"] = [wire(secret) for secret in serving.image_pull_secrets]
    for key, value in (
        ("priorityClassName", serving.priority_class_name),
        ("runtimeClassName", serving.runtime_class_name),
        ("serviceAccountName", serving.service_account_name),
        ("terminationGracePeriodSeconds", serving.termination_grace_period_seconds),
    ):
        if value is not None:
            fields[key] = value
    if serving.topology_spread_constraints:
        constraints = []
        for constraint in serving.topology_spread_constraints:
            spread = wire(constraint)
            spread.setdefault("labelSelector", {"matchLabels": dict(own_pods)})
            constraints.append(spread)
        fields["topologySpreadConstraints"] = constraints
    return fields
