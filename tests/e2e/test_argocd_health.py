"""Argo CD health and kstatus on objects the operator really wrote.

The operator runs on the local cluster and brings objects into the states GitOps users see:
Ready, InvalidSpec, ReplicasFailing, serving from a fallback, a budget Exceeded, and a spec change
it has not seen yet. hack/health (Go) then judges each object twice: with the health Lua of
manifests/argocd run in gopher-lua the way Argo CD runs it, and with kstatus
(sigs.k8s.io/cli-utils), what Flux and kpt use.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.e2e.cluster import REPO, Cluster, Prometheus, wait_until
from tests.e2e.conftest import OperatorFactory

pytestmark = pytest.mark.e2e

GROUP_VERSION = "aipolicy.dev/v1alpha1"
CONFIG_MAP = REPO / "manifests" / "argocd" / "argocd-cm-health.yaml"
NO_SUCH_GPU = "NVIDIA-H100-80GB-HBM3"  # no node has it: pods stay Pending, never ready


@pytest.fixture(scope="session")
def health_judge() -> str:
    built = subprocess.run(
        [str(REPO / "hack" / "build-health.sh")], capture_output=True, text=True, check=True, timeout=3600
    )
    return built.stdout.strip().splitlines()[-1]


def judge(binary: str, objects: list[dict[str, Any]]) -> list[dict[str, str]]:
    """hack/health's verdicts, one per object, in order."""
    result = subprocess.run(
        [binary, f"-argocd-cm={CONFIG_MAP}"],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    verdicts: list[dict[str, str]] = json.loads(result.stdout)
    return verdicts


def _serving(name: str, **extra: Any) -> dict[str, Any]:
    serving: dict[str, Any] = {
        "image": "vllm/vllm-openai:v0.6.3",
        "gpu": {"count": 1},
        "resources": {"cpu": "1", "memory": "1Gi"},
        **extra,
    }
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name, "labels": {"team": "argo"}},
        "spec": {
            "model": f"example/{name}",
            "serving": serving,
            "pricing": {"gpuHour": "360"},  # $0.10 a second: the budget below goes at once
            "scaling": {"minReplicas": 1, "maxReplicas": 1, "evaluationInterval": "2s"},
        },
    }


def _provider(name: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "model": "gpt-4o-mini",
            "provider": {"url": "https://api.openai.com/v1"},
            "pricing": {"currency": "USD", "inputPerMillionTokens": "0.15", "outputPerMillionTokens": "0.60"},
        },
    }


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Ready":
            return dict(condition)
    return {}


def _wait_for(cluster: Cluster, kind: str, name: str, namespace: str, what: str, test: Any) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        last.clear()
        last.update(cluster.get(kind, name, namespace) or {})
        return dict(last) if last and test(last) else None

    try:
        return wait_until(f"{kind}/{name} {what}", probe, timeout=150)
    except AssertionError as error:
        raise AssertionError(f"{error}\nstatus: {json.dumps(last.get('status'), indent=1)}") from None


def _fail_its_pod(cluster: Cluster, namespace: str, service: str) -> None:
    """Report the service's pod as a kubelet does when its image cannot be pulled. kwok has no
    image pulls, so the report is written here, as the admin, to the pod's status; the pod's
    ready delay (1 h) keeps kwok from marking it Ready meanwhile."""
    pod = wait_until(
        f"{service}'s pod running",
        lambda: next(
            (
                p
                for p in cluster.list("pods", namespace, f"aipolicy.dev/service={service}")
                if (p.get("status") or {}).get("phase") == "Running"
            ),
            None,
        ),
        timeout=60,
    )
    statuses = [
        {
            "name": c["name"],
            "image": c["image"],
            "imageID": "",
            "ready": False,
            "started": False,
            "restartCount": 0,
            "state": {
                "waiting": {"reason": "ErrImagePull", "message": f"pull access denied for {c['image']}"}
            },
        }
        for c in pod["spec"]["containers"]
    ]
    cluster.kubectl(
        "-n", namespace, "patch", "pod", pod["metadata"]["name"], "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": {"containerStatuses": statuses}}),
    )  # fmt: skip


