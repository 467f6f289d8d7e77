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


def main(argv: list[str] | None = None) -> None:
    """``smsgate smsc-sim [--port 2775] [--control-port 2776] [--receipt-delay-ms N] [--mode SPEC]``."""
    ap = argparse.ArgumentParser(prog="smsgate smsc-sim", description=smsc.__doc__)  # what the simulator does
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=2775)
    ap.add_argument("--control-port", type=int, default=2776)
    ap.add_argument("--receipt-delay-ms", type=float, default=0.0)
    ap.add_argument("--mode", default="", help="e.g. throttle_every:10,slow:5 (see Mode.parse)")
    ap.add_argument("--system-id", default="SMSCSIM")
    args = ap.parse_args(argv)
    smsc.Mode.parse(args.mode)  # fail fast on a typo
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.control_port, args.receipt_delay_ms, args.mode,
                          system_id=args.system_id))  # fmt: skip
