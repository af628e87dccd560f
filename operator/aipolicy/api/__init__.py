"""The aipolicy API: pydantic models of the three kinds, the single source of truth.

`crds/*.yaml` is generated from these models (``aipolicy crds``), and the operator reads every
object through them (:mod:`aipolicy.api.reading`).
"""

from aipolicy.api.aibudget import AIBudget, AIBudgetSpec, AIBudgetStatus
from aipolicy.api.common import GROUP, VERSION, Condition
from aipolicy.api.fallbackpolicy import FallbackPolicy, FallbackPolicySpec, FallbackPolicyStatus
from aipolicy.api.inferenceservice import (
    InferenceService,
    InferenceServiceSpec,
    InferenceServiceStatus,
)

__all__ = [
    "GROUP",
    "VERSION",
    "AIBudget",
    "AIBudgetSpec",
    "AIBudgetStatus",
    "Condition",
    "FallbackPolicy",
    "FallbackPolicySpec",
    "FallbackPolicyStatus",
    "InferenceService",
    "InferenceServiceSpec",
    "InferenceServiceStatus",
]
