"""Pure: what the InferenceService's conditions say about the Secrets its providers name.

The operator reads no Secret (it has no Secret permission at all): the namespace's gateway,
whose Role may `get` exactly those Secrets, checks them and exports
aipolicy_gateway_secret_problem{namespace, secret, reason}; the operator reads that from
Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aipolicy.api.common import ConditionStatus
from aipolicy.api.conditions import SECRETS_FOUND
from aipolicy.api.fallbackpolicy import FallbackStep
from aipolicy.api.inferenceservice import InferenceService

#: The reasons the gateway exports (gateway/secrets.problem_reason), worst first.
REASONS = ("SecretNotFound", "SecretKeyMissing", "SecretUnreadable")
_SAYS = {
    "SecretNotFound": "does not exist",
    "SecretKeyMissing": "has no usable key apiKey",
    "SecretUnreadable": "cannot be read by the gateway",
}


@dataclass(frozen=True)
class SecretsVerdict:
    """The SecretsAvailable condition, and whether the service's own key is the one missing
    (then it cannot serve at all: Ready is False too)."""

    status: ConditionStatus
    reason: str
    message: str
    own_missing: bool


def referenced(isvc: InferenceService, chain: Iterable[FallbackStep]) -> list[tuple[str, str]]:
    """(secret, who names it) for the service's provider and each provider step of its chain."""
    out: list[tuple[str, str]] = []
    if isvc.spec.provider is not None and isvc.spec.provider.api_key_secret:
        out.append((isvc.spec.provider.api_key_secret, "spec.provider.apiKeySecret"))
    for index, step in enumerate(chain):
        if step.provider is not None and step.provider.api_key_secret:
            out.append((step.provider.api_key_secret, f"FallbackPolicy chain step {index}"))
    return out


def secrets_verdict(
    isvc: InferenceService, chain: Iterable[FallbackStep], problems: Mapping[str, str]
) -> SecretsVerdict | None:
    """None when no provider names a Secret. `problems`: secret -> reason, as the gateway
    reports them for the service's namespace."""
    named = referenced(isvc, chain)
    if not named:
        return None
    namespace = isvc.metadata.namespace
    bad = [(secret, who, problems[secret]) for secret, who in named if secret in problems]
    if not bad:
        listed = ", ".join(sorted({secret for secret, _ in named}))
        return SecretsVerdict("True", SECRETS_FOUND, f"the gateway reports no problem with {listed}", False)
    bad.sort(key=lambda b: REASONS.index(b[2]) if b[2] in REASONS else len(REASONS))
    reason = bad[0][2]
    message = "; ".join(f"Secret {namespace}/{s} ({w}) {_SAYS.get(r, 'is not usable')}" for s, w, r in bad)
    own = isvc.spec.provider is not None and isvc.spec.provider.api_key_secret in {b[0] for b in bad}
    return SecretsVerdict("False", reason, f"{message}: its requests get 503 naming it", own)
