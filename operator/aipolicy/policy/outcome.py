"""What a decision hands the shell to write: the status, the conditions to set, the events to post.

Every evaluation of a kind is a pure function returning an :class:`Outcome`; the shell
(controllers/evaluation.py) applies it the same way for every kind: it posts `events`, sets
`conditions` over the previous ones (a condition whose status or reason changes posts one event
of its own, unless `told_elsewhere` names it), and writes `status` when it changed. So a
decision is tested with plain data, and the rules of how it is written are written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from aipolicy.api.common import ConditionStatus

__all__ = ["ConditionUpdate", "Event", "EventType", "Outcome"]

EventType = Literal["Normal", "Warning"]
StatusT = TypeVar("StatusT")


@dataclass(frozen=True)
class ConditionUpdate:
    """A condition for the controller to set (it posts an event when status or reason changes)."""

    type: str
    status: ConditionStatus
    reason: str
    """CamelCase, also the event's reason."""
    message: str


@dataclass(frozen=True)
class Event:
    """An event to post on the object: one per change, never one per evaluation."""

    type: EventType
    reason: str
    """CamelCase."""
    message: str


@dataclass(frozen=True)
class Outcome(Generic[StatusT]):
    """One evaluation's result, for the shell to apply as is."""

    status: StatusT
    """The status to write; its conditions are the previous ones (the shell sets `conditions`
    over them, which is how it knows which changed)."""
    conditions: tuple[ConditionUpdate, ...] = ()
    """In the order they are set (a new condition type is appended in that order)."""
    events: tuple[Event, ...] = ()
    """Posted before the events of the conditions that changed."""
    told_elsewhere: tuple[str, ...] = ()
    """Condition types whose change an event in `events` already tells: no second event."""
