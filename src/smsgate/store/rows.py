"""Typed values to rows and back: ``core.message.Message``/``Part`` and ``core.events.Event``.

The delivery settings of a message live in its ``meta`` JSON column (``Message.meta`` writes it; ``message``
reads it back into attributes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from smsgate.core import events as core_events
from smsgate.core import message as core_message

Direction, Status = core_message.Direction, core_message.Status


# columns in the table's order (the order ``fastsql.insert_tuples`` binds them in)
MESSAGE_COLUMNS = ("id", "account_id", "direction", "dialect", "sender", "recipient", "text", "encoding", "parts_count",
                   "status", "connector", "network", "country", "price", "client_ref", "callback_url", "meta",
                   "created_at", "updated_at", "batch_id")  # fmt: skip
PART_COLUMNS = ("id", "message_id", "idx", "total", "concat_ref", "status", "connector", "data_coding", "udh",
                "payload", "text", "price", "attempts", "done_at")  # fmt: skip
EVENT_COLUMNS = ("message_id", "part_id", "account_id", "type", "at", "data")
# the columns that hold the attribute of the same name, as read back
_MESSAGE = tuple(c for c in MESSAGE_COLUMNS if c not in ("direction", "status", "meta", "batch_id"))
_PART = (*(c for c in PART_COLUMNS if c not in ("idx", "status")), "network_id", "error_code", "error_text",
         "submitted_at")  # fmt: skip


def message_values(m: core_message.Message) -> tuple[Any, ...]:
    """A message's ``MESSAGE_COLUMNS`` (this runs for every message accepted: one tuple, no dict)."""
    return (m.id, m.account_id, m.direction.value, m.dialect, m.sender, m.recipient, m.text, m.encoding,
            m.parts_count, m.status.value, m.connector, m.network, m.country, m.price, m.client_ref, m.callback_url,
            _json(m.meta), m.created_at, m.updated_at, m.batch_id)  # fmt: skip


def part_values(p: core_message.Part) -> tuple[Any, ...]:
    return (p.id, p.message_id, p.index, p.total, p.concat_ref, p.status.value, p.connector, p.data_coding, p.udh,
            p.payload, p.text, p.price, p.attempts, p.done_at)  # fmt: skip


def event_values(e: core_events.Event) -> tuple[Any, ...]:
    return (e.message_id, e.part_id, e.account_id, e.type.value, e.at, _json(e.data))


def _json(value: Any) -> str | None:
    return orjson.dumps(value).decode() if value is not None else None


def message(row: Mapping[Any, Any]) -> core_message.Message:
    """A message from its row (every column of ``messages``)."""
    return core_message.Message(
        **{c: row[c] for c in _MESSAGE},
        direction=Direction(row["direction"]),
        status=Status(row["status"]),
        error_code=row.get("error_code"),
        error_text=row.get("error_text"),
        batch_id=row.get("batch_id"),
        **core_message.settings(row.get("meta") or {}),
    )


def part(row: Mapping[Any, Any]) -> core_message.Part:
    """A part from its row (every column of ``parts``)."""
    return core_message.Part(**{c: row[c] for c in _PART}, index=row["idx"], status=Status(row["status"]))


def event(row: Mapping[Any, Any]) -> core_events.Event:
    return core_events.Event(
        row["message_id"], row["part_id"], row["account_id"], core_events.EventType(row["type"]), row["at"], row["data"]
    )
