"""Traces in the Azure and the generic format; a bad line is refused naming line and column."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from aipolicy.whatif.traces import TraceError, load, parse

AZURE = "/work/shared/data/azure-llm-trace-2023/AzureLLMInferenceTrace_conv.csv"


def test_azure_format() -> None:
    t = parse(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
    )
    assert t.arrivals == (0.0, pytest.approx(4.314579))
    assert t.prompt_tokens == (374, 396)
    assert t.output_tokens == (44, 109)
    assert t.start == datetime(2023, 11, 16, 18, 15, 46, 680590, tzinfo=UTC)


def test_generic_format_in_seconds_is_sorted_and_rebased() -> None:
    t = parse("timestamp,prompt_tokens,output_tokens\n10.5,100,20\n3,50,5\n")
    assert t.arrivals == (0.0, 7.5)
    assert t.prompt_tokens == (50, 100)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("1.0,12x,5", "<string>:3: column 2 (prompt_tokens): '12x' is not a whole number"),
        ("1.0,12,-5", "<string>:3: column 3 (output_tokens): -5 is negative"),
        ("yesterday,12,5", "<string>:3: column 1 (timestamp): 'yesterday' is not a timestamp"),
        ("1.0,12", "<string>:3: expected 3 fields, found 2"),
    ],
)
def test_bad_line_names_line_and_column(row: str, expected: str) -> None:
    with pytest.raises(TraceError) as err:
        parse(f"timestamp,prompt_tokens,output_tokens\n0,1,1\n{row}\n")
    assert str(err.value).startswith(expected)


def test_unknown_header_is_refused() -> None:
    with pytest.raises(TraceError, match=r":1: header 'a,b,c' has neither"):
        parse("a,b,c\n1,2,3\n")


@pytest.mark.skipif(not Path(AZURE).exists(), reason="shared trace not present")
def test_shared_azure_trace_loads() -> None:
    t = load(AZURE)
    assert len(t) == 19366
    assert 3400 < t.duration < 3600


def test_trace_from_recorded_counts_keeps_counts_and_tokens() -> None:
    from aipolicy.whatif.prometheus import trace_from_counts

    # three 15 s steps: 3 requests (3000 in, 300 out), none, 1.5 + 1.5 requests (carry)
    samples = [(1015.0, 3, 3000, 300), (1030.0, 0, 0, 0), (1045.0, 1.5, 600, 60), (1060.0, 1.5, 600, 60)]
    t = trace_from_counts(samples, 15, "prom")
    assert len(t) == 6
    assert sum(t.prompt_tokens) == 3000 + 3 * 400
    assert t.arrivals[:3] == (0.0, 5.0, 10.0)  # spread over the step
    assert t.start == datetime.fromtimestamp(1002.5, UTC)


def test_no_recorded_requests_is_refused_not_simulated() -> None:
    from aipolicy.whatif.prometheus import trace_from_counts

    with pytest.raises(TraceError, match="no data"):
        trace_from_counts([(1015.0, 0, 0, 0)], 15, "prom")
    with pytest.raises(TraceError, match="no data"):
        trace_from_counts([], 15, "prom")
