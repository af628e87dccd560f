"""Spend: money from usage readings, and the interval of time each evaluation accounts for.

The controller runs one PromQL query per metric family per cycle for all services (grouped by
namespace and service) and hands each service its numbers as a :class:`ServiceUsage`. Readings
are *increases* of counters over the interval (from, to] that :func:`interval_to_account` gives:
Prometheus' ``increase()`` already handles counter resets (a restarted vLLM or LiteLLM pod), so
nothing here second-guesses a reset. An increase is never negative; a negative one means the
query is not over a counter, and it is refused as unavailable rather than lowering spend.

Rounding: every amount is a :class:`~decimal.Decimal` quantized to 0.000001 (the precision of
the API's Money strings) with ROUND_HALF_EVEN, part by part (input, output, GPU, each cost
source). Totals are exact sums of quantized parts, so a total always equals the sum of its
breakdown, and accumulating N intervals drifts from one computation over their union by at most
half a millionth per part per interval. Amounts are shown to people in the currency's usual
precision, 2 places for most (:func:`display_money`), but stored with 6 (:func:`format_money`):
the stored spend is the checkpoint the next evaluation adds to, and rounding it to cents would
lose every sub-cent interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation, localcontext

from aipolicy.api.aibudget import CostSource
from aipolicy.api.common import money
from aipolicy.api.inferenceservice import InferenceServiceSpec, Pricing
from aipolicy.policy.observations import Reading, Unavailable, UnavailableReason, Value
from aipolicy.policy.periods import PeriodWindow, ensure_utc

__all__ = [
    "CURRENCY_DECIMALS",
    "DISPLAY_QUANTUM",
    "MONEY_CONTEXT",
    "MONEY_QUANTUM",
    "ServiceCost",
    "ServiceUsage",
    "billed_pricing",
    "cost_source_cost",
    "display_money",
    "format_money",
    "interval_to_account",
    "is_priced",
    "parse_money",
    "quantize_money",
    "service_cost",
]

MONEY_QUANTUM = Decimal("0.000001")
"""Stored amounts have 6 decimal places, as Money strings do (sub-cent token prices)."""
DISPLAY_QUANTUM = Decimal("0.01")
"""Amounts shown to people have 2, in most currencies."""
_NO_MINOR_UNIT = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_PLACES = "BHD IQD JOD KWD LYD OMR TND"
CURRENCY_DECIMALS: dict[str, int] = (
    dict.fromkeys(_NO_MINOR_UNIT.split(), 0) | dict.fromkeys(_THREE_PLACES.split(), 3) | {"CLF": 4, "UYW": 4}
)
"""ISO 4217 minor units of the currencies that do not have 2 (yen has none, dinars have 3)."""
TOKENS_PER_PRICED_UNIT = Decimal(1_000_000)

# Enough digits that a product of a 12-digit price and a float reading is exact before it is
# quantized; the default context (28 digits) could round a large product a second time.
MONEY_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class ServiceUsage:
    """One service's usage over the interval: increases of counters, or why there is none.

    ``gpu_hours`` is the GPUs held by the service's running pods integrated over the interval.
    """

    service: str
    input_tokens: Reading
    output_tokens: Reading
    gpu_hours: Reading
    #: money spent at fallback chain steps that are providers, for this service's clients (the
    #: gateway prices those requests at the step's prices), in the budget's currency
    fallback_spend: Reading = field(default_factory=lambda: Value(0.0))


@dataclass(frozen=True)
class ServiceCost:
    """What one service cost over the interval, by part; ``total`` is the exact sum."""

    service: str
    input: Decimal
    output: Decimal
    gpu: Decimal
    total: Decimal
    fallback: Decimal = Decimal(0)
    """Part of ``total``: spent at fallback providers for this service's clients."""


def quantize_money(amount: Decimal) -> Decimal:
    """``amount`` to 6 places, half to even (the stored precision)."""
    return amount.quantize(MONEY_QUANTUM, context=MONEY_CONTEXT)


