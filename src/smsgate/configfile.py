"""Reading the TOML config file strictly: every key is checked, and a problem is one line naming where it is.

A typo in a config file must never start a gateway that quietly does something else (a misspelt
``[[conectors]]`` used to start the sandbox, "delivering" every message while nothing left the machine). So an
unknown key anywhere is an error naming the file, the key path and the nearest valid key; a bad value names the
same; ``settings.load`` refuses to build Settings from such a file and ``smsgate config check`` prints it.
"""

from __future__ import annotations

import pathlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

from smsgate.connectors import base, registry
from smsgate.core import routing
from smsgate.errors import did_you_mean

PRICE_KEYS = frozenset({"default", "countries", "networks"})
IMPLICIT_CONNECTOR = "sandbox"  # the route when the file names no connector (see runtime.build_connectors)


class ConfigError(Exception):
    """``where: problem``, with an optional line of advice; what ``serve`` and ``config check`` print."""

    def __init__(self, where: str, problem: str, hint: str | None = None) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem
        self.hint = hint


def read_toml(path: pathlib.Path) -> dict[str, Any]:
    """The file's tables; a missing file or a syntax error is a ConfigError with the line and column."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "no such config file") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the config file ({exc.strerror})") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        text = str(exc)
        at = re.search(r"\(at line (\d+), column (\d+)\)", text)
        reason = re.sub(r"\s*\(at line \d+, column \d+\)|\s*\(at end of document\)", "", text)
        where = f"{path}:{at.group(1)}:{at.group(2)}" if at else str(path)
        raise ConfigError(where, f"TOML syntax error: {reason}") from None


def check(data: Mapping[str, Any], path: pathlib.Path, settings_keys: Iterable[str]) -> dict[str, Any]:
    """The file's settings with dashes in top-level keys read as underscores; ConfigError on any unknown key or
    bad connector, routing or price table. Plain values (``port = "x"``) are typed later by Settings."""
    name = path.name
    valid = frozenset(settings_keys)
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key not in valid:
            raise ConfigError(f"{name}: {raw_key}", "unknown key" + did_you_mean(key, valid))
        out[key] = value
    check_tables(out, name)
    return out


def check_tables(values: Mapping[str, Any], label: str) -> None:
    """The ``connectors``, ``routing`` and ``prices`` tables among ``values``; errors start with ``label`` (the
    file's name, or the environment variables that set them)."""
    names = _check_connectors(values.get("connectors", []), label)
    if "routing" in values:
        _check_routing(values["routing"], label, names or {IMPLICIT_CONNECTOR})
    if "prices" in values:
        _check_prices(values["prices"], label)


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(where, f"must be a table, not {type(value).__name__}")
    return value


def _unknown_keys(table: Mapping[str, Any], valid: frozenset[str], where: str) -> None:
    for key in table:
        if key not in valid:
            raise ConfigError(f"{where}.{key}", "unknown key" + did_you_mean(key, valid))


def _check_connectors(tables: Any, file: str) -> set[str]:
    """Each ``[[connectors]]`` table against its type's keys and parser; returns the connector names."""
    if not isinstance(tables, list):
        raise ConfigError(f"{file}: connectors", "must be an array of tables: write [[connectors]]")
    names: set[str] = set()
    for i, table in enumerate(tables):
        where = f"{file}: connectors[{i}]"
        _table(table, where)
        try:
            registry.parse(table)
        except registry.UnknownType as exc:
            raise ConfigError(
                f"{where}.type", f"unknown connector type {exc.kind!r}" + did_you_mean(exc.kind, registry.types())
            ) from None
        except registry.UnknownKey as exc:
            raise ConfigError(f"{where}.{exc.key}", "unknown key" + did_you_mean(exc.key, exc.valid)) from None
        except base.SettingError as exc:
            raise ConfigError(f"{where}.{exc.key}", exc.why) from None
        except (ValueError, TypeError) as exc:
            raise ConfigError(where, str(exc)) from None
        name = str(table["name"])
        if name in names:
            raise ConfigError(f"{where}.name", f"connector name {name!r} is used twice; names must be unique")
        names.add(name)
    return names


def _check_routing(value: Any, file: str, names: set[str]) -> None:
    where = f"{file}: routing"
    table = _table(value, where)
    _unknown_keys(table, frozenset(routing.ROUTING_KEYS), where)
    if "default" in table:
        _known_connector(table["default"], f"{where}.default", names)
    rules = table.get("rules", [])
    if not isinstance(rules, list):
        raise ConfigError(f"{where}.rules", "must be an array of tables")
    for i, rule in enumerate(rules):
        at = f"{where}.rules[{i}]"
        _unknown_keys(_table(rule, at), frozenset(routing.RULE_KEYS), at)
        if "connector" not in rule and "connectors" not in rule:
            raise ConfigError(f"{at}.connector", "missing (each rule names the connector, or connectors, it routes to)")
        listed = rule.get("connectors") if "connectors" in rule else [rule["connector"]]
        for j, name in enumerate(listed if isinstance(listed, list) else []):
            _known_connector(name, f"{at}.connectors[{j}]" if "connectors" in rule else f"{at}.connector", names)
    try:  # strategies, weights, reroute_on, prefixes: the router's own checks, worded with their key path
        routing.Router.from_mapping(table, fallback=IMPLICIT_CONNECTOR)
    except ValueError as exc:
        raise ConfigError(file, str(exc)) from None


def _known_connector(value: Any, where: str, names: set[str]) -> None:
    if str(value) not in names:
        raise ConfigError(where, f"no connector named {value!r}" + did_you_mean(str(value), names))


def _check_prices(value: Any, file: str) -> None:
    from smsgate.core import pricing

    where = f"{file}: prices"
    _unknown_keys(_table(value, where), PRICE_KEYS, where)
    try:
        pricing.PriceTable.from_mapping(value)
    except (ValueError, ArithmeticError) as exc:
        raise ConfigError(where, str(exc)) from None
