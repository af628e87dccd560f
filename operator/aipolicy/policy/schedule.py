"""Pre-warm windows: when a cron schedule in a time zone keeps a floor of replicas.

A pre-warm window of a :class:`~aipolicy.api.inferenceservice.PrewarmSchedule` opens at a cron
fire time ``start`` (wall-clock time in the schedule's IANA time zone) and lasts ``duration``.
Replicas need ``coldStartSeconds`` to become Ready, so the floor is raised that much earlier:
the schedule is *in force* at ``now`` when ``start - coldStart <= now < start + duration``.

Daylight-saving time. The cron expression is matched against local wall-clock times (croniter
over naive datetimes, so croniter never sees a time zone), and each matching wall time ``w``
is turned into an instant by one rule: **the fire instant of ``w`` is the first instant at
which the local clock shows ``w`` or later.** That gives:

- a wall time that happens once: that instant, as usual;
- a wall time that happens twice (fall back: 02:30 on 25 October 2026 in Europe/Paris, 01:30
  on 1 November 2026 in America/New_York): its first occurrence only (PEP 495 ``fold=0``), so a
  daily window opens once, as cronie does for fixed-time jobs;
- a wall time that never happens (spring forward: 02:30 on 29 March 2026 in Europe/Paris, on
  8 March 2026 in America/New_York): the instant the clocks jump, 03:00 CEST = 01:00 UTC and
  03:00 EDT = 07:00 UTC, also as cronie does. The day is not skipped, and the window opens at
  the earliest moment that can be called "02:30 or later": pre-warming a little early costs a
  little GPU time, pre-warming late (or never) costs the SLO the schedule exists for.

The rule is non-decreasing in wall time, which is what lets the search below stop at the
first (latest) fire time it finds. ``duration`` is elapsed time, not wall-clock time: a
window opening at 22:00 for 8h on the night clocks fall back closes at 05:00 local time.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache

from croniter import CroniterBadDateError, croniter

from aipolicy.api.common import parse_duration
from aipolicy.api.inferenceservice import PrewarmSchedule

# No zone shifts its clock by more than 2 hours at once (today's largest DST change is 1 hour,
# Lord Howe's is 30 minutes, historical "double summer time" was 2 hours). Searching fire times
# from this far past the local wall time covers every wall time that maps at or before an
# instant.
_MAX_CLOCK_SHIFT = timedelta(hours=3)


@dataclass(frozen=True)
class PrewarmWindow:
    """One opening of a pre-warm schedule, as UTC instants."""

    schedule: PrewarmSchedule
    start: datetime
    """The cron fire instant: the window opens (demand is expected from here)."""
    warm_from: datetime
    """``start - coldStartSeconds``: the floor rises here, so replicas are Ready at start."""
    end: datetime
    """``start + duration``: the floor is released here."""

    def covers(self, now: datetime) -> bool:
        """Whether the floor is in force at ``now`` (``warm_from <= now < end``)."""
        return self.warm_from <= now < self.end


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    return zoneinfo.ZoneInfo(name)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware (UTC), got naive {now.isoformat()}")


def _wall(instant: datetime, zone: tzinfo) -> datetime:
    """The naive local wall-clock time of an instant."""
    return instant.astimezone(zone).replace(tzinfo=None)


def wall_time_to_instant(wall: datetime, zone: tzinfo) -> datetime:
    """The first instant (UTC) at which the clock of ``zone`` shows ``wall`` or later.

    ``wall`` is naive. See the module docstring for what this means across DST changes.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(first, zone) == wall:
        # The wall time exists; fold=0 is its first occurrence when it happens twice.
        return first
    # The wall time falls in a gap. fold=1 reads it with the offset in force after the jump,
    # which lands before the jump; fold=0 reads it with the offset before, landing after it.
    # The jump itself, the first instant showing `wall` or later, lies in (before, first].
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = 0, int((first - before).total_seconds())
    # Binary search on whole seconds: transitions happen on whole seconds.
    while low < high:
        middle = (low + high) // 2
        if _wall(before + timedelta(seconds=middle), zone) >= wall:
            high = middle
        else:
            low = middle + 1
    return before + timedelta(seconds=low)


def _fires_backwards(expression: str, zone: tzinfo, start_wall: datetime) -> Iterator[datetime]:
    """Cron fire instants, latest first, for wall times strictly before ``start_wall``."""
    times = croniter(expression, start_wall)
    while True:
        try:
            wall = times.get_prev(datetime)
        except CroniterBadDateError:
            # An expression that never matches (such as 30 February) has no fire time.
            return
        yield wall_time_to_instant(wall, zone)


def latest_fire_at_or_before(expression: str, time_zone: str, instant: datetime) -> datetime | None:
    """The latest fire instant (UTC) of a cron expression in a time zone at or before ``instant``.

    None when the expression never fires before ``instant``.
    """
    _require_aware(instant)
    zone = _zone(time_zone)
    # Wall times a little after the instant's own wall time can still map at or before it
    # (the repeated hour of a fall back), so start past them and skip the ones that map later.
    # The mapping is non-decreasing, so the first one at or before the instant is the latest.
    start_wall = _wall(instant, zone) + _MAX_CLOCK_SHIFT
    for fire in _fires_backwards(expression, zone, start_wall):
        if fire <= instant:
            return fire
    return None


def prewarm_window(schedule: PrewarmSchedule, cold_start_seconds: int, now: datetime) -> PrewarmWindow | None:
    """The window of ``schedule`` that is in force at ``now``, or None.

    The window's start is the latest fire instant at or before ``now + coldStart``: any earlier
    window has an earlier end, so if the latest one is over, all are.
    """
    _require_aware(now)
    cold_start = timedelta(seconds=cold_start_seconds)
    start = latest_fire_at_or_before(schedule.schedule, schedule.time_zone, now + cold_start)
    if start is None:
        return None
    window = PrewarmWindow(
        schedule=schedule,
        start=start,
        warm_from=start - cold_start,
        end=start + parse_duration(schedule.duration),
    )
    return window if window.covers(now) else None


def windows_in_force(
    schedules: Iterable[PrewarmSchedule], cold_start_seconds: int, now: datetime
) -> list[PrewarmWindow]:
    """Every schedule's window in force at ``now``, in the order of ``schedules``."""
    windows = (prewarm_window(s, cold_start_seconds, now) for s in schedules)
    return [w for w in windows if w is not None]


def prewarm_in_force(
    schedules: Iterable[PrewarmSchedule], cold_start_seconds: int, now: datetime
) -> PrewarmSchedule | None:
    """The schedule whose floor applies at ``now``: of those in force, the highest minReplicas.

    Ties go to the first in the list, so the answer (and the name in status) is stable.
    """
    best: PrewarmWindow | None = None
    for window in windows_in_force(schedules, cold_start_seconds, now):
        if best is None or window.schedule.min_replicas > best.schedule.min_replicas:
            best = window
    return None if best is None else best.schedule
