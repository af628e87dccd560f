"""The operator's start-up faults end to end (issue #12, "Bad input and faults").

- Started without a permission it needs, it exits at once, naming each missing verb and
  resource (a SelfSubjectAccessReview per permission), instead of retrying 403s forever.
- Started with a wrong Prometheus URL, it serves on: it still owns and applies its children,
  and its objects' conditions name the URL that does not answer.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import REPO, Cluster, free_port, wait_until
from tests.e2e.conftest import OperatorFactory
from tests.e2e.test_budget import LADDER, _budget, _condition, _status
from tests.e2e.test_budget_bad_input import GOOD, _source
from tests.e2e.test_scaling import _isvc

LIMITED = "aipolicy-e2e-limited"
SYSTEM = "aipolicy-system"


def _shipped_rbac() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((REPO / "manifests" / "base" / "rbac.yaml").read_text()))


@pytest.fixture
def limited_kubeconfig(cluster: Cluster, operator_kubeconfig: Path, tmp_path: Path) -> Iterator[Path]:
    """A ServiceAccount with the shipped RBAC minus two permissions: `watch` on pods and
    `update` on the Lease."""
    docs = _shipped_rbac()
    cluster_role = copy.deepcopy(next(d for d in docs if d["kind"] == "ClusterRole"))
    for rule in cluster_role["rules"]:
        if rule["resources"] == ["pods"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "watch"]
    lease_role = copy.deepcopy(next(d for d in docs if d["kind"] == "Role"))
    for rule in lease_role["rules"]:
        rule["verbs"] = [v for v in rule["verbs"] if v != "update"]
    cluster_role["metadata"] = {"name": LIMITED}
    lease_role["metadata"] = {"name": LIMITED, "namespace": SYSTEM}
    subject = [{"kind": "ServiceAccount", "name": LIMITED, "namespace": SYSTEM}]
    manifests = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": LIMITED, "namespace": SYSTEM}},
        cluster_role,
        lease_role,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": LIMITED},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": LIMITED},
            "subjects": subject,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": LIMITED, "namespace": SYSTEM},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": LIMITED},
            "subjects": subject,
        },
    ]
    cluster.apply(yaml.safe_dump_all(manifests))
    token = cluster.kubectl("-n", SYSTEM, "create", "token", LIMITED, "--duration=1h").stdout.strip()
    config = yaml.safe_load(operator_kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    path = tmp_path / "limited-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    yield path
    for kind, name, ns in [
        ("clusterrolebinding", LIMITED, None),
        ("clusterrole", LIMITED, None),
        ("rolebinding", LIMITED, SYSTEM),
        ("role", LIMITED, SYSTEM),
        ("serviceaccount", LIMITED, SYSTEM),
    ]:
        cluster.kubectl("delete", kind, name, *(["-n", ns] if ns else []), "--ignore-not-found", check=False)


def test_a_missing_permission_stops_the_operator_with_the_verb_and_resource_named(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory, limited_kubeconfig: Path
) -> None:
    operator = operator_process(
        namespace, extra_args=["--leader-elect", "--lease-name", "aipolicy"], kubeconfig=limited_kubeconfig
    )
    assert operator.process is not None
    wait_until("the operator to exit", lambda: not operator.running, timeout=60)
    assert operator.process.returncode == 3, operator.log_tail()
    log = operator.log_path.read_text(errors="replace")
    assert f"system:serviceaccount:{SYSTEM}:{LIMITED} is not allowed to" in log, log
    assert f"watch pods in namespace {namespace}" in log, log
    assert f'update leases.coordination.k8s.io "aipolicy" in namespace {SYSTEM}' in log, log
    # exactly what is missing: not the verbs it has
    assert "list pods" not in log and "get leases" not in log, log
    assert "Traceback" not in log, log


def test_a_wrong_prometheus_url_is_named_in_the_conditions_and_the_operator_serves_on(
    cluster: Cluster, namespace: str, operator_process: OperatorFactory
) -> None:
    wrong = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    operator = operator_process(namespace, extra_args=["--prometheus-url", wrong])
    cluster.apply(_budget("team", "10", LADDER, selector={}, costSources=[_source("gw", GOOD)]), namespace)
    cluster.apply(
        _isvc("chat", minReplicas=1, maxReplicas=2, metric={"type": "QueueDepth", "target": 5}), namespace
    )

    def budget_ready_names_the_url() -> dict[str, Any] | None:
        ready = _condition(_status(cluster, "aibudget", "team", namespace), "Ready")
        return ready if ready.get("status") == "False" and wrong in ready.get("message", "") else None

    ready = wait_until("the budget's Ready to name the URL", budget_ready_names_the_url, timeout=60)
    assert "did not answer" in ready["message"], ready

    def service_metrics_name_the_url() -> dict[str, Any] | None:
        metrics = _condition(_status(cluster, "inferenceservice", "chat", namespace), "MetricsAvailable")
        return metrics if metrics.get("status") == "False" and wrong in metrics.get("message", "") else None

    wait_until("the service's MetricsAvailable to name the URL", service_metrics_name_the_url, timeout=60)
    # serving on: the service's children are applied all the same, and nothing crashed
    wait_until("the Deployment", lambda: cluster.get("deployment", "chat", namespace), timeout=30)
    assert operator.running, operator.log_tail()
    assert "Traceback" not in operator.log_path.read_text(errors="replace"), operator.log_tail(120)
