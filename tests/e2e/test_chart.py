"""The Helm chart (charts/aipolicy) on the local cluster: lint, render in several value sets, each
accepted by the API server (server-side dry run), installed, upgraded and uninstalled; wrong-typed
values refused by values.schema.json with the value named; the same RBAC as manifests/base."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import REPO, Cluster, wait_until

pytestmark = pytest.mark.e2e

CHART = REPO / "charts" / "aipolicy"

# Schema-less stand-ins for the Prometheus Operator's CRDs, which this cluster lacks: they let the
# API server take a ServiceMonitor and a PrometheusRule, so the dry run checks everything else.
MONITORING_CRDS = [
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    for plural, kind in (("servicemonitors", "ServiceMonitor"), ("prometheusrules", "PrometheusRule"))
]


class Helm:
    def __init__(self, binary: str, kubeconfig: Path, home: Path) -> None:
        self.binary = binary
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args], env=self.env, capture_output=True, text=True, timeout=180
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}{result.stdout}")
        return result

    def template(
        self, values: dict[str, Any], namespace: str, *extra: str, release: str = "aip"
    ) -> list[dict[str, Any]]:
        out = self(
            "template", release, str(CHART), "-n", namespace, "--set-json", *_set_json(values), *extra
        ).stdout
        return [d for d in yaml.safe_load_all(out) if d]


def _set_json(values: dict[str, Any]) -> list[str]:
    """`--set-json` pairs for a values dict (the first goes after the flag in Helm.template)."""
    pairs = [f"{key}={json.dumps(value)}" for key, value in values.items()] or ["global={}"]
    args = [pairs[0]]
    for pair in pairs[1:]:
        args += ["--set-json", pair]
    return args


@pytest.fixture(scope="session")
def helm(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    built = subprocess.run(
        [str(REPO / "hack" / "build-helm.sh")], capture_output=True, text=True, check=True, timeout=3600
    )
    return Helm(built.stdout.strip().splitlines()[-1], cluster.kubeconfig, tmp_path_factory.mktemp("helm"))


@pytest.fixture
def release_namespace(cluster: Cluster) -> Iterator[str]:
    name = f"aipolicy-chart-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def _deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    return deployment


VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {
        "watchNamespaces": ["team-a", "team-b"],
        "prometheus": {"url": "http://prometheus.example.svc:9090"},
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "image": {"repository": "localhost/aipolicy", "tag": "dev", "pullPolicy": "Never"},
    },
    "one-replica": {"replicas": 1, "leaderElection": {"enabled": False}},
    "gateway-image": {"gateway": {"image": {"repository": "registry.example/gateway", "tag": "1.2"}}},
    "monitoring": {
        "monitoring": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
            "rules": {"enabled": True},
            "dashboard": {"enabled": True},
        }
    },
}


def test_the_chart_lints(helm: Helm) -> None:
    result = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout, result.stdout


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_each_value_set_renders_what_it_asks_and_the_api_server_accepts_it(
    helm: Helm, cluster: Cluster, release_namespace: str, name: str
) -> None:
    values = VALUE_SETS[name]
    docs = helm.template(values, release_namespace, "--include-crds")
    deployment = _deployment(docs)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    kinds = _kinds(docs)
    assert kinds.count("CustomResourceDefinition") == 3
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    if name == "defaults":
        assert container["image"] == "ghcr.io/aipolicy/aipolicy:0.1.0"
        # the gateways the operator deploys run its own image unless told otherwise
        assert env["AIPOLICY_GATEWAY_IMAGE"] == container["image"]
        assert not [a for a in container["args"] if a.startswith("--namespace")]
    if name == "namespaced":
        assert container["image"] == "localhost/aipolicy:dev"
        assert container["imagePullPolicy"] == "Never"
        assert env["AIPOLICY_GATEWAY_IMAGE"] == "localhost/aipolicy:dev"
        assert [a for a in container["args"] if a.startswith("--namespace")] == [
            "--namespace=team-a",
            "--namespace=team-b",
        ]
        assert env["PROMETHEUS_URL"] == "http://prometheus.example.svc:9090"
        assert container["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}
    if name == "gateway-image":
        assert env["AIPOLICY_GATEWAY_IMAGE"] == "registry.example/gateway:1.2"
    if name == "one-replica":
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
        assert "--leader-elect" not in container["args"] and "POD_NAME" not in env
        assert "Role" not in kinds
    else:  # two replicas with leader election by default: only the Lease's holder acts
        assert deployment["spec"]["replicas"] == 2
        assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
        assert {"--leader-elect", "--lease-name=aip-aipolicy"} <= set(container["args"])
        assert "POD_NAME" in env and "POD_NAMESPACE" in env
        (role,) = [d for d in docs if d["kind"] == "Role"]
        assert [r.get("resourceNames") for r in role["rules"]] == [None, ["aip-aipolicy"]]
        assert "RoleBinding" in kinds
    monitoring = {"ServiceMonitor", "PrometheusRule", "ConfigMap"}
    if name == "monitoring":
        assert monitoring <= set(kinds)
        (dashboard,) = [d for d in docs if d["kind"] == "ConfigMap"]
        json.loads(dashboard["data"]["aipolicy.json"])  # valid JSON after templating
        (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
        assert monitor["metadata"]["labels"]["release"] == "prom"
        cluster.apply(MONITORING_CRDS)
        for crd in MONITORING_CRDS:
            cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}")
    else:
        assert not monitoring & set(kinds), kinds

    result = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "--server-side",
        "--field-manager=helm-dry-run",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(docs),
    )
    assert result.stdout.count("serverside-applied (server dry run)") == len(docs), result.stdout


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("replicas=two", "replicas"),
        ("metrics.port=http", "metrics/port"),
        ("watchNamespaces=team-a", "watchNamespaces"),
        ("leaderElection.enabled=maybe", "leaderElection/enabled"),
        ("resources.limits.memory=lots", "resources/limits/memory"),
        ("replicaCount=2", "replicaCount"),
    ],
)
def test_a_wrong_value_fails_helm_install_naming_it(
    helm: Helm, release_namespace: str, setting: str, named: str
) -> None:
    result = helm("install", "bad", str(CHART), "-n", release_namespace, "--set", setting, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    assert named in result.stderr, result.stderr
    assert helm("list", "-q", "-n", release_namespace).stdout.strip() == ""


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["leaderElection.enabled=false"], "replicas > 1 needs leaderElection.enabled=true"),
        (["gateway.enabled=true"], "The operator deploys the gateway itself"),
        (["gateway.enabled=false"], "in each namespace where an InferenceService needs the L7 front door"),
    ],
)
def test_values_the_chart_cannot_honour_fail_with_the_reason(
    helm: Helm, release_namespace: str, settings: list[str], message: str
) -> None:
    args = [a for s in settings for a in ("--set", s)]
    result = helm("install", "bad", str(CHART), "-n", release_namespace, *args, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_install_upgrade_uninstall_on_the_cluster(
    helm: Helm, cluster: Cluster, release_namespace: str, crds_installed: None
) -> None:
    release = f"r{uuid.uuid4().hex[:5]}"
    full = f"{release}-aipolicy"
    helm("install", release, str(CHART), "-n", release_namespace, "--set", "image.tag=dev")
    deployment = cluster.get("deployment", full, release_namespace)
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == full
    assert cluster.get("clusterrole", full) is not None
    assert cluster.get("serviceaccount", full, release_namespace) is not None
    for plural in ("inferenceservices", "aibudgets", "fallbackpolicies"):
        assert cluster.get("crd", f"{plural}.aipolicy.dev") is not None

    helm(
        "upgrade", release, str(CHART), "-n", release_namespace, "--reuse-values",
        "--set-json", 'watchNamespaces=["team-a"]', "--set", "resources.limits.memory=768Mi",
    )  # fmt: skip

    def upgraded() -> dict[str, Any] | None:
        d = cluster.get("deployment", full, release_namespace)
        container = (d or {})["spec"]["template"]["spec"]["containers"][0]
        return container if "--namespace=team-a" in container["args"] else None

    container = wait_until("the upgraded Deployment", upgraded, timeout=30)
    assert container["resources"]["limits"]["memory"] == "768Mi"
    assert container["image"].endswith(":dev")  # --reuse-values kept the first install's tag
    history = json.loads(helm("history", release, "-n", release_namespace, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2] and history[-1]["status"] == "deployed"

    helm("uninstall", release, "-n", release_namespace, "--wait", "--timeout=60s")
    assert cluster.get("deployment", full, release_namespace) is None
    assert cluster.get("clusterrole", full) is None
    assert cluster.get("clusterrolebinding", full) is None
    # Helm never deletes CRDs (and with them every user's objects)
    assert cluster.get("crd", "inferenceservices.aipolicy.dev") is not None


def _rbac(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    (subject,) = binding["subjects"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert (subject["kind"], subject["name"], subject["namespace"]) == (
        "ServiceAccount",
        account["metadata"]["name"],
        account["metadata"]["namespace"],
    )
    return {
        "rules": role["rules"],
        "roles": [d["rules"] for d in docs if d["kind"] == "Role"],
    }


def test_the_kustomize_base_and_the_chart_grant_the_same_rbac(helm: Helm, cluster: Cluster) -> None:
    base = [
        d
        for d in yaml.safe_load_all(cluster.kubectl("kustomize", str(REPO / "manifests" / "base")).stdout)
        if d
    ]
    # the base is the installation named aipolicy: its Lease is "aipolicy", as the chart's is
    chart = helm.template({}, "aipolicy-system", release="aipolicy")
    assert _rbac(chart) == _rbac(base)


def test_kubectl_apply_k_of_the_base_is_accepted(cluster: Cluster) -> None:
    """The README's `kubectl apply -k manifests/base`, as a server-side dry run: kustomize builds it
    (it refuses files outside the folder, so the base holds its own copy of the CRDs) and the API
    server accepts every object."""
    # a dry run creates nothing, so the namespaced objects need their namespace for real
    cluster.kubectl("create", "namespace", "aipolicy-system", check=False)
    result = cluster.kubectl("apply", "-k", str(REPO / "manifests" / "base"), "--dry-run=server")
    # namespace, 3 CRDs, ServiceAccount, ClusterRole and binding, Lease Role and binding, Deployment
    assert result.stdout.count("(server dry run)") == 10, result.stdout
