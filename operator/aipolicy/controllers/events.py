"""Events and conditions that explain themselves, posted on change only, never on every tick."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import kopf

from aipolicy.api.common import Condition, ConditionStatus, find_condition, json_dict, set_condition
from aipolicy.api.conditions import INVALID_SPEC, READY, STALLED

# STALLED (kstatus' abnormal-true condition, what Flux and kpt read) is True while the spec cannot
# be acted on, so that they report Failed instead of waiting. Only an evaluation that finds the
# spec unusable sets it; every other evaluation drops it, so a fixed spec clears it.


class StatusConditions:
    """Conditions being updated in one evaluation; knows which ones changed, for events."""

    def __init__(self, previous: list[Condition], generation: int, now: datetime) -> None:
        self._stalled = find_condition(previous, STALLED)
        self.conditions = [c for c in previous if c.type != STALLED]
        self.generation = generation
        self.now = now
        self.changed: list[Condition] = []
        self.first_set: list[Condition] = []

    def set(self, type_: str, status: ConditionStatus, reason: str, message: str) -> None:
        before = find_condition(self.conditions, type_)
        self.conditions = set_condition(
            self.conditions, type_, status, reason, message, self.generation, self.now
        )
        if before is None or before.status != status or before.reason != reason:
            after = find_condition(self.conditions, type_)
            assert after is not None
            self.changed.append(after)
            if before is None:
                self.first_set.append(after)

    def stalled(self, reason: str, message: str) -> None:
        """Stalled=True for this evaluation (its lastTransitionTime kept from the last one); the
        Ready condition beside it tells the change, so it posts no event of its own."""
        if self._stalled is not None:
            self.conditions.append(self._stalled)
        self.set(STALLED, "True", reason, message)
        self.told_elsewhere(STALLED)

    def told_elsewhere(self, type_: str) -> None:
        """This condition's change is already told by an event of its own (a switch, a change of
        mode): post_changes would tell it a second time."""
        self.changed = [c for c in self.changed if c.type != type_]

    def post_changes(self, body: kopf.Body, warn_when: dict[str, ConditionStatus]) -> None:
        """One event per condition that changed status or reason.

        `warn_when` maps a condition type to the status that makes its event a Warning.
        """
        for condition in self.changed:
            warning = warn_when.get(condition.type) == condition.status
            if condition in self.first_set and not warning:
                continue  # a new object's healthy conditions need no event each
            kind = "Warning" if warning else "Normal"
            kopf.event(
                body,
                type=kind,
                reason=condition.reason,
                message=f"{condition.type}={condition.status}: {condition.message}",
            )


def status_differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return {k: v for k, v in old.items() if k != "kopf"} != new


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new` as a JSON merge patch over `old`: every field `new` no longer has becomes null.

    kopf sends status as a merge patch, which removes only fields given as null. Without this a
    field the model dropped (json_dict leaves out None) or a map key it removed stays in the API
    and is read back as state on the next evaluation.
    """
    patch = dict(new)
    for key, value in old.items():
        if key == "kopf":
            continue
        if key not in new:
            patch[key] = None
        elif isinstance(value, dict) and isinstance(new[key], dict):
            patch[key] = merge_patch(value, new[key])
    return patch


def write_status(patch: kopf.Patch, old_status: dict[str, Any], new: dict[str, Any]) -> None:
    """Patch status only when it changed, as a merge patch that also removes dropped fields."""
    if status_differs(old_status, new):
        patch.status.update(merge_patch(old_status, new))


def invalid_spec_status(
    old_status: dict[str, Any], message: str, generation: int, now: datetime
) -> tuple[dict[str, Any], StatusConditions]:
    """The status of an object whose spec cannot be acted on, and its conditions (which knows
    what changed, for events).

    Ready=False and Stalled=True with reason InvalidSpec, kept beside the other conditions, and
    observedGeneration at the generation read: kstatus and Argo CD wait for it to reach
    metadata.generation before they believe any condition, so without it an invalid object
    looks forever in progress rather than failed. The rest of status stays as last written.
    """
    previous = []
    for raw in old_status.get("conditions") or []:
        try:
            previous.append(Condition.model_validate(raw))
        except ValueError:
            continue  # a condition an older operator wrote: dropped rather than fatal
    conditions = StatusConditions(previous, generation, now)
    conditions.set(READY, "False", INVALID_SPEC, message)
    # Stalled=True too: kstatus (Flux, kpt) reports Failed rather than waiting for progress
    conditions.stalled(INVALID_SPEC, message)
    new = {
        **old_status,
        "observedGeneration": generation,
        "conditions": [json_dict(c) for c in conditions.conditions],
    }
    new.pop("kopf", None)
    return new, conditions


def report_invalid_spec(
    body: kopf.Body,
    patch: kopf.Patch,
    old_status: dict[str, Any],
    message: str,
    warn_when: dict[str, ConditionStatus],
    now: datetime,
) -> None:
    """Writes :func:`invalid_spec_status`, with one event when InvalidSpec appears; status is
    written only when it changed (no retry loop)."""
    generation = int(body.metadata.get("generation") or 0)
    new, conditions = invalid_spec_status(old_status, message, generation, now)
    conditions.post_changes(body, warn_when)
    write_status(patch, old_status, new)
