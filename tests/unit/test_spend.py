"""Spend from usage: prices, rounding, unavailable readings, and the interval each evaluation adds."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipolicy.api.aibudget import CostSource
from aipolicy.api.inferenceservice import Pricing
from aipolicy.policy.observations import Reading, Unavailable, Value
from aipolicy.policy.periods import PeriodWindow
from aipolicy.policy.spend import (
    ServiceCost,
    ServiceUsage,
    cost_source_cost,
    display_money,
    format_money,
    interval_to_account,
    is_priced,
    parse_money,
    quantize_money,
    service_cost,
)

D = Decimal
MICRO = D("0.000001")
NO_DATA = Unavailable("NoData")


def usage(inp: Reading = NO_DATA, out: Reading = NO_DATA, gpu: Reading = NO_DATA) -> ServiceUsage:
    return ServiceUsage("llama", input_tokens=inp, output_tokens=out, gpu_hours=gpu)


API = Pricing(input_per_million_tokens="2.50", output_per_million_tokens="10")
GPU = Pricing(gpu_hour="2.21")


@pytest.mark.parametrize(
    ("pricing", "reading", "expected"),
    [
        pytest.param(
            API,
            usage(Value(1_000_000), Value(500_000)),
            ServiceCost("llama", D("2.5"), D("5"), D("0"), D("7.5")),
            id="provider: input and output tokens priced apart",
        ),
        pytest.param(
            GPU,
            usage(gpu=Value(3.5)),
            ServiceCost("llama", D("0"), D("0"), D("7.735"), D("7.735")),
            id="self-hosted: GPU-hours only, token readings not needed",
        ),
        pytest.param(
            Pricing(gpu_hour="2", input_per_million_tokens="0.1"),
            usage(Value(2_000_000), NO_DATA, Value(1)),
            ServiceCost("llama", D("0.2"), D("0"), D("2"), D("2.2")),
            id="a missing price counts 0 and needs no reading",
        ),
        pytest.param(
            Pricing(gpu_hour="2", input_per_million_tokens="0", output_per_million_tokens="0.0"),
            usage(NO_DATA, Unavailable("QueryError"), Value(1)),
            ServiceCost("llama", D("0"), D("0"), D("2"), D("2")),
            id="a zero price needs no reading either",
        ),
        pytest.param(
            Pricing(input_per_million_tokens="0.5"),
            usage(Value(1)),
            ServiceCost("llama", D("0"), D("0"), D("0"), D("0")),
            id="half a micro-dollar rounds to even (down to 0)",
        ),
        pytest.param(
            Pricing(input_per_million_tokens="0.5"),
            usage(Value(3)),
            ServiceCost("llama", D("0.000002"), D("0"), D("0"), D("0.000002")),
            id="1.5 micro-dollars rounds to even (up to 2)",
        ),
        pytest.param(
            Pricing(gpu_hour="3"),
            usage(gpu=Value(0.1)),
            ServiceCost("llama", D("0"), D("0"), D("0.3"), D("0.3")),
            id="a float reading is taken at its shortest decimal (0.1, not 0.1000000000000000055)",
        ),
        pytest.param(
            Pricing(gpu_hour="999999999999.999999"),
            usage(gpu=Value(123456789012.34567)),
            ServiceCost(
                "llama",
                D("0"),
                D("0"),
                D("123456789012345669876543.210988"),
                D("123456789012345669876543.210988"),
            ),
            # 24 integer digits: the default 28-digit context would round the product to .2110.
            id="large amounts stay exact (beyond the default 28 digits)",
        ),
    ],
)
def test_service_cost(pricing: Pricing, reading: ServiceUsage, expected: ServiceCost) -> None:
    assert service_cost(pricing, reading) == expected


@pytest.mark.parametrize(
    ("reading", "reason", "words"),
    [
        pytest.param(
            usage(Unavailable("QueryError", "timeout"), Value(1)),
            "QueryError",
            "input tokens: QueryError (timeout)",
            id="a priced reading that is missing makes the cost unavailable",
        ),
        pytest.param(
            usage(Value(1), Unavailable("Stale")),
            "Stale",
            "output tokens: Stale",
            id="output as well",
        ),
        pytest.param(
            usage(Value(float("nan")), Value(1)),
            "NotANumber",
            "not a number",
            id="NaN is not zero",
        ),
        pytest.param(
            usage(Value(float("inf")), Value(1)),
            "NotANumber",
            "not a number",
            id="infinity is refused",
        ),
        pytest.param(
            usage(Value(-42.0), Value(1)),
            "Negative",
            "must be a counter",
            # increase() already corrects counter resets; a negative increase means the query
            # is not over a counter, and lowering spend would hide it.
            id="a negative increase is refused, not subtracted",
        ),
    ],
)
def test_service_cost_unavailable(reading: ServiceUsage, reason: str, words: str) -> None:
    cost = service_cost(API, reading)
    assert isinstance(cost, Unavailable)
    assert cost.reason == reason
    assert words in cost.message


@pytest.mark.parametrize(
    ("source", "increase", "expected"),
    [
        pytest.param(
            CostSource(name="litellm", query="sum(litellm_spend_metric_total)"),
            Value(12.345678),
            D("12.345678"),
            id="a query of money adds its increase",
        ),
        pytest.param(
            CostSource(name="egress", query="sum(bytes_total)", price_per_unit="0.000002"),
            Value(1_500_000),
            D("3"),
            id="a query of units adds units times the price",
        ),
        pytest.param(
            CostSource(name="litellm", query="x"),
            Value(0.12345651),
            D("0.123457"),
            id="money is quantized to 6 places",
        ),
    ],
)
def test_cost_source_cost(source: CostSource, increase: Reading, expected: Decimal | Unavailable) -> None:
    assert cost_source_cost(source, increase) == expected


LITELLM = CostSource(name="litellm", query="sum(increase(litellm_spend_metric_total[$window]))")


@pytest.mark.parametrize(
    ("increase", "reason", "said", "fix"),
    [
        pytest.param(
            Unavailable("QueryError", "HTTP 400: parse error: unclosed left parenthesis"),
            "QueryError",
            "the query failed (HTTP 400: parse error: unclosed left parenthesis)",
            "fix its PromQL in spec.costSources",
            id="a query Prometheus refuses",
        ),
        pytest.param(
            Unavailable("NoData", "the query returned no series"),
            "NoData",
            "the query returned no series",
            "or vector(0)",
            id="no series is not zero",
        ),
        pytest.param(
            Unavailable("Ambiguous", "the query returned 2 series where one was expected"),
            "Ambiguous",
            "the query returned 2 series",
            "wrap it in sum(...)",
            id="several series are not added up by guess",
        ),
        pytest.param(
            Unavailable("NotANumber", "the query returned nan"),
            "NotANumber",
            "the query returned nan",
            "division by zero",
            id="NaN as the query cache reports it",
        ),
        pytest.param(
            Value(float("nan")), "NotANumber", "the query returned nan", "$window", id="a NaN value"
        ),
        pytest.param(Value(float("inf")), "NotANumber", "the query returned inf", "$window", id="infinity"),
        pytest.param(
            Value(-1.0),
            "Negative",
            "the query returned -1;",
            "spend never goes down",
            id="a negative amount never lowers spend",
        ),
    ],
)
def test_an_unusable_cost_source_reading_adds_nothing_and_says_what_to_fix(
    increase: Reading, reason: str, said: str, fix: str
) -> None:
    cost = cost_source_cost(LITELLM, increase)
    assert isinstance(cost, Unavailable)
    assert cost.reason == reason
    assert said in cost.message
    assert fix in cost.message


def test_a_price_per_unit_does_not_rescue_a_negative_reading() -> None:
    egress = CostSource(name="egress", query="sum(increase(bytes_total[$window]))", price_per_unit="0")
    assert cost_source_cost(egress, Value(-5.0)) == cost_source_cost(LITELLM, Value(-5.0))


@pytest.mark.parametrize(
    ("pricing", "priced"),
    [
        pytest.param(Pricing(), False, id="no price at all"),
        pytest.param(
            Pricing(gpu_hour="0", input_per_million_tokens="0.000", output_per_million_tokens="0"),
            False,
            id="every price zero, however written",
        ),
        pytest.param(Pricing(gpu_hour="0", output_per_million_tokens="0.000001"), True, id="one part priced"),
        pytest.param(GPU, True, id="GPU-hours priced"),
        pytest.param(API, True, id="tokens priced"),
    ],
)
def test_is_priced(pricing: Pricing, priced: bool) -> None:
    assert is_priced(pricing) is priced


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


MARCH = PeriodWindow(utc("2026-03-01T00:00"), utc("2026-04-01T00:00"))


@pytest.mark.parametrize(
    ("last_evaluated", "now", "expected"),
    [
        pytest.param(
            None,
            "2026-03-10T12:00",
            ("2026-03-01T00:00", "2026-03-10T12:00"),
            id="never evaluated: the whole period so far",
        ),
        pytest.param(
            "2026-03-10T11:59:30",
            "2026-03-10T12:00",
            ("2026-03-10T11:59:30", "2026-03-10T12:00"),
            id="from the last evaluation",
        ),
        pytest.param(
            "2026-03-08T04:00",
            "2026-03-10T12:00",
            ("2026-03-08T04:00", "2026-03-10T12:00"),
            id="after a restart or outage it catches up from the last evaluation",
        ),
        pytest.param(
            "2026-02-28T23:59:45",
            "2026-03-01T00:00:15",
            ("2026-03-01T00:00", "2026-03-01T00:00:15"),
            id="a new period starts from its own start",
        ),
        pytest.param(
            "2026-03-10T12:05",
            "2026-03-10T12:00",
            ("2026-03-10T12:00", "2026-03-10T12:00"),
            id="a clock that went back gives an empty interval",
        ),
    ],
)
def test_interval_to_account(last_evaluated: str | None, now: str, expected: tuple[str, str]) -> None:
    last = None if last_evaluated is None else utc(last_evaluated)
    assert interval_to_account(last, MARCH, utc(now)) == (utc(expected[0]), utc(expected[1]))


@pytest.mark.parametrize(
    ("amount", "stored", "shown"),
    [
        pytest.param(D("0"), "0", "0.00", id="zero"),
        pytest.param(D("12.5"), "12.5", "12.50", id="trailing zeros dropped when stored"),
        pytest.param(D("1E+3"), "1000", "1000.00", id="never an exponent"),
        pytest.param(D("0.0000005"), "0", "0.00", id="half a micro rounds to even (0)"),
        pytest.param(D("0.0000015"), "0.000002", "0.00", id="1.5 micro rounds to even (2)"),
        pytest.param(D("0.125"), "0.125", "0.12", id="shown half to even (0.12)"),
        pytest.param(D("0.135"), "0.135", "0.14", id="shown half to even (0.14)"),
    ],
)
def test_money_forms(amount: Decimal, stored: str, shown: str) -> None:
    assert format_money(amount) == stored
    assert display_money(amount) == shown
    assert parse_money(stored) == quantize_money(amount)


@pytest.mark.parametrize("text", ["", "abc", "-1", "NaN", "Infinity"])
def test_parse_money_refuses_what_is_not_an_amount(text: str) -> None:
    assert parse_money(text) is None


tokens = st.integers(min_value=0, max_value=10**10).map(float)
hours = st.floats(min_value=0, max_value=10_000, allow_nan=False)
prices = st.decimals(min_value=0, max_value=1000, places=6).map(str)


@given(inp=tokens, out=tokens, gpu=hours, p_in=prices, p_out=prices, p_gpu=prices)
def test_cost_is_the_exact_product_to_half_a_micro_per_part(
    inp: float, out: float, gpu: float, p_in: str, p_out: str, p_gpu: str
) -> None:
    pricing = Pricing(input_per_million_tokens=p_in, output_per_million_tokens=p_out, gpu_hour=p_gpu)
    cost = service_cost(pricing, usage(Value(inp), Value(out), Value(gpu)))
    assert isinstance(cost, ServiceCost)
    assert cost.total == cost.input + cost.output + cost.gpu
    exact = (
        D(repr(inp)) * D(p_in) / 10**6,
        D(repr(out)) * D(p_out) / 10**6,
        D(repr(gpu)) * D(p_gpu),
    )
    for part, want in zip((cost.input, cost.output, cost.gpu), exact, strict=True):
        assert part >= 0
        assert part.as_tuple().exponent == -6
        assert abs(part - want) <= MICRO / 2


@given(a=tokens, b=tokens, g1=hours, g2=hours, p_in=prices, p_gpu=prices)
def test_cost_of_two_intervals_is_the_cost_of_their_union_within_rounding(
    a: float, b: float, g1: float, g2: float, p_in: str, p_gpu: str
) -> None:
    pricing = Pricing(input_per_million_tokens=p_in, gpu_hour=p_gpu)
    first = service_cost(pricing, usage(Value(a), gpu=Value(g1)))
    second = service_cost(pricing, usage(Value(b), gpu=Value(g2)))
    union = service_cost(pricing, usage(Value(a + b), gpu=Value(g1 + g2)))
    assert isinstance(first, ServiceCost)
    assert isinstance(second, ServiceCost)
    assert isinstance(union, ServiceCost)
    # Each quantization is off by at most half a micro, so three of them by 1.5 per part; g1+g2
    # in floats may lose a last bit, worth p_gpu * 2**-52 * (g1+g2).
    float_slack = D(p_gpu) * D(g1 + g2) * D(2) ** -50
    assert abs(first.input + second.input - union.input) <= MICRO * D("1.5")
    assert abs(first.gpu + second.gpu - union.gpu) <= MICRO * D("1.5") + float_slack


@given(
    last=st.none() | st.datetimes(min_value=datetime(2026, 2, 1), max_value=datetime(2026, 5, 1)),
    now=st.datetimes(min_value=datetime(2026, 3, 1), max_value=datetime(2026, 3, 31, 23)),
)
def test_interval_is_inside_the_period_and_never_negative(last: datetime | None, now: datetime) -> None:
    last_utc = None if last is None else last.replace(tzinfo=UTC)
    start, end = interval_to_account(last_utc, MARCH, now.replace(tzinfo=UTC))
    assert MARCH.start <= start <= end == now.replace(tzinfo=UTC)
    if last_utc is not None and MARCH.start <= last_utc <= end:
        assert start == last_utc  # nothing between the checkpoint and now is skipped


def test_interval_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        interval_to_account(None, MARCH, datetime(2026, 3, 2))
    with pytest.raises(ValueError, match="naive"):
        interval_to_account(datetime(2026, 3, 2), MARCH, utc("2026-03-03T00:00"))


def test_money_spent_at_fallback_providers_adds_to_the_service_it_served() -> None:
    """A self-hosted service pays its GPU-hours, plus what the gateway spent at a provider
    chain step for its clients while it was in fallback (already money, in the budget's
    currency)."""
    usage = ServiceUsage("llama", Value(1e6), Value(1e6), Value(2.0), fallback_spend=Value(0.75))
    cost = service_cost(Pricing(gpu_hour="3.00"), usage)
    assert cost == ServiceCost("llama", Decimal(0), Decimal(0), Decimal(6), Decimal("6.75"), Decimal("0.75"))


def test_a_fallback_spend_that_cannot_be_read_makes_the_cost_unavailable() -> None:
    usage = ServiceUsage(
        "llama", Value(0), Value(0), Value(1.0), fallback_spend=Unavailable("QueryError", "down")
    )
    cost = service_cost(Pricing(gpu_hour="3.00"), usage)
    assert isinstance(cost, Unavailable) and cost.reason == "QueryError"
