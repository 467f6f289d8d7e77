"""Which connector takes a message: an ordered list of rules, first match wins, then the default.

A rule matches on any of: destination prefix (E.164 digits), destination country (ISO-2), account id,
dialect. Rules come from the ``[routing]`` table of the config file::

    [routing]
    default = "kpn-smsc"
    rules = [{ prefix = "3197", connector = "m2m-smsc" }, { country = "BE", connector = "http-be" }]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    connector: str
    prefix: str | None = None
    country: str | None = None
    account: str | None = None
    dialect: str | None = None

    def matches(self, *, digits: str, country: str | None, account: str, dialect: str) -> bool:
        return (
            (self.prefix is None or digits.startswith(self.prefix))
            and (self.country is None or (country or "").upper() == self.country.upper())
            and (self.account is None or account == self.account)
            and (self.dialect is None or dialect == self.dialect)
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Router:
    default: str
    rules: Sequence[Rule] = ()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, fallback: str) -> Router:
        rules = []
        for r in data.get("rules", []) or []:
            unknown = set(r) - {"connector", "prefix", "country", "account", "dialect"}
            if unknown or "connector" not in r:
                raise ValueError(f"bad routing rule {r!r}")
            rules.append(Rule(**{k: str(v) for k, v in r.items()}))
        return cls(default=str(data.get("default", fallback)), rules=tuple(rules))

    def connectors(self) -> set[str]:
        return {self.default, *(r.connector for r in self.rules)}

    def route(self, *, digits: str, country: str | None, account: str, dialect: str) -> str:
        for rule in self.rules:
            if rule.matches(digits=digits, country=country, account=account, dialect=dialect):
                return rule.connector
        return self.default
