"""The InferenceService controller's children on a real cluster: a GPU Deployment and a front
door it owns, applied server-side, repaired when someone changes them, gone with their owner."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.builders import GROUP_VERSION, MODEL, inference_service
from tests.e2e.cluster import Cluster, free_port, wait_until
from tests.e2e.conftest import OperatorFactory


def _isvc(name: str, **scaling: Any) -> dict[str, Any]:
    return inference_service(
        name,
        labels={"team": "a"},
        serving={
            "args": ["--model", MODEL],
            "gpu": {"count": 1, "product": "NVIDIA-A100-SXM4-40GB"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
        pricing={"gpuHour": "2.50"},
        scaling={"minReplicas": 2, "maxReplicas": 4, **scaling},
    )


def _condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition["type"] == type_:
            return dict(condition)
    return None


def test_a_self_hosted_service_gets_a_gpu_deployment_and_a_front_door(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    operator_process(namespace)
    cluster.apply(_isvc("llama"), namespace)
    deployment = wait_until(
        "the Deployment", lambda: cluster.get("deployment", "llama", namespace), timeout=60
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert container["args"] == ["--model", "meta-llama/Llama-3.1-8B-Instruct"]
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"
    }
    assert deployment["spec"]["replicas"] == 2
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("InferenceService", "llama", True)
    shown = json.loads(
        cluster.kubectl(
            "-n", namespace, "get", "deployment", "llama", "-o", "json", "--show-managed-fields"
        ).stdout
    )
    managers = {m["manager"] for m in shown["metadata"]["managedFields"] if m["operation"] == "Apply"}
    assert managers == {"aipolicy"}

    service = wait_until("the front door", lambda: cluster.get("service", "llama", namespace), timeout=30)
    assert service["spec"]["selector"] == {"aipolicy.dev/service": "llama"}

    def ready() -> dict[str, Any] | None:
        isvc = cluster.get("inferenceservice", "llama", namespace)
        condition = _condition(isvc, "Ready")
        return (
            isvc
            if condition and condition["status"] == "True" and isvc["status"]["readyReplicas"] == 2
            else None
        )

    isvc = wait_until("two ready replicas in status", ready, timeout=90)
    assert isvc["status"]["gpus"] == 2
    assert isvc["status"]["costPerHour"] == "5.00"
    assert isvc["status"]["observedGeneration"] == isvc["metadata"]["generation"]
    assert isvc["status"]["endpoint"] == f"http://llama.{namespace}.svc:8000"
    columns = cluster.kubectl("get", "aisvc", "llama", "-n", namespace).stdout
    assert "Normal" in columns and "5.00" in columns


def test_drift_is_repaired_and_a_spec_change_rolls_the_deployment(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    operator_process(namespace)
    cluster.apply(_isvc("llama", minReplicas=1, maxReplicas=1), namespace)
    wait_until("the Deployment", lambda: cluster.get("deployment", "llama", namespace), timeout=60)
    wait_until("the front door", lambda: cluster.get("service", "llama", namespace), timeout=30)

    cluster.kubectl("-n", namespace, "scale", "deployment/llama", "--replicas=3")
    wait_until(
        "replicas put back to 1",
        lambda: (cluster.get("deployment", "llama", namespace) or {}).get("spec", {}).get("replicas") == 1,
        timeout=30,
    )
    cluster.kubectl("-n", namespace, "delete", "service", "llama")
    wait_until("the front door recreated", lambda: cluster.get("service", "llama", namespace), timeout=30)

    before = cluster.get("deployment", "llama", namespace)
    assert before is not None
    changed = _isvc("llama", minReplicas=1, maxReplicas=1)
    changed["spec"]["serving"]["image"] = "vllm/vllm-openai:v0.6.4"
    cluster.apply(changed, namespace)
    wait_until(
        "a rollout to the new image",
        lambda: (
            (cluster.get("deployment", "llama", namespace) or {})["spec"]["template"]["spec"]["containers"][
                0
            ]["image"]
            == "vllm/vllm-openai:v0.6.4"
        ),
        timeout=30,
    )
    after = cluster.get("deployment", "llama", namespace)
    assert after is not None and after["metadata"]["generation"] > before["metadata"]["generation"]


GATEWAY = "aipolicy-gateway"
GATEWAY_SELECTOR = {"app.kubernetes.io/name": GATEWAY}
GATEWAY_KINDS = ("serviceaccount", "role", "rolebinding", "service", "deployment")


def _api_backed(name: str, secret: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "model": "gpt-4o-mini",
            "provider": {"url": "https://api.openai.com/v1", "apiKeySecret": secret},
            "pricing": {"inputPerMillionTokens": "0.15", "outputPerMillionTokens": "0.60"},
        },
    }


def _gateway_objects(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any] | None]:
    return {kind: cluster.get(kind, GATEWAY, namespace) for kind in GATEWAY_KINDS}


def test_an_api_backed_service_gets_a_front_door_through_the_namespaces_gateway(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    """The front door keeps the service's name and selects the gateway's pods (no ExternalName:
    a CNAME could carry neither the provider's key, path nor model name); the operator deploys
    the gateway with a Role that reads only the named Secret, owned by every service needing
    it, and deletes it when none does."""
    operator_process(namespace)
    cluster.apply(_api_backed("gpt", "openai-key"), namespace)
    service = wait_until("the front door", lambda: cluster.get("service", "gpt", namespace), timeout=60)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == GATEWAY_SELECTOR
    assert service["spec"]["ports"][0]["targetPort"] == 8000
    assert cluster.get("deployment", "gpt", namespace) is None

    objects = wait_until(
        "the gateway's five objects",
        lambda: o if all((o := _gateway_objects(cluster, namespace)).values()) else None,
        timeout=60,
    )
    gpt_uid = cluster.get("inferenceservice", "gpt", namespace)["metadata"]["uid"]  # type: ignore[index]
    for kind, obj in objects.items():
        assert obj is not None
        owners = [(o["name"], o["uid"]) for o in obj["metadata"]["ownerReferences"]]
        assert owners == [("gpt", gpt_uid)], (kind, owners)
        shown = cluster.kubectl("-n", namespace, "get", kind, GATEWAY, "-o", "json", "--show-managed-fields")
        managers = {m["manager"] for m in json.loads(shown.stdout)["metadata"]["managedFields"]}
        assert "aipolicy" in managers, (kind, managers)  # (status is the controllers')
    role = objects["role"]
    assert role is not None
    secret_rules = [r for r in role["rules"] if "secrets" in r["resources"]]
    assert secret_rules == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["openai-key"], "verbs": ["get"]}
    ]
    writes = {"create", "update", "patch", "delete", "deletecollection", "*"}
    assert all(not writes & set(r["verbs"]) for r in role["rules"]), role["rules"]
    binding = objects["rolebinding"]
    assert binding is not None and binding["subjects"] == [
        {"kind": "ServiceAccount", "name": GATEWAY, "namespace": namespace}
    ]
    deployment = objects["deployment"]
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == GATEWAY
    assert [v["secret"]["secretName"] for v in pod["volumes"]] == ["openai-key"]
    assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == GATEWAY

    def endpoint() -> str | None:
        isvc = cluster.get("inferenceservice", "gpt", namespace) or {}
        return (isvc.get("status") or {}).get("endpoint")

    assert wait_until("the endpoint in status", endpoint, timeout=30) == "https://api.openai.com/v1"

    # a second API-backed service co-owns the gateway, and its Secret joins the Role
    cluster.apply(_api_backed("gpt-b", "other-key"), namespace)

    def both_secrets() -> dict[str, Any] | None:
        role = cluster.get("role", GATEWAY, namespace) or {}
        names = [n for r in role.get("rules", []) for n in r.get("resourceNames", [])]
        return role if names == ["openai-key", "other-key"] else None

    role = wait_until("the Role naming both Secrets", both_secrets, timeout=60)
    assert sorted(o["name"] for o in role["metadata"]["ownerReferences"]) == ["gpt", "gpt-b"]

    # no service needing L7 left: the gateway goes (the operator deletes it; the garbage
    # collector would too once the last owner is gone)
    cluster.kubectl("-n", namespace, "delete", "inferenceservice", "gpt", "gpt-b", "--timeout=60s")
    wait_until(
        "the gateway deleted",
        lambda: not any(_gateway_objects(cluster, namespace).values()),
        timeout=90,
    )


def test_a_plain_self_hosted_service_keeps_the_l4_selector_and_no_gateway(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    operator_process(namespace)
    cluster.apply(_isvc("plain"), namespace)
    service = wait_until("the front door", lambda: cluster.get("service", "plain", namespace), timeout=60)
    assert service["spec"]["selector"] == {"aipolicy.dev/service": "plain"}
    # the same reconcile would have applied the gateway: a few more ticks to be sure
    wait_until("the Deployment", lambda: cluster.get("deployment", "plain", namespace), timeout=60)
    time.sleep(3)
    assert not any(_gateway_objects(cluster, namespace).values())


def test_children_are_deleted_with_their_inference_service(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    operator_process(namespace)
    cluster.apply(_isvc("short-lived", minReplicas=1, maxReplicas=1), namespace)
    wait_until("the Deployment", lambda: cluster.get("deployment", "short-lived", namespace), timeout=60)
    cluster.kubectl("-n", namespace, "delete", "inferenceservice", "short-lived", "--timeout=60s")
    wait_until(
        "the Deployment garbage-collected",
        lambda: cluster.get("deployment", "short-lived", namespace) is None,
        timeout=60,
    )
    wait_until(
        "the Service garbage-collected",
        lambda: cluster.get("service", "short-lived", namespace) is None,
        timeout=60,
    )


def test_what_the_schema_lets_through_but_cannot_be_acted_on_is_invalid_spec(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    """A cron expression of the right shape with impossible values (minute 99) passes the CRD's
    pattern; the operator reports it on the field, once, and does not crash-loop."""
    operator_process(namespace)
    bad = _isvc("odd", minReplicas=1, maxReplicas=2)
    bad["spec"]["scaling"]["prewarm"] = [
        {"name": "am", "schedule": "99 8 * * *", "duration": "1h", "minReplicas": 1}
    ]
    cluster.apply(bad, namespace)

    def invalid() -> dict[str, Any] | None:
        condition = _condition(cluster.get("inferenceservice", "odd", namespace), "Ready")
        return condition if condition and condition["reason"] == "InvalidSpec" else None

    condition = wait_until("Ready=False InvalidSpec", invalid, timeout=60)
    assert condition["status"] == "False"
    assert "spec.scaling.prewarm[0].schedule" in condition["message"]
    assert cluster.get("deployment", "odd", namespace) is None
    # several evaluations later: still one event, not one per tick
    time.sleep(6)
    events = [e for e in cluster.events(namespace, "odd") if e["reason"] == "InvalidSpec"]
    assert len(events) == 1 and events[0].get("count", 1) == 1, events
    assert events[0]["type"] == "Warning"


@pytest.fixture(autouse=True)
def _crds(crds_installed: None) -> None:
    """Every test here needs the CRDs."""


def test_the_operator_serves_its_own_metrics_on_loopback(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    import urllib.request

    port = free_port()
    operator_process(namespace, metrics_port=port)
    cluster.apply(_isvc("measured", minReplicas=1, maxReplicas=1), namespace)

    def scrape() -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                text: str = response.read().decode()
        except OSError:
            return None
        return text if f'namespace="{namespace}",service="measured"' in text else None

    text = wait_until("the operator's /metrics about the service", scrape, timeout=60)
    assert f'aipolicy_service_mode{{mode="Normal",namespace="{namespace}",service="measured"}} 1.0' in text
    assert "aipolicy_evaluation_seconds_count" in text


def test_a_provider_step_in_the_chain_moves_the_front_door_to_the_gateway_and_back(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    """A self-hosted service's front door selects its pods (L4) until its FallbackPolicy's chain
    gets a provider step; then it selects the gateway's pods (same name, same port), and the
    operator deploys the gateway. The chain losing its provider brings the L4 selector back,
    and the operator deletes the gateway while the service lives on."""
    operator_process(namespace)
    cluster.apply(_isvc("llama"), namespace)
    wait_until(
        "the L4 front door",
        lambda: (
            (cluster.get("service", "llama", namespace) or {}).get("spec", {}).get("selector")
            == {"aipolicy.dev/service": "llama"}
        ),
        timeout=60,
    )

    def policy(chain: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "apiVersion": GROUP_VERSION,
            "kind": "FallbackPolicy",
            "metadata": {"name": "llama-fallback"},
            "spec": {
                "target": "llama",
                "triggers": [{"type": "Unavailable", "for": "1h"}],
                "chain": chain,
            },
        }

    provider = {"provider": {"url": "https://api.openai.com/v1", "model": "gpt-4o-mini", "apiKeySecret": "k"}}
    cluster.apply(policy([provider]), namespace)
    door = wait_until(
        "the front door on the gateway",
        lambda: (
            d
            if (d := cluster.get("service", "llama", namespace) or {}).get("spec", {}).get("selector")
            == GATEWAY_SELECTOR
            else None
        ),
        timeout=60,
    )
    port = door["spec"]["ports"][0]
    assert (port["port"], port["targetPort"]) == (8000, 8000)
    assert door["metadata"]["annotations"]["aipolicy.dev/active-backend"] == "service/llama"
    wait_until(
        "the gateway deployed",
        lambda: all(_gateway_objects(cluster, namespace).values()),
        timeout=60,
    )

    cluster.apply(policy([{"degraded": True}]), namespace)
    wait_until(
        "the L4 front door back",
        lambda: (
            (cluster.get("service", "llama", namespace) or {}).get("spec", {}).get("selector")
            == {"aipolicy.dev/service": "llama"}
        ),
        timeout=60,
    )
    wait_until(
        "the gateway deleted by the operator",
        lambda: not any(_gateway_objects(cluster, namespace).values()),
        timeout=60,
    )
    assert cluster.get("inferenceservice", "llama", namespace) is not None
