"""Running the SMSC simulator: its HTTP control port (stdlib only: ``GET /stats``, ``POST /mo``, ``POST /mode``,
``POST /reset``) and ``smsgate smsc-sim``'s entry point. The simulator itself is ``sim.smsc``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
from typing import Any

from smsgate.sim import smsc

log = logging.getLogger(__name__)


async def _control(sim: smsc.SmscSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    code, body = 200, {}
    try:
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = [*lines[0].split(), "", ""][:2]
            length = next((int(v) for k, _, v in (x.partition(":") for x in lines[1:])
                           if k.strip().lower() == "content-length"), 0)  # fmt: skip
            data = json.loads(await reader.readexactly(length)) if length else {}
        if method == "GET" and path == "/stats":
            body = sim.stats.as_dict() | {"bound_sessions": sum(1 for c in sim.conns if c.bound),
                                           "mode": dataclasses.asdict(sim.mode)}  # fmt: skip
        elif method == "POST" and path == "/mo":
            body = {"parts": sim.inject_mo(str(data["from"]), str(data["to"]), str(data["text"]))}
        elif method == "POST" and path == "/mode":
            sim.set_mode(str(data.get("mode", "")))
            body = {"mode": dataclasses.asdict(sim.mode)}
        elif method == "POST" and path == "/reset":
            sim.reset()
            body = {"reset": True}
        else:
            code, body = 404, {"error": f"no {method} {path}"}
    except (ValueError, KeyError, TypeError) as exc:
        code, body = 400, {"error": str(exc)}
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        code, body = 408, {"error": "incomplete request"}
    out = json.dumps(body).encode()
    writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                 b"Connection: close\r\n\r\n%s" % (code, len(out), out))  # fmt: skip
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(5):
            await writer.drain()
    writer.close()


async def start_control(sim: smsc.SmscSimulator, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """The HTTP control endpoint of ``sim`` (port 0 = ephemeral: read ``server.sockets``)."""
    return await asyncio.start_server(lambda r, w: _control(sim, r, w), host, port)


async def serve(host: str = "127.0.0.1", port: int = 2775, control_port: int = 2776, receipt_delay_ms: float = 0.0,
                mode: str = "", **options: Any) -> None:  # fmt: skip
    """Run a simulator and its control endpoint until cancelled."""
    sim = smsc.SmscSimulator(host, port, receipt_delay_ms=receipt_delay_ms, mode=mode, **options)
    await sim.start()
    control = await start_control(sim, host, control_port)
    log.info("smsc-sim: SMPP on %s:%d, control on %s:%d", host, sim.port, host, control_port)
    print(f"smsc-sim: SMPP {host}:{sim.port} control http://{host}:{control_port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        control.close()
        await sim.stop()


DESCRIPTION = """\
An SMPP v3.4 SMSC on your machine, for trying the gateway's SMPP connector, for tests and for benchmarks.
It accepts binds (transceiver, transmitter, receiver) with any system_id and password, answers every
submit_sm with a message id, sends a delivery receipt (DELIVRD) for each one that asks for it, and can
inject inbound (MO) messages. Point a [[connectors]] table of type "smpp" at --host/--port.
"""

EPILOG = """\
misbehaviour modes (--mode, several at once with commas, e.g. --mode throttle_every:10,slow:5):
  normal                no misbehaviour (the default)
  throttle_every:N      answer every Nth submit_sm with ESME_RTHROTTLED (0x58): the gateway pauses and retries
  queue_full_every:N    answer every Nth submit_sm with ESME_RMSGQFUL (0x14): the gateway pauses and retries
  fail_every:N          answer every Nth submit_sm with ESME_RINVDSTADR (0x0B), a permanent failure
  drop_after:N          close the connection after N more submit_sm (once): the gateway reconnects
  slow[:MS]             delay every submit_sm_resp by MS milliseconds (100 if not given)
  no_response           never answer submit_sm: the gateway times out and retries
  generic_nack          answer submit_sm with generic_nack ESME_RSYSERR
  refuse_bind           refuse every bind with ESME_RBINDFAIL
  duplicate_receipts    send every delivery receipt twice

control port (HTTP, JSON):
  GET  /stats           counters: binds, submit_sm, receipts, MO, bound sessions, the mode in force
  POST /mo              inject an inbound SMS: {"from": "31612345678", "to": "3197010240299", "text": "hi"}
  POST /mode            change the mode while running: {"mode": "throttle_every:10"} ({"mode": ""} = normal)
  POST /reset           zero the counters

example:
  smsgate smsc-sim --port 2775 --control-port 2776 --receipt-delay-ms 200
  curl -s -X POST localhost:2776/mo -d '{"from":"31612345678","to":"3197010240299","text":"hello"}'
"""


def main(argv: list[str] | None = None) -> None:
    """``smsgate smsc-sim``: parse the options (``--help`` documents each one and every mode) and run."""
    ap = argparse.ArgumentParser(
        prog="smsgate smsc-sim",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on, SMPP and control (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=2775, help="SMPP port (default 2775)")
    ap.add_argument("--control-port", type=int, default=2776, help="HTTP control port (default 2776)")
    ap.add_argument("--receipt-delay-ms", type=float, default=0.0, metavar="MS",
                    help="wait this long before each delivery receipt (default 0: at once)")  # fmt: skip
    ap.add_argument("--mode", default="", metavar="SPEC", help="misbehaviour, see below (default: none)")
    ap.add_argument("--system-id", default="SMSCSIM", help="the SMSC's own system_id in bind responses")
    ap.add_argument("--message-id-format", choices=("hex", "dec"), default="hex",
                    help="message ids in submit_sm_resp and receipts: hex (default) or decimal digits")  # fmt: skip
    args = ap.parse_args(argv)
    try:
        smsc.Mode.parse(args.mode)  # fail fast on a typo
    except ValueError as exc:
        ap.error(str(exc))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.control_port, args.receipt_delay_ms, args.mode,
                          system_id=args.system_id, message_id_format=args.message_id_format))  # fmt: skip
