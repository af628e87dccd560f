"""The pure parts of the shell: reading objects, the service's mode, child manifests, pod counts."""

from __future__ import annotations

from typing import Any

import pytest

from aipolicy.api.inferenceservice import InferenceService
from aipolicy.api.reading import InvalidSpec, read
from aipolicy.kube import children
from aipolicy.observe.pods import count_pods
from aipolicy.policy import mode as policy_mode
from aipolicy.policy.backends import Backend
from aipolicy.policy.mode import ModeDecision, read_budget, read_policy


def decide_mode(
    isvc: InferenceService, budgets: list[dict[str, Any]], policy: dict[str, Any] | None
) -> ModeDecision:
    """The mode from the objects as stored, read as the controller reads them."""
    return policy_mode.decide_mode(
        isvc, [read_budget(b) for b in budgets], None if policy is None else read_policy(policy)
    )


def _isvc(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "m",
        "serving": {"image": "vllm/vllm-openai:v0.6.3", "gpu": {"count": 2, "product": "NVIDIA-L4"}},
        "pricing": {"gpuHour": "1.00"},
        "degraded": {"maxReplicas": 1},
    }
    base.update(spec)
    return {
        "metadata": {
            "name": "big",
            "namespace": "team-a",
            "uid": "u-1",
            "labels": {"team": "a"},
            "generation": 3,
        },
        "spec": base,
    }


def _model(**spec: Any) -> InferenceService:
    parsed = read(InferenceService, _isvc(**spec))
    assert isinstance(parsed, InferenceService), parsed
    return parsed


def _budget(
    action: str, *, enforcement: str = "Enforce", selector: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": "team"},
        "spec": {"limit": "10", "enforcement": enforcement, "selector": selector or {}},
        "status": {"activeAction": action},
    }


def _policy(step: dict[str, Any], *, active: bool = True, enforcement: str = "Enforce") -> dict[str, Any]:
    return {
        "metadata": {"name": "fb"},
        "spec": {
            "target": "big",
            "triggers": [{"type": "Unavailable"}],
            "chain": [step],
            "enforcement": enforcement,
        },
        "status": {"active": active, "activeStep": 0 if active else -1},
    }


class TestRead:
    def test_a_valid_object_becomes_a_model(self) -> None:
        assert _model().metadata.generation == 3

    def test_an_impossible_cron_names_the_field(self) -> None:
        body = _isvc(
            scaling={
                "minReplicas": 1,
                "maxReplicas": 2,
                "prewarm": [{"name": "am", "schedule": "99 8 * * *", "duration": "1h", "minReplicas": 1}],
            }
        )
        result = read(InferenceService, body)
        assert isinstance(result, InvalidSpec)
        assert result.message.startswith("spec.scaling.prewarm[0].schedule: ")
        assert "five fields" in result.message

    def test_a_stale_status_is_dropped_not_fatal(self) -> None:
        body = {**_isvc(), "status": {"mode": "SomethingOld"}}
        result = read(InferenceService, body)
        assert isinstance(result, InferenceService) and result.status.mode == "Normal"


class TestDecideMode:
    @pytest.mark.parametrize(
        ("budgets", "mode", "cap"),
        [
            pytest.param([], "Normal", None, id="no-budget"),
            pytest.param([_budget("Notify")], "Normal", None, id="notify-changes-nothing"),
            pytest.param([_budget("Degrade")], "Degraded", 1, id="degrade-caps-to-degraded-max"),
            pytest.param([_budget("Suspend")], "Suspended", 0, id="suspend-caps-to-zero"),
            pytest.param([_budget("Degrade"), _budget("Suspend")], "Suspended", 0, id="suspend-wins"),
            pytest.param(
                [_budget("Suspend", enforcement="DryRun")], "Normal", None, id="dry-run-budget-is-ignored"
            ),
            pytest.param(
                [_budget("Suspend", selector={"matchLabels": {"team": "b"}})],
                "Normal",
                None,
                id="budget-selecting-others-is-ignored",
            ),
        ],
    )
    def test_budgets(self, budgets: list[dict[str, Any]], mode: str, cap: int | None) -> None:
        decision = decide_mode(_model(), budgets, None)
        assert (decision.mode, decision.cap) == (mode, cap)
        assert decision.backend == Backend(service="big")

    @pytest.mark.parametrize(
        ("policy", "mode", "backend"),
        [
            pytest.param(
                _policy({"inferenceService": "small"}), "Fallback", Backend(service="small"), id="to-service"
            ),
            pytest.param(
                _policy({"provider": {"url": "https://api.example.com/v1"}}),
                "Fallback",
                Backend(external_host="api.example.com"),
                id="to-provider",
            ),
            pytest.param(
                _policy({"degraded": True}), "Degraded", Backend(service="big"), id="own-degraded-mode"
            ),
            pytest.param(
                _policy({"inferenceService": "small"}, active=False),
                "Normal",
                Backend(service="big"),
                id="inactive",
            ),
            pytest.param(
                _policy({"inferenceService": "small"}, enforcement="DryRun"),
                "Normal",
                Backend(service="big"),
                id="dry-run-policy-is-ignored",
            ),
        ],
    )
    def test_fallback_policies(self, policy: dict[str, Any], mode: str, backend: Backend) -> None:
        decision = decide_mode(_model(), [], policy)
        assert (decision.mode, decision.backend) == (mode, backend)


