"""The permissions the operator needs, checked once at start-up (SelfSubjectAccessReview).

Without this an operator missing a permission starts, and kopf retries the forbidden watch or
write forever, logging 403s, while nothing happens. With it, the operator exits at once naming
every missing verb and resource, and Kubernetes' restart back-off paces the retries.

:func:`required` (pure) lists what the handlers and kopf use, the same as
manifests/base/rbac.yaml grants; :func:`check` asks the API server about each.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kubernetes

OWN = "aipolicy.dev"
KINDS = ("inferenceservices", "aibudgets", "fallbackpolicies")
RBAC = "rbac.authorization.k8s.io"
#: The gateway's objects besides its Deployment and Service (group, resource).
GATEWAY_KINDS = (("", "serviceaccounts"), (RBAC, "roles"), (RBAC, "rolebindings"))


@dataclass(frozen=True)
class Access:
    verb: str
    group: str
    resource: str
    namespace: str = ""
    """Empty: cluster-wide (every namespace, or a cluster-scoped resource)."""
    subresource: str = ""
    name: str = ""

    def describe(self) -> str:
        kind = f"{self.resource}.{self.group}" if self.group else self.resource
        if self.subresource:
            kind += f"/{self.subresource}"
        named = f' "{self.name}"' if self.name else ""
        where = f" in namespace {self.namespace}" if self.namespace else " (cluster-wide)"
        return f"{self.verb} {kind}{named}{where}"


def required(namespaces: Iterable[str], lease: tuple[str, str] | None) -> list[Access]:
    """Everything the operator does, in each watched namespace ("" for all of them), plus the
    Lease of its shard (namespace, name) when it takes part in an election."""
    needed: list[Access] = []
    for ns in sorted(set(namespaces)) or [""]:
        for kind in KINDS:
            # watched by kopf; patch for kopf's finalizer and bookkeeping annotations
            needed += [Access(verb, OWN, kind, ns) for verb in ("list", "watch", "patch")]
            needed.append(Access("patch", OWN, kind, ns, subresource="status"))
        needed += [
            Access(v, "apps", "deployments", ns) for v in ("list", "watch", "create", "patch", "delete")
        ]
        needed += [Access(v, "", "services", ns) for v in ("list", "watch", "create", "patch")]
        needed += [Access(v, "", "pods", ns) for v in ("list", "watch")]
        # the gateway's objects, watched for drift repair, applied and deleted
        needed += [
            Access(v, group, plural, ns)
            for group, plural in GATEWAY_KINDS
            for v in ("list", "watch", "create", "patch", "delete")
        ]
        needed.append(Access("create", "", "events", ns))
    needed += [Access(v, "apiextensions.k8s.io", "customresourcedefinitions") for v in ("list", "watch")]
    if lease is not None:
        namespace, name = lease
        needed.append(Access("create", "coordination.k8s.io", "leases", namespace))
        needed += [
            Access(v, "coordination.k8s.io", "leases", namespace, name=name) for v in ("get", "update")
        ]
    return needed


def missing_message(denied: list[Access], who: str) -> str:
    lines = [f"aipolicy cannot run: {who} is not allowed to"]
    lines += [f"  - {access.describe()}" for access in denied]
    lines.append("Grant these (manifests/base/rbac.yaml has them all) and start it again.")
    return "\n".join(lines)


def _review(access: Access) -> dict[str, Any]:
    attributes = {
        "verb": access.verb,
        "group": access.group,
        "resource": access.resource,
        "subresource": access.subresource,
        "namespace": access.namespace,
        "name": access.name,
    }
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {k: v for k, v in attributes.items() if v}},
    }


def check(needed: list[Access]) -> list[Access]:
    """The accesses the API server denies us (needs a loaded kubernetes client config)."""
    import json

    # typed for models; the raw JSON answer (_preload_content=False) is simpler to read
    api: Any = kubernetes.client.AuthorizationV1Api()

    def allowed(access: Access) -> bool:
        response = api.create_self_subject_access_review(
            _review(access), _preload_content=False, _request_timeout=10
        )
        return bool(json.loads(response.data).get("status", {}).get("allowed"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(allowed, needed))
    return [access for access, ok in zip(needed, verdicts, strict=True) if not ok]


def who_am_i() -> str:
    """The user the API server sees (SelfSubjectReview), for the message; best effort."""
    import json

    try:
        api: Any = kubernetes.client.AuthenticationV1Api()
        response = api.create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            _preload_content=False,
            _request_timeout=10,
        )
        name = json.loads(response.data)["status"]["userInfo"]["username"]
        return str(name)
    except Exception:
        return "this operator's identity"
