"""One evaluation step for every kind: its beginning and its end, written once.

A kind's handler is then three lines of its own: gather the observations, call its pure
decision (which returns an :class:`~aipolicy.policy.outcome.Outcome`), and hand the outcome
to :func:`finish`:

* :func:`begin` reads the object as its model; a spec that passed the schema but cannot be
  acted on is reported (Ready=False and Stalled=True with reason InvalidSpec, one event) and
  the evaluation ends there.
* :func:`finish` applies the outcome: posts its events, sets its conditions over the previous
  ones (each one that changed posts one event, unless the outcome tells it elsewhere), records
  observedGeneration and the evaluation's duration, and writes status when it changed, as a
  merge patch that also removes the fields the decision dropped.

Deciding is kept apart from executing (KEDA's scaling executor does the same): nothing here
decides, so every decision is a pure function tested with plain data.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import kopf
from pydantic import BaseModel

from aipolicy.api.common import Condition, ConditionStatus, json_dict
from aipolicy.api.reading import InvalidSpec, read
from aipolicy.controllers import metrics
from aipolicy.controllers.events import StatusConditions, report_invalid_spec, write_status
from aipolicy.policy.outcome import Event, Outcome

__all__ = ["Step", "begin", "finish", "post_events"]

ModelT = TypeVar("ModelT", bound=BaseModel)


class Status(Protocol):
    """What :func:`finish` writes into every kind's status."""

    conditions: list[Condition]
    observed_generation: int


StatusT = TypeVar("StatusT", bound=Status)


@dataclass(frozen=True)
class Step(Generic[ModelT]):
    """One evaluation of one object, between :func:`begin` and :func:`finish`."""

    body: kopf.Body
    patch: kopf.Patch
    model: ModelT
    """The object, read as its model."""
    old_status: dict[str, Any]
    """Status as read, to write only what changed."""
    generation: int
    now: datetime
    started: float
    """time.monotonic() at the start, for the evaluation-duration histogram."""


def begin(
    kind: type[ModelT],
    body: kopf.Body,
    patch: kopf.Patch,
    warn_when: dict[str, ConditionStatus],
    *,
    now: datetime | None = None,
) -> Step[ModelT] | None:
    """The object read as `kind`, or None when its spec was reported invalid."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    old_status = dict(body.get("status") or {})
    parsed = read(kind, body)
    if isinstance(parsed, InvalidSpec):
        report_invalid_spec(body, patch, old_status, parsed.message, warn_when, now)
        return None
    generation = int(body.metadata.get("generation") or 0)
    return Step(body, patch, parsed, old_status, generation, now, started)


def post_events(body: kopf.Body, events: Iterable[Event]) -> None:
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


def finish(
    step: Step[ModelT],
    outcome: Outcome[StatusT],
    warn_when: dict[str, ConditionStatus],
    *,
    events: Iterable[Event] = (),
) -> StatusT:
    """Apply the outcome (the module docstring says how); `events` are posted after the
    outcome's own (those of executing it, such as an alert's delivery). Returns the status
    written."""
    post_events(step.body, [*outcome.events, *events])
    status = outcome.status
    conditions = StatusConditions(status.conditions, step.generation, step.now)
    for update in outcome.conditions:
        conditions.set(update.type, update.status, update.reason, update.message)
    for type_ in outcome.told_elsewhere:
        conditions.told_elsewhere(type_)
    conditions.post_changes(step.body, warn_when)
    status.conditions = conditions.conditions
    status.observed_generation = step.generation
    metrics.EVALUATION_SECONDS.labels(type(step.model).__name__).observe(time.monotonic() - step.started)
    assert isinstance(status, BaseModel)  # every kind's status is its API model
    write_status(step.patch, step.old_status, json_dict(status))
    return outcome.status
