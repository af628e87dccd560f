"""What the handlers share for the operator's lifetime: clients, the query cache, settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from aipolicy.kube.client import Kube
from aipolicy.kube.gateway import GatewayNeed
from aipolicy.observe.presets import MetricNames
from aipolicy.observe.prometheus import QueryCache

#: Objects by name, uid, generation and whether they are being deleted: equal sets mean no spec
#: changed and none came or went.
Specs = frozenset[tuple[str, str, int, bool]]


@dataclass(frozen=True)
class Neighbours:
    """What an InferenceService's pass needs to know of the other services of its namespace."""

    #: what the namespace's gateway must serve
    gateway: GatewayNeed
    #: the API-backed services: whether a chain needs the gateway depends on them
    api_services: frozenset[str]


@dataclass
class Runtime:
    """Kept in kopf's memo; built once at start-up."""

    prometheus: QueryCache | None
    kube: Kube
    metric_names: MetricNames = field(default_factory=MetricNames)
    #: The image of the per-namespace gateway Deployments (the operator's own image by default).
    gateway_image: str = field(
        default_factory=lambda: os.environ.get("AIPOLICY_GATEWAY_IMAGE", "ghcr.io/aipolicy/aipolicy:0.1.0")
    )
    #: The generation of each namespace's gateway Deployment as the operator last applied it: a
    #: higher one in the watch is someone's edit (kube/gateway.py to_repair). Empty after a
    #: restart, when the applied hash and replicas alone tell drift.
    gateway_generation: dict[str, int] = field(default_factory=dict)
    #: When each namespace's gateway was last checked (monotonic), so that a namespace of many
    #: services checks once per tick, not once per service.
    gateway_checked: dict[str, float] = field(default_factory=dict)
    #: What each namespace's services need to know of one another (inferenceservice.Neighbours),
    #: with the specs it was decided from (inferenceservice._neighbours).
    #: (the services' specs, their policies' specs) -> what was decided from them
    neighbours: dict[str, tuple[tuple[Specs, Specs], Neighbours]] = field(default_factory=dict)

    @staticmethod
    def default_tick() -> float:
        """How often each kind's evaluation cycle walks its objects (controllers/cycle.py); each
        kind's evaluationInterval gates the real work. Read once, at import, where the cycles
        are registered."""
        return float(os.environ.get("AIPOLICY_TICK_SECONDS", "2"))
