"""Which FallbackPolicy governs a target when several name it, and what the others write.

One rule, used by both controllers: the policy whose name sorts first governs. The
FallbackPolicy controller evaluates only that one and reports the others Conflict; the
InferenceService controller points the front door only where that one says. A rule by name
rather than by list order (the order an index or a List call returns) gives the same answer in
every process and after every restart, and a user can read it off `kubectl get fbp`.

A policy that stops governing (another one, sorting first, appeared) stands down: its status
says the target serves, so nothing reading it (a dashboard, `kubectl get fbp`, an older
operator) takes its last switch for the current one. Its history (transitions, the last
switch time) stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from aipolicy.api.fallbackpolicy import FallbackPolicySpec, FallbackPolicyStatus

Body = TypeVar("Body", bound=Mapping[str, Any])


def _name(policy: Mapping[str, Any]) -> str:
    return str((policy.get("metadata") or {}).get("name") or "")


def governing_policy(policies: Sequence[Body]) -> Body | None:
    """The policy, among those naming one target, that governs it: the first by name."""
    return min(policies, key=_name, default=None)


def governing_name(policies: Sequence[Mapping[str, Any]]) -> str | None:
    """The governing policy's name (see governing_policy)."""
    chosen = governing_policy(policies)
    return None if chosen is None else _name(chosen)


def stand_down(spec: FallbackPolicySpec, previous: FallbackPolicyStatus) -> FallbackPolicyStatus:
    """The status of a policy that does not govern its target: inactive, timers dropped.

    The timers go too: were it to govern again later, a `for` or a hold must start from then,
    not from a time it was not watching.
    """
    return previous.model_copy(
        update={
            "active": False,
            "active_step": -1,
            "active_backend": spec.target,
            "triggered_by": [],
            "clear_since": None,
            "trigger_since": {},
        }
    )
