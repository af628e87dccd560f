"""The one "due" rule every kind uses (policy/due.py), in a table whose ids are sentences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipolicy.policy.due import Due, when_due

T0 = datetime(2026, 12, 2, 1, 0, 0, tzinfo=UTC)  # a multiple of 15 s, 30 s and 1 min
S = timedelta(seconds=1)
I15 = timedelta(seconds=15)

CASES = [
    pytest.param(
        True,
        None,
        T0 + 7 * S,
        Due(True, T0, T0 + I15),
        id="aligned: never evaluated is due at once, about the last multiple",
    ),
    pytest.param(
        True,
        T0 - I15,
        T0 + 7 * S,
        Due(True, T0, T0 + I15),
        id="aligned: last evaluated before the latest multiple is due",
    ),
    pytest.param(
        True,
        T0,
        T0 + 7 * S,
        Due(False, T0, T0 + I15),
        id="aligned: last evaluated at the latest multiple is not due until the next",
    ),
    pytest.param(
        True,
        T0 - S,
        T0 + 14 * S,
        Due(True, T0, T0 + I15),
        id="aligned: a checkpoint that lags the multiple (metrics were missing) is due again",
    ),
    pytest.param(
        True,
        T0 + I15,
        T0 + 14 * S,
        Due(False, T0, T0 + I15),
        id="aligned: a clock that stepped back does not evaluate the same instants twice",
    ),
    pytest.param(
        True,
        T0,
        T0 + I15,
        Due(True, T0 + I15, T0 + 2 * I15),
        id="aligned: on the next multiple exactly it is due",
    ),
    pytest.param(
        False,
        None,
        T0 + 7 * S,
        Due(True, T0 + 7 * S, T0 + 22 * S),
        id="own pace: never evaluated is due at once, about now",
    ),
    pytest.param(
        False,
        T0,
        T0 + 14 * S,
        Due(False, T0 + 14 * S, T0 + I15),
        id="own pace: less than an interval after the last evaluation is not due",
    ),
    pytest.param(
        False,
        T0,
        T0 + I15,
        Due(True, T0 + I15, T0 + 2 * I15),
        id="own pace: an interval after the last evaluation is due",
    ),
    pytest.param(
        False,
        T0 + I15,
        T0,
        Due(True, T0, T0 + I15),
        id="own pace: a clock that stepped back is due at once rather than stalled",
    ),
]


@pytest.mark.parametrize(("aligned_to_clock", "last", "now", "expected"), CASES)
def test_when_due(aligned_to_clock: bool, last: datetime | None, now: datetime, expected: Due) -> None:
    assert when_due(interval=I15, aligned_to_clock=aligned_to_clock, last=last, now=now) == expected


@pytest.mark.parametrize("aligned_to_clock", [True, False])
def test_an_interval_that_is_not_positive_is_refused(aligned_to_clock: bool) -> None:
    with pytest.raises(ValueError, match="positive"):
        when_due(interval=timedelta(0), aligned_to_clock=aligned_to_clock, last=None, now=T0)


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.integers(1, 3600),
    st.booleans(),
)
def test_evaluating_when_due_makes_it_not_due_until_next(now: datetime, seconds: int, aligned: bool) -> None:
    """Whatever the clock: evaluated when due (remembering `at`), it is not due again before
    `next`, and due at `next`."""
    interval = timedelta(seconds=seconds)
    first = when_due(interval=interval, aligned_to_clock=aligned, last=None, now=now)
    assert first.due
    assert first.at <= now < first.next
    before = first.next - timedelta(microseconds=1)
    assert not when_due(interval=interval, aligned_to_clock=aligned, last=first.at, now=before).due
    assert when_due(interval=interval, aligned_to_clock=aligned, last=first.at, now=first.next).due