class TestChildren:
    def test_the_deployment_requests_gpus_as_an_extended_resource(self) -> None:
        deployment = children.deployment(_model(), replicas=3)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["requests"]["nvidia.com/gpu"] == "2"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
        assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {
            "nvidia.com/gpu.product": "NVIDIA-L4"
        }
        assert deployment["spec"]["replicas"] == 3
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        owner = deployment["metadata"]["ownerReferences"][0]
        assert (owner["uid"], owner["controller"]) == ("u-1", True)

    def test_the_front_door_follows_the_backend(self) -> None:
        own = children.front_door(_model(), Backend(service="big"))
        assert own["spec"]["selector"] == {"aipolicy.dev/service": "big"}
        fallback = children.front_door(_model(), Backend(service="small"))
        assert fallback["spec"]["selector"] == {"aipolicy.dev/service": "small"}
        assert fallback["metadata"]["name"] == "big"
        # a provider can only be reached through the gateway (key, path, model name): the
        # front door keeps its name and port and selects the gateway's pods, never an ExternalName
        provider = children.front_door(_model(), Backend.provider("https://api.openai.com/v1"))
        assert provider["spec"]["type"] == "ClusterIP"
        assert provider["spec"]["selector"] == {"app.kubernetes.io/name": "aipolicy-gateway"}
        assert provider["spec"]["ports"][0]["targetPort"] == 8000
        assert provider["metadata"]["name"] == "big"

    def test_an_l7_front_door_selects_the_gateway_whatever_the_backend(self) -> None:
        door = children.front_door(_model(), Backend(service="big"), via_gateway=True)
        assert door["spec"]["selector"] == {"app.kubernetes.io/name": "aipolicy-gateway"}
        port = door["spec"]["ports"][0]
        assert (port["port"], port["targetPort"]) == (_model().spec.serving.port, 8000)  # type: ignore[union-attr]
        assert door["metadata"]["annotations"]["aipolicy.dev/front-door"] == "gateway"


def _pod(
    phase: str,
    *,
    ready: bool = False,
    node: str | None = "n",
    unschedulable: bool = False,
    deleting: bool = False,
) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if unschedulable:
        conditions.append(
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}
        )
    return {
        "metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {},
        "spec": {"nodeName": node, "containers": [{"resources": {"limits": {"nvidia.com/gpu": "2"}}}]},
        "status": {"phase": phase, "conditions": conditions},
    }


def test_pod_counts() -> None:
    pods = [
        _pod("Running", ready=True),
        _pod("Running"),
        _pod("Pending", node=None, unschedulable=True),
        _pod("Running", ready=True, deleting=True),
    ]
    counts = count_pods(pods)
    assert (counts.total, counts.ready, counts.starting, counts.unschedulable) == (3, 1, 1, 1)
    assert counts.gpus_held == 4
    assert counts.unschedulable_message == "0/3 nodes"


def test_pod_counts_name_a_container_that_cannot_start() -> None:
    bad_image = _pod("Pending")
    bad_image["metadata"]["name"] = "chat-7d9-x2"
    bad_image["status"]["containerStatuses"] = [
        {
            "name": "model-server",
            "state": {
                "waiting": {
                    "reason": "ImagePullBackOff",
                    "message": 'Back-off pulling image "registry.invalid/vllm:nope"',
                }
            },
        }
    ]
    pulling = _pod("Pending")
    pulling["status"]["containerStatuses"] = [
        {"name": "model-server", "state": {"waiting": {"reason": "ContainerCreating"}}}
    ]
    counts = count_pods([bad_image, pulling, _pod("Running", ready=True)])
    # still starting: more replicas of the same spec would fail alike, so none are added for it
    assert (counts.ready, counts.starting, counts.failing) == (1, 2, 1)
    assert counts.failing_message == (
        "pod chat-7d9-x2 container model-server: ImagePullBackOff: "
        'Back-off pulling image "registry.invalid/vllm:nope"'
    )
    assert count_pods([pulling]).failing == 0  # creating a container is what starting looks like


def test_a_status_merge_patch_removes_what_the_new_status_dropped() -> None:
    from aipolicy.controllers.events import merge_patch

    old = {
        "idleSince": "t0",
        "mode": "Normal",
        "kopf": {"x": 1},
        "triggerSince": {"ErrorRate": "t1", "Latency": "t2"},
    }
    new = {"mode": "Degraded", "triggerSince": {"Latency": "t2"}}
    assert merge_patch(old, new) == {
        "mode": "Degraded",
        "idleSince": None,
        "triggerSince": {"Latency": "t2", "ErrorRate": None},
    }
