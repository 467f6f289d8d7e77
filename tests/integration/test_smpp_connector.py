"""SmppConnector against the SMSC simulator over real TCP on 127.0.0.1 (ephemeral ports)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from smsgate.connectors.base import InboundPart, OutboundPart, Receipt, ReceiptState, SubmitOutcome, SubmitStatus
from smsgate.connectors.smpp import wire
from smsgate.connectors.smpp.connector import SmppConnector, relative_validity
from smsgate.connectors.smpp.settings import SmppSettings
from smsgate.sim.control import start_control
from smsgate.sim.smsc import ReceiptRule, SmscSimulator


class RecordingSink:
    """An InboundSink that records; ``fail_next`` calls raise (a store that is down)."""

    def __init__(self) -> None:
        self.receipt_list: list[Receipt] = []
        self.inbound_list: list[InboundPart] = []
        self.fail_next = 0
        self.gate: asyncio.Event | None = None
        self.calls = 0

    async def _enter(self) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next > 0:
            self.fail_next -= 1
            raise RuntimeError("store unavailable")

    async def receipts(self, receipts: Sequence[Receipt]) -> None:
        await self._enter()
        self.receipt_list.extend(receipts)

    async def inbound(self, parts: Sequence[InboundPart]) -> None:
        await self._enter()
        self.inbound_list.extend(parts)


async def wait_until(pred: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if pred():
                return
            await asyncio.sleep(0.01)


def settings(port: int, **kw: Any) -> SmppSettings:
    base: dict[str, Any] = dict(
        name="sim", host="127.0.0.1", port=port, system_id="smsgate", password="secret",
        response_timeout=1.0, bind_timeout=1.0, connect_timeout=1.0, reconnect_delay_min=0.05,
        reconnect_delay_max=0.2, throttle_backoff=0.2, enquire_link_interval=5.0, close_timeout=1.0,
    )  # fmt: skip
    base.update(kw)
    return SmppSettings(**base)


def parts(n: int, dest: str = "31612345678", tag: str = "m", **kw: Any) -> list[OutboundPart]:
    return [
        OutboundPart(
            part_id=f"{tag}{i}",
            message_id=f"{tag}{i}",
            source="smsgate",
            source_ton=5,
            source_npi=0,
            destination=dest,
            data_coding=0,
            udh=b"",
            payload=f"hello {tag}{i}".encode(),
            part_index=1,
            part_total=1,
            concat_ref=0,
            **kw,
        )
        for i in range(n)
    ]


def by_status(outcomes: Sequence[SubmitOutcome]) -> dict[SubmitStatus, list[SubmitOutcome]]:
    out: dict[SubmitStatus, list[SubmitOutcome]] = {s: [] for s in SubmitStatus}
    for o in outcomes:
        out[o.status].append(o)
    return out


@pytest.fixture
async def sim() -> AsyncIterator[SmscSimulator]:
    s = SmscSimulator(credentials={"smsgate": "secret"})
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def sink() -> RecordingSink:
    return RecordingSink()


async def started(sim: SmscSimulator, sink: RecordingSink, **kw: Any) -> SmppConnector:
    conn = SmppConnector(settings(sim.port, **kw))
    await conn.start(sink)
    await wait_until(lambda: conn.available, 3)
    return conn


async def test_transceiver_batch_of_2000_accepted_once_with_receipts(sim: SmscSimulator, sink: RecordingSink) -> None:
    async with asyncio.timeout(20):
        conn = await started(sim, sink)
        batch = parts(2000)
        outcomes = await conn.submit(batch)
        assert len(outcomes) == 2000
        assert {o.status for o in outcomes} == {SubmitStatus.ACCEPTED}
        assert {o.part_id for o in outcomes} == {pt.part_id for pt in batch}
        ids = {o.network_id for o in outcomes}
        assert len(ids) == 2000 and None not in ids
        c = sim.stats.counters
        assert c["submits"] == 2000 and c["unique_parts"] == 2000 and c["duplicate_parts"] == 0
        assert sim.stats.by_destination == {"31612345678": 2000}
        await wait_until(lambda: len(sink.receipt_list) == 2000, 10)
        assert {r.network_id for r in sink.receipt_list} == ids
        assert {r.state for r in sink.receipt_list} == {ReceiptState.DELIVERED}
        await wait_until(lambda: sim.stats.counters["receipts_acked"] == 2000)
        await conn.close()


async def test_transmitter_receiver_pair(sim: SmscSimulator, sink: RecordingSink) -> None:
    async with asyncio.timeout(10):
        conn = await started(sim, sink, bind="transmitter_receiver")
        await wait_until(lambda: sim.stats.counters["binds"] == 2)
        binds = sorted(c.bound for c in sim.conns)
        assert binds == [wire.BIND_RECEIVER, wire.BIND_TRANSMITTER]
        outcomes = await conn.submit(parts(20))
        assert all(o.status is SubmitStatus.ACCEPTED for o in outcomes)
        await wait_until(lambda: len(sink.receipt_list) == 20)
        sim.inject_mo("31600000000", "4567", "hi there")
        await wait_until(lambda: len(sink.inbound_list) == 1)
        await conn.close()


async def test_receipt_rules_and_withheld(sink: RecordingSink) -> None:
    rules = [ReceiptRule("UNDELIV", suffix="0001", err=34), ReceiptRule(None, prefix="999")]
    sim = SmscSimulator(receipt_rules=rules, receipt_delay_ms=20)
    await sim.start()
    async with asyncio.timeout(10):
        conn = await started(sim, sink)
        out = await conn.submit(parts(1, dest="31600000001") + parts(1, dest="99911", tag="x") + parts(1, tag="y"))
        assert all(o.status is SubmitStatus.ACCEPTED for o in out)
        await wait_until(lambda: len(sink.receipt_list) == 2)
        await asyncio.sleep(0.1)
        states = {r.network_id: r for r in sink.receipt_list}
        assert states[out[0].network_id or ""].state is ReceiptState.UNDELIVERABLE
        assert states[out[0].network_id or ""].error_code == 34
        assert states[out[2].network_id or ""].state is ReceiptState.DELIVERED
        assert sim.stats.counters["receipts_withheld"] == 1
        await conn.close()
    await sim.stop()


async def test_mo_single_concatenated_sar_and_payload(sim: SmscSimulator, sink: RecordingSink) -> None:
    async with asyncio.timeout(10):
        conn = await started(sim, sink)
        assert sim.inject_mo("31611111111", "4567", "short") == 1
        assert sim.inject_mo("31611111111", "4567", "x" * 200) == 2
        assert sim.inject_mo("31611111111", "4567", "€" * 10 + "ж" * 100) == 2  # UCS-2, 2 parts
        sar = ((wire.TAG_SAR_MSG_REF_NUM, b"\x01\x02"), (wire.TAG_SAR_TOTAL_SEGMENTS, b"\x02"),
               (wire.TAG_SAR_SEGMENT_SEQNUM, b"\x01"))  # fmt: skip
        sim.inject_raw("31622222222", "4567", b"sar part", tlvs=sar)
        sim.inject_raw("31633333333", "4567", b"", tlvs=((wire.TAG_MESSAGE_PAYLOAD, b"P" * 300),))
        await wait_until(lambda: len(sink.inbound_list) == 7)
        single, c1, c2, u1, u2, s, pl = sink.inbound_list
        assert single.payload == b"short" and single.udh == b"" and single.source == "31611111111"
        assert c1.udh[:3] == b"\x05\x00\x03" and c1.udh[4:] == b"\x02\x01" and c2.udh[4:] == b"\x02\x02"
        assert c1.payload + c2.payload == b"x" * 200
        assert u1.data_coding == 8 and (u1.payload + u2.payload).decode("utf-16-be") == "€" * 10 + "ж" * 100
        assert (s.sar_ref, s.sar_total, s.sar_seq, s.payload) == (0x0102, 2, 1, b"sar part")
        assert pl.payload == b"P" * 300
        await wait_until(lambda: sim.stats.counters["mos_acked"] == 7)
        await conn.close()


async def test_concat_modes_on_the_wire(sim: SmscSimulator, sink: RecordingSink) -> None:
    two = [
        dataclasses.replace(pt, udh=bytes((5, 0, 3, 7, 2, i + 1)), part_index=i + 1, part_total=2, concat_ref=7)
        for i, pt in enumerate(parts(2))
    ]
    async with asyncio.timeout(10):
        for mode in ("udh", "sar", "payload"):
            conn = await started(sim, sink, concat=mode)
            assert all(o.status is SubmitStatus.ACCEPTED for o in await conn.submit(two))
            await conn.close()
        udh, sar, pay = sim.records[0], sim.records[2], sim.records[4]
        assert udh.esm_class == 0x40 and udh.short_message == b"\x05\x00\x03\x07\x02\x01hello m0"
        assert sar.esm_class == 0 and sar.short_message == b"hello m0"
        assert dict(sar.tlvs) == {0x020C: b"\x00\x07", 0x020E: b"\x02", 0x020F: b"\x01"}
        assert pay.short_message == b"" and dict(pay.tlvs)[0x0424] == b"\x05\x00\x03\x07\x02\x01hello m0"


async def test_submit_fields(sim: SmscSimulator, sink: RecordingSink) -> None:
    async with asyncio.timeout(10):
        conn = await started(sim, sink)
        pt = dataclasses.replace(parts(1)[0], validity_seconds=3600, message_class=1, data_coding=8,
                                 registered_delivery=False, protocol_id=0x40)  # fmt: skip
        await conn.submit([pt])
        sm = conn.build_submit(pt, 1)
        assert sm.validity_period == "000000010000000R" == relative_validity(3600)
        assert sm.data_coding == 0x19 and sm.registered_delivery == 0 and sm.protocol_id == 0x40
        assert (sm.source_addr_ton, sm.source_addr_npi, sm.dest_addr_ton, sm.dest_addr_npi) == (5, 0, 1, 1)
        assert sim.records[0].data_coding == 0x19
        await asyncio.sleep(0.05)
        assert sink.receipt_list == []
        await conn.close()


@pytest.mark.parametrize(
    ("mode", "name"), [("throttle_every:5", "ESME_RTHROTTLED"), ("queue_full_every:3", "ESME_RMSGQFUL")]
)
async def test_throttle_and_queue_full_give_retry(
    sim: SmscSimulator, sink: RecordingSink, mode: str, name: str
) -> None:
    async with asyncio.timeout(10):
        conn = await started(sim, sink, window=1, throttle_backoff=1.0)
        sim.set_mode(mode)
        got = by_status(await conn.submit(parts(30)))
        assert got[SubmitStatus.FAILED] == []
        assert got[SubmitStatus.RETRY] and got[SubmitStatus.RETRY][0].error == name
        assert got[SubmitStatus.RETRY][0].retry_after == pytest.approx(1.0, abs=0.05)
        assert not conn.available  # paused for throttle_backoff
        paused = await conn.submit(parts(2, tag="p"))
        assert {o.error for o in paused} == {"paused"} and 0 < (paused[0].retry_after or 0) <= 1.0
        assert len(got[SubmitStatus.ACCEPTED]) == sim.stats.counters["submits"]
        await wait_until(lambda: conn.available, 3)
        await conn.close()


async def test_drop_after_retries_in_flight_and_reconnects(sim: SmscSimulator, sink: RecordingSink) -> None:
    async with asyncio.timeout(15):
        conn = await started(sim, sink, window=50)
        sim.set_mode("drop_after:20")
        got = by_status(await conn.submit(parts(200)))
        assert len(got[SubmitStatus.ACCEPTED]) == sim.stats.counters["submits"] == 20
        assert len(got[SubmitStatus.RETRY]) == 180 and got[SubmitStatus.FAILED] == []
        await wait_until(lambda: conn.available and sim.stats.counters["binds"] == 2, 5)
        again = await conn.submit(parts(50, tag="again"))
        assert all(o.status is SubmitStatus.ACCEPTED for o in again)
        await conn.close()


async def test_no_response_gives_retry_after_response_timeout(sim: SmscSimulator, sink: RecordingSink) -> None:
    async with asyncio.timeout(10):
        conn = await started(sim, sink, response_timeout=0.5)
        sim.set_mode("no_response")
        t0 = time.monotonic()
        got = by_status(await conn.submit(parts(5)))
        elapsed = time.monotonic() - t0
        assert len(got[SubmitStatus.RETRY]) == 5 and got[SubmitStatus.RETRY][0].error == "response timeout"
        assert 0.45 <= elapsed < 3
        await conn.close()


async def test_generic_nack_fails_the_sequence(sim: SmscSimulator, sink: RecordingSink) -> None:
    async with asyncio.timeout(10):
        conn = await started(sim, sink)
        sim.set_mode("generic_nack")
        got = by_status(await conn.submit(parts(3)))
        assert len(got[SubmitStatus.FAILED]) == 3
        assert got[SubmitStatus.FAILED][0].error == "generic_nack ESME_RSYSERR"
        await conn.close()


async def test_permanent_error_is_failed_with_reason(sim: SmscSimulator, sink: RecordingSink) -> None:
    async with asyncio.timeout(10):
        conn = await started(sim, sink)
        sim.set_mode("fail_every:2")
        got = by_status(await conn.submit(parts(10)))
        assert len(got[SubmitStatus.FAILED]) == 5 and len(got[SubmitStatus.ACCEPTED]) == 5
        f = got[SubmitStatus.FAILED][0]
        assert (f.error, f.error_code) == ("ESME_RINVDSTADR", 0x0B)
        await conn.close()


async def test_refuse_bind_keeps_retrying_until_accepted(sim: SmscSimulator, sink: RecordingSink) -> None:
    async with asyncio.timeout(10):
        sim.set_mode("refuse_bind")
        conn = SmppConnector(settings(sim.port))
        await conn.start(sink)
        await wait_until(lambda: sim.stats.counters["binds_refused"] >= 3, 5)
        assert not conn.available
        t0 = time.monotonic()
        out = await conn.submit(parts(3))
        assert time.monotonic() - t0 < 0.5 and {o.status for o in out} == {SubmitStatus.RETRY}
        sim.set_mode("")
        await wait_until(lambda: conn.available, 5)
        assert all(o.status is SubmitStatus.ACCEPTED for o in await conn.submit(parts(3)))
        await conn.close()


async def test_wrong_password_is_a_refused_bind(sim: SmscSimulator, sink: RecordingSink) -> None:
    async with asyncio.timeout(5):
        conn = SmppConnector(settings(sim.port, password="wrong"))
        await conn.start(sink)
        await wait_until(lambda: sim.stats.counters["binds_refused"] >= 1)
        assert not conn.available
        await conn.close()


async def test_no_smsc_means_retry_at_once(sink: RecordingSink) -> None:
    async with asyncio.timeout(5):
        sim = SmscSimulator()
        await sim.start()
        port = sim.port
        await sim.stop()
        conn = SmppConnector(settings(port))
        await conn.start(sink)
        out = await conn.submit(parts(2))
        assert [o.status for o in out] == [SubmitStatus.RETRY] * 2 and out[0].retry_after
        await conn.close()


async def test_deliver_sm_resp_only_after_sink_returned(sim: SmscSimulator, sink: RecordingSink) -> None:
    async with asyncio.timeout(10):
        conn = await started(sim, sink)
        sink.gate = asyncio.Event()
        sim.inject_mo("31611111111", "4567", "wait for me")
        await wait_until(lambda: sink.calls == 1)
        await asyncio.sleep(0.1)
        assert sim.stats.counters["mos_acked"] == 0 and sum(sim.stats.deliver_resp_status.values()) == 0
        sink.gate.set()
        await wait_until(lambda: sim.stats.counters["mos_acked"] == 1)
        assert len(sink.inbound_list) == 1
        await conn.close()


async def test_receipts_read_with_their_responses_reach_the_sink_after_the_submit_returns(
    sim: SmscSimulator, sink: RecordingSink
) -> None:
    """The simulator sends each receipt right behind its submit_sm_resp, so one read brings both. The submit's
    caller (the dispatcher, which then queues the submit results) resumes before that read's receipts go to the
    sink: otherwise they are committed before the results that give their parts the network ids they name."""
    async with asyncio.timeout(10):
        conn = await started(sim, sink)
        returned = False
        seen: list[tuple[bool, int]] = []
        store = sink.receipts

        async def receipts(rs: Sequence[Receipt]) -> None:
            seen.append((returned, len(rs)))
            await store(rs)

        sink.receipts = receipts  # type: ignore[method-assign]
        out = await conn.submit(parts(5))
        returned = True
        await wait_until(lambda: len(sink.receipt_list) == 5)
        assert {r.network_id for r in sink.receipt_list} == {o.network_id for o in out}
        assert seen == [(True, 5)]
        await conn.close()


async def test_sink_error_answers_0x64_and_smsc_redelivers(sink: RecordingSink) -> None:
    sim = SmscSimulator(redeliver_delay_ms=20)
    await sim.start()
    async with asyncio.timeout(10):
        conn = await started(sim, sink)
        sink.fail_next = 2
        await conn.submit(parts(1))
        await wait_until(lambda: len(sink.receipt_list) == 1)
        assert sim.stats.deliver_resp_status[wire.ESME_RX_T_APPN] == 2
        assert sim.stats.counters["redeliveries"] == 2 and sim.stats.counters["receipts_acked"] == 1
        await conn.close()
    await sim.stop()


async def test_duplicate_receipts_reach_the_sink(sim: SmscSimulator, sink: RecordingSink) -> None:
    async with asyncio.timeout(10):
        conn = await started(sim, sink)
        sim.set_mode("duplicate_receipts")
        out = await conn.submit(parts(3))
        await wait_until(lambda: len(sink.receipt_list) == 6)
        assert {r.network_id for r in sink.receipt_list} == {o.network_id for o in out}
        await conn.close()


async def test_smsc_killed_mid_stream_then_restarted(sink: RecordingSink) -> None:
    first = SmscSimulator(mode="slow:2")
    await first.start()
    port = first.port
    async with asyncio.timeout(20):
        conn = await started(first, sink, window=20, response_timeout=1.0)
        batch = parts(3000)
        task = asyncio.create_task(conn.submit(batch))
        await wait_until(lambda: first.stats.counters["submits"] >= 200)
        await first.stop()
        outcomes = await task
        second = SmscSimulator(port=port)
        await second.start()
        got = by_status(outcomes)
        assert got[SubmitStatus.FAILED] == [] and got[SubmitStatus.RETRY] and got[SubmitStatus.ACCEPTED]
        # nothing ACCEPTED that the SMSC did not get: each accepted part is in its records with that id
        seen = {(r.short_message, r.message_id) for r in first.records}
        payload = {pt.part_id: pt.payload for pt in batch}
        assert all((payload[o.part_id], o.network_id) in seen for o in got[SubmitStatus.ACCEPTED])
        assert len(got[SubmitStatus.ACCEPTED]) <= first.stats.counters["submits"]
        await wait_until(lambda: conn.available, 5)
        retry = [pt for pt in batch if pt.part_id in {o.part_id for o in got[SubmitStatus.RETRY]}]
        again = await conn.submit(retry)
        assert all(o.status is SubmitStatus.ACCEPTED for o in again)
        assert second.stats.counters["submits"] == len(retry)
        await conn.close()
        await second.stop()


async def test_graceful_unbind_on_close_and_enquire_link(sim: SmscSimulator, sink: RecordingSink) -> None:
    async with asyncio.timeout(10):
        conn = await started(sim, sink, enquire_link_interval=0.1)
        await wait_until(lambda: sim.stats.counters["enquire_links"] >= 2, 3)
        await conn.close()
        assert sim.stats.counters["unbinds"] == 1
        assert not conn.available


async def test_control_endpoint(sim: SmscSimulator, sink: RecordingSink) -> None:
    server = await start_control(sim)
    port = server.sockets[0].getsockname()[1]

    async def call(method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = json.dumps(body).encode() if body is not None else b""
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        raw = await reader.read()
        writer.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(payload)

    async with asyncio.timeout(10):
        conn = await started(sim, sink)
        assert (await call("POST", "/mode", {"mode": "throttle_every:2"}))[1]["mode"]["throttle_every"] == 2
        assert (await call("POST", "/mode", {"mode": "bogus"}))[0] == 400
        assert (await call("POST", "/mo", {"from": "316", "to": "45", "text": "héllo"}))[1] == {"parts": 1}
        await wait_until(lambda: len(sink.inbound_list) == 1)
        code, stats = await call("GET", "/stats")
        assert code == 200 and stats["mo_injected"] == 1 and stats["binds"] == 1
        assert (await call("POST", "/reset"))[0] == 200 and sim.stats.counters["binds"] == 0
        await conn.close()
    server.close()


def test_settings_from_mapping() -> None:
    s = SmppSettings.from_mapping({"name": "kpn-smsc", "type": "smpp", "host": "127.0.0.1", "port": 2775,
                                   "system_id": "smsgate", "password": "secret", "bind": "transceiver",
                                   "window": 50, "max_tps": 500, "retry_statuses": [0x58]})  # fmt: skip
    assert (s.window, s.max_tps, s.retry_statuses, s.bind) == (50, 500.0, (0x58,), "transceiver")
    with pytest.raises(ValueError, match=r"^windw: unknown key$"):
        SmppSettings.from_mapping({"name": "x", "host": "h", "windw": 5})
    with pytest.raises(ValueError, match=r"^window: must be an integer$"):
        SmppSettings.from_mapping({"name": "x", "host": "h", "window": "5"})
    with pytest.raises(ValueError, match=r"^bind: "):
        SmppSettings.from_mapping({"name": "x", "host": "h", "bind": "receiver"})
    with pytest.raises(ValueError, match=r"^host: missing"):
        SmppSettings.from_mapping({"name": "x"})


async def test_max_tps_limits_rate(sim: SmscSimulator, sink: RecordingSink) -> None:
    async with asyncio.timeout(10):
        conn = await started(sim, sink, max_tps=200)
        t0 = time.monotonic()
        out = await conn.submit(parts(100))
        elapsed = time.monotonic() - t0
        assert all(o.status is SubmitStatus.ACCEPTED for o in out)
        assert 0.35 < elapsed < 3  # 100 at 200/s with a 20-token burst ≈ 0.4 s
        await conn.close()


async def test_smsc_requests_are_answered(sim: SmscSimulator, sink: RecordingSink) -> None:
    async with asyncio.timeout(10):
        conn = await started(sim, sink)
        assert sim.send_to_all(wire.ENQUIRE_LINK) == 1
        await wait_until(lambda: sim.stats.counters["enquire_link_resps"] == 1)
        sim.send_to_all(0x00000103, b"\x00")  # data_sm: not supported by us → generic_nack
        await wait_until(lambda: sim.stats.counters["generic_nacks_received"] == 1)
        assert conn.available
        sim.send_to_all(wire.UNBIND)  # SMSC-initiated unbind: answered, then a new bind
        await wait_until(lambda: sim.stats.counters["unbind_resps"] == 1)
        await wait_until(lambda: sim.stats.counters["binds"] == 2 and conn.available)
        assert all(o.status is SubmitStatus.ACCEPTED for o in await conn.submit(parts(5)))
        await conn.close()


async def test_full_inbound_queue_answers_queue_full_and_mt_keeps_flowing(
    sim: SmscSimulator, sink: RecordingSink
) -> None:
    async with asyncio.timeout(10):
        conn = await started(sim, sink, inbound_queue=2, inbound_batch=1)
        sink.gate = asyncio.Event()  # the store hangs
        for i in range(6):
            sim.inject_mo("31611111111", "4567", f"mo {i}")
        await wait_until(lambda: sim.stats.deliver_resp_status[wire.ESME_RMSGQFUL] >= 3)
        assert all(o.status is SubmitStatus.ACCEPTED for o in await conn.submit(parts(20)))
        sink.gate.set()
        await wait_until(lambda: len(sink.inbound_list) == 6, 5)  # the SMSC redelivered the refused ones
        await conn.close()
