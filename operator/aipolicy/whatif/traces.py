"""Traces for what-if runs: the Azure LLM inference format and a generic CSV.

* Azure (AzureLLMInferenceDataset2023/2024): ``TIMESTAMP,ContextTokens,GeneratedTokens``, the
  timestamp an ISO date-time.
* Generic: ``timestamp,prompt_tokens,output_tokens``, the timestamp either seconds (a number,
  such as a Unix time or an offset) or an ISO 8601 date-time.

A bad line is refused with its line number (the header is line 1) and its column (1-based, and
its name). Requests are returned sorted by arrival, re-based so the first arrives at 0 s; the
first arrival's wall-clock time is kept (time-of-day matters to pre-warm schedules).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["FORMATS", "Trace", "TraceError", "load", "parse", "synthetic"]

FORMATS: dict[str, tuple[str, str, str]] = {
    "azure": ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
    "generic": ("timestamp", "prompt_tokens", "output_tokens"),
}


class TraceError(ValueError):
    """A trace that cannot be used: the message names the file, line and column."""


@dataclass(frozen=True)
class Trace:
    """Arrival offsets (seconds, sorted, the first 0.0) with prompt and output tokens."""

    arrivals: tuple[float, ...]
    prompt_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    start: datetime
    source: str

    def __len__(self) -> int:
        return len(self.arrivals)

    @property
    def duration(self) -> float:
        return self.arrivals[-1] if self.arrivals else 0.0


def _timestamp(text: str) -> float | datetime:
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        stamp = datetime.fromisoformat(text)
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    if not math.isfinite(seconds):
        raise ValueError("not a finite number")
    return seconds


def parse(text: str, source: str = "<string>") -> Trace:
    """Parse trace text (either format, told apart by the header); raises TraceError."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        raise TraceError(f"{source}:1: empty file; expected a header row") from None
    except csv.Error as exc:
        raise TraceError(f"{source}:1: bad CSV: {exc}") from None
    columns = None
    for names in FORMATS.values():
        if all(n in header for n in names):
            columns = names
            break
    if columns is None:
        wanted = " or ".join(",".join(names) for names in FORMATS.values())
        raise TraceError(f"{source}:1: header {','.join(header)!r} has neither {wanted}")
    index = [header.index(n) for n in columns]
    rows: list[tuple[float | datetime, int, int]] = []
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise TraceError(f"{source}:{line}: expected {len(header)} fields, found {len(row)}")
            ts_col = index[0]
            try:
                stamp = _timestamp(row[ts_col])
            except ValueError:
                raise TraceError(
                    f"{source}:{line}: column {ts_col + 1} ({columns[0]}): {row[ts_col]!r} is not a "
                    "timestamp (seconds or an ISO 8601 date-time)"
                ) from None
            counts = []
            for col, name in zip(index[1:], columns[1:], strict=True):
                cell = row[col].strip()
                try:
                    value = int(cell)
                except ValueError:
                    raise TraceError(
                        f"{source}:{line}: column {col + 1} ({name}): {cell!r} is not a whole number"
                    ) from None
                if value < 0:
                    raise TraceError(f"{source}:{line}: column {col + 1} ({name}): {value} is negative")
                counts.append(value)
            if rows and type(stamp) is not type(rows[0][0]):
                raise TraceError(
                    f"{source}:{line}: column {ts_col + 1} ({columns[0]}): mixes seconds and date-times"
                )
            rows.append((stamp, counts[0], counts[1]))
    except csv.Error as exc:
        raise TraceError(f"{source}:{reader.line_num}: bad CSV: {exc}") from None
    if not rows:
        raise TraceError(f"{source}: no requests after the header")
    # datetimes become Unix seconds; plain seconds that look like Unix times keep their date
    seconds = [r[0].timestamp() if isinstance(r[0], datetime) else r[0] for r in rows]
    order = sorted(range(len(rows)), key=seconds.__getitem__)
    first = seconds[order[0]]
    offsets = [seconds[i] - first for i in order]
    start = datetime.fromtimestamp(first if first > 1e9 else 0.0, UTC)
    rows = [rows[i] for i in order]
    return Trace(tuple(offsets), tuple(r[1] for r in rows), tuple(r[2] for r in rows), start, source)


def load(path: str | Path) -> Trace:
    """Read a trace file (``.gz`` is decompressed)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        if p.suffix == ".gz":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise TraceError(f"{p}: cannot read: {exc}") from None
    return parse(text, str(p))


def synthetic(
    *,
    hours: float,
    mean_rate: float,
    period_s: float,
    amplitude: float,
    burst_every_s: float,
    burst_factor: float,
    sizes: Trace,
    seed: int,
    start: datetime,
) -> Trace:
    """Diurnal plus bursts: a Poisson stream whose rate is ``mean * (1 + amplitude * sin)`` over
    ``period_s``, with one-second bursts at ``burst_factor`` times the mean rate arriving as a
    Poisson process (one every ``burst_every_s`` on average). Sizes are drawn from ``sizes``."""
    import random

    rng = random.Random(seed)
    end = hours * 3600.0
    peak = mean_rate * (1 + amplitude)
    times: list[float] = []
    t = 0.0
    while True:  # thinning of a Poisson process at the peak rate
        t += rng.expovariate(peak)
        if t >= end:
            break
        rate = mean_rate * (1 + amplitude * math.sin(2 * math.pi * t / period_s))
        if rng.random() * peak < rate:
            times.append(t)
    b = 0.0
    while True:
        b += rng.expovariate(1 / burst_every_s)
        if b >= end - 1:
            break
        k = 0.0
        while True:  # burst_factor x mean for one second
            k += rng.expovariate(mean_rate * burst_factor)
            if k >= 1.0:
                break
            times.append(b + k)
    times.sort()
    picks = [rng.randrange(len(sizes)) for _ in times]
    first = times[0]
    return Trace(
        tuple(x - first for x in times),
        tuple(sizes.prompt_tokens[i] for i in picks),
        tuple(sizes.output_tokens[i] for i in picks),
        start,
        f"synthetic(diurnal {period_s / 3600:g} h x{1 + amplitude:g}, bursts {burst_factor:g}x mean every "
        f"{burst_every_s:g} s, seed {seed})",
    )