def format_money(amount: Decimal) -> str:
    """The stored form: 6 places at most, no trailing zeros, never an exponent ("12.5", "0")."""
    text = format(quantize_money(amount), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def display_money(amount: Decimal, currency: str = "USD") -> str:
    """The form for people: the currency's usual places, half to even ("12.50" USD, "1250" JPY)."""
    quantum = Decimal(1).scaleb(-CURRENCY_DECIMALS.get(currency, 2))
    return format(amount.quantize(quantum, context=MONEY_CONTEXT), "f")


def parse_money(text: str) -> Decimal | None:
    """A stored amount, or None if it is not a finite, non-negative decimal."""
    try:
        amount = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def _amount(reading: Reading, what: str) -> Decimal | Unavailable:
    """A reading as an exact Decimal, or Unavailable if it is missing, NaN, infinite or < 0."""
    if isinstance(reading, Unavailable):
        message = f"{what}: {reading.reason}" + (f" ({reading.message})" if reading.message else "")
        return Unavailable(reading.reason, message)
    value = reading.value
    if not math.isfinite(value):
        return Unavailable("NotANumber", f"{what}: {value} is not a number")
    if value < 0:
        return Unavailable("Negative", f"{what}: increase {value} is negative; the query must be a counter")
    # repr() is the shortest string that reads back as the same float, so 0.1 stays 0.1 rather
    # than 0.1000000000000000055511151231257827.
    return Decimal(repr(value))


def _priced(reading: Reading, price: str | None, per: Decimal, what: str) -> Decimal | Unavailable:
    """reading * price / per, quantized; a missing or zero price needs no reading at all."""
    if price is None or money(price) == 0:
        return quantize_money(Decimal(0))
    amount = _amount(reading, what)
    if isinstance(amount, Unavailable):
        return amount
    with localcontext(MONEY_CONTEXT):
        return quantize_money(amount * money(price) / per)


def billed_pricing(spec: InferenceServiceSpec) -> Pricing:
    """The prices a service is charged by; the others are for comparison and count nothing.

    A self-hosted service (spec.serving) pays for its GPUs by the hour, busy or idle: its
    tokens cost nothing more, so token prices on it (what the same traffic would cost at an
    API provider) are never added, or every token it served would be paid twice. An
    API-backed service (spec.provider) pays per token and holds no GPUs.
    """
    pricing = spec.pricing
    if spec.serving is not None:
        return Pricing(currency=pricing.currency, gpu_hour=pricing.gpu_hour)
    return Pricing(
        currency=pricing.currency,
        input_per_million_tokens=pricing.input_per_million_tokens,
        output_per_million_tokens=pricing.output_per_million_tokens,
    )


def service_cost(pricing: Pricing, usage: ServiceUsage) -> ServiceCost | Unavailable:
    """Tokens * price per million (input and output apart) + GPU-hours * gpuHour.

    ``pricing`` is what the service is billed by (:func:`billed_pricing`): GPU-hours for a
    self-hosted service, tokens for an API-backed one. A part without a price counts 0 and needs
    no reading. A priced part whose reading is unavailable makes the whole cost unavailable: a
    partial cost would be under-counted spend.
    """
    per_m = TOKENS_PER_PRICED_UNIT
    input_ = _priced(usage.input_tokens, pricing.input_per_million_tokens, per_m, "input tokens")
    if isinstance(input_, Unavailable):
        return input_
    output = _priced(usage.output_tokens, pricing.output_per_million_tokens, per_m, "output tokens")
    if isinstance(output, Unavailable):
        return output
    gpu = _priced(usage.gpu_hours, pricing.gpu_hour, Decimal(1), "GPU-hours")
    if isinstance(gpu, Unavailable):
        return gpu
    fallback = _amount(usage.fallback_spend, "spend at fallback providers")  # already money
    if isinstance(fallback, Unavailable):
        return fallback
    fallback = quantize_money(fallback)
    with localcontext(MONEY_CONTEXT):
        return ServiceCost(usage.service, input_, output, gpu, input_ + output + gpu + fallback, fallback)


def is_priced(pricing: Pricing) -> bool:
    """Whether any part of the service has a price above zero; if none has, its usage costs 0."""
    prices = (pricing.input_per_million_tokens, pricing.output_per_million_tokens, pricing.gpu_hour)
    return any(price is not None and money(price) > 0 for price in prices)


# What to change when a cost source's reading cannot be used. The person reading the condition
# wrote that PromQL: "Ambiguous" alone does not tell them to aggregate it.
_COST_SOURCE_FIX: dict[UnavailableReason, str] = {
    "QueryError": "fix its PromQL in spec.costSources, or check that Prometheus answers",
    "NoData": (
        "it must return one series, such as sum(increase(my_spend_total[$window])) "
        "(append `or vector(0)` if no series means nothing was spent)"
    ),
    "Ambiguous": "wrap it in sum(...) so that it returns one series",
    "NotANumber": "it must return the amount spent in $window (a division by zero gives NaN)",
    "Negative": (
        "spend never goes down: it must return what was spent in $window, "
        "such as sum(increase(my_spend_total[$window]))"
    ),
    "Stale": "check that Prometheus still scrapes what the query reads",
}


def _what_the_query_gave(reading: Reading) -> str:
    if isinstance(reading, Unavailable):
        said = reading.message or reading.reason
        return f"the query failed ({said})" if reading.reason == "QueryError" else said
    return f"the query returned {reading.value:g}"


def cost_source_cost(source: CostSource, increase: Reading) -> Decimal | Unavailable:
    """The money an extra cost source adds: its increase, or units * pricePerUnit.

    A reading that errs, is missing, NaN, negative or of several series adds nothing: it is
    Unavailable with a message that says what to change in the query.
    """
    amount = _amount(increase, "the query")
    if isinstance(amount, Unavailable):
        fix = _COST_SOURCE_FIX[amount.reason]
        return Unavailable(amount.reason, f"{_what_the_query_gave(increase)}; {fix}")
    with localcontext(MONEY_CONTEXT):
        if source.price_per_unit is not None:
            amount *= money(source.price_per_unit)
        return quantize_money(amount)


def interval_to_account(
    last_evaluated: datetime | None, period: PeriodWindow, now: datetime
) -> tuple[datetime, datetime]:
    """The interval (from, to] whose increase the next evaluation adds.

    It starts where the last evaluation stopped, so an operator restart or a Prometheus outage
    is caught up from the counters rather than lost (as long as Prometheus retains them), and a
    month costs one query like a minute does. It starts no earlier than the period: a new
    period counts from its own start, and a budget never evaluated counts the whole period so
    far. A ``last_evaluated`` after ``now`` (a clock that went back) gives an empty interval,
    never a negative one.
    """
    now = ensure_utc(now)
    start = period.start if last_evaluated is None else max(ensure_utc(last_evaluated), period.start)
    return min(start, now), now
