"""Every connector type a ``[[connectors]]`` table may name: its keys, its settings parser and its factory.

One table drives three readers: ``smsgate config check`` and ``settings.load`` (refuse an unknown key, naming
the nearest valid one, before anything starts) and ``runtime`` (build the connector). A new connector type is
one ``register`` call here; nothing else needs to know it exists.

``parse`` takes the TOML table without its ``type`` key and returns the type's typed settings (raising
ValueError naming the key for a bad value); ``build`` turns them into a connector. Unknown keys are refused
here, against ``keys``, before ``parse`` runs, so every type words that error the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from smsgate.connectors import base, sandbox
from smsgate.connectors import http as http_connectors
from smsgate.connectors.smpp import settings as smpp_settings


@dataclasses.dataclass(frozen=True, slots=True)
class Defaults:
    """Gateway-wide values a connector table may leave unset (the sandbox's receipt delays)."""

    sandbox_receipt_delay: float = 0.2
    sandbox_slow_receipt_delay: float = 30.0
    public_url: str | None = None  # where HTTP upstreams call back (receipt and inbound receivers)


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectorType:
    name: str
    keys: frozenset[str]  # every key the table may hold besides ``type``
    parse: Callable[[Mapping[str, object]], Any]
    build: Callable[[Any, Defaults], base.Connector]
    required: frozenset[str] = frozenset({"name"})


class UnknownKey(ValueError):
    """A key the connector type does not have; ``valid`` lists the keys it does."""

    def __init__(self, key: str, valid: frozenset[str]) -> None:
        super().__init__(f"unknown key {key!r}")
        self.key = key
        self.valid = valid


class UnknownType(ValueError):
    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown connector type {kind!r}")
        self.kind = kind


DEFAULT_TYPE = "smpp"  # a table without ``type``: SMPP, as before there were other types
_TYPES: dict[str, ConnectorType] = {}


def register(kind: ConnectorType) -> None:
    if kind.name in _TYPES:
        raise ValueError(f"connector type {kind.name!r} registered twice")
    _TYPES[kind.name] = kind


def types() -> dict[str, ConnectorType]:
    return dict(_TYPES)


def dataclass_keys(cls: type) -> frozenset[str]:
    """The keys of a settings dataclass: its fields."""
    return frozenset(f.name for f in dataclasses.fields(cls))


def dataclass_required(cls: type) -> frozenset[str]:
    """The fields of a settings dataclass that have no default."""
    return frozenset(
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )


def lookup(table: Mapping[str, object]) -> ConnectorType:
    kind = str(table.get("type", DEFAULT_TYPE))
    found = _TYPES.get(kind)
    if found is None:
        raise UnknownType(kind)
    return found


def parse(table: Mapping[str, object]) -> tuple[ConnectorType, Any]:
    """The type and typed settings of one ``[[connectors]]`` table; UnknownType, UnknownKey or ValueError."""
    kind = lookup(table)
    body = {k: v for k, v in table.items() if k != "type"}
    for key in body:
        if key not in kind.keys:
            raise UnknownKey(key, kind.keys)
    for key in sorted(kind.required - set(body)):
        raise base.SettingError(key, "missing (required)")
    return kind, kind.parse(body)


def build(table: Mapping[str, object], defaults: Defaults) -> base.Connector:
    kind, parsed = parse(table)
    return kind.build(parsed, defaults)


# -- the built-in types ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class SandboxSettings:
    """A ``type = "sandbox"`` table: the virtual handsets, with its own receipt delays if it sets them."""

    name: str
    receipt_delay: float | None = None
    slow_delay: float | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> SandboxSettings:
        delays: dict[str, float] = {}
        for key in ("receipt_delay", "slow_delay"):
            value = data.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise base.SettingError(key, "must be a number of seconds >= 0")
            delays[key] = float(value)
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise base.SettingError("name", "must be a non-empty string")
        return cls(name=name, **delays)


def _build_sandbox(s: SandboxSettings, defaults: Defaults) -> base.Connector:
    return sandbox.SandboxNetwork(
        s.name,
        receipt_delay=defaults.sandbox_receipt_delay if s.receipt_delay is None else s.receipt_delay,
        slow_delay=defaults.sandbox_slow_receipt_delay if s.slow_delay is None else s.slow_delay,
    )


def _build_smpp(s: smpp_settings.SmppSettings, _defaults: Defaults) -> base.Connector:
    from smsgate.connectors.smpp import connector as smpp_connector  # the session machinery, only when used

    return smpp_connector.SmppConnector(s)


register(ConnectorType("sandbox", dataclass_keys(SandboxSettings), SandboxSettings.from_mapping, _build_sandbox))
register(
    ConnectorType(
        "smpp",
        dataclass_keys(smpp_settings.SmppSettings),
        smpp_settings.SmppSettings.from_mapping,
        _build_smpp,
        required=frozenset({"name", "host"}),
    )
)


def _http_type(
    kind: str, settings_cls: type[http_connectors.HttpSettings], connector_cls: type[http_connectors.HttpConnector]
) -> ConnectorType:
    def build(s: http_connectors.HttpSettings, defaults: Defaults) -> base.Connector:
        return connector_cls(s, public_url=defaults.public_url)

    return ConnectorType(
        kind, dataclass_keys(settings_cls), settings_cls.from_mapping, build, required=dataclass_required(settings_cls)
    )


for _kind, (_settings_cls, _connector_cls) in http_connectors.TYPES.items():
    register(_http_type(_kind, _settings_cls, _connector_cls))
