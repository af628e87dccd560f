"""Pure: whether a namespace needs its gateway, and who owns it."""

from __future__ import annotations

from typing import Any

from aipolicy.api.fallbackpolicy import FallbackStep
from aipolicy.api.inferenceservice import InferenceService
from aipolicy.api.reading import read
from aipolicy.kube.children import HASH_ANNOTATION
from aipolicy.kube.gateway import KINDS, GatewayNeed, Observed, gateway_need, gateway_objects, to_repair


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


def test_a_service_whose_chain_names_an_api_backed_service_owns_the_gateway() -> None:
    api = _isvc("gpt", provider={"url": "https://api.example.com/v1", "apiKeySecret": "example"})
    to_api = FallbackStep.model_validate({"inferenceService": "gpt"})
    to_plain = FallbackStep.model_validate({"inferenceService": "plain"})
    need = gateway_need(
        [
            (_isvc("big", **SERVING), [to_api]),
            (api, []),
            (_isvc("mid", **SERVING), [to_plain]),
            (_isvc("plain", **SERVING), []),
        ]
    )
    assert need.owners == (("big", "uid-big"), ("gpt", "uid-gpt"))
    assert need.secrets == ("example",)


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


def _observed_as_applied(objects: list[dict[str, Any]]) -> dict[str, Observed]:
    return {
        o["kind"]: Observed(
            o["metadata"]["annotations"][HASH_ANNOTATION],
            o["spec"]["replicas"] if o["kind"] == "Deployment" else None,
            3 if o["kind"] == "Deployment" else None,
        )
        for o in objects
    }


def test_gateway_objects_as_applied_need_no_repair() -> None:
    wanted = gateway_objects("team-a", "img", GatewayNeed(owners=(("api", "uid-api"),), secrets=("k",)))
    assert to_repair(wanted, _observed_as_applied(wanted), applied_generation=3) == []
    # after a restart the operator knows no generation: the hash and replicas still tell
    assert to_repair(wanted, _observed_as_applied(wanted)) == []
    # the watch not caught up with our own apply yet is no drift
    assert to_repair(wanted, _observed_as_applied(wanted), applied_generation=4) == []


def test_a_deleted_scaled_or_edited_gateway_object_is_repaired() -> None:
    wanted = gateway_objects("team-a", "img", GatewayNeed(owners=(("api", "uid-api"),), secrets=("k",)))
    observed = _observed_as_applied(wanted)
    deleted = {k: v for k, v in observed.items() if k != "Deployment"}
    assert [o["kind"] for o in to_repair(wanted, deleted)] == ["Deployment"]
    scaled = {**observed, "Deployment": Observed(observed["Deployment"].applied_hash, 7, 4)}
    assert [o["kind"] for o in to_repair(wanted, scaled, applied_generation=3)] == ["Deployment"]
    edited = {**observed, "Deployment": Observed(observed["Deployment"].applied_hash, 2, 4)}
    assert [o["kind"] for o in to_repair(wanted, edited, applied_generation=3)] == ["Deployment"]
    no_role = {k: v for k, v in observed.items() if k != "Role"}
    assert [o["kind"] for o in to_repair(wanted, no_role)] == ["Role"]


def test_a_changed_need_reapplies_every_object_in_order() -> None:
    before = gateway_objects("team-a", "img", GatewayNeed(owners=(("api", "uid-api"),), secrets=("k",)))
    after = gateway_objects(
        "team-a", "img", GatewayNeed(owners=(("api", "uid-api"), ("big", "uid-big")), secrets=("k",))
    )
    assert [o["kind"] for o in to_repair(after, _observed_as_applied(before))] == list(KINDS)


def _body(name: str, generation: int, **spec: Any) -> dict[str, Any]:
    metadata = {"name": name, "namespace": "team-a", "uid": f"uid-{name}", "generation": generation}
    # every body a new resourceVersion: a status write changes it, and must not count
    return {"metadata": {**metadata, "resourceVersion": str(id(spec))}, "spec": {"model": "m", **spec}}


def test_the_neighbours_are_decided_again_only_when_a_spec_changed_or_a_policy_came() -> None:
    from aipolicy.controllers.inferenceservice import _neighbours
    from aipolicy.controllers.runtime import Runtime

    rt = Runtime(prometheus=None, kube=None)  # type: ignore[arg-type]  (nothing is called)
    api = {"provider": {"url": "https://api.example.com/v1", "apiKeySecret": "example"}}
    none: dict[Any, list[dict[str, Any]]] = {}
    first = _neighbours(rt, "team-a", [_body("a", 1, **SERVING), _body("b", 1, **api)], none)
    assert first.gateway.owners == (("b", "uid-b"),) and first.api_services == {"b"}
    # the same generations (only status written since): the answer decided from them
    same = _neighbours(rt, "team-a", [_body("a", 1, **api), _body("b", 1, **api)], none)
    assert same is first
    # a spec changed: decided again from what it is now
    changed = _neighbours(rt, "team-a", [_body("a", 2, **api), _body("b", 1, **api)], none)
    assert changed.gateway.owners == (("a", "uid-a"), ("b", "uid-b")) and changed.api_services == {"a", "b"}
    # a policy came: decided again (a chain to an API step needs the gateway)
    policy = {"metadata": {"name": "p", "generation": 1}, "spec": {"target": "a"}}
    again = _neighbours(
        rt, "team-a", [_body("a", 2, **api), _body("b", 1, **api)], {("team-a", "a"): [policy]}
    )
    assert again is not changed
    # a service went
    gone = _neighbours(rt, "team-a", [_body("b", 1, **api)], {("team-a", "a"): [policy]})
    assert gone.api_services == {"b"}
