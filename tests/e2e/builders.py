"""Manifests the e2e tests apply, built in one place, and the small readers of what comes back:
each test file states only what its test is about (GPUs, pricing, scaling, a budget's spec),
not the boilerplate around it."""

from __future__ import annotations

from typing import Any

from tests.e2e.cluster import Cluster

GROUP_VERSION = "aipolicy.dev/v1alpha1"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
IMAGE = "vllm/vllm-openai:v0.6.3"


def ready_after(delay: str) -> dict[str, str]:
    """Pod annotations with which kwok makes a pod Ready this long after it starts: the model
    server's cold start."""
    return {"kwok.aipolicy.dev/ready-delay": delay}


def inference_service(
    name: str,
    *,
    serving: dict[str, Any],
    scaling: dict[str, Any],
    pricing: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    model: str = MODEL,
) -> dict[str, Any]:
    """An InferenceService of the vLLM image with the given serving (image aside), scaling and
    pricing ($2.00 a GPU-hour unless given)."""
    metadata: dict[str, Any] = {"name": name}
    if labels is not None:
        metadata["labels"] = labels
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {
            "model": model,
            "serving": {"image": IMAGE, **serving},
            "pricing": pricing or {"gpuHour": "2.00"},
            "scaling": scaling,
        },
    }


def steady_gpu_service(
    name: str, *, labels: dict[str, str] | None = None, pricing: dict[str, str] | None = None
) -> dict[str, Any]:
    """One replica of one GPU, Ready a second after it starts, evaluated every 5 s: the service
    whose traffic the report, dashboard and economics tests read back."""
    return inference_service(
        name,
        serving={"gpu": {"count": 1}, "podAnnotations": ready_after("1s")},
        scaling={"minReplicas": 1, "maxReplicas": 1, "evaluationInterval": "5s"},
        pricing=pricing,
        labels=labels,
    )


def deployment(
    name: str,
    container: dict[str, Any],
    *,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    pod_labels: dict[str, str] | None = None,
    replicas: int = 1,
) -> dict[str, Any]:
    """A plain Deployment of one container, its pods labelled (and selected) by `labels`, and
    labelled with `pod_labels` too."""
    metadata: dict[str, Any] = {"labels": {**labels, **(pod_labels or {})}}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": metadata, "spec": {"containers": [container]}},
        },
    }


def aibudget(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": GROUP_VERSION, "kind": "AIBudget", "metadata": {"name": name}, "spec": spec}


# ---- reading back ------------------------------------------------------------------------------


def status_of(cluster: Cluster, kind: str, name: str, namespace: str) -> dict[str, Any]:
    """The object's status ({} while it has none, or the object is gone)."""
    return dict(((cluster.get(kind, name, namespace) or {}).get("status")) or {})


def condition_of(status: dict[str, Any], type_: str) -> dict[str, Any]:
    """The condition of that type in a status ({} when absent)."""
    return dict(next((c for c in status.get("conditions") or [] if c["type"] == type_), {}))
