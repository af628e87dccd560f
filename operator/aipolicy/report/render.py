"""A Report as a terminal table, JSON, or one self-contained HTML page (inline SVG, no script,
no network: it opens offline and prints). Unknown numbers read "no data", never 0."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from aipolicy.policy.spend import display_money
from aipolicy.report.model import ModelLine, Report, TimeSeries

NO_DATA = "no data"


def _money(amount: Decimal | None) -> str:
    return NO_DATA if amount is None else display_money(amount)


def _seconds(value: float | None) -> str:
    return NO_DATA if value is None else f"{value:.3f}s"


def _percent(value: float | None) -> str:
    return NO_DATA if value is None else f"{value * 100:.2f}%"


def _hours(value: float | None) -> str:
    return NO_DATA if value is None else f"{value:.2f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return NO_DATA
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _grid(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


BUDGET_HEADERS = ("BUDGET", "SPENT", "LIMIT", "USED", "FORECAST", "STATE", "BY SOURCE")
MODEL_HEADERS = (
    "MODEL", "HOSTING", "REQUESTS", "COST", "COST/1K REQ", "TTFT P50", "TTFT P95", "TTFT P99",
    "E2E P95", "ERRORS", "IDLE GPU-H", "IDLE COST", "FALLBACK", "DEGRADED",
)  # fmt: skip


def _budget_rows(report: Report) -> list[list[str]]:
    rows = []
    for b in report.budgets:
        sources = ", ".join(f"{k} {display_money(v)}" for k, v in sorted(b.by_source.items())) or "-"
        used = NO_DATA if b.percent_used is None else f"{b.percent_used:.0f}%"
        rows.append(
            [f"{b.namespace}/{b.name}", _money(b.spent), display_money(b.limit), used,
             _money(b.forecast), b.state, f"{sources} ({b.currency})"]
        )  # fmt: skip
    return rows


def _model_row(m: ModelLine) -> list[str]:
    return [
        f"{m.namespace}/{m.service}", m.hosting,
        NO_DATA if m.requests is None else f"{m.requests:.0f}",
        _money(m.cost.total if m.cost else None), _money(m.cost_per_1k_requests),
        _seconds(m.ttft_p50), _seconds(m.ttft_p95), _seconds(m.ttft_p99), _seconds(m.e2e_p95),
        _percent(m.error_rate),
        "-" if m.hosting == "api" else _hours(m.idle_gpu_hours),
        "-" if m.hosting == "api" else _money(m.idle_cost),
        _duration(m.seconds_in_fallback), _duration(m.seconds_degraded),
    ]  # fmt: skip


def table(report: Report) -> str:
    w = report.window
    parts = [f"aipolicy report: {report.scope}, {w.start:%Y-%m-%d %H:%M} to {w.end:%Y-%m-%d %H:%M} UTC", ""]
    parts += ["Budgets", _grid(BUDGET_HEADERS, _budget_rows(report)) if report.budgets else "  none", ""]
    rows = [_model_row(m) for m in report.models]
    parts += ["Models", _grid(MODEL_HEADERS, rows) if rows else "  none"]
    return "\n".join(parts) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "__dataclass_fields__"):
        return {k: _jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    if hasattr(value, "model_dump"):
        return value.model_dump(by_alias=True, exclude_none=True)
    return value


def as_json(report: Report) -> str:
    """Every number as measured (Decimals as exact strings), null where there is no data."""
    return json.dumps(_jsonable(report), indent=2) + "\n"


# ---- HTML: inline SVG charts ----

_COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")
_W, _H, _PAD = 640, 240, 40


def _no_data(title: str) -> str:
    return f'<figure><figcaption>{html.escape(title)}</figcaption><p class="nodata">{NO_DATA}</p></figure>'


def _polyline_chart(title: str, lines: dict[str, TimeSeries], *, unit: str = "") -> str:
    drawn = {name: list(points) for name, points in lines.items() if points}
    if not drawn:
        return (
            f'<figure><figcaption>{html.escape(title)}</figcaption><p class="nodata">{NO_DATA}</p></figure>'
        )
    xs = [t for points in drawn.values() for t, _ in points]
    ys = [v for points in drawn.values() for _, v in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y1 = max(ys) * 1.1 if max(ys) > 0 else 1.0

    def at(t: float, v: float) -> str:
        x = _PAD + (t - x0) / (x1 - x0) * (_W - 2 * _PAD)
        y = _H - _PAD - v / y1 * (_H - 2 * _PAD)
        return f"{x:.1f},{y:.1f}"

    body = [
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#999"/>',
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#999"/>',
        f'<text x="4" y="{_PAD - 8}" font-size="11">{y1:.4g} {html.escape(unit)}</text>',
    ]
    legend = []
    for i, (name, points) in enumerate(sorted(drawn.items())):
        colour = _COLOURS[i % len(_COLOURS)]
        body.append(
            f'<polyline class="series" data-points="{len(points)}" fill="none" stroke="{colour}" '
            f'stroke-width="2" points="{" ".join(at(t, v) for t, v in points)}"/>'
        )
        legend.append(f'<span style="color:{colour}">&#9632; {html.escape(name)}</span>')
    svg = f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}">{"".join(body)}</svg>'
    return f"<figure><figcaption>{html.escape(title)}</figcaption>{svg}<div>{' '.join(legend)}</div></figure>"


def _bar_chart(title: str, bars: Sequence[tuple[float, float]]) -> str:
    if not bars or sum(c for _, c in bars) <= 0:
        return (
            f'<figure><figcaption>{html.escape(title)}</figcaption><p class="nodata">{NO_DATA}</p></figure>'
        )
    top = max(c for _, c in bars)
    width = (_W - 2 * _PAD) / len(bars)
    rects = []
    for i, (le, count) in enumerate(bars):
        height = count / top * (_H - 2 * _PAD)
        x, y = _PAD + i * width, _H - _PAD - height
        rects.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(width - 2, 1):.1f}" '
            f'height="{height:.1f}" fill="#2563eb"><title>&#8804; {le:g}s: {count:.0f}</title></rect>'
        )
        rects.append(f'<text x="{x:.1f}" y="{_H - _PAD + 14}" font-size="9">{le:g}</text>')
    svg = f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}">{"".join(rects)}</svg>'
    return f"<figure><figcaption>{html.escape(title)}</figcaption>{svg}</figure>"


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def as_html(report: Report) -> str:
    w = report.window
    title = f"aipolicy report: {report.scope}"
    charts = [
        _polyline_chart(f"Spend against the limit and forecast: {budget}", dict(lines))
        for budget, lines in sorted(report.charts.spend.items())
    ]
    charts.append(
        _polyline_chart("Cost per 1,000 requests over time", dict(report.charts.cost_per_1k_requests))
    )
    charts += [
        _bar_chart(f"Time to first token, requests per bucket (s): {service}", bars)
        for service, bars in sorted(report.charts.ttft_histogram.items())
    ]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #111; }}
table {{ border-collapse: collapse; margin-bottom: 2em; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
figure {{ display: inline-block; margin: 0 2em 2em 0; }}
.nodata {{ color: #888; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{w.start:%Y-%m-%d %H:%M} to {w.end:%Y-%m-%d %H:%M} UTC</p>
<h2>Budgets</h2>{_html_table(BUDGET_HEADERS, _budget_rows(report))}
<h2>Models</h2>{_html_table(MODEL_HEADERS, [_model_row(m) for m in report.models])}
<h2>Charts</h2>{"".join(charts)}
</body></html>
"""
