"""Throughput of SmppConnector → SmscSimulator over loopback, in msg/s (submit to submit_sm_resp).

    .venv/bin/python bench/bench_smpp_connector.py [--parts 20000] [--windows 1,10,50,100]
        [--batch 500] [--concurrency 4] [--receipts] [--inproc] [--max-seconds 60]

By default the simulator runs as a subprocess (two processes, as in production); ``--inproc`` runs both
in one event loop. Bounded: each run stops at ``--max-seconds``; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import socket
import sys
import time
from collections.abc import Sequence

from smsgate.connectors.base import InboundPart, OutboundPart, Receipt, SubmitStatus
from smsgate.connectors.smpp.connector import SmppConnector
from smsgate.connectors.smpp.settings import SmppSettings
from smsgate.sim.smsc import SmscSimulator


class CountingSink:
    def __init__(self) -> None:
        self.receipts_seen = 0

    async def receipts(self, receipts: Sequence[Receipt]) -> None:
        self.receipts_seen += len(receipts)

    async def inbound(self, parts: Sequence[InboundPart]) -> None:
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_parts(n: int, receipts: bool) -> list[OutboundPart]:
    return [
        OutboundPart(
            part_id=f"p{i}",
            message_id=f"m{i}",
            source="smsgate",
            source_ton=5,
            source_npi=0,
            destination=f"3161{i % 10000:07d}",
            data_coding=0,
            udh=b"",
            payload=b"bench message %08d with sixty-four bytes of text in it ......." % i,
            part_index=1,
            part_total=1,
            concat_ref=0,
            registered_delivery=receipts,
        )
        for i in range(n)
    ]


async def run_one(port: int, parts: list[OutboundPart], window: int, batch: int, concurrency: int,
                  max_seconds: float, want_receipts: bool) -> tuple[float, int, int, float]:  # fmt: skip
    sink = CountingSink()
    conn = SmppConnector(SmppSettings(name="bench", host="127.0.0.1", port=port, window=window,
                                      response_timeout=10.0, reconnect_delay_min=0.1))  # fmt: skip
    await conn.start(sink)
    async with asyncio.timeout(10):
        while True:
            if conn.available:
                break
            await asyncio.sleep(0.01)
    chunks = [parts[i : i + batch] for i in range(0, len(parts), batch)]
    accepted = 0
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    deadline = t0 + max_seconds

    async def worker(mine: list[list[OutboundPart]]) -> None:
        nonlocal accepted
        for chunk in mine:
            if time.perf_counter() > deadline:
                return
            out = await conn.submit(chunk)
            accepted += sum(1 for o in out if o.status is SubmitStatus.ACCEPTED)

    await asyncio.gather(*(worker(chunks[k::concurrency]) for k in range(concurrency)))
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    if want_receipts:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                while True:
                    if sink.receipts_seen >= accepted:
                        break
                    await asyncio.sleep(0.01)
    await conn.close()
    return elapsed, accepted, sink.receipts_seen, cpu


async def main_async(args: argparse.Namespace) -> None:
    parts = make_parts(args.parts, args.receipts)
    proc: asyncio.subprocess.Process | None = None
    sim: SmscSimulator | None = None
    if args.inproc:
        sim = SmscSimulator(record_cap=0)
        await sim.start()
        port = sim.port
    else:
        port = free_port()
        code = f"from smsgate.sim.control import main; main(['--port', '{port}', '--control-port', '{free_port()}'])"
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.DEVNULL)
        await asyncio.sleep(0.8)
    where = "in-process" if args.inproc else "subprocess"
    print(f"{args.parts} parts, batch {args.batch} x {args.concurrency} concurrent submit(), sim {where}, "
          f"receipts {'on' if args.receipts else 'off'}")  # fmt: skip
    try:
        for window in (int(w) for w in args.windows.split(",")):
            el, ok, dlrs, cpu = await run_one(port, parts, window, args.batch, args.concurrency, args.max_seconds,
                                              args.receipts)  # fmt: skip
            extra = f", receipts at sink {dlrs}" if args.receipts else ""
            print(f"window {window:>4}: {ok:>7} accepted in {el:6.2f}s = {ok / el:9,.0f} msg/s "
                  f"(connector CPU {cpu / max(ok, 1) * 1e6:5.1f} us/msg{extra})", flush=True)  # fmt: skip
    finally:
        if sim is not None:
            await sim.stop()
        if proc is not None:
            proc.terminate()
            async with asyncio.timeout(5):
                await proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", type=int, default=20000)
    ap.add_argument("--windows", default="1,10,50,100")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--receipts", action="store_true", help="registered_delivery=1: the sim sends receipts")
    ap.add_argument("--inproc", action="store_true", help="simulator in the same event loop")
    ap.add_argument("--max-seconds", type=float, default=60.0)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
