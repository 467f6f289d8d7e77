"""The receipt rule (``core.receipts.apply``) on its own: values in, changes and events out, no database."""

from __future__ import annotations

from smsgate.core import receipts
from smsgate.core.events import EventType
from smsgate.core.message import Status

RS = receipts.ReceiptState
NOW = 1_700_000_000.0


def part(pid: str, status: Status = Status.SUBMITTED, mid: str = "m1") -> receipts.TrackedPart:
    return receipts.TrackedPart(pid, mid, status)


def msg(mid: str = "m1", status: Status = Status.SUBMITTED, parts: dict[str, Status] | None = None):  # type: ignore[no-untyped-def]
    parts = parts or {}
    return receipts.TrackedMessage(mid, "acc", status, max(1, len(parts)), parts)


def rcpt(nid: str, state: RS, err: int = 0, raw: str = "") -> receipts.Receipt:
    return receipts.Receipt("sbx", nid, state, error_code=err, raw=raw)


def test_a_delivered_receipt_moves_part_and_message_with_one_event() -> None:
    out = receipts.apply([rcpt("N1", RS.DELIVERED, raw="id:N1 stat:DELIVRD")], {("sbx", "N1"): [part("p1")]},
                         {"m1": msg()}, NOW)  # fmt: skip
    assert out.matched == [True]
    assert out.parts == [receipts.PartChange("p1", Status.DELIVERED, 0)]
    assert out.messages == [("m1", Status.DELIVERED)]
    # a single-part message: the part's event says it all
    assert [(e.part_id, e.type) for e in out.events] == [("p1", EventType.DELIVERED)]
    assert out.events[0].data == {"network_id": "N1", "error_code": 0, "receipt": "id:N1 stat:DELIVRD"}


def test_status_only_moves_forward_and_the_last_receipt_of_a_batch_sets_the_code() -> None:
    found = {("sbx", "N1"): [part("p1")]}
    out = receipts.apply([rcpt("N1", RS.ENROUTE), rcpt("N1", RS.UNDELIVERABLE, 2), rcpt("N1", RS.DELIVERED)],
                         found, {"m1": msg()}, NOW)  # fmt: skip
    # enroute does not move a submitted part; failed does; delivered after failed does not
    assert out.parts == [receipts.PartChange("p1", Status.FAILED, 2)]
    assert out.messages == [("m1", Status.FAILED)]
    late = receipts.apply([rcpt("N1", RS.ACCEPTED)], {("sbx", "N1"): [part("p1", Status.DELIVERED)]},
                          {"m1": msg(status=Status.DELIVERED)}, NOW)  # fmt: skip
    assert late.matched == [True] and late.parts == [] and late.events == []


def test_multi_part_message_waits_for_every_part_and_gets_its_own_event() -> None:
    siblings = {"p1": Status.SUBMITTED, "p2": Status.SUBMITTED}
    found = {("sbx", "N1"): [part("p1")], ("sbx", "N2"): [part("p2")]}
    first = receipts.apply([rcpt("N1", RS.DELIVERED)], found, {"m1": msg(parts=siblings)}, NOW)
    assert first.messages == [] and [e.part_id for e in first.events] == ["p1"]
    both = receipts.apply([rcpt("N2", RS.DELIVERED)], found,
                          {"m1": msg(parts={"p1": Status.DELIVERED, "p2": Status.SUBMITTED})}, NOW)  # fmt: skip
    assert both.messages == [("m1", Status.DELIVERED)]
    assert [(e.part_id, e.type) for e in both.events] == [("p2", EventType.DELIVERED), (None, EventType.DELIVERED)]


def test_one_upstream_id_on_every_part_settles_them_all() -> None:
    """An HTTP upstream answers one id per message: a receipt for it applies to each part carrying it."""
    found = {("sbx", "DOC"): [part("p1"), part("p2")]}
    out = receipts.apply([rcpt("DOC", RS.DELIVERED)], found,
                         {"m1": msg(parts={"p1": Status.SUBMITTED, "p2": Status.SUBMITTED})}, NOW)  # fmt: skip
    assert {c.part_id for c in out.parts} == {"p1", "p2"}
    assert out.messages == [("m1", Status.DELIVERED)]


def test_a_receipt_matching_no_part_is_returned_unmatched() -> None:
    out = receipts.apply([rcpt("GHOST", RS.DELIVERED), rcpt("N1", RS.EXPIRED, 1)], {("sbx", "N1"): [part("p1")]},
                         {"m1": msg()}, NOW)  # fmt: skip
    assert out.matched == [False, True]
    assert out.messages == [("m1", Status.EXPIRED)]
