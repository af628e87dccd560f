"""Traffic for the simulator: a real LLM trace, replayed, and synthetic shapes for tests.

The real traffic is the Azure LLM inference trace 2023, conversation service: one hour of
requests (arrival time, prompt tokens, output tokens) from Azure's Public Dataset
(AzureLLMInferenceDataset2023, CC-BY 4.0), published with Patel et al., "Splitwise: Efficient
generative LLM inference using phase splitting", ISCA 2024. A gzipped copy ships in
``aipolicy/sim/data`` so the package does not depend on the checkout around it.

Every source is finite (it has a ``duration`` and stops by itself) and deterministic for a
given seed, and yields :class:`Request` in arrival order. Arrival times are seconds from the
start of the traffic; the fleet model adds the virtual time at which the traffic was attached.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Literal, Required, TypedDict, Unpack

__all__ = [
    "Burst",
    "ConstantRate",
    "Diurnal",
    "PiecewiseRate",
    "RateShape",
    "Request",
    "ShapeOptions",
    "Silence",
    "Step",
    "Trace",
    "TraceError",
    "TraceReplay",
    "TrafficCursor",
    "TrafficSource",
    "default_trace",
    "load_trace",
    "parse_trace",
]

REQUIRED_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
DEFAULT_TRACE_RESOURCE = "AzureLLMInferenceTrace_conv.csv.gz"

ArrivalProcess = Literal["uniform", "poisson"]


class ShapeOptions(TypedDict, total=False):
    """Keyword options every :class:`RateShape` takes (see its docstring)."""

    duration: Required[float]
    prompt_tokens: int
    output_tokens: int
    arrivals: ArrivalProcess
    seed: int
    sizes_from: Trace | None


@dataclass(frozen=True, slots=True)
class Request:
    """One inference request: when it arrives and how many tokens it reads and writes."""

    arrival: float
    prompt_tokens: int
    output_tokens: int


class TraceError(ValueError):
    """A trace file that cannot be used; names the file and, where known, the line."""

    def __init__(self, message: str, *, source: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line


@dataclass(frozen=True)
class Trace:
    """A loaded trace: requests sorted by arrival, the first one at 0.0 s."""

    requests: tuple[Request, ...]
    source: str

    @property
    def duration(self) -> float:
        """Seconds from the first to the last arrival."""
        return self.requests[-1].arrival if self.requests else 0.0

    @property
    def total_prompt_tokens(self) -> int:
        return sum(r.prompt_tokens for r in self.requests)

    @property
    def total_output_tokens(self) -> int:
        return sum(r.output_tokens for r in self.requests)

    def __len__(self) -> int:
        return len(self.requests)

    def window(self, start: float, end: float) -> Trace:
        """The requests arriving in [start, end), re-based so the window starts at 0.0."""
        kept = tuple(
            Request(r.arrival - start, r.prompt_tokens, r.output_tokens)
            for r in self.requests
            if start <= r.arrival < end
        )
        return Trace(kept, f"{self.source}[{start:g}s,{end:g}s)")


def _parse_timestamp(text: str) -> datetime:
    # The Azure trace writes 7 fractional digits ("18:15:46.6805900"); fromisoformat on 3.11
    # accepts that. Timezone-naive stamps are fine: only differences are used.
    return datetime.fromisoformat(text.strip())


def _parse_tokens(text: str, column: str, source: str, line: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise TraceError(f"{column} is not an integer: {text!r}", source=source, line=line) from None
    if value < 0:
        raise TraceError(f"{column} is negative: {value}", source=source, line=line)
    return value


def parse_trace(text: str, *, source: str = "<string>") -> Trace:
    """Parse trace CSV text; all rows are checked before anything is returned.

    Rows are sorted by timestamp (stable), since only the arrival pattern matters; a
    trace with no rows, a missing column, a bad timestamp or a negative or non-integer token
    count raises :class:`TraceError` naming the line (the header is line 1).
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise TraceError("empty file, expected a header row", source=source, line=1) from None
    except csv.Error as exc:
        raise TraceError(f"bad CSV: {exc}", source=source, line=1) from None
    names = [h.strip().lstrip("\ufeff") for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise TraceError(f"missing column(s) {', '.join(missing)}; header is {names}", source=source, line=1)
    i_ts, i_ctx, i_gen = (names.index(c) for c in REQUIRED_COLUMNS)
    rows: list[tuple[datetime, int, int]] = []
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue  # a trailing blank line is harmless
            if len(row) != len(names):
                raise TraceError(f"expected {len(names)} fields, found {len(row)}", source=source, line=line)
            try:
                stamp = _parse_timestamp(row[i_ts])
            except ValueError:
                raise TraceError(f"bad TIMESTAMP {row[i_ts]!r}", source=source, line=line) from None
            prompt = _parse_tokens(row[i_ctx], "ContextTokens", source, line)
            output = _parse_tokens(row[i_gen], "GeneratedTokens", source, line)
            rows.append((stamp, prompt, output))
    except csv.Error as exc:
        raise TraceError(f"bad CSV: {exc}", source=source, line=reader.line_num) from None
    if not rows:
        raise TraceError("no requests after the header", source=source)
    rows.sort(key=lambda r: r[0])
    first = rows[0][0]
    requests = tuple(Request((ts - first).total_seconds(), p, o) for ts, p, o in rows)
    return Trace(requests, source)


def load_trace(path: str | Path | None = None) -> Trace:
    """Load a trace CSV (plain or ``.gz``); ``None`` loads the packaged Azure trace."""
    if path is None:
        return default_trace()
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise TraceError(f"cannot read: {exc.strerror}", source=str(p)) from None
    return _parse_bytes(raw, str(p), gzipped=p.suffix == ".gz")


def _parse_bytes(raw: bytes, source: str, *, gzipped: bool) -> Trace:
    try:
        data = gzip.decompress(raw) if gzipped else raw
        text = data.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise TraceError(f"cannot decode: {exc}", source=source) from None
    return parse_trace(text, source=source)


_default_trace: Trace | None = None


def default_trace() -> Trace:
    """The packaged Azure LLM inference trace 2023 (conversation), parsed once and cached.

    CC-BY 4.0, Azure Public Dataset; Patel et al., "Splitwise", ISCA 2024.
    """
    global _default_trace
    if _default_trace is None:
        ref = resources.files("aipolicy.sim").joinpath("data", DEFAULT_TRACE_RESOURCE)
        _default_trace = _parse_bytes(ref.read_bytes(), DEFAULT_TRACE_RESOURCE, gzipped=True)
    return _default_trace


class TrafficSource(ABC):
    """A finite, deterministic stream of requests in arrival order."""

    @property
    @abstractmethod
    def duration(self) -> float:
        """Seconds after which the source yields nothing more."""

    @abstractmethod
    def requests(self) -> Iterator[Request]:
        """A fresh iterator over the requests, arrival times relative to the start."""

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """A JSON-able summary for the state endpoint and reports."""


class TraceReplay(TrafficSource):
    """Replays a trace ``speedup`` times faster with ``scale`` times the request rate.

    Scaling keeps each request's arrival time and sizes: every request is emitted
    ``floor(scale)`` times plus once more with probability ``scale - floor(scale)``, drawn from
    a seeded generator, so an integer scale multiplies the token totals exactly and a
    fractional one approximately (scale 0.5 keeps about half of the requests).
    """

    def __init__(self, trace: Trace, *, speedup: float = 1.0, scale: float = 1.0, seed: int = 0) -> None:
        if not (speedup > 0 and math.isfinite(speedup)):
            raise ValueError(f"speedup must be a positive number, got {speedup}")
        if not (scale >= 0 and math.isfinite(scale)):
            raise ValueError(f"scale must be a non-negative number, got {scale}")
        self.trace = trace
        self.speedup = speedup
        self.scale = scale
        self.seed = seed

    @property
    def duration(self) -> float:
        return self.trace.duration / self.speedup

    def requests(self) -> Iterator[Request]:
        whole = int(self.scale)
        frac = self.scale - whole
        rng = random.Random(self.seed)
        for r in self.trace.requests:
            copies = whole + (1 if frac > 0 and rng.random() < frac else 0)
            arrival = r.arrival / self.speedup
            for _ in range(copies):
                yield Request(arrival, r.prompt_tokens, r.output_tokens)

    def describe(self) -> dict[str, object]:
        return {
            "kind": "trace",
            "source": self.trace.source,
            "speedup": self.speedup,
            "scale": self.scale,
            "seed": self.seed,
            "duration": self.duration,
        }


class RateShape(TrafficSource):
    """A request-rate curve ``rate(t)`` over ``[0, duration)`` turned into arrivals.

    ``uniform`` arrivals are deterministic: the k-th request arrives where the expected count
    ``cumulative(t)`` reaches ``k - 0.5``, so a constant 2/s over 100 s gives exactly 200
    requests. ``poisson`` arrivals come from thinning a seeded Poisson process. Sizes are
    fixed, or drawn (seeded) from a trace's real requests when ``sizes_from`` is given.
    """

    kind = "shape"

    def __init__(
        self,
        *,
        duration: float,
        prompt_tokens: int = 512,
        output_tokens: int = 128,
        arrivals: ArrivalProcess = "uniform",
        seed: int = 0,
        sizes_from: Trace | None = None,
    ) -> None:
        if not (duration >= 0 and math.isfinite(duration)):
            raise ValueError(f"duration must be a finite number >= 0, got {duration}")
        if prompt_tokens < 0 or output_tokens < 0:
            raise ValueError("token counts must be >= 0")
        if arrivals not in ("uniform", "poisson"):
            raise ValueError(f"arrivals must be 'uniform' or 'poisson', got {arrivals!r}")
        if sizes_from is not None and not sizes_from.requests:
            raise ValueError("sizes_from must hold at least one request")
        self._duration = duration
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.arrivals = arrivals
        self.seed = seed
        self.sizes_from = sizes_from

    @property
    def duration(self) -> float:
        return self._duration

    @abstractmethod
    def rate(self, t: float) -> float:
        """Requests per second at time t."""

    @abstractmethod
    def cumulative(self, t: float) -> float:
        """Expected requests in [0, t]."""

    @property
    @abstractmethod
    def max_rate(self) -> float:
        """An upper bound of ``rate`` (for thinning)."""

    def inverse(self, x: float, lo: float) -> float:
        """The first t >= lo with cumulative(t) >= x, or inf if that is past ``duration``.

        Bisection on the (non-decreasing) cumulative; subclasses with closed forms override.
        """
        hi = self._duration
        if self.cumulative(hi) < x:
            return math.inf
        for _ in range(64):  # 2**-64 of the span: far below float resolution of the times
            mid = (lo + hi) / 2
            if self.cumulative(mid) >= x:
                hi = mid
            else:
                lo = mid
        return hi

    def requests(self) -> Iterator[Request]:
        size_rng = random.Random(self.seed + 1)
        times = self._uniform_times() if self.arrivals == "uniform" else self._poisson_times()
        for t in times:
            if self.sizes_from is not None:
                pick = self.sizes_from.requests[size_rng.randrange(len(self.sizes_from))]
                yield Request(t, pick.prompt_tokens, pick.output_tokens)
            else:
                yield Request(t, self.prompt_tokens, self.output_tokens)

    def _uniform_times(self) -> Iterator[float]:
        k = 1
        t = 0.0
        while True:
            t = self.inverse(k - 0.5, t)
            if t >= self._duration:
                return
            yield t
            k += 1

    def _poisson_times(self) -> Iterator[float]:
        peak = self.max_rate
        if peak <= 0:
            return
        rng = random.Random(self.seed)
        t = 0.0
        while True:
            t += rng.expovariate(peak)
            if t >= self._duration:
                return
            if rng.random() * peak < self.rate(t):
                yield t

    def describe(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "duration": self._duration,
            "arrivals": self.arrivals,
            "promptTokens": self.prompt_tokens,
            "outputTokens": self.output_tokens,
            "sizesFrom": self.sizes_from.source if self.sizes_from else None,
            "seed": self.seed,
            "expectedRequests": self.cumulative(self._duration),
        }


class PiecewiseRate(RateShape):
    """A rate that is constant between breakpoints: ``segments`` = [(start_s, rate), ...]."""

    kind = "piecewise"

    def __init__(self, segments: Sequence[tuple[float, float]], **kwargs: Unpack[ShapeOptions]) -> None:
        super().__init__(**kwargs)
        if not segments or segments[0][0] != 0:
            raise ValueError("segments must start at t=0")
        starts = [s for s, _ in segments]
        if starts != sorted(starts) or len(set(starts)) != len(starts):
            raise ValueError("segment starts must be strictly increasing")
        if any(r < 0 or not math.isfinite(r) for _, r in segments):
            raise ValueError("rates must be finite and >= 0")
        self.segments = tuple((float(s), float(r)) for s, r in segments)
        # Expected count at each segment start, for the closed-form inverse.
        acc = [0.0]
        for (s0, r0), (s1, _) in zip(self.segments, self.segments[1:], strict=False):
            acc.append(acc[-1] + r0 * (s1 - s0))
        self._acc = acc

    def _segment(self, t: float) -> int:
        i = 0
        while i + 1 < len(self.segments) and self.segments[i + 1][0] <= t:
            i += 1
        return i

    def rate(self, t: float) -> float:
        if t < 0 or t >= self.duration:
            return 0.0
        return self.segments[self._segment(t)][1]

    def cumulative(self, t: float) -> float:
        t = min(max(t, 0.0), self.duration)
        i = self._segment(t)
        start, r = self.segments[i]
        return self._acc[i] + r * (t - start)

    @property
    def max_rate(self) -> float:
        return max(r for s, r in self.segments if s < self.duration) if self.duration else 0.0

    def inverse(self, x: float, lo: float) -> float:
        for i, (start, r) in enumerate(self.segments):
            end = self.segments[i + 1][0] if i + 1 < len(self.segments) else self.duration
            end = min(end, self.duration)
            if start >= self.duration:
                break
            if r > 0 and self._acc[i] + r * (end - start) >= x:
                t = start + (x - self._acc[i]) / r
                return max(t, lo)
        return math.inf

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "segments": [list(s) for s in self.segments]}


