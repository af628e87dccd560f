"""The API on a real apiserver: samples apply, bad input is refused with a message that names
the field and says what is expected, `kubectl get ai` and `kubectl explain` document the kinds."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from aipolicy.api.aibudget import AIBudgetSpec
from aipolicy.api.fallbackpolicy import FallbackPolicySpec
from aipolicy.api.inferenceservice import InferenceServiceSpec
from tests.e2e.cluster import REPO, Cluster

SAMPLES = sorted((REPO / "manifests" / "samples").glob("*.yaml"))
GROUP_VERSION = "aipolicy.dev/v1alpha1"

SERVING = {
    "model": "m",
    "serving": {"image": "vllm/vllm-openai:v0.6.3"},
    "pricing": {"gpuHour": "2.50"},
}
PROVIDER = {
    "model": "m",
    "provider": {"url": "https://api.example.com/v1"},
    "pricing": {"inputPerMillionTokens": "0.15", "outputPerMillionTokens": "0.60"},
}
BUDGET = {
    "limit": "100",
    "thresholds": [{"percent": 50, "action": "Notify"}, {"percent": 100, "action": "Suspend"}],
}
POLICY = {
    "target": "big",
    "triggers": [{"type": "ErrorRate", "threshold": 0.05}],
    "chain": [{"inferenceService": "small"}],
}
Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    def edit(spec: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = spec
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value

    return edit


def _drop(path: str) -> Edit:
    def edit(spec: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = spec
        for part in parents:
            node = node[part]
        del node[leaf]

    return edit


# (id, kind, base spec, edit, words the refusal must contain: the field and what is expected)
INVALID: list[tuple[str, str, dict[str, Any], Edit, list[str]]] = [
    # InferenceService
    (
        "isvc-no-backend",
        "InferenceService",
        SERVING,
        _drop("serving"),
        ["exactly one of serving and provider"],
    ),
    (
        "isvc-two-backends",
        "InferenceService",
        SERVING,
        _set("provider", {"url": "https://a.example/v1"}),
        ["exactly one of serving and provider"],
    ),
    ("isvc-missing-model", "InferenceService", SERVING, _drop("model"), ["spec.model", "Required"]),
    (
        "isvc-missing-image",
        "InferenceService",
        SERVING,
        _set("serving", {"port": 8000}),
        ["spec.serving.image", "Required"],
    ),
    (
        "isvc-unknown-field",
        "InferenceService",
        SERVING,
        _set("replicas", 3),
        ['unknown field "spec.replicas"'],
    ),
    (
        "isvc-port-string",
        "InferenceService",
        SERVING,
        _set("serving.port", "http"),
        ["spec.serving.port", "integer"],
    ),
    (
        "isvc-port-too-big",
        "InferenceService",
        SERVING,
        _set("serving.port", 70000),
        ["spec.serving.port", "65535"],
    ),
    (
        "isvc-gpus-negative",
        "InferenceService",
        SERVING,
        _set("serving.gpu.count", -1),
        ["spec.serving.gpu.count", "0"],
    ),
    (
        "isvc-gpu-resource-name",
        "InferenceService",
        SERVING,
        _set("serving.gpu.resourceName", "gpu"),
        ["spec.serving.gpu.resourceName", "should match"],
    ),
    (
        "isvc-bad-quantity",
        "InferenceService",
        SERVING,
        _set("serving.resources.memory", "lots"),
        ["spec.serving.resources.memory", "should match"],
    ),
    (
        "isvc-money-float",
        "InferenceService",
        SERVING,
        _set("pricing.gpuHour", 2.5),
        ["spec.pricing.gpuHour", "string"],
    ),
    (
        "isvc-money-negative",
        "InferenceService",
        SERVING,
        _set("pricing.gpuHour", "-1"),
        ["spec.pricing.gpuHour", "should match"],
    ),
    (
        "isvc-money-malformed",
        "InferenceService",
        SERVING,
        _set("pricing.gpuHour", "2,50"),
        ["spec.pricing.gpuHour", "should match"],
    ),
    (
        "isvc-currency-lowercase",
        "InferenceService",
        SERVING,
        _set("pricing.currency", "usd"),
        ["spec.pricing.currency", "should match"],
    ),
    ("isvc-no-gpu-price", "InferenceService", SERVING, _set("pricing", {}), ["pricing.gpuHour is required"]),
    (
        "isvc-provider-no-prices",
        "InferenceService",
        PROVIDER,
        _set("pricing", {}),
        ["pricing.inputPerMillionTokens and pricing.outputPerMillionTokens are required"],
    ),
    (
        "isvc-provider-bad-url",
        "InferenceService",
        PROVIDER,
        _set("provider.url", "ftp://x"),
        ["spec.provider.url", "should match"],
    ),
    (
        "isvc-min-above-max",
        "InferenceService",
        SERVING,
        _set("scaling", {"minReplicas": 5, "maxReplicas": 2}),
        ["minReplicas must be less than or equal to maxReplicas"],
    ),
    (
        "isvc-max-zero",
        "InferenceService",
        SERVING,
        _set("scaling.maxReplicas", 0),
        ["spec.scaling.maxReplicas", "1"],
    ),
    (
        "isvc-tolerance-over-one",
        "InferenceService",
        SERVING,
        _set("scaling.tolerance", 1.5),
        ["spec.scaling.tolerance", "1"],
    ),
    (
        "isvc-metric-type",
        "InferenceService",
        SERVING,
        _set("scaling.metric.type", "GPU"),
        ["spec.scaling.metric.type", "QueueDepth"],
    ),
    (
        "isvc-promql-without-query",
        "InferenceService",
        SERVING,
        _set("scaling.metric.type", "PromQL"),
        ["query is required when type is PromQL"],
    ),
    (
        "isvc-query-without-promql",
        "InferenceService",
        SERVING,
        _set("scaling.metric.query", "up"),
        ["query is only allowed when type is PromQL"],
    ),
    (
        "isvc-target-zero",
        "InferenceService",
        SERVING,
        _set("scaling.metric.target", 0),
        ["spec.scaling.metric.target", "0"],
    ),
    (
        "isvc-percentile-out-of-range",
        "InferenceService",
        SERVING,
        _set("scaling.metric.percentile", 99),
        ["spec.scaling.metric.percentile", "1"],
    ),
    (
        "isvc-bad-duration",
        "InferenceService",
        SERVING,
        _set("scaling.scaleDownStabilization", "5 minutes"),
        ["spec.scaling.scaleDownStabilization", "should match"],
    ),
    (
        "isvc-scale-to-zero-needs-min-zero",
        "InferenceService",
        SERVING,
        _set("scaling.scaleToZeroAfter", "10m"),
        ["scaleToZeroAfter needs minReplicas: 0"],
    ),
    (
        "isvc-bad-cron",
        "InferenceService",
        SERVING,
        _set(
            "scaling.prewarm",
            [{"name": "am", "schedule": "every morning", "duration": "1h", "minReplicas": 1}],
        ),
        ["spec.scaling.prewarm[0].schedule", "should match"],
    ),
    (
        "isvc-unknown-time-zone",
        "InferenceService",
        SERVING,
        _set(
            "scaling.prewarm",
            [
                {
                    "name": "am",
                    "schedule": "0 8 * * 1-5",
                    "timeZone": "Europe/Atlantis",
                    "duration": "1h",
                    "minReplicas": 1,
                }
            ],
        ),
        ["timeZone must be an IANA time zone"],
    ),
    (
        "isvc-prewarm-above-max",
        "InferenceService",
        SERVING,
        _set(
            "scaling.prewarm", [{"name": "am", "schedule": "0 8 * * *", "duration": "1h", "minReplicas": 9}]
        ),
        ["prewarm minReplicas must be at most maxReplicas"],
    ),
    (
        "isvc-prewarm-duplicate-names",
        "InferenceService",
        SERVING,
        _set(
            "scaling",
            {
                "maxReplicas": 3,
                "prewarm": [
                    {"name": "am", "schedule": "0 8 * * *", "duration": "1h", "minReplicas": 1},
                    {"name": "am", "schedule": "0 9 * * *", "duration": "1h", "minReplicas": 1},
                ],
            },
        ),
        ["prewarm names must be unique"],
    ),
    (
        "isvc-cold-start-negative",
        "InferenceService",
        SERVING,
        _set("scaling.coldStartSeconds", -5),
        ["spec.scaling.coldStartSeconds", "0"],
    ),
    # InferenceService: the deployment fields of spec.serving (issue 16)
    (
        "isvc-volume-type-outside-list",
        "InferenceService",
        SERVING,
        _set("serving.volumes", [{"name": "w", "nfs": {"server": "nfs.example", "path": "/w"}}]),
        ['unknown field "spec.serving.volumes[0].nfs"'],
    ),
    (
        "isvc-volume-without-type",
        "InferenceService",
        SERVING,
        _set("serving.volumes", [{"name": "w"}]),
        ["spec.serving.volumes[0]", "exactly one of persistentVolumeClaim, secret, configMap, emptyDir"],
    ),
    (
        "isvc-volume-two-types",
        "InferenceService",
        SERVING,
        _set("serving.volumes", [{"name": "w", "emptyDir": {}, "hostPath": {"path": "/w"}}]),
        ["spec.serving.volumes[0]", "exactly one of persistentVolumeClaim, secret, configMap, emptyDir"],
    ),
    (
        "isvc-volume-secret-name-not-dns",
        "InferenceService",
        SERVING,
        _set("serving.volumes", [{"name": "token", "secret": {"secretName": "HF_Token"}}]),
        ["spec.serving.volumes[0].secret.secretName", "should match"],
    ),
    (
        "isvc-env-secret-name-not-dns",
        "InferenceService",
        SERVING,
        _set(
            "serving.env",
            [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf token", "key": "t"}}}],
        ),
        ["spec.serving.env[0].valueFrom.secretKeyRef.name", "should match"],
    ),
    (
        "isvc-env-value-and-value-from",
        "InferenceService",
        SERVING,
        _set(
            "serving.env",
            [{"name": "A", "value": "x", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}],
        ),
        ["spec.serving.env[0]", "value and valueFrom are mutually exclusive"],
    ),
    (
        "isvc-env-from-two-sources",
        "InferenceService",
        SERVING,
        _set("serving.envFrom", [{"secretRef": {"name": "s"}, "configMapRef": {"name": "c"}}]),
        ["spec.serving.envFrom[0]", "exactly one of secretRef and configMapRef"],
    ),
    (
        "isvc-shm-size-not-a-quantity",
        "InferenceService",
        SERVING,
        _set("serving.shmSize", "16GB"),
        ["spec.serving.shmSize", "should match"],
    ),
    (
        "isvc-shm-size-malformed-quantity",
        "InferenceService",
        SERVING,
        _set("serving.shmSize", "1..6Gi"),
        ["spec.serving.shmSize", "must be a Kubernetes quantity"],
    ),
    (
        "isvc-empty-dir-size-not-a-quantity",
        "InferenceService",
        SERVING,
        _set("serving.volumes", [{"name": "scratch", "emptyDir": {"sizeLimit": "lots"}}]),
        ["spec.serving.volumes[0].emptyDir.sizeLimit", "should match"],
    ),
    (
        "isvc-mount-without-volume",
        "InferenceService",
        SERVING,
        _set("serving.volumeMounts", [{"name": "weights", "mountPath": "/models"}]),
        [
            "spec.serving.volumeMounts",
            "volumeMount weights (at /models) needs a volume named weights in spec.serving.volumes",
        ],
    ),
    (
        "isvc-volume-names-repeat",
        "InferenceService",
        SERVING,
        _set("serving.volumes", [{"name": "w", "emptyDir": {}}, {"name": "w", "hostPath": {"path": "/w"}}]),
        ["spec.serving.volumes", "volume names must be unique"],
    ),
    (
        "isvc-shm-size-and-own-dev-shm",
        "InferenceService",
        SERVING,
        _set(
            "serving",
            {
                "image": "vllm/vllm-openai:v0.6.3",
                "shmSize": "8Gi",
                "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}],
                "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
            },
        ),
        ["spec.serving.shmSize", "shmSize mounts a memory volume named dshm at /dev/shm itself"],
    ),
    (
        "isvc-mount-path-relative",
        "InferenceService",
        SERVING,
        _set("serving.volumeMounts", [{"name": "w", "mountPath": "models"}]),
        ["spec.serving.volumeMounts[0].mountPath", "should match"],
    ),
    (
        "isvc-image-pull-secret-not-dns",
        "InferenceService",
        SERVING,
        _set("serving.imagePullSecrets", [{"name": "Registry Creds"}]),
        ["spec.serving.imagePullSecrets[0].name", "should match"],
    ),
    (
        "isvc-service-account-not-dns",
        "InferenceService",
        SERVING,
        _set("serving.serviceAccountName", "vLLM"),
        ["spec.serving.serviceAccountName", "should match"],
    ),
    (
        "isvc-startup-probe-path-relative",
        "InferenceService",
        SERVING,
        _set("serving.startupProbe", {"path": "health"}),
        ["spec.serving.startupProbe.path", "should match"],
    ),
    (
        "isvc-grace-period-negative",
        "InferenceService",
        SERVING,
        _set("serving.terminationGracePeriodSeconds", -1),
        ["spec.serving.terminationGracePeriodSeconds", "0"],
    ),
    (
        "isvc-spread-when-unsatisfiable",
        "InferenceService",
        SERVING,
        _set(
            "serving.topologySpreadConstraints",
            [{"topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "Try"}],
        ),
        ["spec.serving.topologySpreadConstraints[0].whenUnsatisfiable", "DoNotSchedule"],
    ),
    (
        "isvc-spread-min-domains-soft",
        "InferenceService",
        SERVING,
        _set(
            "serving.topologySpreadConstraints",
            [
                {
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "minDomains": 2,
                }
            ],
        ),
        ["minDomains needs whenUnsatisfiable: DoNotSchedule"],
    ),
    # AIBudget
    ("budget-missing-limit", "AIBudget", BUDGET, _drop("limit"), ["spec.limit", "Required"]),
    ("budget-limit-number", "AIBudget", BUDGET, _set("limit", 100), ["spec.limit", "string"]),
    ("budget-limit-negative", "AIBudget", BUDGET, _set("limit", "-5"), ["spec.limit", "should match"]),
    ("budget-limit-zero", "AIBudget", BUDGET, _set("limit", "0.00"), ["limit must be greater than zero"]),
    ("budget-limit-currency-sign", "AIBudget", BUDGET, _set("limit", "$100"), ["spec.limit", "should match"]),
    ("budget-currency", "AIBudget", BUDGET, _set("currency", "DOLLARS"), ["spec.currency", "should match"]),
    (
        "budget-period-type",
        "AIBudget",
        BUDGET,
        _set("period", {"type": "Yearly"}),
        ["spec.period.type", "Daily"],
    ),
    (
        "budget-rolling-without-window",
        "AIBudget",
        BUDGET,
        _set("period", {"type": "Rolling"}),
        ["window is required for Rolling periods"],
    ),
    (
        "budget-window-on-monthly",
        "AIBudget",
        BUDGET,
        _set("period", {"type": "Monthly", "window": "7d"}),
        ["window is required for Rolling periods and only allowed for them"],
    ),
    (
        "budget-unknown-time-zone",
        "AIBudget",
        BUDGET,
        _set("period", {"type": "Daily", "timeZone": "Mars/Olympus"}),
        ["timeZone must be an IANA time zone"],
    ),
    (
        "budget-thresholds-unsorted",
        "AIBudget",
        BUDGET,
        _set("thresholds", [{"percent": 90, "action": "Suspend"}, {"percent": 50, "action": "Notify"}]),
        ["thresholds must be sorted by ascending percent"],
    ),
    (
        "budget-thresholds-duplicate",
        "AIBudget",
        BUDGET,
        _set("thresholds", [{"percent": 50, "action": "Notify"}, {"percent": 50, "action": "Degrade"}]),
        ["thresholds must have distinct percents"],
    ),
    (
        "budget-threshold-percent-zero",
        "AIBudget",
        BUDGET,
        _set("thresholds", [{"percent": 0, "action": "Notify"}]),
        ["spec.thresholds[0].percent", "1"],
    ),
    (
        "budget-threshold-percent-huge",
        "AIBudget",
        BUDGET,
        _set("thresholds", [{"percent": 5000, "action": "Notify"}]),
        ["spec.thresholds[0].percent", "1000"],
    ),
    (
        "budget-threshold-action",
        "AIBudget",
        BUDGET,
        _set("thresholds", [{"percent": 50, "action": "Email"}]),
        ["spec.thresholds[0].action", "Notify"],
    ),
    (
        "budget-hysteresis-out-of-range",
        "AIBudget",
        BUDGET,
        _set("hysteresisPercent", 80),
        ["spec.hysteresisPercent", "50"],
    ),
    (
        "budget-missing-policy",
        "AIBudget",
        BUDGET,
        _set("onMetricsUnavailable", "Ignore"),
        ["spec.onMetricsUnavailable", "HoldLastKnown"],
    ),
    (
        "budget-selector-operator",
        "AIBudget",
        BUDGET,
        _set("selector", {"matchExpressions": [{"key": "team", "operator": "Like", "values": ["a"]}]}),
        ["operator", "In"],
    ),
    (
        "budget-selector-in-without-values",
        "AIBudget",
        BUDGET,
        _set("selector", {"matchExpressions": [{"key": "team", "operator": "In"}]}),
        ["values must be non-empty for In and NotIn"],
    ),
    (
        "budget-selector-namespace",
        "AIBudget",
        BUDGET,
        _set("selector", {"namespace": "other"}),
        ['unknown field "spec.selector.namespace"'],
    ),
    (
        "budget-cost-source-without-window",
        "AIBudget",
        BUDGET,
        _set("costSources", [{"name": "gw", "query": "sum(spend_total)"}]),
        ["query must use $window"],
    ),
    (
        "budget-webhook-url",
        "AIBudget",
        BUDGET,
        _set("notification", {"webhookUrl": "alertmanager:9093"}),
        ["spec.notification.webhookUrl", "should match"],
    ),
    ("budget-enforcement", "AIBudget", BUDGET, _set("enforcement", "Maybe"), ["spec.enforcement", "DryRun"]),
    # FallbackPolicy
    ("policy-no-target", "FallbackPolicy", POLICY, _drop("target"), ["spec.target", "Required"]),
    (
        "policy-target-other-namespace",
        "FallbackPolicy",
        POLICY,
        _set("target", "other-ns/big"),
        ["spec.target", "should match"],
    ),
    ("policy-empty-chain", "FallbackPolicy", POLICY, _set("chain", []), ["spec.chain", "1 item"]),
    ("policy-no-triggers", "FallbackPolicy", POLICY, _set("triggers", []), ["spec.triggers", "1 item"]),
    (
        "policy-chain-loops-to-target",
        "FallbackPolicy",
        POLICY,
        _set("chain", [{"inferenceService": "big"}]),
        ["the chain must not lead back to the target itself"],
    ),
    (
        "policy-chain-repeats",
        "FallbackPolicy",
        POLICY,
        _set("chain", [{"inferenceService": "small"}, {"inferenceService": "small"}]),
        ["an InferenceService may appear only once in the chain"],
    ),
    (
        "policy-step-two-backends",
        "FallbackPolicy",
        POLICY,
        _set("chain", [{"inferenceService": "small", "degraded": True}]),
        ["exactly one of inferenceService, provider and degraded"],
    ),
    (
        "policy-step-empty",
        "FallbackPolicy",
        POLICY,
        _set("chain", [{}]),
        ["exactly one of inferenceService, provider and degraded"],
    ),
    (
        "policy-trigger-type",
        "FallbackPolicy",
        POLICY,
        _set("triggers", [{"type": "Vibes"}]),
        ["spec.triggers[0].type", "ErrorRate"],
    ),
    (
        "policy-error-rate-without-threshold",
        "FallbackPolicy",
        POLICY,
        _set("triggers", [{"type": "ErrorRate"}]),
        ["threshold is required for ErrorRate"],
    ),
    (
        "policy-error-rate-over-one",
        "FallbackPolicy",
        POLICY,
        _set("triggers", [{"type": "ErrorRate", "threshold": 5}]),
        ["an ErrorRate threshold is a share between 0 and 1"],
    ),
    (
        "policy-budget-without-name",
        "FallbackPolicy",
        POLICY,
        _set("triggers", [{"type": "Budget"}]),
        ["budget is required for a Budget trigger"],
    ),
    (
        "policy-promql-without-query",
        "FallbackPolicy",
        POLICY,
        _set("triggers", [{"type": "PromQL", "threshold": 1}]),
        ["query is required for a PromQL trigger"],
    ),
    (
        "policy-bad-for-duration",
        "FallbackPolicy",
        POLICY,
        _set("triggers", [{"type": "Unavailable", "for": "soon"}]),
        ["spec.triggers[0].for", "should match"],
    ),
    (
        "policy-provider-url",
        "FallbackPolicy",
        POLICY,
        _set("chain", [{"provider": {"url": "not a url"}}]),
        ["spec.chain[0].provider.url", "should match"],
    ),
    (
        "policy-trigger-mode",
        "FallbackPolicy",
        POLICY,
        _set("triggerMode", "Some"),
        ["spec.triggerMode", "Any"],
    ),
]


def _manifest(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": GROUP_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


@pytest.mark.usefixtures("crds_installed")
@pytest.mark.parametrize(("case", "kind", "base", "edit", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_manifest_is_refused_with_a_message_naming_the_field(
    cluster: Cluster,
    namespace: str,
    case: str,
    kind: str,
    base: dict[str, Any],
    edit: Edit,
    expected: list[str],
) -> None:
    spec = copy.deepcopy(base)
    edit(spec)
    result = cluster.apply(_manifest(kind, case, spec), namespace, check=False)
    assert result.returncode != 0, f"{case} was accepted"
    for words in expected:
        assert words in result.stderr, f"{case}: {words!r} not in {result.stderr!r}"


SPEC_MODELS: dict[str, type[BaseModel]] = {
    "InferenceService": InferenceServiceSpec,
    "AIBudget": AIBudgetSpec,
    "FallbackPolicy": FallbackPolicySpec,
}


def test_the_invalid_table_is_large_and_each_base_is_valid() -> None:
    """Each refusal must be the edit's doing: the base parses with its kind's model, and the
    edit changes it (an edit that changes nothing would test the base, not the rule)."""
    assert len(INVALID) >= 40
    assert {c[1] for c in INVALID} == set(SPEC_MODELS)
    assert len({c[0] for c in INVALID}) == len(INVALID), "case ids must be unique"
    for case, kind, base, edit, expected in INVALID:
        SPEC_MODELS[kind].model_validate(base)  # raises, naming the field, if a base is invalid
        edited = copy.deepcopy(base)
        edit(edited)
        assert edited != base, f"{case}: the edit changes nothing"
        assert expected and all(expected), f"{case}: nothing to look for in the refusal"


@pytest.mark.usefixtures("crds_installed")
@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("InferenceService", SERVING),
        ("InferenceService", PROVIDER),
        ("AIBudget", BUDGET),
        ("FallbackPolicy", POLICY),
    ],
)
def test_the_bases_of_the_invalid_table_are_accepted(
    cluster: Cluster, namespace: str, kind: str, spec: dict[str, Any]
) -> None:
    cluster.apply(_manifest(kind, "valid", spec), namespace)


@pytest.mark.usefixtures("crds_installed")
@pytest.mark.parametrize("sample", SAMPLES, ids=[s.stem for s in SAMPLES])
def test_every_sample_applies_cleanly(cluster: Cluster, namespace: str, sample: Path) -> None:
    documents = [d for d in yaml.safe_load_all(sample.read_text()) if d]
    for document in documents:
        document["metadata"]["namespace"] = namespace
    result = cluster.apply(documents, namespace)
    assert "created" in result.stdout


@pytest.mark.usefixtures("crds_installed")
def test_kubectl_get_ai_lists_all_three_kinds_with_their_columns(cluster: Cluster, namespace: str) -> None:
    cluster.apply(_manifest("InferenceService", "big", SERVING), namespace)
    cluster.apply(_manifest("AIBudget", "team", BUDGET), namespace)
    cluster.apply(_manifest("FallbackPolicy", "big-fallback", POLICY), namespace)
    output = cluster.kubectl("get", "ai", "-n", namespace).stdout
    for header in (
        "MODE",
        "READY",
        "DESIRED",
        "GPUS",
        "COST/H",
        "SPENT",
        "LIMIT",
        "USED",
        "FORECAST",
        "STATE",
        "TARGET",
        "ACTIVE",
        "BACKEND",
        "SINCE",
        "AGE",
    ):
        assert header in output, f"{header} missing from:\n{output}"
    for name in (
        "inferenceservice.aipolicy.dev/big",
        "aibudget.aipolicy.dev/team",
        "fallbackpolicy.aipolicy.dev/big-fallback",
    ):
        assert name in output
    for short in ("aisvc", "aib", "fbp"):
        assert cluster.kubectl("get", short, "-n", namespace, "-o", "name").stdout.strip()

    # Each column shows the field it names: statuses as the operator writes them, read back
    # through kubectl's columns (a wrong jsonPath shows <none> or another field's value).
    statuses = {
        ("aisvc", "big"): {
            "mode": "Fallback",
            "readyReplicas": 2,
            "desiredReplicas": 3,
            "gpus": 4,
            "costPerHour": "10.00",
        },
        ("aib", "team"): {
            "spent": "1.682039",
            "spentDisplay": "1.68",
            "percentUsed": 1,
            "forecast": "145.771904",
            "forecastDisplay": "145.77",
            "state": "Warning",
        },
        ("fbp", "big-fallback"): {
            "active": True,
            "activeBackend": "service/small",
            "since": (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "transitions": 7,
        },
    }
    for (short, name), status in statuses.items():
        cluster.kubectl(
            "patch", short, name, "-n", namespace, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}),
        )  # fmt: skip
    service = _row(cluster, namespace, "aisvc", "big", wide=True)
    assert {k: service[k] for k in ("MODE", "READY", "DESIRED", "GPUS", "COST/H", "MODEL")} == {
        "MODE": "Fallback",
        "READY": "2",
        "DESIRED": "3",
        "GPUS": "4",
        "COST/H": "10.00",
        "MODEL": "m",
    }
    budget = _row(cluster, namespace, "aib", "team", wide=True)
    assert {k: budget[k] for k in ("SPENT", "LIMIT", "USED", "FORECAST", "STATE", "CURRENCY")} == {
        "SPENT": "1.68",
        "LIMIT": "100",
        "USED": "1",
        "FORECAST": "145.77",
        "STATE": "Warning",
        "CURRENCY": "USD",
    }
    policy = _row(cluster, namespace, "fbp", "big-fallback", wide=True)
    assert {k: policy[k] for k in ("TARGET", "ACTIVE", "BACKEND", "SINCE", "TRANSITIONS")} == {
        "TARGET": "big",
        "ACTIVE": "true",
        "BACKEND": "service/small",
        "SINCE": "3h",  # a date column shows the age of status.since
        "TRANSITIONS": "7",
    }


def _row(cluster: Cluster, namespace: str, kind: str, name: str, *, wide: bool = False) -> dict[str, str]:
    """One object's row of `kubectl get`, keyed by the headers. Values are cut at the headers'
    offsets: kubectl aligns each value under its header, and leaves an absent one blank."""
    args = ["get", kind, name, "-n", namespace] + (["-o", "wide"] if wide else [])
    header, row = cluster.kubectl(*args).stdout.splitlines()[:2]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    ends = [*starts[1:], None]
    return {header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, ends, strict=True)}


def _leaf_paths(schema: dict[str, Any], prefix: str) -> list[str]:
    paths = []
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{name}"
        paths.append(path)
        if sub.get("type") == "object":
            paths += _leaf_paths(sub, path)
        elif sub.get("type") == "array" and sub["items"].get("type") == "object":
            paths += _leaf_paths(sub["items"], path)
    return paths


@pytest.mark.usefixtures("crds_installed")
@pytest.mark.parametrize("kind", ["inferenceservice", "aibudget", "fallbackpolicy"])
def test_kubectl_explain_documents_every_spec_field(cluster: Cluster, kind: str) -> None:
    crd_file = REPO / "crds" / f"aipolicy.dev_{kind.replace('policy', 'policie')}s.yaml"
    schema = yaml.safe_load(crd_file.read_text().split("\n", 1)[1])["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"
    ]
    paths = _leaf_paths(schema["properties"]["spec"], f"{kind}.spec")
    assert len(paths) > 10
    # one explain per top-level group keeps this fast; --recursive lists every nested field
    recursive = cluster.kubectl("explain", f"{kind}.spec", "--recursive").stdout
    for path in paths:
        leaf = path.rsplit(".", 1)[1]
        assert leaf in recursive, f"{path} missing from kubectl explain --recursive"
    for path in paths[:: max(1, len(paths) // 12)]:
        text = cluster.kubectl("explain", path).stdout
        assert "DESCRIPTION:" in text and "<empty>" not in text, f"{path} is not documented:\n{text}"
