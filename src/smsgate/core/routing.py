"""Which connectors may take a message: an ordered list of rules, first match wins, then the default.

A rule matches on any of: destination prefix (E.164 digits), destination country (ISO-2), account id,
dialect; a rule with no condition matches every message. It names one connector or several, with a strategy
for choosing among those that can take a message at submit time (``Route.choose``):

    failover   the first usable connector in the listed order (the others are stand-bys)
    weighted   usable connectors share the traffic by ``weights`` (smooth weighted round-robin, so 3:1 means
               exactly three of every four, not three on average)

``reroute_on = ["rejected"]`` offers a part that one connector refused permanently to the next one. Rules come
from the ``[routing]`` table of the config file::

    [routing]
    default = "kpn-smsc"
    rules = [
      { prefix = "3197", connector = "m2m-smsc" },
      { prefix = "316", connectors = ["kpn", "vonage"], strategy = "failover", reroute_on = ["rejected"] },
      { country = "BE", connectors = ["http-be", "vonage"], strategy = "weighted", weights = [3, 1] },
    ]

Choosing happens in the dispatcher, not at accept: the accept path stores the route's first connector and
costs nothing more, and a connector that fails between accept and submit is skipped at submit time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal

from smsgate.errors import did_you_mean

Strategy = Literal["failover", "weighted"]
STRATEGIES: tuple[Strategy, ...] = ("failover", "weighted")
REROUTE_REASONS = ("rejected",)
MATCH_KEYS = ("prefix", "country", "account", "dialect")
RULE_KEYS = (*MATCH_KEYS, "connector", "connectors", "strategy", "weights", "reroute_on")
ROUTING_KEYS = ("default", "rules")


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """The connectors a message may go through, and how to choose among them."""

    connectors: tuple[str, ...]
    strategy: Strategy = "failover"
    weights: tuple[int, ...] = ()
    reroute_on: frozenset[str] = frozenset()

    @property
    def primary(self) -> str:
        """The connector recorded at accept (the first listed)."""
        return self.connectors[0]

    def choose(
        self, usable: Callable[[str], bool], *, exclude: Collection[str] = (), picker: Picker | None = None
    ) -> str | None:
        """The connector to try now, among those ``usable`` and not in ``exclude``; None when there is none."""
        candidates = [c for c in self.connectors if c not in exclude and usable(c)]
        if not candidates:
            return None
        if self.strategy == "failover" or len(candidates) == 1 or picker is None:
            return candidates[0]
        weight = dict(zip(self.connectors, self.weights, strict=True))
        return picker.pick([(c, weight[c]) for c in candidates])

    def reroutes(self, reason: str) -> bool:
        return reason in self.reroute_on


class Picker:
    """Smooth weighted round-robin (as nginx's upstream module): each pick adds every candidate's weight to its
    score and takes the highest, which then pays the total back. Over any run of picks among the same
    candidates each gets its exact share, interleaved (a, a, b, a, a, a, b, a...) rather than in bursts."""

    def __init__(self) -> None:
        self._score: dict[str, int] = {}

    def pick(self, candidates: Sequence[tuple[str, int]]) -> str:
        total = 0
        best: str | None = None
        for name, weight in candidates:
            score = self._score.get(name, 0) + weight
            self._score[name] = score
            total += weight
            if best is None or score > self._score[best]:
                best = name
        assert best is not None
        self._score[best] -= total
        return best


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    route: Route
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

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> Rule:
        """One entry of ``rules``; ValueError naming the key (and the nearest valid one) otherwise."""
        if not isinstance(data, Mapping):
            raise ValueError(f'{where}: each rule is a table such as {{ prefix = "316", connector = "kpn" }}')
        for key in data:
            if key not in RULE_KEYS:
                raise ValueError(f"{where}: unknown key {key!r}{did_you_mean(str(key), RULE_KEYS)}")
        match: dict[str, str] = {}
        for key in MATCH_KEYS:
            if key in data:
                if not isinstance(data[key], str) or not data[key]:
                    raise ValueError(f"{where}.{key}: must be a non-empty string")
                match[key] = data[key]
        if match.get("prefix") is not None and not match["prefix"].lstrip("+").isdigit():
            raise ValueError(f'{where}.prefix: digits of the E.164 number, such as "316"')
        if "prefix" in match:
            match["prefix"] = match["prefix"].lstrip("+")
        return cls(route=_route(data, where), **match)


def _route(data: Mapping[str, Any], where: str) -> Route:
    if ("connector" in data) == ("connectors" in data):
        raise ValueError(f'{where}: give either connector = "name" or connectors = ["a", "b"]')
    if "connector" in data:
        names = [data["connector"]]
    else:
        names = data["connectors"]
        if not isinstance(names, list) or not names:
            raise ValueError(f"{where}.connectors: a non-empty list of connector names")
    if not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{where}: connector names are non-empty strings")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}.connectors: a connector is listed twice")
    strategy = data.get("strategy", "failover")
    if strategy not in STRATEGIES:
        raise ValueError(f'{where}.strategy: must be "failover" or "weighted"{did_you_mean(str(strategy), STRATEGIES)}')
    weights = data.get("weights")
    if strategy == "weighted":
        if (
            not isinstance(weights, list)
            or len(weights) != len(names)
            or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in weights)
        ):
            raise ValueError(f"{where}.weights: one positive integer per connector, such as [3, 1]")
    elif weights is not None:
        raise ValueError(f'{where}.weights: only with strategy = "weighted"')
    reroute = data.get("reroute_on", [])
    if not isinstance(reroute, list) or not all(r in REROUTE_REASONS for r in reroute):
        raise ValueError(f"{where}.reroute_on: a list of {list(REROUTE_REASONS)}")
    return Route(
        connectors=tuple(names),
        strategy=strategy,
        weights=tuple(weights or ()),
        reroute_on=frozenset(reroute),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Router:
    default: Route
    rules: Sequence[Rule] = ()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, fallback: str) -> Router:
        for key in data:
            if key not in ROUTING_KEYS:
                raise ValueError(f"routing: unknown key {key!r}{did_you_mean(str(key), ROUTING_KEYS)}")
        raw_rules = data.get("rules", []) or []
        if not isinstance(raw_rules, list):
            raise ValueError("routing.rules: a list of tables")
        rules = tuple(Rule.from_mapping(r, f"routing.rules[{i}]") for i, r in enumerate(raw_rules))
        default = data.get("default", fallback)
        if not isinstance(default, str) or not default:
            raise ValueError("routing.default: a connector name")
        return cls(default=Route((default,)), rules=rules)

    def connectors(self) -> set[str]:
        return {*self.default.connectors, *(c for r in self.rules for c in r.route.connectors)}

    def route(self, *, digits: str, country: str | None, account: str, dialect: str) -> Route:
        for rule in self.rules:
            if rule.matches(digits=digits, country=country, account=account, dialect=dialect):
                return rule.route
        return self.default
