"""Money for people and money for machines: status keeps 6 places, kubectl shows the currency's
usual precision (the README's `kubectl get aib` shows cents, not micro-dollars)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from aipolicy.api.aibudget import PRINTER_COLUMNS, AIBudgetSpec, AIBudgetStatus
from aipolicy.api.common import json_dict
from aipolicy.policy.budget import evaluate_budget, updated_status
from aipolicy.policy.spend import ServiceCost, display_money

D = Decimal
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (D("1.682039"), "USD", "1.68"),
        (D("145.771904"), "EUR", "145.77"),
        (D("0.005"), "USD", "0.00"),  # half to even
        (D("0.015"), "USD", "0.02"),
        (D("1250.4"), "JPY", "1250"),  # the yen has no minor unit
        (D("1.2345"), "KWD", "1.234"),  # the Kuwaiti dinar has three (half to even)
        (D("7"), "CHF", "7.00"),
    ],
)
def test_display_money_uses_the_currencys_usual_places(amount: Decimal, currency: str, shown: str) -> None:
    assert display_money(amount, currency) == shown


def _status(currency: str, spent: str, burn: str) -> AIBudgetStatus:
    spec = AIBudgetSpec.model_validate({"limit": "1.00", "currency": currency})
    cost = ServiceCost("a", D(0), D(0), D(spent), D(spent))
    evaluation = evaluate_budget(spec, AIBudgetStatus(), {"a": cost}, {}, NOW, D(burn))
    written = updated_status(AIBudgetStatus(), evaluation, spec, generation=1)
    return AIBudgetStatus.model_validate(json_dict(written))  # as read back from the API


def test_status_keeps_the_exact_amounts_and_adds_the_shown_ones() -> None:
    status = _status("USD", "1.682039", "0.2")
    assert status.spent == "1.682039"  # the checkpoint the next evaluation adds to
    assert status.spent_display == "1.68"
    assert status.forecast and D(status.forecast).as_tuple().exponent < -2
    assert status.forecast_display == display_money(D(status.forecast), "USD")
    assert len(status.forecast_display.split(".")[1]) == 2


def test_yen_budgets_show_whole_yen() -> None:
    status = _status("JPY", "1250.4", "10")
    assert status.spent_display == "1250"
    assert "." not in status.forecast_display


def test_the_money_columns_show_the_display_fields() -> None:
    paths = {column["name"]: column["jsonPath"] for column in PRINTER_COLUMNS}
    assert paths["Spent"] == ".status.spentDisplay"
    assert paths["Forecast"] == ".status.forecastDisplay"
