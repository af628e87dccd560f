"""The window a report covers: the last N hours, or a from/to pair; never one in the future."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aipolicy.api.common import parse_duration


class WindowError(ValueError):
    """A window that cannot be reported on; the message says what to change."""


@dataclass(frozen=True)
class ReportWindow:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    @property
    def promql_range(self) -> str:
        """The window as a PromQL range, for queries evaluated at ``end``."""
        return f"{self.seconds}s"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def resolve_window(
    *, since: str | None, start: datetime | None, end: datetime | None, now: datetime
) -> ReportWindow:
    """``since`` (a duration back from ``end`` or now) or ``start``; ``end`` defaults to now."""
    now = _utc(now)
    until = _utc(end) if end is not None else now
    if until > now:
        raise WindowError(f"the window ends at {until.isoformat()}, in the future; end it at now or before")
    if start is not None and since is not None:
        raise WindowError("give --since or --from, not both")
    if start is not None:
        begin = _utc(start)
    else:
        try:
            length = parse_duration(since or "24h")
        except ValueError as error:
            raise WindowError(f"--since {since!r}: {error}") from None
        begin = until - length
    if begin >= until:
        raise WindowError(f"the window starts at {begin.isoformat()}, not before its end {until.isoformat()}")
    if until - begin < timedelta(minutes=1):
        raise WindowError("the window must be at least one minute long")
    return ReportWindow(begin, until)
