"""Message prices: Decimal money, stored as integer counts of 1e-8 (Vonage shows 8 decimals).

Floats never touch money; integers in the store make balance arithmetic exact and atomic.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from types import MappingProxyType

__all__ = [
    "DEFAULT_PRICES",
    "UNIT",
    "PriceTable",
    "format_amount",
    "from_units",
    "message_price",
    "minor_units",
    "to_units",
]

UNIT = Decimal("0.00000001")
_EMPTY: Mapping[str, Decimal] = MappingProxyType({})


def _check(d: Decimal) -> Decimal:
    if not d.is_finite():
        raise ValueError(f"not a finite amount: {d}")
    return d


@functools.lru_cache(maxsize=4096)  # a handful of prices, converted for every message (Decimal is hashable)
def to_units(d: Decimal) -> int:
    """Integer count of 1e-8 (banker's rounding beyond 8 decimals)."""
    return int(_check(d).quantize(UNIT, rounding=ROUND_HALF_EVEN).scaleb(8))


def from_units(n: int) -> Decimal:
    """Decimal amount of ``n`` × 1e-8, with exactly 8 decimals."""
    return Decimal(n).scaleb(-8)


def format_amount(d: Decimal) -> str:
    """Vonage's price format: fixed point, 8 decimals ("0.03330000")."""
    return f"{_check(d).quantize(UNIT, rounding=ROUND_HALF_EVEN):f}"


# ISO 4217 currencies whose minor unit is not the cent (2 decimals): people read prices in these
_ZERO_DECIMALS = ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV",
                  "XAF", "XOF", "XPF")  # fmt: skip
_MINOR_UNITS = {
    **dict.fromkeys(_ZERO_DECIMALS, 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    "CLF": 4,
    "UYW": 4,
}


def minor_units(currency: str) -> int:
    """How many decimals ``currency`` (an ISO 4217 code) is shown with: 2 unless ISO 4217 says otherwise. A code
    that is not three capital letters raises ValueError (the setting's check)."""
    if len(currency) != 3 or not currency.isascii() or not currency.isalpha() or not currency.isupper():
        raise ValueError(f"{currency!r} is not an ISO 4217 currency code (three capital letters, e.g. EUR)")
    return _MINOR_UNITS.get(currency, 2)


def _money(value: object, where: str) -> Decimal:
    """Operator config value to Decimal; floats go through str so 0.1 stays 0.1."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: a price must be a number, not {value!r}")
    if isinstance(value, float):
        value = repr(value)
    if not isinstance(value, Decimal | int | str):
        raise ValueError(f"{where}: a price must be a number, not {value!r}")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError(f"{where}: {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{where}: a price must be a finite amount of at least 0, not {value!r}")
    return amount


def _prices(data: Mapping[str, object], key: str, upper: bool) -> Mapping[str, Decimal]:
    section = data.get(key)
    if section is None:
        return _EMPTY
    if not isinstance(section, Mapping):
        raise ValueError(f"{key}: expected a mapping of code to price")
    prices: dict[str, Decimal] = {}
    for code, value in section.items():
        name = str(code).strip()
        prices[name.upper() if upper else name] = _money(value, f"{key}.{name}")
    return MappingProxyType(prices)


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Price per SMS part: a network (MCC-MNC) price beats a country (ISO-2) price beats the default."""

    default: Decimal
    by_country: Mapping[str, Decimal] = field(default_factory=lambda: _EMPTY)
    by_network: Mapping[str, Decimal] = field(default_factory=lambda: _EMPTY)

    def part_price(self, country: str | None, network: str | None) -> Decimal:
        if network is not None:
            price = self.by_network.get(network)
            if price is not None:
                return price
        if country is not None:
            price = self.by_country.get(country)
            if price is None:
                price = self.by_country.get(country.upper())
            if price is not None:
                return price
        return self.default

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> PriceTable:
        """Build from operator config: ``{"default": "0.05", "countries": {...}, "networks": {...}}``."""
        unknown = set(data) - {"default", "countries", "networks"}
        if unknown:
            raise ValueError(f"unknown price settings: {', '.join(sorted(unknown))}")
        default = _money(data["default"], "default") if "default" in data else DEFAULT_PRICES.default
        return cls(
            default=default,
            by_country=_prices(data, "countries", upper=True),
            by_network=_prices(data, "networks", upper=False),
        )


DEFAULT_PRICES = PriceTable(
    default=Decimal("0.05000000"),
    by_country=MappingProxyType({"NL": Decimal("0.07000000")}),
    by_network=_EMPTY,
)
"""Demo prices in EUR per part; operators override them in config."""


def message_price(table: PriceTable, country: str | None, network: str | None, parts: int) -> Decimal:
    """Every part is charged, like Vonage does."""
    if parts < 0:
        raise ValueError("parts must be at least 0")
    return table.part_price(country, network) * parts
