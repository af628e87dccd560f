"""The image proves itself: the operator from localhost/aipolicy:dev (`make image`), run by podman
on the host's network with a read-only root, reconciles the samples on the local cluster under the
ServiceAccount token of manifests/base, never an admin kubeconfig; and that account can do no more
than rbac.yaml says."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import REPO, Cluster, free_port, wait_until
from tests.e2e.podman import (
    CONTAINER_CONFIG_DIR,
    IMAGE,
    Container,
    container_kubeconfig,
    image_missing_reason,
    podman,
)

pytestmark = pytest.mark.e2e

ACCOUNT = "system:serviceaccount:aipolicy-system:aipolicy"
SAMPLES = REPO / "manifests" / "samples"


@pytest.fixture(scope="module")
def image() -> str:
    reason = image_missing_reason()
    if reason:
        pytest.fail(reason)
    return IMAGE


def _samples(namespace: str) -> list[dict[str, Any]]:
    objects = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            obj["metadata"]["namespace"] = namespace
            # the sample's webhook names an in-cluster Alertmanager that nothing here may dial
            obj.get("spec", {}).pop("notification", None)
            objects.append(obj)
    return objects


def _ready(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition["type"] == "Ready":
            return dict(condition)
    return None


@pytest.fixture
def image_operator(
    cluster: Cluster, image: str, operator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> Iterator[Container]:
    """The operator from the image, watching `namespace`, as the ServiceAccount."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    kubeconfig = container_kubeconfig(operator_kubeconfig, config_dir)
    assert "client-key" not in kubeconfig.read_text(), "the operator must run with the token only"
    args = [
        "--network=host",
        # read-only and not even a /tmp, as manifests/base runs it
        "--read-only",
        "--read-only-tmpfs=false",
        f"--volume={config_dir}:{CONTAINER_CONFIG_DIR}:ro",
        f"--env=KUBECONFIG={CONTAINER_CONFIG_DIR}/kubeconfig",
        "--env=AIPOLICY_TICK_SECONDS=1",
        image,
        "run",
        f"--namespace={namespace}",
        "--metrics-host=127.0.0.1",
        f"--metrics-port={free_port()}",
    ]
    if cluster.prometheus_url:
        args.append(f"--prometheus-url={cluster.prometheus_url}")
    container = Container(args, tmp_path / "operator.log", tmp_path / "operator.cid").start()
    try:
        wait_until("the container's id", lambda: container.container_id, timeout=60)
        yield container
    finally:
        # delete while the operator runs, so kopf lifts its finalizers and the namespace can go
        cluster.kubectl(
            "delete",
            "inferenceservices,aibudgets,fallbackpolicies",
            "--all",
            "-n",
            namespace,
            "--timeout=30s",
            check=False,
            timeout=40,
        )
        container.stop()


