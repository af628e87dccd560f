"""The demand SLO sizing reads (presets.slo_load), evaluated by Prometheus's engine (`promtool
test rules`) on series shaped as the aipolicy gateway and the model servers export them.

Behind the gateway, a service's demand is every request its clients sent, whichever backend
answered it (its pods, an overflow or fallback backend) or none (a refusal), plus what other
services' clients sent to its pods; each request once. A service the gateway has no series of
reads its model servers' counters, as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aipolicy.observe.presets import PRESETS, slo_load
from tests.unit.promtool import expect_samples

NAMES = PRESETS["vllm"]
ANSWERS = "aipolicy_gateway_requests_total"
PROMPT = "aipolicy_gateway_prompt_tokens_total"
COMPLETION = "aipolicy_gateway_completion_tokens_total"


def _series(metric: str, service: str, per_minute: float, **labels: str) -> dict[str, str]:
    extra = "".join(f',{k}="{v}"' for k, v in labels.items())
    return {
        "series": f'{metric}{{namespace="ns",service="{service}"{extra}}}',
        "values": f"0+{per_minute:g}x10",
    }


def _answers(client: str, backend: str, per_minute: float, code: str = "200") -> dict[str, str]:
    return _series(ANSWERS, client, per_minute, backend=backend, code=code)


def _tokens(client: str, backend: str, requests_per_minute: float) -> list[dict[str, str]]:
    """100 prompt and 20 completion tokens per answered request."""
    return [
        _series(PROMPT, client, 100 * requests_per_minute, backend=backend),
        _series(COMPLETION, client, 20 * requests_per_minute, backend=backend),
    ]


def _pods(service: str, requests_per_minute: float, waiting: float = 0) -> list[dict[str, str]]:
    """A model server's own counters: 100 prompt and 20 generated tokens per finished request."""
    return [
        _series("vllm:request_success_total", service, requests_per_minute, pod="p", finished_reason="stop"),
        _series("vllm:prompt_tokens_total", service, 100 * requests_per_minute, pod="p"),
        _series("vllm:generation_tokens_total", service, 20 * requests_per_minute, pod="p"),
        {
            "series": f'vllm:num_requests_waiting{{namespace="ns",service="{service}",pod="p"}}',
            "values": f"{waiting:g}x10",
        },
    ]


def _expect(values: dict[str, float]) -> list[dict[str, Any]]:
    return [{"labels": f'{{namespace="ns",service="{s}"}}', "value": v} for s, v in sorted(values.items())]


Case = tuple[str, dict[str, float]]


def _load(
    rates: dict[str, float], waiting: dict[str, float], tokens: dict[str, float] | None = None
) -> list[Case]:
    """slo_load's four queries over 5 minutes and what each must give per service: requests/s
    as `rates` says, prompt and completion tokens/s 100 and 20 times `tokens` (the requests/s
    that carried tokens, `rates` unless told), and `waiting`."""
    requests, prompt, generated, backlog = slo_load(NAMES, "5m")
    carried = rates if tokens is None else tokens
    return [
        (requests, rates),
        (prompt, {s: 100 * r for s, r in carried.items()}),
        (generated, {s: 20 * r for s, r in carried.items()}),
        (backlog, waiting),
    ]


def _evaluate(tmp_path: Path, series: list[dict[str, str]], cases: list[Case]) -> None:
    expect_samples(tmp_path, series, [(f"round({expr}, 0.001)", _expect(values)) for expr, values in cases])


def test_behind_the_gateway_the_demand_counts_the_overflowed_and_refused_requests(tmp_path: Path) -> None:
    # chat's clients send 4 requests/s: its pods answer 1 (and finish them), 2 overflow to the
    # API-backed service gpt, 0.5 go to a bare provider of its fallback chain, and 0.5 wait at
    # the front door for a replica and time out (no backend, no tokens)
    series = [
        *_pods("chat", 60, waiting=3),
        _answers("chat", "service/chat", 60),
        *_tokens("chat", "service/chat", 60),
        _answers("chat", "service/gpt", 120),
        *_tokens("chat", "service/gpt", 120),
        _answers("chat", "provider/api.example.com", 30),
        *_tokens("chat", "provider/api.example.com", 30),
        _answers("chat", "-", 30, code="503"),
    ]
    # chat: 4 requests/s and 350 prompt tokens/s, not its pods' 1 and 100 (the refused ones
    # carry no tokens: 350 = 100 x 3.5); gpt (API-backed) is what it served for chat's
    # clients; the backlog stays the model servers' own queue
    load = _load({"chat": 4.0, "gpt": 2.0}, {"chat": 3.0}, tokens={"chat": 3.5, "gpt": 2.0})
    _evaluate(tmp_path, series, load)


def test_a_service_the_gateway_never_saw_reads_its_model_servers_as_before(tmp_path: Path) -> None:
    # solo's clients call its pods directly; chat's go through the gateway (so the gateway has
    # series, none of them solo's)
    series = [
        *_pods("solo", 30, waiting=2),
        *_pods("chat", 60),
        _answers("chat", "service/chat", 60),
        *_tokens("chat", "service/chat", 60),
    ]
    _evaluate(tmp_path, series, _load({"chat": 1.0, "solo": 0.5}, {"chat": 0.0, "solo": 2.0}))


def test_a_request_counts_once_when_the_pods_and_the_gateway_both_count_it(tmp_path: Path) -> None:
    # the error storm's shape: large's clients (1/s) are all served by small in fallback, small's
    # own clients (1/s) by small; small's pods finish both (2/s). small carries 2/s, large's
    # demand is 1/s; no request counts twice for a service, nor is added to its pods' count.
    series = [
        *_pods("small", 120),
        _answers("small", "service/small", 60),
        *_tokens("small", "service/small", 60),
        _answers("large", "service/small", 60),
        *_tokens("large", "service/small", 60),
        *_pods("large", 0),
        # a service whose own pods answer its clients: 1/s, not 2
        *_pods("chat", 60),
        _answers("chat", "service/chat", 60),
        *_tokens("chat", "service/chat", 60),
    ]
    idle = {"chat": 0.0, "large": 0.0, "small": 0.0}
    _evaluate(tmp_path, series, _load({"chat": 1.0, "large": 1.0, "small": 2.0}, idle))
