"""Pre-warm windows: cron fire times in a time zone, cold-start lead, and daylight-saving changes.

The table pins the chosen DST semantics (a wall time that never happens fires when the clocks
jump; one that happens twice fires once, at its first occurrence); the Hypothesis property
checks the search against a brute-force oracle that walks every minute.
"""

from __future__ import annotations

import bisect
import zoneinfo
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from aipolicy.api.common import parse_duration
from aipolicy.api.inferenceservice import PrewarmSchedule
from aipolicy.policy.schedule import (
    latest_fire_at_or_before,
    prewarm_in_force,
    prewarm_window,
    wall_time_to_instant,
)

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def schedule(
    cron: str, zone: str = "UTC", duration: str = "1h", min_replicas: int = 2, name: str = "w"
) -> PrewarmSchedule:
    return PrewarmSchedule(
        name=name, schedule=cron, time_zone=zone, duration=duration, min_replicas=min_replicas
    )


# ----------------------------------------------------------------------------------------------
# Wall time → instant, across DST changes.
@pytest.mark.parametrize(
    ("zone", "wall", "expected"),
    [
        pytest.param(PARIS, datetime(2026, 3, 28, 2, 30), utc(2026, 3, 28, 1, 30), id="paris-winter"),
        # 29 March 2026: 02:00 CET jumps to 03:00 CEST at 01:00 UTC; 02:30 never happens.
        pytest.param(PARIS, datetime(2026, 3, 29, 2, 30), utc(2026, 3, 29, 1, 0), id="paris-gap"),
        pytest.param(PARIS, datetime(2026, 3, 29, 2, 0), utc(2026, 3, 29, 1, 0), id="paris-gap-start"),
        pytest.param(PARIS, datetime(2026, 3, 29, 3, 0), utc(2026, 3, 29, 1, 0), id="paris-gap-end"),
        pytest.param(PARIS, datetime(2026, 3, 29, 1, 59), utc(2026, 3, 29, 0, 59), id="paris-before-gap"),
        # 25 October 2026: 03:00 CEST falls back to 02:00 CET at 01:00 UTC; 02:30 happens twice.
        pytest.param(PARIS, datetime(2026, 10, 25, 2, 30), utc(2026, 10, 25, 0, 30), id="paris-fold"),
        pytest.param(PARIS, datetime(2026, 10, 25, 3, 0), utc(2026, 10, 25, 2, 0), id="paris-after-fold"),
        # 8 March 2026: 02:00 EST jumps to 03:00 EDT at 07:00 UTC.
        pytest.param(NEW_YORK, datetime(2026, 3, 8, 2, 30), utc(2026, 3, 8, 7, 0), id="ny-gap"),
        # 1 November 2026: 02:00 EDT falls back to 01:00 EST at 06:00 UTC; 01:30 happens twice.
        pytest.param(NEW_YORK, datetime(2026, 11, 1, 1, 30), utc(2026, 11, 1, 5, 30), id="ny-fold"),
        # Lord Howe moves by 30 minutes: 02:00 (+10:30) → 02:30 (+11) on 4 October 2026.
        pytest.param(
            "Australia/Lord_Howe", datetime(2026, 10, 4, 2, 15), utc(2026, 10, 3, 15, 30), id="half-hour-gap"
        ),
    ],
)
def test_wall_time_to_instant(zone: str, wall: datetime, expected: datetime) -> None:
    assert wall_time_to_instant(wall, zoneinfo.ZoneInfo(zone)) == expected


