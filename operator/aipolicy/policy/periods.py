"""Budget periods: the span of time spend is counted over, as UTC instants.

Calendar periods (Daily, Weekly from Monday, Monthly from the 1st) start at local midnight in
the period's IANA time zone, so a Paris budget's day has 23 hours when the clocks go forward and
25 when they go back. "Midnight" is the first instant whose local date is the new date: where a
zone skips midnight (America/Santiago, America/Havana and others have moved their clocks at
00:00) the day starts when the clock jumps, and where midnight happens twice it starts at the
first one. Periods tile time: one period's ``end`` is the next one's ``start``.

Rolling periods are the last ``window`` before ``now``; they move with every evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from aipolicy.api.aibudget import Period
from aipolicy.api.common import parse_duration

__all__ = ["PeriodWindow", "current_period", "ensure_utc", "local_midnight", "rolling_window"]

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class PeriodWindow:
    """A half-open span of time [start, end), both tz-aware UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        # Comparing a naive datetime with an aware one raises far from the cause; refuse early.
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("PeriodWindow needs tz-aware datetimes")
        if self.end < self.start:
            raise ValueError(f"PeriodWindow ends ({self.end}) before it starts ({self.start})")

    def __contains__(self, instant: datetime) -> bool:
        return self.start <= instant < self.end

    @property
    def length(self) -> timedelta:
        return self.end - self.start


def ensure_utc(instant: datetime) -> datetime:
    """The same instant in UTC; refuses naive datetimes (their meaning depends on the host)."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant!r} is naive; pass a tz-aware datetime such as one in UTC")
    return instant.astimezone(UTC)


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """The first instant (in UTC) whose local date in ``zone`` is ``day``."""
    naive = datetime.combine(day, time())
    # fold=0 picks the earlier of two midnights when the clocks go back over midnight.
    earlier = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if earlier.astimezone(zone).replace(tzinfo=None) == naive:
        return earlier
    # Midnight falls in a gap (clocks jump forward over it): the day starts at the jump. The
    # jump lies between the two readings of the nonexistent time, so search for it.
    later = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(earlier, later), max(earlier, later)
    while high - low > _TICK:
        middle = low + (high - low) / 2
        if middle.astimezone(zone).date() >= day:
            high = middle
        else:
            low = middle
    return high


def _first_day(period_type: str, today: date) -> date:
    if period_type == "Daily":
        return today
    if period_type == "Weekly":
        return today - timedelta(days=today.weekday())  # Monday is weekday 0
    if period_type == "Monthly":
        return today.replace(day=1)
    raise ValueError(f"{period_type!r} is not a calendar period type")


def _next_first_day(period_type: str, first: date) -> date:
    if period_type == "Daily":
        return first + timedelta(days=1)
    if period_type == "Weekly":
        return first + timedelta(days=7)
    # Monthly: go from the 1st to the next 1st; never add days (months have 28 to 31 of them).
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def rolling_window(period: Period) -> timedelta:
    """The length of a Rolling period; ValueError if it is missing or not positive."""
    if period.window is None:
        raise ValueError("a Rolling period needs a window, such as 24h or 7d")
    window = parse_duration(period.window)
    if window <= timedelta(0):
        raise ValueError(f"the Rolling window {period.window!r} must be longer than zero")
    return window


def current_period(period: Period, now: datetime) -> PeriodWindow:
    """The period that contains ``now`` (for Rolling: [now - window, now))."""
    now = ensure_utc(now)
    if period.type == "Rolling":
        return PeriodWindow(now - rolling_window(period), now)
    zone = ZoneInfo(period.time_zone)
    first = _first_day(period.type, now.astimezone(zone).date())
    return PeriodWindow(
        local_midnight(first, zone), local_midnight(_next_first_day(period.type, first), zone)
    )
