"""The deployment fields of spec.serving (issue 16), pure: probe defaults derived from the cold
start, what the manifest builder passes to the pods, the PodDisruptionBudget's manifest and when
a service has one, and the Secret a pod cannot start without."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from aipolicy.api.inferenceservice import InferenceService
from aipolicy.api.reading import read
from aipolicy.controllers.indexes import slim_child
from aipolicy.kube import children, pod_spec
from aipolicy.observe.pods import (
    MissingReference,
    PodCounts,
    count_pods,
    missing_reference,
    with_creation_failure,
)
from aipolicy.policy.backends import Backend
from aipolicy.policy.mode import ModeDecision
from aipolicy.policy.service_conditions import ReadyFacts, ready

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _ready_facts(isvc: InferenceService, pods: PodCounts) -> ReadyFacts:
    """A self-hosted service in Normal mode wanting one replica."""
    return ReadyFacts(
        namespace=isvc.metadata.namespace,
        provider_backed=False,
        active_backend="service/llama",
        mode=ModeDecision("Normal", "", None, Backend("llama")),
        desired_replicas=1,
        pods=pods,
    )


FULL_SERVING: dict[str, Any] = {
    "image": "vllm/vllm-openai:v0.6.3",
    "args": ["--model", "meta-llama/Llama-3.1-70B-Instruct", "--tensor-parallel-size", "4"],
    "gpu": {"count": 4},
    "env": [
        {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"},
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}},
        {"name": "MAX_LEN", "valueFrom": {"configMapKeyRef": {"name": "tuning", "key": "maxLen"}}},
    ],
    "envFrom": [{"configMapRef": {"name": "vllm-env"}, "prefix": "VLLM_"}, {"secretRef": {"name": "s3"}}],
    "volumes": [
        {"name": "weights", "persistentVolumeClaim": {"claimName": "llama-70b-weights", "readOnly": True}},
        {"name": "cache", "hostPath": {"path": "/var/cache/hf", "type": "DirectoryOrCreate"}},
        {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
        {"name": "templates", "configMap": {"name": "chat-templates"}},
        {"name": "tls", "secret": {"secretName": "server-tls", "defaultMode": 0o440}},
    ],
    "volumeMounts": [
        {"name": "weights", "mountPath": "/models", "readOnly": True},
        {"name": "cache", "mountPath": "/root/.cache/huggingface"},
        {"name": "tls", "mountPath": "/tls", "subPath": "certs"},
    ],
    "shmSize": "16Gi",
    "imagePullSecrets": [{"name": "registry-creds"}],
    "priorityClassName": "inference-high",
    "runtimeClassName": "nvidia",
    "serviceAccountName": "vllm",
    "topologySpreadConstraints": [
        {"topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"},
        {
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "maxSkew": 2,
            "minDomains": 2,
            "labelSelector": {"matchLabels": {"tier": "gpu"}},
        },
    ],
    "terminationGracePeriodSeconds": 300,
}


def _model(serving: dict[str, Any], cold_start: int = 600) -> InferenceService:
    body = {
        "metadata": {"name": "llama", "namespace": "team-a", "uid": "u-1", "generation": 2},
        "spec": {
            "model": "meta-llama/Llama-3.1-70B-Instruct",
            "serving": serving,
            "pricing": {"gpuHour": "2.21"},
            "scaling": {"minReplicas": 1, "maxReplicas": 4, "coldStartSeconds": cold_start},
        },
    }
    parsed = read(InferenceService, body)
    assert isinstance(parsed, InferenceService), parsed
    return parsed


def _pod_spec(isvc: InferenceService) -> dict[str, Any]:
    spec: dict[str, Any] = children.deployment(isvc, replicas=2)["spec"]["template"]["spec"]
    return spec


class TestStartupProbeDefaults:
    @pytest.mark.parametrize("cold_start", [0, 1, 29, 30, 31, 59, 60, 61, 120, 180, 599, 600, 3601, 7200])
    @pytest.mark.parametrize("period", [1, 5, 7, 10, 30, 300])
    def test_the_probe_waits_at_least_twice_the_cold_start_and_a_minute(
        self, cold_start: int, period: int
    ) -> None:
        threshold = pod_spec.startup_failure_threshold(cold_start, period)
        assert threshold >= 1
        assert threshold * period >= cold_start  # the issue's promise
        assert threshold * period >= 2 * cold_start  # with room for a slow start
        assert threshold * period >= pod_spec.MIN_STARTUP_SECONDS
        # and not more than one period beyond that: a server that never starts is restarted
        assert (threshold - 1) * period < max(2 * cold_start, pod_spec.MIN_STARTUP_SECONDS)

    def test_an_unknown_cold_start_gets_a_generous_fixed_budget(self) -> None:
        # a coldStartSeconds left to be measured: the pod template must not follow measurements
        threshold = pod_spec.startup_failure_threshold(None, 10)
        assert threshold * 10 == pod_spec.UNKNOWN_COLD_START_BUDGET_SECONDS == 1800

    def test_the_defaults_come_from_the_service_cold_start(self) -> None:
        container = _pod_spec(_model({"image": "vllm/vllm-openai:v0.6.3"}, cold_start=600))["containers"][0]
        assert container["startupProbe"] == {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 120,  # 120 x 10 s = 20 min = twice the 10-min cold start
        }
        assert container["livenessProbe"] == {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        }
        quick = _pod_spec(_model({"image": "vllm/vllm-openai:v0.6.3"}, cold_start=5))["containers"][0]
        assert quick["startupProbe"]["failureThreshold"] == 6  # a minute at least

    def test_explicit_settings_win_and_probes_follow_the_readiness_path(self) -> None:
        serving = {
            "image": "ghcr.io/huggingface/text-generation-inference:2.4.0",
            "readinessProbe": {"path": "/ready"},
            "startupProbe": {"periodSeconds": 5, "failureThreshold": 7},
            "livenessProbe": {"path": "/live", "failureThreshold": 6},
        }
        container = _pod_spec(_model(serving))["containers"][0]
        assert container["startupProbe"]["httpGet"]["path"] == "/ready"
        assert (
            container["startupProbe"]["periodSeconds"],
            container["startupProbe"]["failureThreshold"],
        ) == (5, 7)
        assert container["livenessProbe"]["httpGet"]["path"] == "/live"
        assert container["livenessProbe"]["failureThreshold"] == 6

    def test_probes_can_be_turned_off(self) -> None:
        serving = {
            "image": "vllm/vllm-openai:v0.6.3",
            "startupProbe": {"enabled": False},
            "livenessProbe": {"enabled": False},
        }
        container = _pod_spec(_model(serving))["containers"][0]
        assert "startupProbe" not in container and "livenessProbe" not in container
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"


class TestManifestBuilder:
    def test_every_field_reaches_the_pod_spec(self) -> None:
        spec = _pod_spec(_model(copy.deepcopy(FULL_SERVING)))
        container = spec["containers"][0]
        assert container["env"] == [
            {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"},
            {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}},
            {"name": "MAX_LEN", "valueFrom": {"configMapKeyRef": {"name": "tuning", "key": "maxLen"}}},
        ]
        assert container["envFrom"] == [
            {"prefix": "VLLM_", "configMapRef": {"name": "vllm-env"}},
            {"secretRef": {"name": "s3"}},
        ]
        assert container["volumeMounts"] == [
            {"name": "weights", "mountPath": "/models", "readOnly": True},
            {"name": "cache", "mountPath": "/root/.cache/huggingface", "readOnly": False},
            {"name": "tls", "mountPath": "/tls", "subPath": "certs", "readOnly": False},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ]
        assert spec["volumes"] == [
            {
                "name": "weights",
                "persistentVolumeClaim": {"claimName": "llama-70b-weights", "readOnly": True},
            },
            {"name": "cache", "hostPath": {"path": "/var/cache/hf", "type": "DirectoryOrCreate"}},
            {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
            {"name": "templates", "configMap": {"name": "chat-templates"}},
            {"name": "tls", "secret": {"secretName": "server-tls", "defaultMode": 0o440}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
        ]
        assert spec["imagePullSecrets"] == [{"name": "registry-creds"}]
        assert spec["priorityClassName"] == "inference-high"
        assert spec["runtimeClassName"] == "nvidia"
        assert spec["serviceAccountName"] == "vllm"
        assert spec["terminationGracePeriodSeconds"] == 300
        zone, host = spec["topologySpreadConstraints"]
        # without a labelSelector a constraint counts this service's own pods
        assert zone == {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"aipolicy.dev/service": "llama"}},
        }
        assert host["labelSelector"] == {"matchLabels": {"tier": "gpu"}, "matchExpressions": []}
        assert (host["maxSkew"], host["minDomains"]) == (2, 2)

    def test_a_minimal_service_gets_none_of_them(self) -> None:
        spec = _pod_spec(_model({"image": "vllm/vllm-openai:v0.6.3"}))
        container = spec["containers"][0]
        for absent in ("env", "envFrom", "volumeMounts"):
            assert absent not in container
        for absent in (
            "volumes",
            "imagePullSecrets",
            "priorityClassName",
            "runtimeClassName",
            "serviceAccountName",
            "terminationGracePeriodSeconds",
            "topologySpreadConstraints",
        ):
            assert absent not in spec

    def test_shm_size_alone_adds_the_memory_volume_and_its_mount(self) -> None:
        spec = _pod_spec(_model({"image": "lmsysorg/sglang:v0.4.0", "shmSize": "32Gi"}))
        assert spec["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Gi"}}]
        assert spec["containers"][0]["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]

    @pytest.mark.parametrize(
        ("edit", "field"),
        [
            pytest.param({"shmSize": "16GB"}, "shmSize", id="shm-not-a-quantity"),
            pytest.param(
                {"volumes": [{"name": "v", "nfs": {"server": "x", "path": "/"}}]},
                "nfs",
                id="volume-type-outside-list",
            ),
            pytest.param(
                {"volumes": [{"name": "v", "secret": {"secretName": "Not_A_DNS_Name"}}]},
                "secretName",
                id="secret-name-not-dns",
            ),
            pytest.param(
                {"serviceAccountName": "Bad Name"}, "serviceAccountName", id="service-account-not-dns"
            ),
            pytest.param(
                {"terminationGracePeriodSeconds": -1}, "terminationGracePeriodSeconds", id="grace-negative"
            ),
        ],
    )
    def test_the_models_refuse_what_the_schema_refuses(self, edit: dict[str, Any], field: str) -> None:
        body = {
            "metadata": {"name": "x"},
            "spec": {
                "model": "m",
                "serving": {"image": "vllm/vllm-openai:v0.6.3", **edit},
                "pricing": {"gpuHour": "1"},
            },
        }
        with pytest.raises(ValidationError, match=field):
            InferenceService.model_validate(body)


class TestDisruptionBudget:
    def test_the_manifest_keeps_one_replica_at_a_time_out_and_never_holds_unhealthy_pods(self) -> None:
        budget = children.disruption_budget(_model({"image": "vllm/vllm-openai:v0.6.3"}))
        assert budget["apiVersion"] == "policy/v1" and budget["kind"] == "PodDisruptionBudget"
        assert budget["metadata"]["name"] == "llama" and budget["metadata"]["namespace"] == "team-a"
        assert budget["metadata"]["labels"]["aipolicy.dev/service"] == "llama"
        assert budget["metadata"]["ownerReferences"][0]["uid"] == "u-1"
        assert budget["spec"] == {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {"aipolicy.dev/service": "llama"}},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        }
        # it selects exactly the Deployment's pods
        deployment = children.deployment(_model({"image": "vllm/vllm-openai:v0.6.3"}), 2)
        assert budget["spec"]["selector"] == deployment["spec"]["selector"]

    @pytest.mark.parametrize(("replicas", "wanted"), [(0, False), (1, False), (2, True), (7, True)])
    def test_a_service_has_one_from_two_replicas(self, replicas: int, wanted: bool) -> None:
        isvc = _model({"image": "vllm/vllm-openai:v0.6.3"})
        assert children.wants_disruption_budget(isvc, replicas) is wanted

    def test_a_provider_never_has_one(self) -> None:
        provider = InferenceService.model_validate(
            {
                "metadata": {"name": "gpt"},
                "spec": {
                    "model": "gpt-4o-mini",
                    "provider": {"url": "https://api.openai.com/v1"},
                    "pricing": {"inputPerMillionTokens": "1", "outputPerMillionTokens": "2"},
                },
            }
        )
        assert not children.wants_disruption_budget(provider, 5)


class TestMissingSecret:
    @pytest.mark.parametrize(
        ("message", "expected"),
        [
            ('secret "hf-token" not found', MissingReference("Secret", "hf-token")),
            ('secrets "hf-token" not found', MissingReference("Secret", "hf-token")),
            ('configmap "tuning" not found', MissingReference("ConfigMap", "tuning")),
            (
                "couldn't find key token in Secret team-a/hf-token",
                MissingReference("Secret", "hf-token", "token"),
            ),
            (
                "Couldn't find key maxLen in ConfigMap team-a/tuning",
                MissingReference("ConfigMap", "tuning", "maxLen"),
            ),
            (
                'pods "x-7d-a" is forbidden: error looking up service account ns/vllm: '
                'serviceaccount "vllm" not found',
                MissingReference("ServiceAccount", "vllm"),
            ),
            (
                'pods "x-7d-a" is forbidden: no PriorityClass with name inference-high was found',
                MissingReference("PriorityClass", "inference-high"),
            ),
            ('pod rejected: RuntimeClass "nvidia" not found', MissingReference("RuntimeClass", "nvidia")),
            ('Back-off pulling image "vllm/vllm-openai:nope"', None),
            ("", None),
        ],
    )
    def test_the_kubelet_message_names_what_is_missing(
        self, message: str, expected: MissingReference | None
    ) -> None:
        assert missing_reference(message) == expected

    def test_ready_false_names_the_secret(self) -> None:
        isvc = _model({"image": "vllm/vllm-openai:v0.6.3"})
        pod = {
            "metadata": {"name": "llama-5f7-abc"},
            "spec": {"nodeName": "n", "containers": []},
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {
                        "name": "server",
                        "state": {
                            "waiting": {
                                "reason": "CreateContainerConfigError",
                                "message": 'secret "hf-token" not found',
                            }
                        },
                    }
                ],
            },
        }
        facts = _ready_facts(isvc, count_pods([pod]))
        condition = ready(facts)
        assert (condition.status, condition.reason) == ("False", "SecretNotFound")
        assert condition.message.startswith("Secret hf-token does not exist in namespace team-a")
        assert "llama-5f7-abc" in condition.message

    def test_a_deployment_that_cannot_create_pods_names_what_is_missing(self) -> None:
        isvc = _model({"image": "vllm/vllm-openai:v0.6.3", "priorityClassName": "inference-high"})
        refused = 'pods "llama-5f7-abc" is forbidden: no PriorityClass with name inference-high was found'
        deployment = slim_child(
            {
                "metadata": {"resourceVersion": "7"},
                "spec": {"replicas": 1},
                "status": {
                    "conditions": [
                        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                        {
                            "type": "ReplicaFailure",
                            "status": "True",
                            "reason": "FailedCreate",
                            "message": refused,
                        },
                    ]
                },
            }
        )
        pods = with_creation_failure(count_pods([]), deployment)
        assert pods.not_created == refused
        assert with_creation_failure(count_pods([]), {"spec": {"replicas": 1}}).not_created == ""
        condition = ready(_ready_facts(isvc, pods))
        assert (condition.status, condition.reason) == ("False", "PriorityClassNotFound")
        # cluster-scoped: no namespace in the sentence
        assert condition.message.startswith(
            "PriorityClass inference-high does not exist, and spec.serving needs it"
        )
        assert refused in condition.message
