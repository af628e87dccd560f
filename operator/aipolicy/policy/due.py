"""When is an object due for an evaluation: one rule for every kind.

Every object evaluates every `interval`, in one of two ways:

* aligned to the clock (budgets, services' scaling): at the multiples of the interval since
  the epoch, about that instant (:func:`~aipolicy.policy.cycles.aligned`), so that every object
  with the same interval asks Prometheus the same queries at the same instant and the query
  cache answers them all at once. It is due when it last evaluated before the latest such
  instant; whatever remembers that instant (status.lastEvaluated, which survives a restart, or
  the object's memo) is the caller's.
* from its own last evaluation (fallback policies, whose triggers are read "now"): due an
  interval after it. A clock that stepped back makes it due at once rather than stalling it
  for as long as the step.

Either way the answer says when it is next due, for a caller that sleeps or skips until then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aipolicy.policy.cycles import aligned

__all__ = ["Due", "when_due"]


@dataclass(frozen=True)
class Due:
    due: bool
    """Evaluate now."""
    at: datetime
    """The instant to evaluate about: the latest multiple of the interval when aligned, else now."""
    next: datetime
    """When it is due next, if it evaluates now when due (and is left alone when not)."""


def when_due(*, interval: timedelta, aligned_to_clock: bool, last: datetime | None, now: datetime) -> Due:
    """Whether an object last evaluated at `last` (None: never, or forgotten) is due at `now`.

    Raises ValueError for an interval that is not positive (no schedule can honour it).
    """
    if interval <= timedelta(0):
        raise ValueError(f"interval must be positive, got {interval}")
    if aligned_to_clock:
        at = aligned(now, interval)
        return Due(last is None or last < at, at, at + interval)
    if last is None or now < last or now - last >= interval:
        return Due(True, now, now + interval)
    return Due(False, now, last + interval)
