"""The gateway's RBAC is least privilege: named Secrets only, never a write; pods' readiness."""

from __future__ import annotations

from aipolicy.gateway import manifests
from aipolicy.gateway.routing import Endpoint
from aipolicy.gateway.state import ready_endpoints


def test_role_reads_only_and_names_each_secret() -> None:
    services = [
        {"spec": {"provider": {"url": "https://x/v1", "apiKeySecret": "openai"}}},
        {"spec": {"serving": {"image": "vllm"}}},
    ]
    policies = [
        {
            "spec": {
                "chain": [
                    {"provider": {"url": "https://y/v1", "apiKeySecret": "anthropic"}},
                    {"degraded": True},
                ]
            }
        }
    ]
    secrets = manifests.referenced_secrets(services, policies)
    assert secrets == ["anthropic", "openai"]
    role = manifests.role("team", secrets)
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}
    secret_rules = [r for r in role["rules"] if "secrets" in r["resources"]]
    assert secret_rules == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": secrets, "verbs": ["get"]}
    ]


def test_no_named_secret_means_no_secret_rule_at_all() -> None:
    # an empty resourceNames would allow every Secret of the namespace
    assert all("secrets" not in r["resources"] for r in manifests.role("team", [])["rules"])


def test_deployment_mounts_each_secret_optionally() -> None:
    dep = manifests.deployment("team", "aipolicy:dev", ["openai"])
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == manifests.NAME
    assert (
        pod["volumes"][0]["secret"]["secretName"] == "openai"
        and pod["volumes"][0]["secret"]["optional"] is True
    )
    assert pod["containers"][0]["volumeMounts"][0]["mountPath"] == f"{manifests.SECRETS_DIR}/openai"


def test_ready_endpoints_skip_unready_terminating_and_unlabelled_pods() -> None:
    def pod(name: str, service: str | None, ready: bool, deleting: bool = False) -> dict[str, object]:
        meta: dict[str, object] = {
            "name": name,
            "labels": {"aipolicy.dev/service": service} if service else {},
        }
        if deleting:
            meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        cond = [{"type": "Ready", "status": "True" if ready else "False"}]
        return {"metadata": meta, "status": {"podIP": f"10.0.0.{len(name)}", "conditions": cond}}

    pods = {
        p["metadata"]["name"]: p
        for p in (
            pod("a-1", "a", True),
            pod("a-0", "a", True),
            pod("a-2", "a", False),
            pod("a-3", "a", True, deleting=True),
            pod("x", None, True),
        )
    }  # type: ignore[index]
    assert ready_endpoints(pods) == {"a": (Endpoint("a-0", "10.0.0.3"), Endpoint("a-1", "10.0.0.3"))}
