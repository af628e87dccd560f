"""DryRun scaling: which decisions are changes to record and announce."""

from __future__ import annotations

import pytest

from aipolicy.api.inferenceservice import Scaling
from aipolicy.policy.scaling import applied_replicas, reported_change


@pytest.mark.parametrize(
    ("dry_run", "current", "previous", "desired", "expected"),
    [
        (False, 1, 1, 3, True),  # enforced: a change of the replicas
        (False, 3, 1, 3, False),  # enforced: already there
        (True, 1, None, 3, True),  # dry run, first decision: differs from the replicas
        (True, 1, None, 1, False),
        (True, 1, 3, 3, False),  # dry run: the same advice again is no news (the replicas stay 1)
        (True, 1, 3, 4, True),  # new advice
        (True, 1, 3, 1, True),  # the advice comes back to the replicas
    ],
)
def test_reported_change(
    dry_run: bool, current: int, previous: int | None, desired: int, expected: bool
) -> None:
    assert reported_change(dry_run, current, previous, desired) is expected


def test_enforcement_defaults_to_enforce_and_refuses_anything_else() -> None:
    assert Scaling().enforcement == "Enforce"
    assert Scaling(enforcement="DryRun").enforcement == "DryRun"
    with pytest.raises(ValueError, match="enforcement"):
        Scaling.model_validate({"enforcement": "Advise"})


@pytest.mark.parametrize(
    ("dry_run", "desired", "current", "cap", "expected"),
    [
        (False, 4, 1, None, 4),  # enforced: the decision
        (True, 4, 1, None, 1),  # advice: the replicas stay
        (True, 4, None, None, 2),  # advice, no Deployment yet: minReplicas (2 below)
        (True, 4, 3, 1, 1),  # an enforced budget's degraded cap still applies
        (True, 0, 3, 0, 0),  # and so does a suspension
    ],
)
def test_applied_replicas(
    dry_run: bool, desired: int, current: int | None, cap: int | None, expected: int
) -> None:
    assert applied_replicas(dry_run, desired, current, 2, cap) == expected