def test_the_image_is_non_root_read_only_and_holds_only_runtime_dependencies(image: str) -> None:
    config = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "65532:65532"
    script = (
        "import importlib.util as u, os, sys; "
        "print(os.getuid(), os.getgid()); "
        "print(','.join(m for m in ('pip', 'setuptools', 'pytest', 'mypy', 'ruff', 'hypothesis') "
        "if u.find_spec(m))); "
        "open('/opt/aipolicy/x', 'w')"
    )
    result = podman(
        "run",
        "--rm",
        "--network=host",
        "--read-only",
        "--entrypoint=python3",
        image,
        "-c",
        script,
        check=False,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "65532 65532", result
    assert lines[1] == "", f"build or dev tools in the runtime image: {lines[1]}"
    assert "Read-only file system" in result.stderr or "Permission denied" in result.stderr, result
    # the same image runs the CLI's other commands
    crds = podman("run", "--rm", "--network=host", "--read-only", image, "crds", "--output=/tmp/crds")
    assert crds.stdout.count("wrote /tmp/crds/") == 3, crds.stdout


def test_the_operator_from_the_image_reconciles_the_samples_as_its_service_account(
    cluster: Cluster, namespace: str, image_operator: Container
) -> None:
    everything = _samples(namespace)
    cluster.apply(everything, namespace)
    # what the operator judges: its own kinds (a sample may bring a PersistentVolumeClaim too)
    samples = [s for s in everything if s["apiVersion"].startswith("aipolicy.dev/")]

    waiting: list[str] = []

    def fresh_ready() -> bool:
        waiting.clear()
        for sample in samples:
            kind, name = sample["kind"].lower(), sample["metadata"]["name"]
            obj = cluster.get(kind, name, namespace)
            condition = _ready(obj)
            if obj is None or condition is None:
                waiting.append(f"{kind}/{name}")
            elif condition.get("observedGeneration") != obj["metadata"]["generation"]:
                waiting.append(f"{kind}/{name}@{obj['metadata']['generation']}")
        assert image_operator.running, image_operator.log_tail()
        return not waiting

    try:
        wait_until("every sample judged by the operator in the image", fresh_ready, timeout=120)
    except AssertionError as error:
        raise AssertionError(f"{error}\nnot judged: {waiting}\n{image_operator.log_tail()}") from None

    # the children it owns: a Deployment per self-hosted service, a front door per service
    for sample in samples:
        if sample["kind"] != "InferenceService":
            continue
        name = sample["metadata"]["name"]
        front = wait_until(f"Service {name}", lambda n=name: cluster.get("service", n, namespace), timeout=60)
        assert front["metadata"]["ownerReferences"][0]["name"] == name
        if "serving" in sample["spec"]:
            deployment = wait_until(
                f"Deployment {name}", lambda n=name: cluster.get("deployment", n, namespace), timeout=60
            )
            assert deployment["metadata"]["ownerReferences"][0]["kind"] == "InferenceService"
            shown = cluster.kubectl(
                "get", "deployment", name, "-n", namespace, "--show-managed-fields", "-o", "json"
            )  # fmt: skip
            managers = {m["manager"] for m in json.loads(shown.stdout)["metadata"]["managedFields"]}
            assert "aipolicy" in managers, managers
        else:  # an API-backed service's front door is the namespace's gateway (L7)
            assert front["metadata"]["annotations"]["aipolicy.dev/front-door"] == "gateway"
            assert front["spec"]["type"] == "ClusterIP"

    # it explains itself with events, as the ServiceAccount
    events = [e for e in cluster.events(namespace) if e["involvedObject"]["kind"] == "InferenceService"]
    assert events, "no events from the operator"
    log = image_operator.log_tail(400)
    assert not re.search(r"\b403\b|Forbidden", log), log
    assert image_operator.running, log


# (verb, resource, namespace or None for cluster scope): all refused to the operator's account
REFUSED = [
    ("get", "secrets", "default"),
    ("list", "secrets", None),
    ("watch", "secrets", "kube-system"),
    ("create", "configmaps", "default"),
    ("update", "inferenceservices.aipolicy.dev", "default"),
    ("create", "inferenceservices.aipolicy.dev", "default"),
    ("delete", "aibudgets.aipolicy.dev", "default"),
    ("update", "fallbackpolicies.aipolicy.dev", "default"),
    ("create", "pods", "default"),
    ("delete", "pods", "default"),
    ("create", "pods:exec", "default"),
    ("delete", "configmaps", "default"),
    ("update", "deployments.apps", "default"),
    ("create", "statefulsets.apps", "default"),
    ("create", "jobs.batch", "default"),
    ("patch", "nodes", None),
    ("create", "namespaces", None),
    ("delete", "namespaces", None),
    ("create", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("patch", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("create", "clusterroles.rbac.authorization.k8s.io", None),
    ("bind", "clusterroles.rbac.authorization.k8s.io", None),
    ("escalate", "clusterroles.rbac.authorization.k8s.io", None),
    ("escalate", "roles.rbac.authorization.k8s.io/admin", "default"),
    ("bind", "roles.rbac.authorization.k8s.io/admin", "default"),
    ("update", "roles.rbac.authorization.k8s.io", "default"),
    ("create", "serviceaccounts:token", "aipolicy-system"),  # a token of its own or another's
    ("impersonate", "users", None),
    ("impersonate", "serviceaccounts", "aipolicy-system"),
]
# what it needs, so that a wrong account name cannot make every refusal above pass
GRANTED = [
    ("patch", "inferenceservices.aipolicy.dev/status", "default"),
    ("patch", "aibudgets.aipolicy.dev/status", "default"),
    ("list", "inferenceservices.aipolicy.dev", None),
    ("create", "deployments.apps", "default"),
    ("patch", "services", "default"),
    ("create", "events", "default"),
    # the namespace's gateway: its Role may grant get on named Secrets only through these two
    ("escalate", "roles.rbac.authorization.k8s.io/aipolicy-gateway", "default"),
    ("bind", "roles.rbac.authorization.k8s.io/aipolicy-gateway", "default"),
]
# every resource the account may touch in any way (the whole of rbac.yaml, plus what every
# authenticated user may do); anything else in `kubectl auth can-i --list` fails the test
ALLOWED_RESOURCES = {
    "inferenceservices.aipolicy.dev",
    "aibudgets.aipolicy.dev",
    "fallbackpolicies.aipolicy.dev",
    "inferenceservices.aipolicy.dev/status",
    "aibudgets.aipolicy.dev/status",
    "fallbackpolicies.aipolicy.dev/status",
    "deployments.apps",
    "services",
    "pods",
    "poddisruptionbudgets.policy",
    # each namespace's gateway: its ServiceAccount, Role and RoleBinding
    "serviceaccounts",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "events",
    "events.events.k8s.io",
    "namespaces",
    "customresourcedefinitions.apiextensions.k8s.io",
    # leader election's Lease, when the chart or base grants it
    "leases.coordination.k8s.io",
    # system:basic-user and system:discovery, for every authenticated user
    "selfsubjectaccessreviews.authorization.k8s.io",
    "selfsubjectrulesreviews.authorization.k8s.io",
    "selfsubjectreviews.authentication.k8s.io",
}


def _can_i(cluster: Cluster, verb: str, resource: str, namespace: str | None) -> bool:
    """`resource:subresource` asks about a subresource (`pods/exec` would name a pod "exec")."""
    scope = ["-n", namespace] if namespace else ["--all-namespaces"]
    resource, _, subresource = resource.partition(":")
    extra = [f"--subresource={subresource}"] if subresource else []
    result = cluster.kubectl(
        "auth", "can-i", verb, resource, *extra, f"--as={ACCOUNT}", *scope, check=False
    )  # fmt: skip
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result
    return answer == "yes"


def test_the_service_account_reads_no_secret_and_writes_only_what_it_owns(
    cluster: Cluster, operator_kubeconfig: Path
) -> None:
    granted = [(v, r, n) for v, r, n in REFUSED if _can_i(cluster, v, r, n)]
    assert not granted, f"{ACCOUNT} may do more than it needs: {granted}"
    missing = [(v, r, n) for v, r, n in GRANTED if not _can_i(cluster, v, r, n)]
    assert not missing, f"{ACCOUNT} lacks what it needs: {missing}"

    listing = cluster.kubectl("auth", "can-i", "--list", f"--as={ACCOUNT}", "-n", "default").stdout
    resources = set()
    for line in listing.splitlines()[1:]:
        resource = line.split()[0]
        if resource.startswith("[") or not resource:
            continue  # non-resource URLs (/healthz, /api ...) granted to every user
        resources.add(resource)
    assert resources, listing
    assert resources <= ALLOWED_RESOURCES, f"other kinds reachable: {sorted(resources - ALLOWED_RESOURCES)}"
