"""The backend vocabulary (policy/backends.py): one grammar, written and read back in one place."""

from __future__ import annotations

import re

import pytest

from aipolicy.api.fallbackpolicy import FallbackStep
from aipolicy.gateway.routing import PodsTarget, Prices, ProviderTarget
from aipolicy.policy.backends import SERVICE_LABEL_REGEX, Backend, step_label


@pytest.mark.parametrize(
    ("backend", "label"),
    [
        pytest.param(
            Backend(service="small"), "service/small", id="a service's pods are service slash its name"
        ),
        pytest.param(
            Backend.provider("https://api.openai.com/v1"),
            "provider/api.openai.com",
            id="a provider is provider slash its URL's host",
        ),
    ],
)
def test_a_backend_is_written_and_read_back_alike(backend: Backend, label: str) -> None:
    assert backend.describe() == label
    assert Backend.parse(label) == backend


@pytest.mark.parametrize("label", ["self", "service/", "provider/", "degraded", "svc/small"])
def test_text_outside_the_grammar_is_refused(label: str) -> None:
    with pytest.raises(ValueError, match="neither"):
        Backend.parse(label)


@pytest.mark.parametrize(
    ("step", "label"),
    [
        pytest.param({"inferenceService": "small"}, "service/small", id="a service step shows the service"),
        pytest.param(
            {"provider": {"url": "https://api.example.com/v1"}},
            "provider/api.example.com",
            id="a provider step shows the provider's host",
        ),
        pytest.param({"degraded": True}, "degraded", id="a degraded step shows degraded"),
    ],
)
def test_a_chain_step_is_labelled_as_its_backend(step: dict[str, object], label: str) -> None:
    assert step_label(FallbackStep.model_validate(step)) == label


def test_the_gateways_metric_label_is_what_the_promql_reads_back() -> None:
    pods = PodsTarget(service="small", model="m", port=8000, endpoints=(), prices=Prices())
    provider = ProviderTarget(base_url="https://api.example.com/v1", model="m", secret=None, prices=Prices())
    matched = re.fullmatch(SERVICE_LABEL_REGEX, pods.label)
    assert matched is not None and matched.group(1) == "small"
    assert re.fullmatch(SERVICE_LABEL_REGEX, provider.label) is None
    assert Backend.parse(provider.label) == Backend(external_host="api.example.com")
