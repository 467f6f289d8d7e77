"""What every HTTP upstream connector is configured with, and the strict reader of a ``[[connectors]]`` table.

Each upstream type has a frozen settings class built on ``HttpSettings``; ``from_mapping(table)`` refuses an
unknown key (naming the nearest valid one) or a value of the wrong kind with a ``ValueError`` of one line, as
``SmppSettings.from_mapping`` does. Secrets are kept out of ``repr`` so a settings object can be logged.

The shared knobs, and why they are there:

    max_tps               SMS parts per second; paced here per node, and for all nodes together through Redis
    timeout               seconds one request may take in all (connect, send, answer)
    concurrency           requests on the wire at once
    retries, backoff,     quick tries of a request that certainly did not go out (connection refused, 5xx, 429),
    backoff_max           backoff doubling from ``backoff``; a longer wait (or Retry-After) goes back to the outbox
    retry_on_timeout      a request sent without an answer may have sent the SMS: it is retried only when set
                          (the documented risk is a duplicate SMS) or when the upstream takes an idempotency key
    circuit_failures,     this many failures in a row open the circuit: the connector is skipped by routing, and
    circuit_open_seconds  after this long one request probes the upstream (half-open) before traffic returns
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from smsgate.errors import did_you_mean

T = TypeVar("T", bound="HttpSettings")
Special = Callable[[str, object], object]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings:
    name: str
    max_tps: float = 0.0
    timeout: float = 10.0
    connect_timeout: float = 5.0
    concurrency: int = 8
    retries: int = 2
    backoff: float = 0.5
    backoff_max: float = 10.0
    retry_on_timeout: bool = False
    circuit_failures: int = 5
    circuit_open_seconds: float = 30.0
    verify_tls: bool = True  # False only for a test upstream with a self-signed certificate

    def __post_init__(self) -> None:
        check(bool(self.name), "name", "must not be empty")
        check(self.max_tps >= 0, "max_tps", "must be >= 0 (0 = unlimited)")
        for key in ("timeout", "connect_timeout", "backoff", "circuit_open_seconds"):
            check(getattr(self, key) > 0, key, "must be > 0")
        check(self.backoff_max >= self.backoff, "backoff_max", "must be >= backoff")
        check(1 <= self.concurrency <= 1000, "concurrency", "must be 1..1000")
        check(0 <= self.retries <= 10, "retries", "must be 0..10")
        check(1 <= self.circuit_failures <= 1000, "circuit_failures", "must be 1..1000")

    @classmethod
    def from_mapping(cls: type[T], data: Mapping[str, object]) -> T:
        """Validate a ``[[connectors]]`` table (its ``type`` key is the registry's business and is skipped)."""
        return parse(cls, data, cls.special())

    @classmethod
    def special(cls) -> Mapping[str, Special]:
        """Readers for the keys a plain type check cannot take (templates, tables); per upstream type."""
        return {}


def check(ok: bool, key: str, why: str) -> None:
    if not ok:
        raise ValueError(f"{key!r}: {why}")


def parse(cls: type[T], data: Mapping[str, object], special: Mapping[str, Special]) -> T:
    kind = str(data.get("type", "?"))
    where = f"connector {data.get('name', '?')!r} (type {kind!r})"
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, object] = {}
    try:
        for key, value in data.items():
            if key == "type":
                continue
            if key not in fields:
                raise ValueError(f"unknown key {key!r}{did_you_mean(key, fields)}")
            kwargs[key] = special[key](key, value) if key in special else coerce(key, value, hints[key])
        for key, f in fields.items():
            if key not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"missing key {key!r}")
        return cls(**kwargs)  # type: ignore[arg-type]  # each value was checked against its field above
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def coerce(key: str, value: object, typ: Any) -> object:
    """``value`` checked against the field's type: str, int, float, bool, ``X | None``, tuples, str→str tables."""
    if isinstance(typ, types.UnionType):
        args = [a for a in typ.__args__ if a is not type(None)]
        if value is None:
            return None
        return coerce(key, value, args[0])
    origin = typing.get_origin(typ)
    if origin is tuple:
        item = typing.get_args(typ)[0]
        if not isinstance(value, list | tuple):
            raise ValueError(f"{key!r}: must be a list")
        return tuple(coerce(key, v, item) for v in value)
    if origin in (dict, Mapping) or typ in (dict, Mapping):
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ValueError(f'{key!r}: must be a table of strings, such as {{ Name = "value" }}')
        return dict(value)
    if typ is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key!r}: must be true or false")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key!r}: must be a number")
        return float(value)
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key!r}: must be an integer")
        return value
    if typ is str:
        if not isinstance(value, str):
            raise ValueError(f"{key!r}: must be a string")
        return value
    raise TypeError(f"{key!r}: no reader for {typ!r}")  # a settings class declared a type this reader lacks
