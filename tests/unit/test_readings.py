"""Typed readings from grouped Prometheus answers: missing data is never zero."""

from __future__ import annotations

import math

from aipolicy.observe.prometheus import GroupedResult
from aipolicy.policy.observations import Unavailable, Value

KEY = ("team-a", "llama")


def test_a_value_is_a_value() -> None:
    assert GroupedResult({KEY: 3.0}).reading(KEY) == Value(3.0)


def test_no_series_is_no_data_not_zero() -> None:
    reading = GroupedResult({("team-a", "other"): 1.0}).reading(KEY)
    assert isinstance(reading, Unavailable) and reading.reason == "NoData"


def test_nan_and_infinity_are_not_numbers() -> None:
    for value in (math.nan, math.inf):
        reading = GroupedResult({KEY: value}).reading(KEY)
        assert isinstance(reading, Unavailable) and reading.reason == "NotANumber"


def test_a_failed_query_is_unavailable_for_everyone() -> None:
    failed = GroupedResult({}, Unavailable("QueryError", "connection refused"))
    assert failed.reading(KEY) == Unavailable("QueryError", "connection refused")
    assert failed.reading_or_zero_when_answered(KEY) == Unavailable("QueryError", "connection refused")


def test_an_answered_sum_without_a_series_is_zero_only_when_asked() -> None:
    answered = GroupedResult({})
    assert answered.reading_or_zero_when_answered(KEY) == Value(0.0)
    assert isinstance(answered.reading(KEY), Unavailable)
