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


def test_a_scalar_result_is_told_apart_from_series() -> None:
    from aipolicy.observe.prometheus import _is_scalar

    assert _is_scalar([1795990623.3, "NaN"])
    assert not _is_scalar([{"metric": {}, "value": [1795990623.3, "1"]}])
    assert not _is_scalar(
        [{"metric": {"a": "1"}, "value": [1, "1"]}, {"metric": {"a": "2"}, "value": [1, "2"]}]
    )
    assert not _is_scalar([])


def test_a_refused_query_is_reported_with_prometheus_own_words() -> None:
    from prometheus_api_client import PrometheusApiClientException

    from aipolicy.observe.prometheus import _short

    body = (
        b'{"status":"error","errorType":"bad_data","error":"invalid parameter \\"query\\": 1:5: parse error"}'
    )
    refused = PrometheusApiClientException(f"HTTP Status Code 400 ({body!r})")
    assert _short(refused) == 'Prometheus refused the query: invalid parameter "query": 1:5: parse error'
    assert _short(ConnectionError("Connection refused")) == "ConnectionError: Connection refused"


def test_an_unanswered_query_names_the_prometheus_url() -> None:
    """A wrong --prometheus-url shows in the conditions as itself, first, not buried in the
    client's request line (cut at 300 characters)."""
    from aipolicy.observe.prometheus import _short

    error = ConnectionError("HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded " + "x" * 400)
    text = _short(error, "http://127.0.0.1:9")
    assert text.startswith("Prometheus at http://127.0.0.1:9 did not answer: ConnectionError: ")
    assert len(text) <= 300
