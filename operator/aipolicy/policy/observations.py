"""Typed observations of metrics: a value, or the reason there is none. Missing data is never zero."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Negative: an increase or amount below zero, which spend cannot be (a query not over a counter).
# Absent: the service's Ready pods export no series of the metric at all (a renamed metric, the
# wrong metrics preset), as opposed to NoData for a query that found nothing to sum.
UnavailableReason = Literal["NoData", "QueryError", "Stale", "Ambiguous", "NotANumber", "Negative", "Absent"]


@dataclass(frozen=True)
class Value:
    """A metric reading."""

    value: float


@dataclass(frozen=True)
class Unavailable:
    """No usable reading, and why (NoData, QueryError, Stale, Ambiguous, NotANumber, Negative, Absent)."""

    reason: UnavailableReason
    message: str = ""


Reading = Value | Unavailable