# ----------------------------------------------------------------------------------------------
# Windows: when a schedule is in force.
@pytest.mark.parametrize(
    ("sched", "cold", "now", "start"),
    [
        # Weekdays 08:00 Paris, 10h, cold start 10 min. 4 May 2026 is a Monday (CEST, UTC+2).
        pytest.param(
            schedule("0 8 * * 1-5", PARIS, "10h"), 600, utc(2026, 5, 4, 5, 49, 59), None, id="before-warm"
        ),
        pytest.param(
            schedule("0 8 * * 1-5", PARIS, "10h"),
            600,
            utc(2026, 5, 4, 5, 50),
            utc(2026, 5, 4, 6),
            id="warm-from",
        ),
        pytest.param(
            schedule("0 8 * * 1-5", PARIS, "10h"),
            600,
            utc(2026, 5, 4, 15, 59, 59),
            utc(2026, 5, 4, 6),
            id="last-second",
        ),
        pytest.param(
            schedule("0 8 * * 1-5", PARIS, "10h"), 600, utc(2026, 5, 4, 16), None, id="end-excluded"
        ),
        pytest.param(schedule("0 8 * * 1-5", PARIS, "10h"), 600, utc(2026, 5, 9, 7), None, id="saturday"),
        # Winter: 08:00 CET is 07:00 UTC.
        pytest.param(
            schedule("0 8 * * 1-5", PARIS, "10h"),
            0,
            utc(2026, 1, 5, 7),
            utc(2026, 1, 5, 7),
            id="winter-offset",
        ),
        # Friday's warm-up starts before midnight UTC of a Monday window? No: Sunday night 23:55
        # Paris is within a Monday 00:00 window's cold start.
        pytest.param(
            schedule("0 0 * * 1", PARIS, "1h"),
            600,
            utc(2026, 5, 3, 21, 50),
            utc(2026, 5, 3, 22),
            id="cold-start-across-midnight",
        ),
        # Spring forward: 02:30 does not exist; the window opens when the clocks jump (01:00 UTC).
        pytest.param(
            schedule("30 2 * * *", PARIS, "1h"), 0, utc(2026, 3, 29, 0, 59, 59), None, id="paris-gap-before"
        ),
        pytest.param(
            schedule("30 2 * * *", PARIS, "1h"),
            0,
            utc(2026, 3, 29, 1),
            utc(2026, 3, 29, 1),
            id="paris-gap-open",
        ),
        pytest.param(
            schedule("30 2 * * *", PARIS, "1h"),
            600,
            utc(2026, 3, 29, 0, 50),
            utc(2026, 3, 29, 1),
            id="paris-gap-cold",
        ),
        pytest.param(
            schedule("30 2 * * *", PARIS, "1h"), 0, utc(2026, 3, 29, 2), None, id="paris-gap-closed"
        ),
        # The day after, 02:30 CEST is 00:30 UTC again.
        pytest.param(
            schedule("30 2 * * *", PARIS, "1h"),
            0,
            utc(2026, 3, 30, 0, 30),
            utc(2026, 3, 30, 0, 30),
            id="paris-day-after",
        ),
        # Fall back: 02:30 happens at 00:30 UTC and again at 01:30 UTC; the window opens once.
        pytest.param(
            schedule("30 2 * * *", PARIS, "30m"),
            0,
            utc(2026, 10, 25, 0, 45),
            utc(2026, 10, 25, 0, 30),
            id="paris-fold-first",
        ),
        pytest.param(
            schedule("30 2 * * *", PARIS, "30m"), 0, utc(2026, 10, 25, 1, 45), None, id="paris-fold-second"
        ),
        # Duration is elapsed time: 22:00 CEST + 8h on the fall-back night ends at 05:00 CET.
        pytest.param(
            schedule("0 22 * * *", PARIS, "8h"),
            0,
            utc(2026, 10, 25, 3, 59),
            utc(2026, 10, 24, 20),
            id="elapsed-duration",
        ),
        pytest.param(
            schedule("0 22 * * *", PARIS, "8h"), 0, utc(2026, 10, 25, 4), None, id="elapsed-duration-end"
        ),
        pytest.param(
            schedule("30 2 * * *", NEW_YORK, "1h"),
            300,
            utc(2026, 3, 8, 6, 55),
            utc(2026, 3, 8, 7),
            id="ny-gap-cold",
        ),
        pytest.param(
            schedule("30 2 * * *", NEW_YORK, "1h"), 0, utc(2026, 3, 8, 6, 59), None, id="ny-gap-before"
        ),
        pytest.param(
            schedule("30 1 * * *", NEW_YORK, "20m"),
            0,
            utc(2026, 11, 1, 5, 40),
            utc(2026, 11, 1, 5, 30),
            id="ny-fold-first",
        ),
        pytest.param(
            schedule("30 1 * * *", NEW_YORK, "20m"), 0, utc(2026, 11, 1, 6, 40), None, id="ny-fold-second"
        ),
        # In the repeated hour (01:45 UTC = the second 02:45 CET), wall times 02:50-02:59 have
        # already fired in their first occurrence (00:50 UTC): the latest opening is 00:50.
        pytest.param(
            schedule("*/10 * * * *", PARIS, "70m"),
            0,
            utc(2026, 10, 25, 1, 45),
            utc(2026, 10, 25, 0, 50),
            id="paris-fold-wall-times-ahead",
        ),
        # A window longer than the period: the latest opening decides.
        pytest.param(
            schedule("0 * * * *", "UTC", "90m"),
            0,
            utc(2026, 5, 4, 10, 20),
            utc(2026, 5, 4, 10),
            id="overlapping",
        ),
        pytest.param(schedule("0 0 30 2 *", "UTC", "1d"), 3600, utc(2026, 5, 4, 10), None, id="never-fires"),
        pytest.param(
            schedule("@daily", "Asia/Kolkata", "2h"),
            0,
            utc(2026, 5, 4, 19),
            utc(2026, 5, 4, 18, 30),
            id="macro-half-hour-zone",
        ),
    ],
)
def test_prewarm_window(sched: PrewarmSchedule, cold: int, now: datetime, start: datetime | None) -> None:
    window = prewarm_window(sched, cold, now)
    if start is None:
        assert window is None
        assert prewarm_in_force([sched], cold, now) is None
        return
    assert window is not None
    assert window.start == start
    assert window.warm_from == start - timedelta(seconds=cold)
    assert window.end == start + parse_duration(sched.duration)
    assert prewarm_in_force([sched], cold, now) == sched


