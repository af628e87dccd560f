"""Which front door a service gets: the L4 selector switch, or the L7 gateway."""

from __future__ import annotations

from typing import Any

import pytest

from aipolicy.api.fallbackpolicy import FallbackStep
from aipolicy.api.inferenceservice import InferenceService
from aipolicy.api.reading import read
from aipolicy.policy.frontdoor import api_backed, l7_reason

SERVING = {"serving": {"image": "vllm/vllm-openai:v0.6.3"}}
PROVIDER = {"provider": {"url": "https://api.example.com/v1", "apiKeySecret": "key"}}
SMALL = FallbackStep.model_validate({"inferenceService": "small"})
DEGRADED = FallbackStep.model_validate({"degraded": True})
API = FallbackStep.model_validate({"provider": {"url": "https://api.openai.com/v1", "model": "gpt-4o-mini"}})


def _isvc(**spec: Any) -> InferenceService:
    body = {
        "metadata": {"name": "big", "namespace": "team-a", "uid": "u-1", "generation": 1},
        "spec": {"model": "m", **spec},
    }
    parsed = read(InferenceService, body)
    assert isinstance(parsed, InferenceService), parsed
    return parsed


@pytest.mark.parametrize(
    ("spec", "chain", "gateway_because"),
    [
        pytest.param(SERVING, [], None, id="a plain self-hosted service keeps the L4 selector switch"),
        pytest.param(
            SERVING,
            [SMALL, DEGRADED],
            None,
            id="a chain of services and degraded mode keeps the L4 selector switch",
        ),
        pytest.param(PROVIDER, [], "API-backed", id="an API-backed service goes through the gateway"),
        pytest.param(
            SERVING,
            [SMALL, API],
            "provider (step 1)",
            id="a provider anywhere in the chain sends the service through the gateway before it is reached",
        ),
        pytest.param(
            {**SERVING, "scaling": {"minReplicas": 0}},
            [],
            "minReplicas 0",
            id="a service that may sit at zero replicas goes through the gateway to hold the first request",
        ),
        pytest.param(
            {**SERVING, "scaling": {"minReplicas": 1, "scaleToZeroAfter": "10m"}},
            [],
            "scaleToZeroAfter",
            id="a service with scaleToZeroAfter goes through the gateway",
        ),
        pytest.param(
            {**SERVING, "frontDoor": {"maxInFlightPerReplica": 8, "overflow": "Fallback"}},
            [SMALL],
            "overflow",
            id="a service that overflows bursts to its chain goes through the gateway",
        ),
        pytest.param(
            {**SERVING, "frontDoor": {"maxInFlightPerReplica": 8, "overflow": "Queue"}},
            [SMALL],
            None,
            id="an in-flight bound that queues at the pods keeps the L4 selector switch",
        ),
    ],
)
def test_front_door_layer(
    spec: dict[str, Any], chain: list[FallbackStep], gateway_because: str | None
) -> None:
    reason = l7_reason(_isvc(**spec), chain)
    if gateway_because is None:
        assert reason is None
    else:
        assert reason is not None and gateway_because in reason


def test_a_chain_step_naming_an_api_backed_service_sends_the_service_through_the_gateway() -> None:
    """Its pods do not exist: the L4 switch would select nothing; the gateway sends the request on
    to that service's provider."""
    api_backed_step = FallbackStep.model_validate({"inferenceService": "gpt"})
    reason = l7_reason(
        _isvc(**SERVING),
        [api_backed_step],
        api_backed({"metadata": {"name": "gpt"}, "spec": PROVIDER} for _ in [0]),
    )
    assert reason is not None and "API-backed InferenceService (step 0)" in reason
    # the same step naming a self-hosted service keeps the L4 switch
    assert (
        l7_reason(
            _isvc(**SERVING), [api_backed_step], api_backed([{"metadata": {"name": "gpt"}, "spec": SERVING}])
        )
        is None
    )
