"""Pure: the SecretsAvailable condition from what the gateway reports."""

from __future__ import annotations

from typing import Any

from aipolicy.api.fallbackpolicy import FallbackStep
from aipolicy.api.inferenceservice import InferenceService
from aipolicy.api.reading import read
from aipolicy.gateway.secrets import problem_reason
from aipolicy.policy.secrets import secrets_verdict

STEP = FallbackStep.model_validate(
    {"provider": {"url": "https://api.openai.com/v1", "apiKeySecret": "openai"}}
)


def _isvc(**spec: Any) -> InferenceService:
    body = {
        "metadata": {"name": "gpt", "namespace": "team-a", "uid": "u", "generation": 1},
        "spec": {"model": "m", **spec},
    }
    parsed = read(InferenceService, body)
    assert isinstance(parsed, InferenceService), parsed
    return parsed


API = _isvc(provider={"url": "https://api.example.com/v1", "apiKeySecret": "example"})
SELF = _isvc(serving={"image": "vllm/vllm-openai:v0.6.3"})


def test_a_service_naming_no_secret_gets_no_condition() -> None:
    assert secrets_verdict(SELF, [], {"example": "SecretNotFound"}) is None


def test_a_missing_own_key_names_the_secret_and_makes_the_service_not_ready() -> None:
    verdict = secrets_verdict(API, [], {"example": "SecretNotFound"})
    assert verdict is not None
    assert (verdict.status, verdict.reason, verdict.own_missing) == ("False", "SecretNotFound", True)
    assert "Secret team-a/example (spec.provider.apiKeySecret) does not exist" in verdict.message


def test_a_missing_chain_key_is_reported_but_the_service_still_serves_from_its_pods() -> None:
    verdict = secrets_verdict(SELF, [STEP], {"openai": "SecretKeyMissing"})
    assert verdict is not None
    assert (verdict.status, verdict.reason, verdict.own_missing) == ("False", "SecretKeyMissing", False)
    assert "team-a/openai (FallbackPolicy chain step 0)" in verdict.message


def test_secrets_the_gateway_reports_no_problem_with_are_available() -> None:
    verdict = secrets_verdict(API, [STEP], {"unrelated": "SecretNotFound"})
    assert verdict is not None and (verdict.status, verdict.reason) == ("True", "SecretsFound")


def test_the_gateways_problem_messages_map_to_reasons() -> None:
    assert problem_reason("Secret a/b does not exist") == "SecretNotFound"
    assert problem_reason("Secret a/b is not mounted into the gateway") == "SecretNotFound"
    assert problem_reason("Secret a/b has no key apiKey") == "SecretKeyMissing"
    assert (
        problem_reason("Secret a/b is not readable by the gateway (no Role names it)") == "SecretUnreadable"
    )
