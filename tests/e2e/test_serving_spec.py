"""spec.serving's deployment fields on a real cluster (issue 16): each reaches the pods, a mount
without its volume is refused at apply time, the operator's PodDisruptionBudget comes and goes
with the replicas and holds a node drain (the eviction API) without ever deadlocking it, a
missing Secret makes Ready=False naming it, and the vLLM, SGLang and TGI samples reach Ready."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.builders import GROUP_VERSION, inference_service
from tests.e2e.cluster import REPO, Cluster, wait_until
from tests.e2e.conftest import OperatorFactory

SAMPLES = REPO / "manifests" / "samples"
NODES = ("gpu-node-a100-0", "gpu-node-l4-0", "cpu-node-0")


@pytest.fixture(autouse=True)
def _crds(crds_installed: None) -> None:
    """Every test here needs the CRDs."""


def _isvc(name: str, serving: dict[str, Any], replicas: int = 1) -> dict[str, Any]:
    return inference_service(
        name,
        serving=serving,
        pricing={"gpuHour": "1.00"},
        scaling={"minReplicas": replicas, "maxReplicas": replicas, "coldStartSeconds": 300},
    )


# A CPU-only server small enough for any of the three nodes.
SMALL = {"gpu": {"count": 0}, "resources": {"cpu": "1", "memory": "1Gi"}}


def _condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition["type"] == type_:
            return dict(condition)
    return None


def _pods(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    pods = cluster.list("pods", namespace, selector=f"aipolicy.dev/service={name}")
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _ready_pods(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        p
        for p in _pods(cluster, namespace, name)
        if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
    ]


def _service_ready(cluster: Cluster, namespace: str, name: str, replicas: int) -> dict[str, Any] | None:
    isvc = cluster.get("inferenceservice", name, namespace)
    ready = _condition(isvc, "Ready")
    if isvc and ready and ready["status"] == "True" and isvc["status"].get("readyReplicas") == replicas:
        return isvc
    return None


def _bound_volume(cluster: Cluster, namespace: str, claim: str, size: str = "200Gi") -> str:
    """A PersistentVolume pre-bound to the claim `claim`: this cluster has no provisioner, so a
    static PV stands for the storage class a real cluster has. hostPath, never mounted (kwok)."""
    name = f"{namespace}-{claim}"[:63]
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadOnlyMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": f"/tmp/aipolicy-e2e/{name}"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        }
    )
    return name


@pytest.fixture
def cluster_scoped(cluster: Cluster) -> Iterator[list[str]]:
    """Cluster-scoped objects a test creates ("kind/name"), deleted at its end."""
    made: list[str] = []
    yield made
    for ref in made:
        cluster.kubectl("delete", ref, "--wait=false", check=False)


@pytest.fixture
def uncordon_all(cluster: Cluster) -> Iterator[None]:
    """Tests that cordon or drain nodes leave every node schedulable again."""
    yield
    for node in NODES:
        cluster.kubectl("uncordon", node, check=False)


def test_every_new_field_reaches_the_pods(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory, cluster_scoped: list[str]
) -> None:
    # What a real cluster has for such a service: a PriorityClass, a RuntimeClass, a service
    # account, a weights volume, the Secrets and ConfigMaps the env names.
    priority, runtime = f"{namespace}-high"[:63], f"{namespace}-nvidia"[:63]
    cluster.apply(
        [
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": priority},
                "value": 100000,
            },
            {
                "apiVersion": "node.k8s.io/v1",
                "kind": "RuntimeClass",
                "metadata": {"name": runtime},
                "handler": "nvidia",
            },
        ]
    )
    cluster_scoped += [f"priorityclass/{priority}", f"runtimeclass/{runtime}"]
    cluster_scoped.append(f"pv/{_bound_volume(cluster, namespace, 'weights')}")
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "vllm")
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "hf-token", "--from-literal=token=hf_x")
    cluster.kubectl("-n", namespace, "create", "configmap", "vllm-env", "--from-literal=LOGGING_LEVEL=INFO")
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "weights"},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "200Gi"}}},
        },
        namespace,
    )
    serving = {
        **SMALL,
        "env": [
            {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}},
            {"name": "HF_HOME", "value": "/models/hf"},
        ],
        "envFrom": [{"configMapRef": {"name": "vllm-env"}, "prefix": "VLLM_"}],
        "volumes": [
            {"name": "weights", "persistentVolumeClaim": {"claimName": "weights"}},
            {"name": "cache", "hostPath": {"path": "/var/cache/hf", "type": "DirectoryOrCreate"}},
            {"name": "scratch", "emptyDir": {"sizeLimit": "10Gi"}},
            {"name": "templates", "configMap": {"name": "vllm-env", "optional": True}},
            {"name": "token", "secret": {"secretName": "hf-token", "defaultMode": 0o440}},
        ],
        "volumeMounts": [
            {"name": "weights", "mountPath": "/models"},
            {"name": "cache", "mountPath": "/root/.cache"},
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "templates", "mountPath": "/templates", "readOnly": True},
            {"name": "token", "mountPath": "/var/run/hf", "readOnly": True},
        ],
        "shmSize": "2Gi",
        "imagePullSecrets": [{"name": "registry-creds"}],
        "priorityClassName": priority,
        "runtimeClassName": runtime,
        "serviceAccountName": "vllm",
        "livenessProbe": {"failureThreshold": 5},
        "topologySpreadConstraints": [
            {"topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}
        ],
        "terminationGracePeriodSeconds": 240,
    }
    operator_process(namespace)
    cluster.apply(_isvc("full", serving), namespace)

    isvc = wait_until("the service Ready", lambda: _service_ready(cluster, namespace, "full", 1), timeout=120)
    (pod,) = _pods(cluster, namespace, "full")
    spec = pod["spec"]  # the pod as the apiserver admitted it, not only the template
    container = spec["containers"][0]
    assert {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}},
    } in container["env"]
    assert {"name": "HF_HOME", "value": "/models/hf"} in container["env"]
    assert container["envFrom"] == [{"configMapRef": {"name": "vllm-env"}, "prefix": "VLLM_"}]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["weights"]["persistentVolumeClaim"] == {"claimName": "weights"}
    assert volumes["cache"]["hostPath"] == {"path": "/var/cache/hf", "type": "DirectoryOrCreate"}
    assert volumes["scratch"]["emptyDir"] == {"sizeLimit": "10Gi"}
    assert volumes["templates"]["configMap"]["name"] == "vllm-env"
    assert volumes["token"]["secret"]["secretName"] == "hf-token"
    assert volumes["token"]["secret"]["defaultMode"] == 0o440
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    for path, name in {
        "/models": "weights",
        "/root/.cache": "cache",
        "/scratch": "scratch",
        "/templates": "templates",
        "/var/run/hf": "token",
        "/dev/shm": "dshm",
    }.items():
        assert mounts[path] == name
    assert spec["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert spec["priorityClassName"] == priority and spec["priority"] == 100000
    assert spec["runtimeClassName"] == runtime
    assert spec["serviceAccountName"] == "vllm"
    assert spec["terminationGracePeriodSeconds"] == 240
    assert spec["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"aipolicy.dev/service": "full"}},
        }
    ]
    # the startup probe's budget is twice coldStartSeconds (300 s): 60 probes 10 s apart
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] == 600
    assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http", "scheme": "HTTP"}
    assert container["livenessProbe"]["failureThreshold"] == 5
    assert isvc["status"]["readyReplicas"] == 1


def test_a_mount_without_its_volume_is_refused_naming_both(cluster: Cluster, namespace: str) -> None:
    serving = {
        "volumes": [{"name": "cache", "emptyDir": {}}],
        "volumeMounts": [
            {"name": "cache", "mountPath": "/cache"},
            {"name": "weights", "mountPath": "/models"},
        ],
    }
    result = cluster.apply(_isvc("orphan-mount", serving), namespace, check=False)
    assert result.returncode != 0
    assert "spec.serving.volumeMounts" in result.stderr
    assert (
        "volumeMount weights (at /models) needs a volume named weights in spec.serving.volumes"
        in result.stderr
    )
    assert "cache" not in result.stderr.split("spec.serving.volumeMounts", 1)[1]  # only the orphan is named
    assert cluster.get("inferenceservice", "orphan-mount", namespace) is None
    serving["volumes"].append({"name": "weights", "emptyDir": {}})
    cluster.apply(_isvc("orphan-mount", serving), namespace)


def _budget(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    return cluster.get("poddisruptionbudget", name, namespace)


def test_a_disruption_budget_exists_from_two_replicas_and_goes_away_below(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    operator_process(namespace)
    cluster.apply(_isvc("pdb", SMALL, replicas=2), namespace)
    budget = wait_until("the PodDisruptionBudget", lambda: _budget(cluster, namespace, "pdb"), timeout=60)
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"] == {"matchLabels": {"aipolicy.dev/service": "pdb"}}
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    owner = budget["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("InferenceService", "pdb", True)
    wait_until(
        "the disruption controller to allow one eviction",
        lambda: (_budget(cluster, namespace, "pdb") or {}).get("status", {}).get("disruptionsAllowed") == 1,
        timeout=90,
    )

    cluster.apply(_isvc("pdb", SMALL, replicas=1), namespace)
    wait_until(
        "the budget deleted at one replica", lambda: _budget(cluster, namespace, "pdb") is None, timeout=60
    )
    assert (cluster.get("deployment", "pdb", namespace) or {})["spec"]["replicas"] == 1

    cluster.apply(_isvc("pdb", SMALL, replicas=3), namespace)
    wait_until("the budget back at three", lambda: _budget(cluster, namespace, "pdb"), timeout=60)
    # someone deletes it: the operator puts it back (level-triggered, like its other children)
    cluster.kubectl("-n", namespace, "delete", "poddisruptionbudget", "pdb")
    wait_until("the budget recreated", lambda: _budget(cluster, namespace, "pdb"), timeout=60)

    provider = {
        "apiVersion": GROUP_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": "pdb"},
        "spec": {
            "model": "gpt-4o-mini",
            "provider": {"url": "https://api.openai.com/v1"},
            "pricing": {"inputPerMillionTokens": "0.15", "outputPerMillionTokens": "0.60"},
        },
    }
    cluster.kubectl(
        "-n", namespace, "replace", "-f", "-", stdin=json.dumps(_with_version(cluster, namespace, provider))
    )
    wait_until(
        "the budget gone with the pods", lambda: _budget(cluster, namespace, "pdb") is None, timeout=60
    )


def _with_version(cluster: Cluster, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    current = cluster.get("inferenceservice", manifest["metadata"]["name"], namespace)
    assert current is not None
    replaced = copy.deepcopy(manifest)
    replaced["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    replaced["metadata"]["namespace"] = namespace
    return replaced


def _two_replicas_on_one_node(
    cluster: Cluster, namespace: str, name: str, serving: dict[str, Any], ready: bool
) -> str:
    """Both replicas on gpu-node-a100-0 (the other nodes cordoned meanwhile), the budget in place."""
    node = "gpu-node-a100-0"
    for other in NODES:
        if other != node:
            cluster.kubectl("cordon", other)
    cluster.apply(_isvc(name, serving, replicas=2), namespace)
    if ready:
        wait_until("two ready replicas", lambda: len(_ready_pods(cluster, namespace, name)) == 2, timeout=90)
    else:
        wait_until(
            "two running replicas",
            lambda: (
                [p["status"].get("phase") for p in _pods(cluster, namespace, name)] == ["Running", "Running"]
            ),
            timeout=90,
        )
    assert {p["spec"]["nodeName"] for p in _pods(cluster, namespace, name)} == {node}
    wait_until(
        "the budget observed by the disruption controller",
        lambda: (_budget(cluster, namespace, name) or {}).get("status", {}).get("expectedPods") == 2,
        timeout=60,
    )
    for other in NODES:
        if other != node:
            cluster.kubectl("uncordon", other)
    return node


def _drain(cluster: Cluster, node: str, name: str, timeout: int) -> Any:
    return cluster.kubectl(
        "drain",
        node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        f"--pod-selector=aipolicy.dev/service={name}",
        f"--timeout={timeout}s",
        check=False,
        timeout=timeout + 30,
    )


@pytest.mark.usefixtures("uncordon_all")
def test_a_node_drain_evicts_one_replica_at_a_time(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    """kubectl drain evicts through the eviction API: the second replica waits until the first's
    replacement is Ready elsewhere, so the service keeps a ready replica throughout."""
    operator_process(namespace)
    node = _two_replicas_on_one_node(cluster, namespace, "drained", SMALL, ready=True)
    before = {p["metadata"]["name"] for p in _pods(cluster, namespace, "drained")}

    result = _drain(cluster, node, "drained", timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # the budget refused the second eviction at first: one replica at a time
    assert "Cannot evict pod as it would violate the pod's disruption budget" in output, output
    for pod in before:
        assert f"pod/{pod} evicted" in output, output
    wait_until(
        "two ready replicas elsewhere",
        lambda: len(_ready_pods(cluster, namespace, "drained")) == 2,
        timeout=90,
    )
    pods = _pods(cluster, namespace, "drained")
    assert not before & {p["metadata"]["name"] for p in pods}
    assert node not in {p["spec"]["nodeName"] for p in pods}


@pytest.mark.usefixtures("uncordon_all")
def test_replicas_that_never_become_ready_do_not_deadlock_a_drain(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    """Two replicas stuck loading (kwok's ready delay of an hour): the budget allows no
    disruption, yet the drain evicts them, because unhealthy pods are always evictable
    (unhealthyPodEvictionPolicy AlwaysAllow). With the default policy this drain times out."""
    operator_process(namespace)
    stuck = {**SMALL, "podAnnotations": {"kwok.aipolicy.dev/ready-delay": "1h"}}
    node = _two_replicas_on_one_node(cluster, namespace, "stuck", stuck, ready=False)
    assert (_budget(cluster, namespace, "stuck") or {})["status"]["disruptionsAllowed"] == 0
    result = _drain(cluster, node, "stuck", timeout=45)
    assert result.returncode == 0, result.stdout + result.stderr
    assert node not in {p["spec"].get("nodeName") for p in _pods(cluster, namespace, "stuck")}


@pytest.fixture
def kubelet_node(cluster: Cluster, namespace: str) -> Iterator[str]:
    """A node no kwok kubelet runs: the test plays its kubelet (kwok starts every container,
    whatever Secret it needs). Tainted so that only this test's pods land on it."""
    name = f"kubelet-{namespace}"[:63]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {
                "taints": [{"key": "aipolicy.dev/e2e-kubelet", "value": namespace, "effect": "NoSchedule"}]
            },
            "status": {
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "10"},
                "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "10"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
            },
        }
    )
    yield name
    cluster.kubectl("delete", "node", name, "--wait=false", check=False)


