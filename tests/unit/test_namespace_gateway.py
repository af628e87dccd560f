"""Pure: whether a namespace needs its gateway, and who owns it."""

from __future__ import annotations

from typing import Any

from aipolicy.api.fallbackpolicy import FallbackStep
from aipolicy.api.inferenceservice import InferenceService
from aipolicy.api.reading import read
from aipolicy.kube.gateway import KINDS, GatewayNeed, gateway_need, gateway_objects


def _isvc(name: str, **spec: Any) -> InferenceService:
    body = {
        "metadata": {"name": name, "namespace": "team-a", "uid": f"uid-{name}", "generation": 1},
        "spec": {"model": "m", **spec},
    }
    parsed = read(InferenceService, body)
    assert isinstance(parsed, InferenceService), parsed
    return parsed


SERVING = {"serving": {"image": "vllm/vllm-openai:v0.6.3"}}
API_STEP = FallbackStep.model_validate(
    {"provider": {"url": "https://api.openai.com/v1", "model": "gpt-4o-mini", "apiKeySecret": "openai"}}
)


def test_a_namespace_of_plain_self_hosted_services_needs_no_gateway() -> None:
    need = gateway_need([(_isvc("a", **SERVING), []), (_isvc("b", **SERVING), [])])
    assert need == GatewayNeed()


def test_every_service_that_needs_l7_owns_the_gateway_and_only_those() -> None:
    api = _isvc("api", provider={"url": "https://api.example.com/v1", "apiKeySecret": "example"})
    need = gateway_need([(api, []), (_isvc("big", **SERVING), [API_STEP]), (_isvc("plain", **SERVING), [])])
    assert need.owners == (("api", "uid-api"), ("big", "uid-big"))
    assert need.secrets == ("example", "openai")


def test_each_gateway_object_is_owned_by_every_l7_service_without_a_controller() -> None:
    need = GatewayNeed(owners=(("api", "uid-api"), ("big", "uid-big")), secrets=("openai",))
    objects = gateway_objects("team-a", "img", need)
    assert [o["kind"] for o in objects] == list(KINDS)
    for obj in objects:
        owners = obj["metadata"]["ownerReferences"]
        assert [(o["name"], o["uid"]) for o in owners] == [("api", "uid-api"), ("big", "uid-big")]
        # one object can have only one controller; none of these services is it
        assert not any(o.get("controller") for o in owners)
        assert obj["metadata"]["namespace"] == "team-a"
    role = objects[1]
    secret_rules = [r for r in role["rules"] if r["resources"] == ["secrets"]]
    assert secret_rules == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["openai"], "verbs": ["get"]}
    ]
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in role["rules"])