def test_highest_floor_wins_and_ties_go_to_the_first() -> None:
    now = utc(2026, 5, 4, 10, 30)
    low = schedule("0 10 * * *", min_replicas=2, name="low")
    high = schedule("0 9 * * *", duration="3h", min_replicas=5, name="high")
    twin = schedule("15 10 * * *", min_replicas=5, name="twin")
    later = schedule("0 11 * * *", min_replicas=9, name="later")
    assert prewarm_in_force([low, high, twin, later], 0, now) == high
    assert prewarm_in_force([low, twin, high], 0, now) == twin
    assert prewarm_in_force([later], 0, now) is None
    assert prewarm_in_force([later], 1800, now) == later  # its cold start has begun
    assert prewarm_in_force([], 0, now) is None


def test_latest_fire_is_inclusive() -> None:
    assert latest_fire_at_or_before("0 8 * * *", "UTC", utc(2026, 5, 4, 8)) == utc(2026, 5, 4, 8)
    assert latest_fire_at_or_before("0 8 * * *", "UTC", utc(2026, 5, 4, 7, 59, 59)) == utc(2026, 5, 3, 8)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        prewarm_in_force([schedule("0 8 * * *")], 0, datetime(2026, 5, 4, 8))


# ----------------------------------------------------------------------------------------------
# Property: the search agrees with an oracle that walks every minute.
ZONES = [
    "UTC",
    PARIS,
    NEW_YORK,
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Sao_Paulo",  # DST (until 2019) changed at midnight: 00:00 did not exist
    "America/Santiago",
    "Pacific/Chatham",  # UTC+12:45 / +13:45
    "Asia/Kolkata",
]
CRONS = [
    "30 2 * * *",
    "30 1 * * *",
    "59 1 * * *",
    "*/10 * * * *",
    "0 2 * * *",
    "0 3 * * *",
    "0 0 * * *",
    "*/15 * * * *",
    "30 * * * *",
    "0 */2 * * *",
    "0 8 * * 1-5",
    "45 1 * * 0",
    "15 2 * 3,4,9,10,11 *",
    "@hourly",
]