def test_argocd_health_and_kstatus_of_real_objects(
    cluster: Cluster,
    namespace: str,
    prometheus: Prometheus,
    operator_process: OperatorFactory,
    health_judge: str,
) -> None:
    operator = operator_process(namespace)
    invalid = _serving("invalid")
    invalid["metadata"]["labels"] = {}  # only "spender" counts against the budget
    invalid["spec"]["scaling"]["prewarm"] = [
        {"name": "am", "schedule": "99 8 * * *", "duration": "1h", "minReplicas": 1}
    ]
    failing = _serving("failing", podAnnotations={"kwok.aipolicy.dev/ready-delay": "1h"})
    failing["metadata"]["labels"] = {}
    down = _serving("down", gpu={"count": 1, "product": NO_SUCH_GPU})
    down["metadata"]["labels"] = {}
    policy = {
        "apiVersion": GROUP_VERSION,
        "kind": "FallbackPolicy",
        "metadata": {"name": "down-fallback"},
        "spec": {
            "target": "down",
            "triggers": [{"type": "Unavailable", "for": "0s"}],
            "chain": [{"provider": {"url": "https://api.openai.com/v1", "model": "gpt-4o-mini"}}],
            "recovery": {"holdFor": "10m", "minSwitchInterval": "2s"},
            "evaluationInterval": "1s",
        },
    }
    budget = {
        "apiVersion": GROUP_VERSION,
        "kind": "AIBudget",
        "metadata": {"name": "spent"},
        "spec": {
            "limit": "0.01",
            "currency": "USD",
            "period": {"type": "Monthly", "timeZone": "UTC"},
            "selector": {"matchLabels": {"team": "argo"}},
            "thresholds": [{"percent": 100, "action": "Notify"}],
            "evaluationInterval": "5s",
        },
    }
    cluster.apply(
        [_provider("ready"), invalid, failing, down, policy, _serving("spender"), budget], namespace
    )

    _fail_its_pod(cluster, namespace, "failing")
    objects = {
        "InferenceService/ready": _wait_for(
            cluster, "inferenceservice", "ready", namespace, "Ready",
            lambda o: _ready(o).get("status") == "True",
        ),
        "InferenceService/invalid": _wait_for(
            cluster, "inferenceservice", "invalid", namespace, "InvalidSpec",
            lambda o: _ready(o).get("reason") == "InvalidSpec",
        ),
        "InferenceService/failing": _wait_for(
            cluster, "inferenceservice", "failing", namespace, "ReplicasFailing",
            lambda o: _ready(o).get("reason") == "ReplicasFailing",
        ),
        "InferenceService/down": _wait_for(
            cluster, "inferenceservice", "down", namespace, "serving from its fallback",
            lambda o: _ready(o).get("reason") == "ServingFromFallback",
        ),
        "FallbackPolicy/down-fallback": _wait_for(
            cluster, "fallbackpolicy", "down-fallback", namespace, "active",
            lambda o: (o.get("status") or {}).get("active") is True,
        ),
        "AIBudget/spent": _wait_for(
            cluster, "aibudget", "spent", namespace, "Exceeded",
            lambda o: (o.get("status") or {}).get("state") == "Exceeded",
        ),
    }  # fmt: skip

    # a spec change the operator has not seen: stop it first, so that nothing catches up
    operator.stop()
    cluster.kubectl(
        "-n", namespace, "patch", "inferenceservice", "ready", "--type=merge",
        "-p", json.dumps({"spec": {"pricing": {"inputPerMillionTokens": "0.20"}}}),
    )  # fmt: skip
    lagging = cluster.get("inferenceservice", "ready", namespace)
    assert lagging is not None and lagging["metadata"]["generation"] == 2
    objects["InferenceService/ready@2"] = lagging
    operator.start()  # back, so that the clean-up's deletions get their finalizers lifted

    expected = {
        # (Argo CD health, kstatus)
        "InferenceService/ready": ("Healthy", "Current"),
        "InferenceService/invalid": ("Degraded", "Failed"),
        "InferenceService/failing": ("Degraded", "InProgress"),
        "InferenceService/down": ("Healthy", "Current"),
        "FallbackPolicy/down-fallback": ("Healthy", "Current"),
        "AIBudget/spent": ("Degraded", "Current"),
        "InferenceService/ready@2": ("Progressing", "InProgress"),
    }
    names = list(objects)
    verdicts = judge(health_judge, [objects[n] for n in names])
    got = {n: (v["health"], v["kstatus"]) for n, v in zip(names, verdicts, strict=True)}
    details = {n: {**v, "status": objects[n].get("status")} for n, v in zip(names, verdicts, strict=True)}
    assert got == expected, f"{got}\n{json.dumps(details, indent=1, default=str)}"
    # the messages say why
    messages = {n: v["healthMessage"] for n, v in zip(names, verdicts, strict=True)}
    assert "spec.scaling.prewarm[0].schedule" in messages["InferenceService/invalid"]
    assert "ErrImagePull" in messages["InferenceService/failing"]
    assert messages["AIBudget/spent"].startswith("Exceeded: ")
    assert "generation 2" in messages["InferenceService/ready@2"]

    # the operator, back, catches up with the change: Healthy and Current again
    caught_up = _wait_for(
        cluster, "inferenceservice", "ready", namespace, "judged at generation 2",
        lambda o: _ready(o).get("observedGeneration") == 2,
    )  # fmt: skip
    (verdict,) = judge(health_judge, [caught_up])
    assert (verdict["health"], verdict["kstatus"]) == ("Healthy", "Current"), verdict