def _kubelet_reports(cluster: Cluster, namespace: str, pod: str, status: dict[str, Any]) -> None:
    cluster.kubectl(
        "-n",
        namespace,
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def test_a_missing_secret_makes_ready_false_naming_it(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory, kubelet_node: str
) -> None:
    operator_process(namespace)
    serving = {
        **SMALL,
        "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}}],
        "nodeSelector": {"kubernetes.io/hostname": kubelet_node},
        "tolerations": [{"key": "aipolicy.dev/e2e-kubelet", "operator": "Exists", "effect": "NoSchedule"}],
    }
    cluster.apply(_isvc("tokenless", serving), namespace)

    def scheduled() -> str | None:
        pods = [
            p for p in _pods(cluster, namespace, "tokenless") if p["spec"].get("nodeName") == kubelet_node
        ]
        return pods[0]["metadata"]["name"] if pods else None

    pod = wait_until("the pod bound to the test's node", scheduled, timeout=60)
    # What the kubelet reports for a container whose env names a Secret that does not exist
    # (pkg/kubelet: CreateContainerConfigError, `secret "<name>" not found`).
    container = {"name": "server", "image": "vllm/vllm-openai:v0.6.3", "imageID": "", "ready": False}
    _kubelet_reports(
        cluster,
        namespace,
        pod,
        {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
            ],
            "containerStatuses": [
                {
                    **container,
                    "restartCount": 0,
                    "state": {
                        "waiting": {
                            "reason": "CreateContainerConfigError",
                            "message": 'secret "hf-token" not found',
                        }
                    },
                }
            ],
        },
    )

    def not_ready() -> dict[str, Any] | None:
        ready = _condition(cluster.get("inferenceservice", "tokenless", namespace), "Ready")
        return ready if ready and ready["reason"] == "SecretNotFound" else None

    ready = wait_until("Ready=False SecretNotFound", not_ready, timeout=60)
    assert ready["status"] == "False"
    assert f"Secret hf-token does not exist in namespace {namespace}" in ready["message"]
    events = [e for e in cluster.events(namespace, "tokenless") if e["reason"] == "SecretNotFound"]
    assert events and events[0]["type"] == "Warning", events

    # the Secret appears, the kubelet starts the container: Ready again
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "hf-token", "--from-literal=token=hf_x")
    _kubelet_reports(
        cluster,
        namespace,
        pod,
        {
            "phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {
                    **container,
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}},
                }
            ],
        },
    )
    wait_until("Ready again", lambda: _service_ready(cluster, namespace, "tokenless", 1), timeout=60)


