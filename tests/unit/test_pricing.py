from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate.core.pricing import (
    DEFAULT_PRICES,
    UNIT,
    PriceTable,
    format_amount,
    from_units,
    message_price,
    to_units,
)


def test_units() -> None:
    assert Decimal("0.00000001") == UNIT
    assert to_units(Decimal("0.0333")) == 3_330_000
    assert to_units(Decimal("1")) == 100_000_000
    assert to_units(Decimal("0.000000015")) == 2  # half-even
    assert to_units(Decimal("0.000000025")) == 2
    assert to_units(Decimal("-0.05")) == -5_000_000
    assert from_units(3_330_000) == Decimal("0.0333")
    assert str(from_units(3_330_000)) == "0.03330000"
    assert from_units(0) == 0
    with pytest.raises(ValueError):
        to_units(Decimal("NaN"))


def test_format_amount() -> None:
    assert format_amount(Decimal("0.0333")) == "0.03330000"
    assert format_amount(Decimal("1")) == "1.00000000"
    assert format_amount(Decimal("12.5")) == "12.50000000"
    assert format_amount(Decimal("0")) == "0.00000000"
    assert format_amount(Decimal("1E-8")) == "0.00000001"
    assert format_amount(Decimal("0.123456789")) == "0.12345679"


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_units_round_trip(n: int) -> None:
    assert to_units(from_units(n)) == n
    assert Decimal(format_amount(from_units(n))) == from_units(n)


def test_price_lookup_order() -> None:
    table = PriceTable.from_mapping(
        {"default": "0.05", "countries": {"NL": "0.07", "be": 0.06}, "networks": {"20408": "0.075"}}
    )
    assert table.part_price("NL", "20408") == Decimal("0.075")
    assert table.part_price("NL", "20404") == Decimal("0.07")
    assert table.part_price("nl", None) == Decimal("0.07")
    assert table.part_price("BE", None) == Decimal("0.06")
    assert table.part_price("DE", None) == Decimal("0.05")
    assert table.part_price(None, None) == Decimal("0.05")
    assert table.part_price(None, "20408") == Decimal("0.075")


def test_zero_price_is_a_price() -> None:
    table = PriceTable.from_mapping({"default": 1, "countries": {"NL": "0"}, "networks": {"20404": 0}})
    assert table.part_price("NL", None) == 0
    assert table.part_price("DE", "20404") == 0
    assert table.part_price("DE", None) == 1


@pytest.mark.parametrize(
    "data",
    [
        {"default": "abc"},
        {"default": "-1"},
        {"default": True},
        {"default": None},
        {"default": "Infinity"},
        {"countries": ["NL"]},
        {"countries": {"NL": [1]}},
        {"surprise": 1},
    ],
)
def test_bad_config(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PriceTable.from_mapping(data)


def test_defaults_and_message_price() -> None:
    assert PriceTable.from_mapping({}).default == DEFAULT_PRICES.default
    assert DEFAULT_PRICES.default > 0
    assert message_price(DEFAULT_PRICES, "NL", "20408", 3) == DEFAULT_PRICES.part_price("NL", None) * 3
    table = PriceTable(Decimal("0.0333"), {}, {})
    assert format_amount(message_price(table, "GB", None, 2)) == "0.06660000"
    assert message_price(table, None, None, 0) == 0
    with pytest.raises(ValueError):
        message_price(table, None, None, -1)
    assert PriceTable.from_mapping({"default": 0.1}).default == Decimal("0.1")
