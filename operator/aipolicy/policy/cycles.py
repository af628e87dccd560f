"""Evaluation cycles aligned to the clock.

Objects that evaluate every `interval` do so at the multiples of it since the epoch and ask
Prometheus about that instant, not about "now": then a thousand services (or budgets) with the
same interval ask the same queries at the same instants, and the query cache answers them all
with one request per metric family. Evaluated at their own moments instead, each would need
its own answer, and queries per cycle would grow with the number of objects.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["aligned"]


def aligned(now: datetime, interval: timedelta) -> datetime:
    """The latest multiple of `interval` since the epoch at or before `now`, in UTC."""
    step = interval.total_seconds()
    if step <= 0:
        raise ValueError(f"interval must be positive, got {interval}")
    return datetime.fromtimestamp((now.timestamp() // step) * step, UTC)
