"""The basic flow against an SMSC that is not ours (``smpp34.Server``), so codec bugs can't hide.

smpp34.Server accepts every bind and sends no unbind_resp (specs/smpp-libraries.md §3): this test
covers bind, submit (accept and a throttle reject), a TLV + text receipt, MO with a UDH, and close.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from smsgate.connectors.base import InboundPart, OutboundPart, Receipt, ReceiptState, SubmitStatus
from smsgate.connectors.smpp.connector import SmppConnector
from smsgate.connectors.smpp.settings import SmppSettings

smpp34: Any = pytest.importorskip("smpp34", reason="smpp34 is not installed (pip install smpp34)")


class Sink:
    def __init__(self) -> None:
        self.receipt_list: list[Receipt] = []
        self.inbound_list: list[InboundPart] = []

    async def receipts(self, receipts: Sequence[Receipt]) -> None:
        self.receipt_list.extend(receipts)

    async def inbound(self, parts: Sequence[InboundPart]) -> None:
        self.inbound_list.extend(parts)


async def wait_until(pred: Callable[[], bool]) -> None:
    while True:
        if pred():
            return
        await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def part(i: int, dest: str = "31612345678") -> OutboundPart:
    return OutboundPart(
        part_id=f"p{i}", message_id=f"m{i}", source="4567", source_ton=3, source_npi=0, destination=dest,
        data_coding=0, udh=b"", payload=f"interop {i}".encode(), part_index=1, part_total=1, concat_ref=0,
    )  # fmt: skip


async def test_basic_flow_against_smpp34_server() -> None:
    port = free_port()
    server = smpp34.Server("127.0.0.1", port, system_id="S34")
    await server.start()
    esmes: list[Any] = []
    submits: list[Any] = []
    unbound = asyncio.Event()

    async def events() -> None:
        while True:
            ev = await server.next()
            if isinstance(ev, smpp34.Esme):
                esmes.append(ev)
            elif isinstance(ev, smpp34.SubmitSmEvent):
                submits.append(ev)
                if ev.destination_addr.endswith("58"):
                    ev.reject(smpp34.ESME_RTHROTTLED)
                else:
                    ev.accept("S34-" + ev.short_message.decode().split()[-1])
            elif isinstance(ev, smpp34.Unbound):
                unbound.set()

    loop_task = asyncio.create_task(events(), name="smpp34-events")
    sink = Sink()
    conn = SmppConnector(SmppSettings(name="s34", host="127.0.0.1", port=port, system_id="gw", password="pw",
                                      response_timeout=2.0, close_timeout=1.0, reconnect_delay_min=0.1))  # fmt: skip
    try:
        async with asyncio.timeout(20):
            await conn.start(sink)
            await wait_until(lambda: conn.available)
            out = await conn.submit([part(1), part(2), part(3, dest="31600000058")])
            assert [o.status for o in out] == [SubmitStatus.ACCEPTED, SubmitStatus.ACCEPTED, SubmitStatus.RETRY]
            assert [o.network_id for o in out[:2]] == ["S34-1", "S34-2"]
            assert out[2].error == "ESME_RTHROTTLED"
            first = next(ev for ev in submits if ev.short_message == b"interop 1")
            assert (first.source_addr, first.source_addr_ton, first.registered_delivery) == ("4567", 3, 1)
            assert (first.destination_addr, first.dest_addr_ton, first.dest_addr_npi) == ("31612345678", 1, 1)

            esme = esmes[0]
            text = b"id:S34-1 sub:001 dlvrd:001 submit date:2611221010 done date:2611221011 stat:DELIVRD err:000"
            tlvs = [smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, b"S34-1\x00"),
                    smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([2]))]  # fmt: skip
            await esme.deliver_sm("4567", text, source_addr="31612345678", esm_class=0x04, tlvs=tlvs)
            await esme.deliver_sm("4567", b"\x05\x00\x03\x09\x02\x01part one", source_addr="31611111111",
                                  esm_class=0x40)  # fmt: skip
            await wait_until(lambda: len(sink.receipt_list) == 1 and len(sink.inbound_list) == 1)
            r = sink.receipt_list[0]
            assert (r.network_id, r.state) == ("S34-1", ReceiptState.DELIVERED)
            mo = sink.inbound_list[0]
            assert (mo.udh, mo.payload, mo.source) == (b"\x05\x00\x03\x09\x02\x01", b"part one", "31611111111")

            await conn.close()
            await asyncio.wait_for(unbound.wait(), 5)
    finally:
        await conn.close()
        loop_task.cancel()
        await asyncio.wait_for(server.stop(), 5)
