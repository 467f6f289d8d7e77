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


def message_row(m: core_message.Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "account_id": m.account_id,
        "direction": m.direction.value,
        "dialect": m.dialect,
        "sender": m.sender,
        "recipient": m.recipient,
        "text": m.text,
        "encoding": m.encoding,
        "parts_count": m.parts_count,
        "status": m.status.value,
        "connector": m.connector,
        "network": m.network,
        "country": m.country,
        "price": m.price,
        "client_ref": m.client_ref,
        "callback_url": m.callback_url,
        "meta": m.meta,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    }


def message(row: Mapping[Any, Any]) -> core_message.Message:
    """A message from its row (every column of ``messages``)."""
    md = row.get("meta") or {}
    received = md.get("parts_received")
    ttl = md.get("ttl_seconds")
    return core_message.Message(
        id=row["id"],
        account_id=row["account_id"],
        direction=Direction(row["direction"]),
        dialect=row["dialect"],
        sender=row["sender"],
        recipient=row["recipient"],
        text=row["text"],
        encoding=row["encoding"],
        parts_count=row["parts_count"],
        status=Status(row["status"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        connector=row["connector"],
        network=row["network"],
        country=row["country"],
        price=row["price"] or 0,
        client_ref=row["client_ref"],
        callback_url=row["callback_url"],
        error_code=row.get("error_code"),
        error_text=row.get("error_text"),
        ttl_seconds=float(ttl) if ttl else None,
        retry_max_seconds=md.get("retry_max_seconds"),
        status_report=md.get("status_report", True) is not False,
        message_class=md.get("message_class"),
        protocol_id=int(md.get("protocol_id", 0)),
        pinned=bool(md.get("pinned")),
        reply_routing=md.get("inbound") is True,
        account_ref=md.get("account_ref"),
        entity_id=md.get("entity_id"),
        content_id=md.get("content_id"),
        trusted_number=md.get("trusted_number"),
        requested_from=md.get("requested_from"),
        routed_by=md.get("routed_by"),
        incomplete=bool(md.get("incomplete")),
        parts_received=tuple(received) if received is not None else None,
        data=md.get("data"),
    )


def part_row(p: core_message.Part) -> dict[str, Any]:
    """The columns an accepted or received part is inserted with."""
    return {
        "id": p.id,
        "message_id": p.message_id,
        "idx": p.index,
        "total": p.total,
        "concat_ref": p.concat_ref,
        "status": p.status.value,
        "connector": p.connector,
        "data_coding": p.data_coding,
        "udh": p.udh,
        "payload": p.payload,
        "text": p.text,
        "price": p.price,
        "attempts": p.attempts,
        "done_at": p.done_at,
    }


def part(row: Mapping[Any, Any]) -> core_message.Part:
    """A part from its row (every column of ``parts``)."""
    return core_message.Part(
        id=row["id"],
        message_id=row["message_id"],
        index=row["idx"],
        total=row["total"],
        status=Status(row["status"]),
        data_coding=row["data_coding"],
        udh=bytes(row["udh"]),
        payload=bytes(row["payload"]),
        text=row["text"],
        connector=row["connector"],
        concat_ref=row["concat_ref"],
        price=row["price"] or 0,
        attempts=row["attempts"] or 0,
        network_id=row["network_id"],
        error_code=row["error_code"],
        error_text=row["error_text"],
        submitted_at=row["submitted_at"],
        done_at=row["done_at"],
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