class ConstantRate(PiecewiseRate):
    """``rate`` requests per second for ``duration`` seconds."""

    kind = "constant"

    def __init__(self, rate: float, **kwargs: Unpack[ShapeOptions]) -> None:
        super().__init__([(0.0, rate)], **kwargs)


class Step(PiecewiseRate):
    """``before`` requests/s until ``at``, then ``after`` requests/s."""

    kind = "step"

    def __init__(self, before: float, after: float, at: float, **kwargs: Unpack[ShapeOptions]) -> None:
        if at <= 0:
            raise ValueError("step time 'at' must be > 0")
        super().__init__([(0.0, before), (at, after)], **kwargs)


class Burst(PiecewiseRate):
    """``base`` requests/s with ``peak`` requests/s during [start, start + length)."""

    kind = "burst"

    def __init__(
        self, base: float, peak: float, start: float, length: float, **kwargs: Unpack[ShapeOptions]
    ) -> None:
        if start < 0 or length <= 0:
            raise ValueError("burst needs start >= 0 and length > 0")
        segments = [(0.0, base), (start, peak), (start + length, base)]
        if start == 0:
            segments = segments[1:]
        super().__init__(segments, **kwargs)


class Silence(PiecewiseRate):
    """No requests at all for ``duration`` seconds (a scale-to-zero idle window)."""

    kind = "silence"

    def __init__(self, **kwargs: Unpack[ShapeOptions]) -> None:
        super().__init__([(0.0, 0.0)], **kwargs)


