"""Routing rules: several connectors per rule, failover and weighted choice, and config errors people can act on."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from smsgate.core import routing


def router(rules: list[dict[str, Any]], default: str = "sandbox") -> routing.Router:
    return routing.Router.from_mapping({"default": default, "rules": rules}, fallback="sandbox")


def route_for(r: routing.Router, digits: str, **kw: Any) -> routing.Route:
    return r.route(digits=digits, country=kw.get("country"), account=kw.get("account", "acc"), dialect="kpn")


def test_first_matching_rule_wins_and_a_bare_rule_matches_everything() -> None:
    r = router([
        {"prefix": "3197", "connector": "m2m"},
        {"prefix": "+316", "connectors": ["kpn", "vonage"], "reroute_on": ["rejected"]},
        {"connectors": ["a", "b"], "strategy": "weighted", "weights": [3, 1]},
    ])  # fmt: skip
    assert route_for(r, "31970123456789").connectors == ("m2m",)
    nl = route_for(r, "31612345678")
    assert (nl.connectors, nl.strategy, nl.reroutes("rejected")) == (("kpn", "vonage"), "failover", True)
    assert route_for(r, "4915112345678").weights == (3, 1)
    assert r.connectors() == {"sandbox", "m2m", "kpn", "vonage", "a", "b"}
    assert router([]).route(digits="1", country=None, account="x", dialect="kpn").connectors == ("sandbox",)


def test_failover_takes_the_first_usable_connector_not_yet_tried() -> None:
    route = routing.Route(("kpn", "vonage", "kaarai"))
    up = {"kpn", "vonage", "kaarai"}
    assert route.choose(lambda c: c in up) == "kpn"
    assert route.choose(lambda c: c in up - {"kpn"}) == "vonage"
    assert route.choose(lambda c: c in up, exclude={"kpn", "vonage"}) == "kaarai"
    assert route.choose(lambda c: False) is None


def test_weighted_gives_exact_shares_interleaved_and_renormalises_when_one_is_down() -> None:
    route = routing.Route(("a", "b"), "weighted", (3, 1))
    picker = routing.Picker()
    picks = [route.choose(lambda c: True, picker=picker) for _ in range(4000)]
    assert collections.Counter(picks) == {"a": 3000, "b": 1000}
    assert picks[:8].count("b") == 2  # interleaved, not 3,000 then 1,000
    assert {route.choose(lambda c: c == "b", picker=picker) for _ in range(10)} == {"b"}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"prefix": "316", "conector": "kpn"}, "unknown key 'conector' (did you mean connector?)"),
        ({"prefix": "316"}, "give either connector"),
        ({"connector": "a", "connectors": ["b"]}, "give either connector"),
        ({"connectors": ["a", "a"]}, "listed twice"),
        ({"connectors": ["a", "b"], "strategy": "weigthed"}, "did you mean weighted"),
        ({"connectors": ["a", "b"], "strategy": "weighted"}, "one positive integer per connector"),
        ({"connectors": ["a", "b"], "strategy": "weighted", "weights": [3, 0]}, "one positive integer"),
        ({"connectors": ["a", "b"], "weights": [1, 1]}, 'only with strategy = "weighted"'),
        ({"connectors": ["a", "b"], "reroute_on": ["timeout"]}, "reroute_on: a list of ['rejected']"),
        ({"prefix": "31x", "connector": "a"}, "digits of the E.164 number"),
    ],
)
def test_bad_rules_are_refused_with_the_key_and_the_fix(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=r"routing\.rules\[0\]") as err:
        router([rule])
    assert message in str(err.value)


def test_unknown_routing_key() -> None:
    with pytest.raises(ValueError, match="unknown key 'rule' \\(did you mean rules\\?\\)"):
        routing.Router.from_mapping({"rule": []}, fallback="x")
