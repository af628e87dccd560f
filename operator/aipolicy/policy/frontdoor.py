"""Which front door a service gets: the L4 selector switch or the L7 gateway. Pure.

The L4 front door (a ClusterIP Service whose selector the operator switches between pod sets)
costs nothing per request but can only move TCP connections between pods. Whenever a request
has to be looked at or rewritten, the service's Service points at the namespace's gateway
instead (docs/design.md, "The front door gateway"):

* an API-backed service: a provider needs its scheme, path, API key and model name, which a
  DNS CNAME (the old ExternalName front door) cannot carry;
* a provider step in its FallbackPolicy chain: the same, once the chain reaches it; and so is
  a step naming an API-backed InferenceService (its pods do not exist: only the gateway can
  send the request on to that service's provider);
* scale from zero (minReplicas 0 or scaleToZeroAfter): with no pod, only a proxy can hold the
  first request and publish it as demand;
* overflow (frontDoor.overflow Fallback, or scaling.slo.overflow with metric type SLO):
  spreading one request stream over pods and a provider is a per-request choice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from aipolicy.api.fallbackpolicy import FallbackStep
from aipolicy.api.inferenceservice import InferenceService


def api_backed(services: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The names of the API-backed InferenceServices among these objects (as stored)."""
    return frozenset(
        str(obj["metadata"]["name"]) for obj in services if (obj.get("spec") or {}).get("provider")
    )


def l7_reason(
    isvc: InferenceService, chain: Iterable[FallbackStep], api_backed: Collection[str] = ()
) -> str | None:
    """Why the service's front door must be the gateway, or None when the L4 switch will do.

    `chain` is the chain of the FallbackPolicy governing the service (empty without one);
    `api_backed` names the namespace's API-backed InferenceServices (see :func:`api_backed`).
    Every step counts, not only the active one: the Service must already point at the gateway
    when the chain reaches a provider, not one reconcile later.
    """
    if isvc.spec.provider is not None:
        return "the service is API-backed (spec.provider)"
    for index, step in enumerate(chain):
        if step.provider is not None:
            return f"its FallbackPolicy chain has a provider (step {index})"
        if step.inference_service is not None and step.inference_service in api_backed:
            return f"its FallbackPolicy chain has an API-backed InferenceService (step {index})"
    scaling = isvc.spec.scaling
    if scaling.min_replicas == 0:
        return "it scales from zero (spec.scaling.minReplicas 0)"
    if scaling.scale_to_zero_after is not None:
        return "it scales to zero (spec.scaling.scaleToZeroAfter)"
    if isvc.spec.front_door.overflow == "Fallback":
        return "it overflows bursts to its chain (spec.frontDoor.overflow Fallback)"
    if scaling.metric.type == "SLO" and scaling.slo is not None and scaling.slo.overflow is not None:
        return (
            f"it overflows what its replicas cannot serve within the SLO to "
            f"{scaling.slo.overflow.inference_service} (spec.scaling.slo.overflow)"
        )
    return None
