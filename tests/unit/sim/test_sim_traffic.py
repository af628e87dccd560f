"""Traffic: the packaged Azure trace, bad input, replay speed-up/scale, synthetic shapes."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from aipolicy.sim.traffic import (
    Burst,
    ConstantRate,
    Diurnal,
    Request,
    Silence,
    Step,
    Trace,
    TraceError,
    TraceReplay,
    TrafficCursor,
    default_trace,
    load_trace,
    parse_trace,
)

AZURE_ROWS = 19_366  # data rows in AzureLLMInferenceTrace_conv.csv (header excluded)
AZURE_PROMPT = 22_361_870
AZURE_OUTPUT = 4_088_665
SHARED = Path("/work/shared/data/azure-llm-trace-2023/AzureLLMInferenceTrace_conv.csv")

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def test_packaged_trace_known_totals() -> None:
    t = default_trace()
    assert len(t) == AZURE_ROWS
    assert t.total_prompt_tokens == AZURE_PROMPT
    assert t.total_output_tokens == AZURE_OUTPUT
    assert t.requests[0] == Request(0.0, 374, 44)
    assert t.requests[1].arrival == pytest.approx(4.314579)  # 18:15:50.995169 - 18:15:46.680590
    assert t.duration == pytest.approx(3501.721937)
    arrivals = [r.arrival for r in t.requests]
    assert arrivals == sorted(arrivals)


@pytest.mark.skipif(not SHARED.exists(), reason="shared data not present")
def test_packaged_copy_matches_shared_csv() -> None:
    assert load_trace(SHARED).requests == default_trace().requests


def test_plain_and_gzip_files_load_the_same(tmp_path: Path) -> None:
    text = HEADER + "2023-11-16 18:15:46.6805900,374,44\r\n2023-11-16 18:15:47.1805900,10,2\r\n"
    plain = tmp_path / "t.csv"
    plain.write_text(text)
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    a, b = load_trace(plain), load_trace(gz)
    assert a.requests == b.requests == (Request(0.0, 374, 44), Request(0.5, 10, 2))


def test_extra_columns_any_order_and_unsorted_rows() -> None:
    t = parse_trace(
        "GeneratedTokens,Other,TIMESTAMP,ContextTokens\n"
        "5,x,2023-01-01 00:00:10,50\n"
        "3,y,2023-01-01 00:00:00,30\n"
    )
    assert t.requests == (Request(0.0, 30, 3), Request(10.0, 50, 5))


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("TIMESTAMP,ContextTokens\n2023-01-01 00:00:00,1\n", 1, "GeneratedTokens"),
        (HEADER + "2023-01-01 00:00:00,1,1\nnot-a-time,1,1\n", 3, "TIMESTAMP"),
        (HEADER + "2023-01-01 00:00:00,1,1\n2023-01-01 00:00:01,1,1\n2023-01-01 00:00:02,-5,1\n",
         4, "negative"),
        (HEADER + "2023-01-01 00:00:00,1,1.5\n", 2, "not an integer"),
        (HEADER + "2023-01-01 00:00:00,1\n", 2, "expected 3 fields"),
        ("", 1, "empty"),
        (HEADER, None, "no requests"),
    ],
)  # fmt: skip
def test_bad_input_raises_trace_error_naming_the_line(
    tmp_path: Path, body: str, line: int | None, fragment: str
) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(body)
    with pytest.raises(TraceError) as info:
        load_trace(p)
    assert info.value.line == line
    assert fragment in str(info.value)
    if line is not None:
        assert f"bad.csv:{line}:" in str(info.value)


def test_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        load_trace(tmp_path / "nope.csv")


def _trace(*reqs: tuple[float, int, int]) -> Trace:
    return Trace(tuple(Request(*r) for r in reqs), "test")


def test_replay_speedup_compresses_time() -> None:
    t = _trace((0.0, 10, 1), (30.0, 20, 2), (60.0, 30, 3))
    got = list(TraceReplay(t, speedup=3.0).requests())
    assert [r.arrival for r in got] == [0.0, 10.0, 20.0]
    assert TraceReplay(t, speedup=3.0).duration == 20.0


def test_replay_integer_scale_multiplies_totals_exactly() -> None:
    t = default_trace().window(0, 600)
    got = list(TraceReplay(t, scale=3).requests())
    assert len(got) == 3 * len(t)
    assert sum(r.prompt_tokens for r in got) == 3 * t.total_prompt_tokens
    assert sum(r.output_tokens for r in got) == 3 * t.total_output_tokens


def test_replay_fractional_scale_is_seeded_and_about_right() -> None:
    t = default_trace()
    a = list(TraceReplay(t, scale=0.5, seed=1).requests())
    b = list(TraceReplay(t, scale=0.5, seed=1).requests())
    c = list(TraceReplay(t, scale=0.5, seed=2).requests())
    assert a == b
    assert a != c
    assert len(a) == pytest.approx(len(t) / 2, rel=0.03)
    assert list(TraceReplay(t, scale=0).requests()) == []


@pytest.mark.parametrize(("speedup", "scale"), [(0, 1), (-1, 1), (1, -0.5), (float("inf"), 1)])
def test_replay_rejects_bad_parameters(speedup: float, scale: float) -> None:
    with pytest.raises(ValueError, match="must be a"):
        TraceReplay(default_trace(), speedup=speedup, scale=scale)


def test_window_rebases() -> None:
    w = _trace((0.0, 1, 1), (5.0, 2, 2), (10.0, 3, 3)).window(5.0, 10.0)
    assert w.requests == (Request(0.0, 2, 2),)


def test_constant_rate_uniform_known_answer() -> None:
    got = list(ConstantRate(2.0, duration=100.0, prompt_tokens=7, output_tokens=3).requests())
    assert len(got) == 200
    assert got[0] == Request(0.25, 7, 3)
    assert got[1].arrival - got[0].arrival == pytest.approx(0.5)
    assert got[-1].arrival == pytest.approx(99.75)


def test_step_burst_silence_counts() -> None:
    step = [r.arrival for r in Step(1.0, 3.0, at=10.0, duration=20.0).requests()]
    assert sum(1 for a in step if a < 10) == 10
    assert sum(1 for a in step if a >= 10) == 30
    burst = [r.arrival for r in Burst(1.0, 10.0, start=10.0, length=5.0, duration=30.0).requests()]
    assert sum(1 for a in burst if 10 <= a < 15) == pytest.approx(50, abs=1)
    assert len(burst) == 25 + 50
    assert list(Silence(duration=1000.0).requests()) == []


def test_diurnal_follows_its_envelope() -> None:
    d = Diurnal(10.0, amplitude=0.8, period=100.0, peak_at=25.0, duration=100.0)
    arrivals = [r.arrival for r in d.requests()]
    assert len(arrivals) == round(d.cumulative(100.0))
    near_peak = sum(1 for a in arrivals if 15 <= a < 35)
    near_trough = sum(1 for a in arrivals if 65 <= a < 85)
    assert near_peak > 3 * near_trough


def test_poisson_arrivals_are_seeded_with_the_right_mean() -> None:
    def times(seed: int) -> list[float]:
        shape = ConstantRate(10.0, duration=1000.0, arrivals="poisson", seed=seed)
        return [r.arrival for r in shape.requests()]

    a = times(3)
    assert a == times(3)
    assert a != times(4)
    assert len(a) == pytest.approx(10_000, abs=300)  # 3 sigma of Poisson(10000)


def test_sizes_drawn_from_a_trace() -> None:
    source = _trace((0.0, 11, 1), (1.0, 22, 2))
    got = list(ConstantRate(5.0, duration=10.0, sizes_from=source, seed=1).requests())
    assert {(r.prompt_tokens, r.output_tokens) for r in got} == {(11, 1), (22, 2)}


def test_cursor_offsets_by_start_and_takes_in_order() -> None:
    c = TrafficCursor(ConstantRate(1.0, duration=3.0), start=100.0)
    assert c.peek_time() == 100.5
    assert [r.arrival for r in c.take_until(101.5)] == [100.5, 101.5]
    assert not c.exhausted
    assert [r.arrival for r in c.take_until(1e9)] == [102.5]
    assert c.exhausted
    assert c.emitted == 3