class Diurnal(RateShape):
    """A day-shaped envelope: ``mean * (1 + amplitude * cos(2π (t - peak_at) / period))``."""

    kind = "diurnal"

    def __init__(
        self,
        mean: float,
        amplitude: float = 0.5,
        period: float = 86400.0,
        peak_at: float = 0.0,
        **kwargs: Unpack[ShapeOptions],
    ) -> None:
        super().__init__(**kwargs)
        if mean < 0 or not 0 <= amplitude <= 1 or period <= 0:
            raise ValueError("diurnal needs mean >= 0, 0 <= amplitude <= 1 and period > 0")
        self.mean = mean
        self.amplitude = amplitude
        self.period = period
        self.peak_at = peak_at

    def _phase(self, t: float) -> float:
        return 2 * math.pi * (t - self.peak_at) / self.period

    def rate(self, t: float) -> float:
        if t < 0 or t >= self.duration:
            return 0.0
        return self.mean * (1 + self.amplitude * math.cos(self._phase(t)))

    def cumulative(self, t: float) -> float:
        t = min(max(t, 0.0), self.duration)
        k = self.amplitude * self.period / (2 * math.pi)
        return self.mean * (t + k * (math.sin(self._phase(t)) - math.sin(self._phase(0.0))))

    @property
    def max_rate(self) -> float:
        return self.mean * (1 + self.amplitude)

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "mean": self.mean,
            "amplitude": self.amplitude,
            "period": self.period,
            "peakAt": self.peak_at,
        }


class TrafficCursor:
    """Reads a source incrementally against the virtual clock.

    ``start`` is the virtual time at which the traffic was attached; :meth:`take_until`
    returns every request arriving at or before ``t`` with its arrival in virtual time.
    """

    def __init__(self, source: TrafficSource, start: float) -> None:
        self.source = source
        self.start = start
        self._it = source.requests()
        self._next: Request | None = None
        self._done = False
        self.emitted = 0
        self._advance()

    def _advance(self) -> None:
        r = next(self._it, None)
        if r is None:
            self._next = None
            self._done = True
        else:
            self._next = Request(self.start + r.arrival, r.prompt_tokens, r.output_tokens)

    @property
    def exhausted(self) -> bool:
        return self._done

    def peek_time(self) -> float:
        """Virtual time of the next arrival, or inf when the source is done."""
        return self._next.arrival if self._next is not None else math.inf

    def take_until(self, t: float) -> list[Request]:
        out: list[Request] = []
        while self._next is not None and self._next.arrival <= t:
            out.append(self._next)
            self.emitted += 1
            self._advance()
        return out