@cache
def _transitions(zone_name: str) -> tuple[datetime, ...]:
    """The instants (to the minute) at which the zone's offset changes, 2016-2030."""
    zone = zoneinfo.ZoneInfo(zone_name)

    def offset(instant: datetime) -> timedelta | None:
        return instant.astimezone(zone).utcoffset()

    found: list[datetime] = []
    day = utc(2016, 1, 1, 12)
    while day.year < 2031:
        following = day + timedelta(days=1)
        if offset(day) != offset(following):
            low, high = 0, 24 * 60  # minutes after `day`; the change is in (low, high]
            while high - low > 1:
                middle = (low + high) // 2
                if offset(day + timedelta(minutes=middle)) == offset(day):
                    low = middle
                else:
                    high = middle
            found.append(day + timedelta(minutes=high))
        day = following
    return tuple(found) or (utc(2026, 3, 29, 1),)


@st.composite
def near_transitions(draw: st.DrawFn) -> tuple[str, datetime]:
    """An instant within 8 hours of a DST change, on a whole minute more often than not (so
    that window edges, which are whole minutes, are hit exactly)."""
    zone = draw(st.sampled_from(ZONES))
    transition = draw(st.sampled_from(_transitions(zone)))
    minutes = draw(st.integers(min_value=-8 * 60, max_value=8 * 60))
    seconds = draw(st.sampled_from([0, 0, 0, 1, 59, 30]))
    return zone, transition + timedelta(minutes=minutes, seconds=seconds)


def oracle_fires(cron: str, zone_name: str, low: datetime, high: datetime) -> list[datetime]:
    """Fire instants in [low, high], by definition: a matching wall time w fires at the first
    instant the local clock shows w or later. Walks every UTC minute around the range."""
    zone = zoneinfo.ZoneInfo(zone_name)
    first = (low - timedelta(hours=4)).replace(second=0, microsecond=0)
    minutes = [
        first + timedelta(minutes=i) for i in range(int((high - first) / timedelta(minutes=1)) + 4 * 60 + 2)
    ]
    walls = [m.astimezone(zone).replace(tzinfo=None) for m in minutes]
    highest: list[datetime] = []
    for wall in walls:
        highest.append(max(wall, highest[-1]) if highest else wall)
    fires: set[datetime] = set()
    # Matching wall times, walking forward (the code under test walks backwards).
    times = croniter(cron, min(walls) - timedelta(minutes=1))
    wall = times.get_next(datetime)
    while wall <= highest[-1]:
        instant = minutes[bisect.bisect_left(highest, wall)]
        if low <= instant <= high:
            fires.add(instant)
        wall = times.get_next(datetime)
    return sorted(fires)


@settings(max_examples=300, deadline=None)
@given(
    where=near_transitions(),
    cron=st.sampled_from(CRONS),
    cold_minutes=st.integers(min_value=0, max_value=90),
    duration_minutes=st.integers(min_value=1, max_value=180),
)
def test_window_matches_minute_oracle(
    where: tuple[str, datetime], cron: str, cold_minutes: int, duration_minutes: int
) -> None:
    zone, now = where
    sched = schedule(cron, zone, f"{duration_minutes}m")
    cold = timedelta(minutes=cold_minutes)
    duration = timedelta(minutes=duration_minutes)
    # In force iff some fire f has f - cold <= now < f + duration.
    fires = oracle_fires(cron, zone, now - duration + timedelta(microseconds=1), now + cold)
    window = prewarm_window(sched, cold_minutes * 60, now)
    if not fires:
        assert window is None
    else:
        assert window is not None
        assert window.start == fires[-1]
