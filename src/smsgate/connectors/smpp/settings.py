"""Every knob of one SMPP connector, validated once from its ``[[connectors]]`` TOML table.

The timer set follows jasmin's SMPPClientConfig checklist: bind (session init), enquire_link, response,
inactivity (derived: enquire_link_interval + response_timeout), reconnect delays, throughput.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal, cast

from smsgate.connectors.base import SettingError

BindMode = Literal["transceiver", "transmitter_receiver"]
ConcatMode = Literal["udh", "sar", "payload"]
IdFormat = Literal["str", "hex", "dec"]
ReceiptIdFormat = Literal["same", "str", "hex", "dec"]


@dataclasses.dataclass(frozen=True, slots=True)
class SmppSettings:
    """Settings of one SMPP connector (one transceiver, or one transmitter + one receiver session)."""

    name: str
    host: str
    port: int = 2775
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    bind: BindMode = "transceiver"
    address_range: str = ""
    interface_version: int = 0x34
    window: int = 50  # outstanding submit_sm per session
    max_tps: float = 0.0  # submit_sm per second; 0 = unlimited
    enquire_link_interval: float = 30.0  # send enquire_link after this long without traffic
    response_timeout: float = 10.0  # a request without a response after this long fails (RETRY)
    bind_timeout: float = 10.0  # connect + bind_resp
    connect_timeout: float = 5.0
    reconnect_delay_min: float = 1.0
    reconnect_delay_max: float = 60.0
    throttle_backoff: float = 1.0  # pause the connector this long after 0x58 / 0x14
    close_timeout: float = 5.0  # waiting for in-flight responses + unbind_resp on close
    concat: ConcatMode = "udh"
    id_format: IdFormat = "str"  # how the SMSC writes message ids in submit_sm_resp
    receipt_id_format: ReceiptIdFormat = "same"  # how it writes them in receipts ("same" = id_format)
    source_ton: int | None = None  # override the part's source TON
    source_npi: int | None = None
    dest_ton: int = 1
    dest_npi: int = 1
    service_type: str = ""
    priority_flag: int = 0
    retry_statuses: tuple[int, ...] = (0x58, 0x14)  # submit_sm_resp statuses answered with RETRY + pause
    transient_statuses: tuple[int, ...] = (0x04,)  # RETRY without pausing (e.g. ESME_RINVBNDSTS)
    write_high_water: int = 256 * 1024  # drain the socket only when this many bytes are buffered
    inbound_queue: int = 1000  # deliver_sm waiting for the sink before we stop reading the socket
    inbound_batch: int = 200  # deliver_sm handed to the sink in one call at most

    def __post_init__(self) -> None:
        _check(bool(self.name), "name", "must not be empty")
        _check(bool(self.host), "host", "must not be empty")
        _check(0 < self.port < 65536, "port", "must be 1..65535")
        _check(self.bind in ("transceiver", "transmitter_receiver"), "bind", "transceiver|transmitter_receiver")
        _check(self.concat in ("udh", "sar", "payload"), "concat", "must be udh|sar|payload")
        _check(self.id_format in ("str", "hex", "dec"), "id_format", "must be str|hex|dec")
        _check(self.receipt_id_format in ("same", "str", "hex", "dec"), "receipt_id_format", "same|str|hex|dec")
        _check(1 <= self.window <= 10_000, "window", "must be 1..10000")
        _check(self.max_tps >= 0, "max_tps", "must be >= 0")
        for key in ("enquire_link_interval", "response_timeout", "bind_timeout", "connect_timeout",
                    "reconnect_delay_min", "close_timeout"):  # fmt: skip
            _check(getattr(self, key) > 0, key, "must be > 0")
        _check(self.reconnect_delay_max >= self.reconnect_delay_min, "reconnect_delay_max", ">= min")
        _check(self.throttle_backoff >= 0, "throttle_backoff", "must be >= 0")
        _check(len(self.system_id) <= 15, "system_id", "at most 15 characters")
        _check(len(self.password) <= 8, "password", "at most 8 characters")
        _check(self.inbound_queue >= 1 and self.inbound_batch >= 1, "inbound_queue", "must be >= 1")

    @property
    def receipt_ids(self) -> IdFormat:
        """The id format used in receipts."""
        return self.id_format if self.receipt_id_format == "same" else self.receipt_id_format

    @property
    def inactivity_timeout(self) -> float:
        """Nothing received for this long means the link is dead (we ping after enquire_link_interval)."""
        return self.enquire_link_interval + self.response_timeout

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> SmppSettings:
        """Validate a ``[[connectors]]`` table; unknown keys or wrong types raise ValueError naming the key."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, object] = {}
        for key, value in data.items():
            if key == "type":
                continue
            if key not in fields:
                raise SettingError(key, "unknown key")
            kwargs[key] = _coerce(key, value, fields[key].type)
        for required in ("name", "host"):
            if required not in kwargs:
                raise SettingError(required, "missing (required)")
        try:
            return cls(**kwargs)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ValueError(f"connector {kwargs.get('name')!r}: {exc}") from exc


def _check(ok: bool, key: str, why: str) -> None:
    if not ok:
        raise SettingError(key, why)


def _coerce(key: str, value: object, typ: object) -> object:
    """Check one TOML value against the field's annotation (strings, since annotations are lazy)."""
    t = typ if isinstance(typ, str) else str(typ)
    optional = "None" in t
    if value is None:
        if optional:
            return None
        raise SettingError(key, "must not be empty")
    if t.startswith("tuple"):
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise SettingError(key, "must be a list of integers")
        return tuple(cast(list[int], value))
    if t.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingError(key, "must be a number")
        return float(value)
    if t.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingError(key, "must be an integer")
        return value
    if not isinstance(value, str):
        raise SettingError(key, "must be a string")
    return value
