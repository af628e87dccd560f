from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipolicy.policy.cycles import aligned


def test_aligned_is_the_latest_multiple_at_or_before_now() -> None:
    now = datetime(2026, 11, 29, 21, 0, 14, 900_000, tzinfo=UTC)
    assert aligned(now, timedelta(seconds=15)) == datetime(2026, 11, 29, 21, 0, 0, tzinfo=UTC)
    on_the_dot = datetime(2026, 11, 29, 21, 0, 15, tzinfo=UTC)
    assert aligned(on_the_dot, timedelta(seconds=15)) == on_the_dot


def test_aligned_is_the_same_instant_in_any_time_zone() -> None:
    paris = timezone(timedelta(hours=1))
    now = datetime(2026, 11, 29, 22, 0, 7, tzinfo=paris)
    assert aligned(now, timedelta(seconds=5)) == datetime(2026, 11, 29, 21, 0, 5, tzinfo=UTC)


def test_a_zero_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        aligned(datetime.now(UTC), timedelta(0))


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.integers(1, 3600),
)
def test_everyone_in_the_same_interval_gets_the_same_instant(now: datetime, seconds: int) -> None:
    interval = timedelta(seconds=seconds)
    at = aligned(now, interval)
    assert at <= now < at + interval
    assert aligned(at + interval - timedelta(microseconds=1), interval) == at