def test_a_missing_service_account_makes_ready_false_naming_it(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    """Admission refuses the pods of a ServiceAccount that does not exist: the Deployment says so
    in its ReplicaFailure condition, and the service names the account."""
    operator_process(namespace)
    cluster.apply(_isvc("no-account", {**SMALL, "serviceAccountName": "vllm"}), namespace)

    def not_ready() -> dict[str, Any] | None:
        ready = _condition(cluster.get("inferenceservice", "no-account", namespace), "Ready")
        return ready if ready and ready["reason"] == "ServiceAccountNotFound" else None

    ready = wait_until("Ready=False ServiceAccountNotFound", not_ready, timeout=90)
    assert ready["status"] == "False"
    assert ready["message"].startswith(f"ServiceAccount vllm does not exist in namespace {namespace}")
    assert not _pods(cluster, namespace, "no-account")

    cluster.kubectl("-n", namespace, "create", "serviceaccount", "vllm")
    # the ReplicaSet controller retries with a growing back-off
    wait_until(
        "Ready once the account exists",
        lambda: _service_ready(cluster, namespace, "no-account", 1),
        timeout=240,
    )


def _sample(path: Path, namespace: str) -> list[dict[str, Any]]:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for document in documents:
        document["metadata"]["namespace"] = namespace
    return documents


def test_the_vllm_sglang_and_tgi_samples_reach_ready(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory, cluster_scoped: list[str]
) -> None:
    # What the samples' comments ask the cluster and namespace to have.
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "hf-token", "--from-literal=token=hf_x")
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "tgi-env", "--from-literal=HF_TOKEN=hf_x")
    if cluster.get("runtimeclass", "nvidia") is None:
        cluster.apply(
            {
                "apiVersion": "node.k8s.io/v1",
                "kind": "RuntimeClass",
                "metadata": {"name": "nvidia"},
                "handler": "nvidia",
            }
        )
        cluster_scoped.append("runtimeclass/nvidia")
    cluster_scoped.append(f"pv/{_bound_volume(cluster, namespace, 'llama-70b-weights')}")

    operator_process(namespace)
    names = []
    for sample in ("inferenceservice-vllm-70b-tp4", "inferenceservice-sglang", "inferenceservice-tgi"):
        documents = _sample(SAMPLES / f"{sample}.yaml", namespace)
        cluster.apply(documents, namespace)
        names += [d["metadata"]["name"] for d in documents if d["kind"] == "InferenceService"]
    assert names == ["llama-70b-tp4", "llama-8b-sglang", "mistral-7b-tgi"]
    for name in names:
        wait_until(
            f"{name} Ready", lambda name=name: _service_ready(cluster, namespace, name, 1), timeout=180
        )

    claim = cluster.get("persistentvolumeclaim", "llama-70b-weights", namespace)
    assert claim is not None and claim["status"]["phase"] == "Bound"
    (vllm,) = _pods(cluster, namespace, "llama-70b-tp4")
    assert vllm["spec"]["runtimeClassName"] == "nvidia"
    assert vllm["spec"]["nodeName"] == "gpu-node-a100-0"
    assert vllm["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in vllm["spec"]["volumes"]
    (sglang,) = _pods(cluster, namespace, "llama-8b-sglang")
    assert sglang["spec"]["containers"][0]["ports"][0]["containerPort"] == 30000
    (tgi,) = _pods(cluster, namespace, "mistral-7b-tgi")
    assert tgi["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "tgi-env"}}]
