"""A trace rebuilt from a service's own recorded metrics: "what would this policy cost on my traffic?"

Per ``step`` over the last ``since``, Prometheus gives the requests a service finished and the
prompt and generated tokens it processed (vLLM's counters, summed over its pods; an API-backed
service's gateway counters otherwise). :func:`trace_from_counts` spreads each step's requests
evenly over the step, each with the step's mean prompt and output sizes: arrival counts and
token volumes are kept, the spread of sizes within a step is not (the counters do not have it).
A service with no recorded request is refused: an empty trace would simulate an idle hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from aipolicy.observe.presets import MetricNames
from aipolicy.whatif.traces import Trace, TraceError

__all__ = ["fetch_trace", "queries", "trace_from_counts"]


def queries(namespace: str, name: str, step_s: int, names: MetricNames | None = None) -> tuple[str, str, str]:
    """Requests finished, prompt tokens and generated tokens per step, for one service."""
    names = names or MetricNames()
    sel = f'{{namespace="{namespace}", service="{name}"}}'
    window = f"[{step_s}s]"

    def per_step(own: str, gateway: str) -> str:
        return f"sum(increase({own}{sel}{window})) or sum(increase({gateway}{sel}{window}))"

    return (
        per_step(names.requests_finished, names.gateway_requests),
        per_step(names.prompt_tokens, names.gateway_input_tokens),
        per_step(names.generation_tokens, names.gateway_output_tokens),
    )


def trace_from_counts(
    samples: Sequence[tuple[float, float, float, float]], step_s: float, source: str
) -> Trace:
    """``samples``: (unix time at the step's end, requests, prompt tokens, output tokens)."""
    arrivals: list[float] = []
    prompts: list[int] = []
    outputs: list[int] = []
    carry = 0.0
    for t, requests, prompt, output in sorted(samples):
        if requests <= 0:
            continue
        exact = requests + carry
        n = int(exact)
        carry = exact - n
        if n == 0:
            continue
        mean_in, mean_out = max(prompt, 0.0) / requests, max(output, 0.0) / requests
        for k in range(n):
            arrivals.append(t - step_s + (k + 0.5) * step_s / n)
            prompts.append(max(round(mean_in), 1))
            outputs.append(max(round(mean_out), 1))
    if not arrivals:
        raise TraceError(f"{source}: no data: no request was recorded for this service in that time")
    first = arrivals[0]
    return Trace(
        tuple(a - first for a in arrivals),
        tuple(prompts),
        tuple(outputs),
        datetime.fromtimestamp(first, UTC),
        source,
    )


def fetch_trace(
    url: str, service: str, since: timedelta, step_s: int = 15, now: datetime | None = None
) -> Trace:
    """Query Prometheus at ``url`` for ``namespace/name`` over the last ``since``."""
    from prometheus_api_client import PrometheusConnect

    namespace, _, name = service.partition("/")
    if not namespace or not name:
        raise TraceError(f"--service must be NAMESPACE/NAME, got {service!r}")
    end = now or datetime.now(UTC)
    start = end - since
    source = f"{url} {service} since {start:%Y-%m-%d %H:%M} UTC"
    client = PrometheusConnect(url=url, disable_ssl=True)
    columns: list[dict[float, float]] = []
    for query in queries(namespace, name, step_s):
        try:
            result = client.custom_query_range(query, start_time=start, end_time=end, step=f"{step_s}s")
        except Exception as exc:  # the client raises several kinds; all mean "no answer"
            raise TraceError(f"{source}: Prometheus did not answer: {exc}") from None
        values: dict[float, float] = {}
        for series in result:
            for t, v in series.get("values", []):
                values[float(t)] = values.get(float(t), 0.0) + float(v)
        columns.append(values)
    requests, prompt, output = columns
    samples = [(t, n, prompt.get(t, 0.0), output.get(t, 0.0)) for t, n in requests.items()]
    return trace_from_counts(samples, step_s, source)
