"""The line between the two processes of ``serve --processes 2`` on SQLite: notices, and the jobs handed over.

One Python process is bound by the GIL to one core (docs/performance.md), so on the embedded default ``serve``
can split a node in two processes sharing the SQLite file: *accept* (HTTP, credentials, quotas, balances, the accept
commit) and *delivery* (dispatcher, connectors, submit results, receipts, inbound, webhooks). Everything either
decides is in the database first; this socket says "look again", or hands over what is already claimed:

* ``jobs``: the submit jobs of messages the accept process claimed for the delivery process in its accept
  transaction (pickled, split over lines that fit ``MAX_LINE``); should it die first, its claims come back
  with its heartbeat, as any dead node's do;
* ``wake``: the accept process committed jobs left unclaimed in the outbox; the dispatcher claims them;
* ``webhooks``: deliveries were planned (an HTTP upstream's receipt, a webhook replay); the sender looks;
* ``change <topic>:<key>``: what ``changes.Changes`` announces (an account, a number's owner, a suppression list,
  a sandbox script), both ways, so every cache drops it at once as NOTIFY does on PostgreSQL;
* ``pauses``: the operator paused or resumed a connector; ``sandbox-up 0|1``: the sandbox network switched;
* ``handset <account>``: a sandbox network took a message of the account: its long polls look at once;
* ``status <json>``: the delivery process's connector states and queues, for ``/v1/connectors`` and ``/readyz``.

A lost notice costs a poll interval, never a message (the dispatcher and the sender poll the outbox, caches expire
within ``cache_seconds``). Lines are ``kind payload\\n``; sends made in one loop turn go out in one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any

from smsgate.connectors import base
from smsgate.connectors.http import base as http_base

log = logging.getLogger(__name__)

Handler = Callable[[str], None]
MAX_LINE = 1 << 20


class Link:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._handlers: dict[str, Handler] = {}
        self._pending: list[bytes] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.closed = asyncio.Event()
        self.sent = 0
        self.received = 0

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def send(self, kind: str, payload: str = "") -> None:
        """Queue a notice; the queue is written once the current loop turn ends (many wakes, one write)."""
        if self._writer is None or self.closed.is_set():
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(f"{kind} {payload}\n".encode())

    def _flush(self) -> None:
        if not self._pending or self._writer is None or self._writer.is_closing():
            self._pending.clear()
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self.sent += 1
        self._writer.write(data)

    async def open(self) -> None:
        """Take the socket into the running loop; notices sent before this are dropped."""
        self._reader, self._writer = await asyncio.open_unix_connection(sock=self._sock, limit=MAX_LINE)

    async def run(self) -> None:
        """Read notices until the other process closes its end (it stopped or died): ``closed`` is then set."""
        reader = self._reader
        if reader is None:
            raise RuntimeError("Link.open first")
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                kind, _, payload = line.decode().rstrip("\n").partition(" ")
                self.received += 1
                handler = self._handlers.get(kind)
                if handler is None:
                    log.warning("unknown notice %r from the other process", kind)
                    continue
                try:
                    handler(payload)
                except Exception:  # a bad notice must not end the line: the next one may be fine
                    log.exception("notice %s failed", kind)
        except (ConnectionError, OSError, ValueError) as exc:  # ValueError: a line longer than MAX_LINE
            log.warning("the line to the other process broke: %s", exc)
        finally:
            self.closed.set()

    async def close(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()


def snapshot(
    connectors: Mapping[str, base.Connector],
    queued: Callable[[str], int],
    counts: Mapping[str, Any],
    backlog: int,
    counters: Mapping[str, int],
) -> str:
    """The delivery process's connectors as a ``status`` payload (one JSON line)."""
    out = {}
    for name, c in connectors.items():
        h = c.health()
        out[name] = {
            "state": h.state.value,
            "detail": h.detail,
            "in_flight": h.in_flight,
            "circuit": h.circuit,
            "retry_in": h.retry_in,
            "available": c.available,
            "queued": queued(name),
            "parts": dict(counts.get(name, {})),
        }
        if isinstance(c, http_base.HttpConnector):  # requests, latency and circuit openings for ``/metrics``
            out[name]["upstream"] = c.stats.payload(c.circuit.opened)
    return json.dumps({"connectors": out, "backlog": backlog, "counters": counters}, separators=(",", ":"))


class Status:
    """What the accept process knows of the connectors, which live in the delivery process: the last ``status``
    notice (sent every half second and on each change of state). Before the first, every connector is down."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = {}
        self.backlog = 0  # jobs the delivery process held in memory at its last report
        self.handed = 0  # jobs handed over since that report
        self.counters: dict[str, int] = {}  # its totals for ``/metrics`` (submitted parts, receipts, commits...)
        self._waiters: list[asyncio.Future[None]] = []

    def update(self, payload: str) -> None:
        data = json.loads(payload)
        self._data, self.backlog, self.handed = data["connectors"], int(data["backlog"]), 0
        self.counters = data["counters"]
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def next_update(self) -> asyncio.Future[None]:
        """Resolves with the next report (ask for one with a ``status?`` notice)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut

    def forget(self) -> None:
        """The delivery process is gone: nothing is known until its successor reports."""
        self._data, self.backlog, self.handed, self.counters = {}, 0, 0, {}

    def health(self, name: str) -> base.ConnectorHealth:
        d = self._data.get(name)
        if d is None:
            return base.ConnectorHealth(base.ConnectorState.DOWN, "the delivery process has not reported yet")
        return base.ConnectorHealth(
            base.ConnectorState(d["state"]), d["detail"], d["in_flight"], d["circuit"], d["retry_in"]
        )

    def available(self, name: str) -> bool:
        return bool(self._data.get(name, {}).get("available", False))

    def queued(self, name: str) -> int:
        return int(self._data.get(name, {}).get("queued", 0))

    def parts(self, name: str) -> dict[str, int]:
        return dict(self._data.get(name, {}).get("parts", {}))

    def upstream(self, name: str) -> tuple[http_base.Stats, int]:
        """An HTTP upstream's request counters and how often its circuit opened (nothing before a report)."""
        data = self._data.get(name, {}).get("upstream")
        return http_base.Stats.from_payload(data) if data is not None else (http_base.Stats(), 0)

    def routes(self, names: list[str]) -> dict[str, Route]:
        """What ``sending.Gateway`` asks of each connector (``available``), answered from the reports."""
        return {n: Route(self, n) for n in names}


class Route:
    def __init__(self, status: Status, name: str) -> None:
        self._status = status
        self._name = name

    @property
    def available(self) -> bool:
        return self._status.available(self._name)
