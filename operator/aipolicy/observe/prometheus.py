"""Prometheus, read through prometheus-api-client, batched and typed.

Every query is grouped by (namespace, service) and shared by all objects that need it within a
cycle: `QueryCache` coalesces identical queries at the same evaluation time into one HTTP call,
so the number of queries grows with the number of metric families, not with the number of
objects. Results are typed: a value, or `Unavailable` with the reason. Missing data is never 0.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from aipolicy.policy.observations import Reading, Unavailable, Value

logger = logging.getLogger(__name__)

ServiceKey = tuple[str, str]  # (namespace, service)


@dataclass(frozen=True)
class GroupedResult:
    """A query's values by (namespace, service), or why there are none at all."""

    values: Mapping[ServiceKey, float]
    error: Unavailable | None = None

    def reading(self, key: ServiceKey) -> Reading:
        """The value for one service; absent means NoData (never zero)."""
        if self.error is not None:
            return self.error
        if key not in self.values:
            return Unavailable("NoData", "the query returned no series for this service")
        value = self.values[key]
        if math.isnan(value) or math.isinf(value):
            return Unavailable("NotANumber", f"the query returned {value}")
        return Value(value)

    def reading_or_zero_when_answered(self, key: ServiceKey) -> Reading:
        """For sums where an absent series truly means none (no pods, no requests): the query
        answered, so absence is 0; a failed query is still Unavailable."""
        if self.error is not None:
            return self.error
        return self.reading(key) if key in self.values else Value(0.0)


@dataclass
class QueryCache:
    """Coalesces identical (query, time) pairs into one request and counts what was sent."""

    url: str
    timeout_seconds: float = 5.0
    ttl_seconds: float = 1.0
    #: for queries at a given instant: their answer does not change, and the objects that share
    #: one (every budget at one evaluation time) ask within a tick of each other, not within 1 s
    pinned_ttl_seconds: float = 30.0
    #: called once per failed query (the operator counts them in its own /metrics)
    on_error: Callable[[], None] | None = None
    #: called once per query sent, after coalescing (queries per evaluation cycle, in /metrics)
    on_query: Callable[[], None] | None = None
    queries_sent: int = 0
    errors: int = 0
    _client: PrometheusConnect = field(init=False)
    _entries: dict[tuple[str, float | None], tuple[float, asyncio.Future[GroupedResult]]] = field(
        default_factory=dict, init=False
    )

    def __post_init__(self) -> None:
        # No retries inside the client: a failed query is reported as QueryError this cycle and
        # asked again next cycle, rather than blocking a worker thread on back-offs.
        self._client = PrometheusConnect(url=self.url, retry=Retry(total=0), timeout=self.timeout_seconds)

    async def grouped(self, query: str, at: datetime | None = None) -> GroupedResult:
        """Run `query` (once per cycle for everyone), values keyed by (namespace, service)."""
        when = at.timestamp() if at is not None else None
        key = (query, when)
        now = time.monotonic()
        self._expire(now)
        entry = self._entries.get(key)
        if entry is None:
            future: asyncio.Future[GroupedResult] = asyncio.get_running_loop().create_future()
            self._entries[key] = (now, future)
            try:
                future.set_result(await self._fetch(query, when))
            except BaseException as error:  # pragma: no cover - cancellation
                future.set_exception(error)
                raise
            return future.result()
        return await asyncio.shield(entry[1])

    def _expire(self, now: float) -> None:
        stale = [k for k, (t, f) in self._entries.items() if f.done() and now - t > self._ttl(k, f)]
        for k in stale:
            del self._entries[k]

    def _ttl(self, key: tuple[str, float | None], answer: asyncio.Future[GroupedResult]) -> float:
        # a failed query is asked again soon, even at the same instant
        pinned = (
            key[1] is not None
            and not answer.cancelled()
            and answer.exception() is None
            and answer.result().error is None
        )
        return self.pinned_ttl_seconds if pinned else self.ttl_seconds

    async def _fetch(self, query: str, when: float | None) -> GroupedResult:
        self._sent()
        params = {"time": f"{when:.3f}"} if when is not None else None
        try:
            series = await asyncio.to_thread(self._client.custom_query, query, params)
        except Exception as error:  # the client raises requests' and its own errors
            self._failed()
            logger.warning("Prometheus query failed: %s: %s", query, error)
            return GroupedResult({}, Unavailable("QueryError", _short(error, self.url)))
        if _is_scalar(series):
            return GroupedResult(
                {}, Unavailable("Ambiguous", f"{query} is a scalar; it must give one series per service")
            )
        values: dict[ServiceKey, float] = {}
        for item in series:
            labels = item.get("metric", {})
            key = (labels.get("namespace", ""), labels.get("service", ""))
            if key in values:
                return GroupedResult({}, Unavailable("Ambiguous", f"several series for {key} in {query}"))
            values[key] = float(item["value"][1])
        return GroupedResult(values)

    def _sent(self) -> None:
        self.queries_sent += 1
        if self.on_query is not None:
            self.on_query()

    def _failed(self) -> None:
        self.errors += 1
        if self.on_error is not None:
            self.on_error()

    async def scalar(self, query: str, at: datetime | None = None) -> Reading:
        """A query expected to return exactly one series (a user's PromQL)."""
        when = at.timestamp() if at is not None else None
        self._sent()
        params = {"time": f"{when:.3f}"} if when is not None else None
        try:
            series = await asyncio.to_thread(self._client.custom_query, query, params)
        except Exception as error:
            self._failed()
            return Unavailable("QueryError", _short(error, self.url))
        if _is_scalar(series):  # a scalar result (`0/0`, `scalar(...)`): [time, "value"]
            value = float(series[1])
        elif not series:
            return Unavailable("NoData", "the query returned no series")
        elif len(series) > 1:
            return Unavailable("Ambiguous", f"the query returned {len(series)} series where one was expected")
        else:
            value = float(series[0]["value"][1])
        if math.isnan(value) or math.isinf(value):
            return Unavailable("NotANumber", f"the query returned {value}")
        return Value(value)


def _is_scalar(result: Any) -> bool:
    """prometheus-api-client returns a scalar or string result as [time, "value"], not as series."""
    return isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict)


def _short(error: BaseException, url: str | None = None) -> str:
    # Prometheus says what is wrong with a query in the JSON body's "error" ("parse error:
    # unclosed left parenthesis"); the client wraps the whole body in bytes' repr.
    said = re.search(r'"error":"(.*?)"\}', str(error))
    if said:
        return "Prometheus refused the query: " + re.sub(r'\\+"', '"', said.group(1))
    # Anything else is the connection: name the URL first (a wrong --prometheus-url is the
    # usual cause, and the client's own text buries it in a request line). Without object
    # addresses ("<... object at 0x7f...>"): the message goes into status, and a text that
    # changes on every failure would rewrite status on every tick of an outage.
    said_by = f"Prometheus at {url} did not answer: " if url else ""
    text = re.sub(r" at 0x[0-9a-f]+", "", f"{said_by}{type(error).__name__}: {error}")
    return text if len(text) < 300 else text[:297] + "..."
