"""Typed values to rows and back: ``core.message.Message``/``Part`` and ``core.events.Event``.

The delivery settings of a message live in its ``meta`` JSON column (``Message.meta`` writes it; ``message``
reads it back into attributes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smsgate.core import events as core_events
from smsgate.core import message as core_message

Direction, Status = core_message.Direction, core_message.Status


# columns holding the attribute of the same name (the others: direction and status, enums; meta, the settings)
_MESSAGE = ("id", "account_id", "dialect", "sender", "recipient", "text", "encoding", "parts_count", "connector",
            "network", "country", "price", "client_ref", "callback_url", "created_at", "updated_at")  # fmt: skip
_PART = ("id", "message_id", "total", "concat_ref", "connector", "data_coding", "udh", "payload", "text", "price",
         "attempts", "done_at")  # fmt: skip
_PART_RESULT = ("network_id", "error_code", "error_text", "submitted_at")  # read back; written by updates


def message_row(m: core_message.Message) -> dict[str, Any]:
    row = {c: getattr(m, c) for c in _MESSAGE}
    row.update(direction=m.direction.value, status=m.status.value, meta=m.meta)
    return row


def message(row: Mapping[Any, Any]) -> core_message.Message:
    """A message from its row (every column of ``messages``)."""
    return core_message.Message(
        **{c: row[c] for c in _MESSAGE},
        direction=Direction(row["direction"]),
        status=Status(row["status"]),
        error_code=row.get("error_code"),
        error_text=row.get("error_text"),
        **core_message.settings(row.get("meta") or {}),
    )


def part_row(p: core_message.Part) -> dict[str, Any]:
    """The columns an accepted or received part is inserted with."""
    row = {c: getattr(p, c) for c in _PART}
    row.update(idx=p.index, status=p.status.value)
    return row


def part(row: Mapping[Any, Any]) -> core_message.Part:
    """A part from its row (every column of ``parts``)."""
    return core_message.Part(
        **{c: row[c] for c in (*_PART, *_PART_RESULT)}, index=row["idx"], status=Status(row["status"])
    )


def event_row(e: core_events.Event) -> dict[str, Any]:
    return {
        "message_id": e.message_id,
        "part_id": e.part_id,
        "account_id": e.account_id,
        "type": e.type.value,
        "at": e.at,
        "data": dict(e.data) if e.data is not None else None,
    }


def event(row: Mapping[Any, Any]) -> core_events.Event:
    return core_events.Event(
        row["message_id"], row["part_id"], row["account_id"], core_events.EventType(row["type"]), row["at"], row["data"]
    )
