"""Budget periods: calendar boundaries in IANA zones (DST, month ends, skipped midnights), Rolling.

Expected instants are written out by hand from the zones' rules, not computed by the code under
test; the Hypothesis tests then check the invariants on any instant in any zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipolicy.api.aibudget import Period, PeriodType
from aipolicy.policy.periods import PeriodWindow, current_period, local_midnight

H = timedelta(hours=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


CASES = [
    # (id, type, zone, now, start, end)
    ("Paris: day the clocks go forward has 23h", "Daily", "Europe/Paris",
     "2026-03-29T12:00", "2026-03-28T23:00", "2026-03-29T22:00"),
    ("Paris: day the clocks go back has 25h", "Daily", "Europe/Paris",
     "2026-10-25T12:00", "2026-10-24T22:00", "2026-10-25T23:00"),
    ("Paris: an hour after the jump is the same day", "Daily", "Europe/Paris",
     "2026-03-29T01:00", "2026-03-28T23:00", "2026-03-29T22:00"),
    ("New York: spring-forward day has 23h", "Daily", "America/New_York",
     "2026-03-08T12:00", "2026-03-08T05:00", "2026-03-09T04:00"),
    ("New York: fall-back day has 25h", "Daily", "America/New_York",
     "2026-11-01T12:00", "2026-11-01T04:00", "2026-11-02T05:00"),
    ("New York: UTC is on the next day, local time is not", "Daily", "America/New_York",
     "2026-01-15T03:00", "2026-01-14T05:00", "2026-01-15T05:00"),
    ("Sydney: April day DST ends has 25h", "Daily", "Australia/Sydney",
     "2026-04-05T00:00", "2026-04-04T13:00", "2026-04-05T14:00"),
    ("Sydney: October day DST starts has 23h", "Daily", "Australia/Sydney",
     "2026-10-04T03:00", "2026-10-03T14:00", "2026-10-04T13:00"),
    ("Paris: week across the spring change has 167h", "Weekly", "Europe/Paris",
     "2026-03-29T12:00", "2026-03-22T23:00", "2026-03-29T22:00"),
    ("New York: week across fall-back has 169h", "Weekly", "America/New_York",
     "2026-11-01T12:00", "2026-10-26T04:00", "2026-11-02T05:00"),
    ("Sydney: week starts Monday local, Sunday in UTC", "Weekly", "Australia/Sydney",
     "2026-06-14T20:00", "2026-06-14T14:00", "2026-06-21T14:00"),
    ("UTC: week of a Wednesday", "Weekly", "UTC",
     "2026-01-07T08:00", "2026-01-05T00:00", "2026-01-12T00:00"),
    ("UTC: week across the new year", "Weekly", "UTC",
     "2027-01-01T08:00", "2026-12-28T00:00", "2027-01-04T00:00"),
    ("Paris: March loses an hour (743h)", "Monthly", "Europe/Paris",
     "2026-03-15T00:00", "2026-02-28T23:00", "2026-03-31T22:00"),
    ("Paris: 31 March 23:30 local is still March", "Monthly", "Europe/Paris",
     "2026-03-31T21:30", "2026-02-28T23:00", "2026-03-31T22:00"),
    ("Paris: 31 March 22:30 UTC is already April (30 days)", "Monthly", "Europe/Paris",
     "2026-03-31T22:30", "2026-03-31T22:00", "2026-04-30T22:00"),
    ("Sydney: April gains an hour", "Monthly", "Australia/Sydney",
     "2026-04-10T00:00", "2026-03-31T13:00", "2026-04-30T14:00"),
    ("UTC: February of a common year has 28 days", "Monthly", "UTC",
     "2026-02-28T12:00", "2026-02-01T00:00", "2026-03-01T00:00"),
    ("UTC: last microsecond of a leap February", "Monthly", "UTC",
     "2028-02-29T23:59:59.999999", "2028-02-01T00:00", "2028-03-01T00:00"),
    ("UTC: 31 January then February", "Monthly", "UTC",
     "2026-01-31T23:00", "2026-01-01T00:00", "2026-02-01T00:00"),
    ("UTC: December rolls into the next year", "Monthly", "UTC",
     "2026-12-31T12:00", "2026-12-01T00:00", "2027-01-01T00:00"),
    ("New York: 1 March 01:00 UTC is still February local", "Monthly", "America/New_York",
     "2028-03-01T01:00", "2028-02-01T05:00", "2028-03-01T05:00"),
    ("Santiago: midnight skipped, the day starts at the jump", "Daily", "America/Santiago",
     "2026-09-06T05:00", "2026-09-06T04:00", "2026-09-07T03:00"),
    ("Havana: midnight skipped in March", "Daily", "America/Havana",
     "2026-03-08T12:00", "2026-03-08T05:00", "2026-03-09T04:00"),
    ("Havana: midnight twice, the day starts at the first", "Daily", "America/Havana",
     "2026-11-01T12:00", "2026-11-01T04:00", "2026-11-02T05:00"),
    ("a boundary instant belongs to the new period", "Daily", "Europe/Paris",
     "2026-03-29T22:00", "2026-03-29T22:00", "2026-03-30T22:00"),
    ("a microsecond before belongs to the old one", "Daily", "Europe/Paris",
     "2026-03-29T21:59:59.999999", "2026-03-28T23:00", "2026-03-29T22:00"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("period_type", "zone", "now", "start", "end"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_calendar_period_boundaries(
    period_type: PeriodType, zone: str, now: str, start: str, end: str
) -> None:
    window = current_period(Period(type=period_type, time_zone=zone), utc(now))
    assert window == PeriodWindow(utc(start), utc(end))
    assert window.start.tzinfo is UTC


def test_now_in_another_offset_is_the_same_instant() -> None:
    period = Period(type="Daily", time_zone="Europe/Paris")
    in_utc = utc("2026-03-29T12:00")
    in_tokyo = in_utc.astimezone(ZoneInfo("Asia/Tokyo"))
    assert current_period(period, in_tokyo) == current_period(period, in_utc)


@pytest.mark.parametrize(
    ("window", "now", "start"),
    [
        pytest.param("24h", "2026-03-29T12:00", "2026-03-28T12:00", id="24h ends now"),
        pytest.param("7d", "2026-03-29T12:00", "2026-03-22T12:00", id="7d is 168h across DST"),
        pytest.param("90m", "2026-01-01T00:30", "2025-12-31T23:00", id="90m across the year"),
    ],
)
def test_rolling_window_is_the_last_window_before_now(window: str, now: str, start: str) -> None:
    period = Period(type="Rolling", window=window, time_zone="Europe/Paris")
    assert current_period(period, utc(now)) == PeriodWindow(utc(start), utc(now))


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        current_period(Period(), datetime(2026, 3, 1))


def test_period_window_refuses_naive_and_backwards() -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        PeriodWindow(datetime(2026, 3, 1), utc("2026-03-02T00:00"))
    with pytest.raises(ValueError, match="before"):
        PeriodWindow(utc("2026-03-02T00:00"), utc("2026-03-01T00:00"))


def test_rolling_without_a_window_is_refused() -> None:
    # The CRD refuses it too; model_construct skips pydantic's validation to get here.
    with pytest.raises(ValueError, match="window"):
        current_period(Period.model_construct(type="Rolling", window=None), utc("2026-01-01"))


# ------------------------------------------------------------------------------------------
# Invariants, for any instant in zones with ordinary DST and in zones with odd histories:
# midnight skipped (Santiago, Havana, Asuncion, Beirut, Sao Paulo until 2019), half-hour DST
# (Lord Howe), a whole day skipped (Apia, 30 December 2011), a 45-minute offset (Chatham).
ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Australia/Sydney",
    "America/Santiago",
    "America/Havana",
    "America/Asuncion",
    "Asia/Beirut",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "Pacific/Chatham",
    "Asia/Kolkata",
]
instants = st.datetimes(
    min_value=datetime(1995, 1, 1), max_value=datetime(2045, 1, 1), timezones=st.just(UTC)
)
calendar_types = st.sampled_from(["Daily", "Weekly", "Monthly"])
TICK = timedelta(microseconds=1)


@settings(max_examples=300)
@given(zone=st.sampled_from(ZONES), period_type=calendar_types, now=instants)
def test_calendar_period_contains_now_starts_at_local_midnight_and_tiles(
    zone: str, period_type: PeriodType, now: datetime
) -> None:
    period = Period(type=period_type, time_zone=zone)
    tz = ZoneInfo(zone)
    window = current_period(period, now)

    assert window.start <= now < window.end
    # The start is the first instant of its local date: a microsecond earlier is another date.
    first_day = window.start.astimezone(tz).date()
    assert (window.start - TICK).astimezone(tz).date() < first_day
    assert (window.end - TICK).astimezone(tz).date() < window.end.astimezone(tz).date()
    if period_type == "Weekly":
        assert first_day.weekday() == 0
    if period_type == "Monthly":
        assert first_day.day == 1
    # Periods tile: the next starts where this one ends, the previous ends where it starts.
    assert current_period(period, window.end).start == window.end
    assert current_period(period, window.start - TICK).end == window.start


@given(zone=st.sampled_from(["Europe/Paris", "America/New_York", "Australia/Sydney"]), now=instants)
def test_lengths_in_dst_zones_differ_from_nominal_by_at_most_an_hour(zone: str, now: datetime) -> None:
    day = current_period(Period(type="Daily", time_zone=zone), now)
    week = current_period(Period(type="Weekly", time_zone=zone), now)
    month = current_period(Period(type="Monthly", time_zone=zone), now)
    assert day.length in (23 * H, 24 * H, 25 * H)
    assert week.length in (167 * H, 168 * H, 169 * H)
    local = month.start.astimezone(ZoneInfo(zone))
    days = (month.end.astimezone(ZoneInfo(zone)).date() - local.date()).days
    assert days in (28, 29, 30, 31)
    assert abs(month.length - days * 24 * H) <= H


@given(zone=st.sampled_from(ZONES), now=instants)
def test_local_midnight_maps_back_to_midnight_when_it_exists(zone: str, now: datetime) -> None:
    tz = ZoneInfo(zone)
    day = now.astimezone(tz).date()
    start = local_midnight(day, tz).astimezone(tz)
    assert start.date() == day
    # Where midnight exists it is used; otherwise the day starts less than two hours later.
    assert start.time().hour < 2


class GapOverMidnight(tzinfo):
    """A zone whose clocks jump from 23:30 to 00:30 on 1 June 2026 (offset 0 to +1h).

    No IANA zone does this today (they jump at or after midnight), but nothing in the rules
    forbids it; a fold=0 reading of the missing midnight would start the day 30 minutes late.
    """

    JUMP = datetime(2026, 6, 1, 23, 30)  # UTC, and local before the jump

    def utcoffset(self, dt: datetime | None) -> timedelta:
        assert dt is not None
        local = dt.replace(tzinfo=None)
        if local < self.JUMP:
            return timedelta(0)
        if local >= self.JUMP + H:
            return H
        return H if dt.fold else timedelta(0)  # in the gap: PEP 495 semantics

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "GAP"

    def fromutc(self, dt: datetime) -> datetime:
        return dt + (timedelta(0) if dt.replace(tzinfo=None) < self.JUMP else H)


def test_a_midnight_inside_a_gap_starts_the_day_at_the_jump() -> None:
    zone = GapOverMidnight()
    start = local_midnight(date(2026, 6, 2), zone)
    assert start == utc("2026-06-01T23:30")
    assert start.astimezone(zone).date() == date(2026, 6, 2)
    assert (start - TICK).astimezone(zone).date() == date(2026, 6, 1)
