"""The InferenceService controller's children on a real cluster: a GPU Deployment and a front
door it owns, applied server-side, repaired when someone changes them, gone with their owner."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.cluster import Cluster, free_port, wait_until
from tests.e2e.conftest import OperatorFactory

GROUP_VERSION = "aipolicy.dev/v1alpha1"


def _isvc(name: str, **scaling: Any) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name, "labels": {"team": "a"}},
        "spec": {
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "serving": {
                "image": "vllm/vllm-openai:v0.6.3",
                "args": ["--model", "meta-llama/Llama-3.1-8B-Instruct"],
                "gpu": {"count": 1, "product": "NVIDIA-A100-SXM4-40GB"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
            "pricing": {"gpuHour": "2.50"},
            "scaling": {"minReplicas": 2, "maxReplicas": 4, **scaling},
        },
    }


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


def test_an_api_backed_service_gets_an_external_name_front_door(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    operator_process(namespace)
    cluster.apply(
        {
            "apiVersion": GROUP_VERSION,
            "kind": "InferenceService",
            "metadata": {"name": "gpt"},
            "spec": {
                "model": "gpt-4o-mini",
                "provider": {"url": "https://api.openai.com/v1"},
                "pricing": {"inputPerMillionTokens": "0.15", "outputPerMillionTokens": "0.60"},
            },
        },
        namespace,
    )
    service = wait_until(
        "the ExternalName front door", lambda: cluster.get("service", "gpt", namespace), timeout=60
    )
    assert service["spec"]["type"] == "ExternalName"
    assert service["spec"]["externalName"] == "api.openai.com"
    assert cluster.get("deployment", "gpt", namespace) is None

    def endpoint() -> str | None:
        isvc = cluster.get("inferenceservice", "gpt", namespace) or {}
        return (isvc.get("status") or {}).get("endpoint")

    assert wait_until("the endpoint in status", endpoint, timeout=30) == "https://api.openai.com/v1"


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
