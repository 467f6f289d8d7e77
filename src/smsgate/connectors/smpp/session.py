"""One bound SMPP session on asyncio streams.

Three named tasks per session, all stopped together when any one ends (the session is then ``closed``
and the connector's supervisor binds a new one): the *reader* (frames → responses resolved by sequence
number, requests answered), the *keeper* (response timeouts, enquire_link when idle) and the *inbound*
task (deliver_sm batches → handler → deliver_sm_resp only after the handler returned; with
``inbound_queue`` full a deliver_sm is answered ESME_RMSGQFUL at once, so MT responses never stall).
Submits are pipelined: the caller registers many sequence numbers at once and writes their frames with
one ``write``; the socket is drained only above a high-water mark.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence

from smsgate.connectors.smpp import pdu as p
from smsgate.connectors.smpp import wire
from smsgate.connectors.smpp.settings import SmppSettings

log = logging.getLogger(__name__)

DeliverHandler = Callable[[Sequence[p.ShortMessage]], Awaitable[Sequence[int]]]
LOST = -1  # SubmitResult.status when no response came


class SessionError(Exception):
    """The session cannot do what was asked (not bound, lost, bind refused)."""


class BindError(SessionError):
    """The SMSC answered the bind with a non-zero status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused: {wire.status_name(status)} (0x{status:02X})")
        self.status = status


@dataclasses.dataclass(slots=True)  # not frozen: built per message on the hot path (docs/decisions.md)
class SubmitResult:
    """What became of one submit_sm: the SMSC's status, or LOST with ``error`` saying why."""

    status: int
    message_id: str = ""
    error: str = ""
    nack: bool = False


class SubmitBatch:
    """Collects the responses of one pipelined batch without a future per part."""

    __slots__ = ("_waiter", "remaining", "results", "sealed")

    def __init__(self, n: int) -> None:
        self.results: list[SubmitResult | None] = [None] * n
        self.remaining = 0
        self.sealed = False
        self._waiter: asyncio.Future[None] | None = None

    def resolve(self, idx: int, result: SubmitResult) -> None:
        if self.results[idx] is None:
            self.results[idx] = result
            self.remaining -= 1
            if self.remaining == 0 and self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)

    async def wait(self, within: float) -> None:
        """Wait until every registered part has a result (or ``timeout``; unresolved stay None)."""
        self.sealed = True
        if self.remaining <= 0:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._waiter


class SmppSession:
    """A TCP connection bound as transmitter, receiver or transceiver."""

    def __init__(
        self,
        settings: SmppSettings,
        bind_command: int,
        on_deliver: DeliverHandler | None = None,
        on_throttle: Callable[[int], None] | None = None,
        label: str = "",
    ) -> None:
        self.settings = settings
        self.bind_command = bind_command
        self.label = label or f"{settings.name}:{bind_command:x}"
        self._on_deliver = on_deliver
        self._on_throttle = on_throttle
        self._throttle = frozenset(settings.retry_statuses)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._framer = wire.Framer()
        self._seq = 0
        self._pending: dict[int, tuple[SubmitBatch, int, float]] = {}
        self._requests: dict[int, asyncio.Future[p.Pdu]] = {}
        self._inflight = 0
        self._slot_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._inbound: asyncio.Queue[p.ShortMessage] = asyncio.Queue(settings.inbound_queue)
        self._tasks: list[asyncio.Task[None]] = []
        self._last_rx = 0.0
        self._ping: tuple[int, float] | None = None
        self.bound = False
        self.closing = False
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.peer_system_id = ""

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Connect and bind within the timeouts; BindError carries a refusal's status."""
        s = self.settings
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(s.connect_timeout):
            self._reader, self._writer = await asyncio.open_connection(s.host, s.port)
        try:
            seq = self.next_sequence()
            bind = p.Bind(self.bind_command, seq, s.system_id, s.password, s.system_type,
                          s.interface_version, 0, 0, s.address_range)  # fmt: skip
            self._writer.write(p.encode(bind))
            async with asyncio.timeout(s.bind_timeout):
                resp, early = await self._await_bind_resp(seq)
            if resp.status != wire.ESME_ROK:
                raise BindError(resp.status)
        except BaseException:
            self._writer.close()
            self.closed.set()
            raise
        self.peer_system_id = resp.system_id
        self.bound = True
        self._last_rx = loop.time()
        for frame in early:  # an SMSC sends held receipts right behind its bind_resp, often in the same read
            if (sm := self._dispatch(frame)) is not None:
                self._queue_inbound(sm)
        self._spawn(self._read_loop(), "reader")
        self._spawn(self._keep_loop(), "keeper")
        if self._on_deliver is not None:
            self._spawn(self._inbound_loop(), "inbound")
        log.info("smpp %s: bound to %s", self.label, self.peer_system_id)

    async def _await_bind_resp(self, seq: int) -> tuple[p.BindResp, list[bytes]]:
        """The bind_resp, and the frames that followed it in the same read (they belong to the bound session)."""
        assert self._reader is not None and self._writer is not None
        while True:
            data = await self._reader.read(65536)
            if not data:
                raise SessionError("connection closed during bind")
            frames = self._framer.feed(data)
            for i, frame in enumerate(frames):
                pdu = p.decode(frame)
                if isinstance(pdu, p.BindResp) and pdu.sequence == seq:
                    return pdu, frames[i + 1 :]
                if isinstance(pdu, p.HeaderOnly) and pdu.command_id == wire.GENERIC_NACK:
                    raise BindError(pdu.status or wire.ESME_RSYSERR)
                if isinstance(pdu, p.HeaderOnly) and pdu.command_id == wire.ENQUIRE_LINK:
                    self._writer.write(wire.encode_header(wire.ENQUIRE_LINK_RESP, 0, pdu.sequence))

    def _spawn(self, coro: Awaitable[None], role: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"smpp:{self.label}:{role}")
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            reason = "cancelled"
        else:
            exc = task.exception()
            reason = f"{task.get_name()} ended: {exc!r}" if exc else f"{task.get_name()} ended"
        self._lost(reason)

    def _lost(self, reason: str) -> None:
        """Tear down: every waiter learns the session is gone; the supervisor sees ``closed``."""
        if self.closed.is_set():
            return
        self.bound = False
        self.close_reason = reason
        if not self.closing:
            log.warning("smpp %s: session lost: %s", self.label, reason)
        failed = SubmitResult(LOST, error=f"connection lost: {reason}")
        pending, self._pending = self._pending, {}
        for batch, idx, _ in pending.values():
            batch.resolve(idx, failed)
        for fut in self._requests.values():
            if not fut.done():
                fut.set_exception(SessionError(reason))
        self._requests.clear()
        self._inflight = 0
        self._wake(len(self._slot_waiters))
        current = asyncio.current_task()
        for t in self._tasks:
            if t is not current and not t.done():
                t.cancel()
        if self._writer is not None:
            self._writer.close()
        self.closed.set()

    async def close(self) -> None:
        """Graceful: let in-flight submits finish, unbind, wait for unbind_resp, close the socket."""
        s = self.settings
        if not self.closed.is_set() and self.bound:
            self.closing = True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(s.close_timeout):
                    while self._pending and not self.closed.is_set():
                        await self._slot_wait()
            with contextlib.suppress(SessionError, TimeoutError):
                await self.request(wire.UNBIND, min(s.response_timeout, s.close_timeout))
            self.bound = False
        self.closing = True
        self._lost("closed by us")
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=s.close_timeout)
        if self._writer is not None:
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(s.close_timeout):
                    await self._writer.wait_closed()

    # ------------------------------------------------------------ sending

    def next_sequence(self) -> int:
        self._seq = self._seq + 1 if self._seq < 0x7FFFFFFF else 1
        return self._seq

    def free_slots(self) -> int:
        """Submits that may be sent now without exceeding the window."""
        if not self.bound or self.closing:
            return 0
        return self.settings.window - self._inflight

    async def wait_for_slot(self, within: float) -> None:
        """Return when a window slot is free; SessionError if the session goes away, TimeoutError."""
        async with asyncio.timeout(within):
            while self.free_slots() <= 0:
                if self.closed.is_set() or self.closing:
                    raise SessionError(self.close_reason or "session closing")
                await self._slot_wait()

    async def _slot_wait(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._slot_waiters.append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self._wake(1)  # woken but leaving (timeout, cancel): hand the wake-up on
            fut.cancel()
            raise

    def _wake(self, n: int) -> None:
        """Wake up to ``n`` slot waiters, oldest first (no thundering herd at small windows)."""
        waiters = self._slot_waiters
        while n > 0 and waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                n -= 1

    def send_submits(self, batch: SubmitBatch, entries: Sequence[tuple[int, int, bytes]]) -> None:
        """Register (batch index, sequence, frame) entries and write all frames with one ``write``."""
        if not self.bound or self._writer is None:
            raise SessionError("not bound")
        deadline = asyncio.get_running_loop().time() + self.settings.response_timeout
        pending = self._pending
        for idx, seq, _ in entries:
            pending[seq] = (batch, idx, deadline)
        batch.remaining += len(entries)
        self._inflight += len(entries)
        self._writer.write(b"".join([e[2] for e in entries]))

    async def flush(self) -> None:
        """Drain the socket only when its buffer is over the high-water mark."""
        w = self._writer
        if w is None or w.transport.get_write_buffer_size() <= self.settings.write_high_water:
            return
        try:
            async with asyncio.timeout(self.settings.response_timeout):
                await w.drain()
        except (OSError, TimeoutError) as exc:
            self._lost(f"write failed: {exc!r}")
            raise SessionError(self.close_reason) from exc

    async def request(self, command_id: int, within: float) -> p.Pdu:
        """Send a body-less request (enquire_link, unbind) and wait for its response."""
        if self._writer is None or self.closed.is_set():
            raise SessionError("not connected")
        seq = self.next_sequence()
        fut: asyncio.Future[p.Pdu] = asyncio.get_running_loop().create_future()
        self._requests[seq] = fut
        self._writer.write(wire.encode_header(command_id, 0, seq))
        try:
            async with asyncio.timeout(within):
                return await fut
        finally:
            self._requests.pop(seq, None)

    # ------------------------------------------------------------ tasks

    async def _read_loop(self) -> None:
        reader = self._reader
        assert reader is not None
        loop = asyncio.get_running_loop()
        feed, dispatch = self._framer.feed, self._dispatch
        timeout = self.settings.inactivity_timeout
        while True:
            async with asyncio.timeout(timeout):
                data = await reader.read(262144)
            if not data:
                raise SessionError("connection closed by the SMSC")
            self._last_rx = loop.time()
            for frame in feed(data):
                sm = dispatch(frame)
                if sm is not None:
                    self._queue_inbound(sm)
                if self.closed.is_set():
                    return

    def _queue_inbound(self, sm: p.ShortMessage) -> None:
        try:
            self._inbound.put_nowait(sm)
        except asyncio.QueueFull:  # never stop reading (MT responses share the socket)
            self._writer_write(wire.encode_header(wire.DELIVER_SM_RESP, wire.ESME_RMSGQFUL, sm.sequence))

    def _writer_write(self, data: bytes) -> None:
        if self._writer is not None:
            self._writer.write(data)

    def _dispatch(self, frame: bytes) -> p.ShortMessage | None:
        """Handle one frame; returns a deliver_sm for the inbound task."""
        _, cid, status, seq = wire.HEADER.unpack_from(frame, 0)
        if cid == wire.SUBMIT_SM_RESP:
            entry = self._pending.pop(seq, None)
            if entry is None:
                return None  # late response after a timeout: the part was already reported RETRY
            self._inflight -= 1
            if self._slot_waiters:
                self._wake(1)
            msg_id = frame[16:].split(b"\x00", 1)[0].decode("latin-1") if len(frame) > 16 else ""
            entry[0].resolve(entry[1], SubmitResult(status, msg_id))
            if status in self._throttle and self._on_throttle is not None:
                self._on_throttle(status)
            return None
        w = self._writer
        assert w is not None
        if cid == wire.DELIVER_SM:
            try:
                pdu = p.decode(frame)
            except wire.PduError as exc:
                w.write(wire.encode_header(wire.DELIVER_SM_RESP, exc.status, seq))
                return None
            if self._on_deliver is None:  # a transmitter should not get these
                w.write(wire.encode_header(wire.DELIVER_SM_RESP, wire.ESME_RX_T_APPN, seq))
                return None
            assert isinstance(pdu, p.ShortMessage)
            return pdu
        if cid == wire.ENQUIRE_LINK:
            w.write(wire.encode_header(wire.ENQUIRE_LINK_RESP, 0, seq))
        elif cid == wire.GENERIC_NACK:
            entry = self._pending.pop(seq, None)
            if entry is not None:
                self._inflight -= 1
                self._wake(1)
                entry[0].resolve(entry[1], SubmitResult(status, "", "generic_nack", nack=True))
            elif (fut := self._requests.get(seq)) is not None and not fut.done():
                fut.set_exception(SessionError(f"generic_nack {wire.status_name(status)}"))
        elif cid & wire.RESP:
            fut = self._requests.get(seq)
            if fut is not None and not fut.done():
                fut.set_result(p.HeaderOnly(cid, status, seq))
        elif cid == wire.UNBIND:
            w.write(wire.encode_header(wire.UNBIND_RESP, 0, seq))
            self._lost("unbind by the SMSC")
        else:
            w.write(wire.encode_header(wire.GENERIC_NACK, wire.ESME_RINVCMDID, seq))
        return None

    async def _keep_loop(self) -> None:
        """Response timeouts and our enquire_link when the link has been quiet."""
        s = self.settings
        loop = asyncio.get_running_loop()
        tick = max(0.01, min(0.5, s.response_timeout / 4, s.enquire_link_interval / 4))
        while not self.closed.is_set():
            await asyncio.sleep(tick)
            now = loop.time()
            self._expire(now)
            if self._ping is not None:
                seq, sent = self._ping
                fut = self._requests.get(seq)
                if fut is None or fut.done():
                    self._requests.pop(seq, None)
                    self._ping = None
                elif now - sent > s.response_timeout:
                    raise SessionError("enquire_link not answered")
            elif now - self._last_rx >= s.enquire_link_interval and self._writer is not None:
                seq = self.next_sequence()
                self._requests[seq] = loop.create_future()
                self._requests[seq].add_done_callback(_ignore_result)
                self._ping = (seq, now)
                self._writer.write(wire.encode_header(wire.ENQUIRE_LINK, 0, seq))

    def _expire(self, now: float) -> None:
        expired = []
        for seq, entry in self._pending.items():
            if entry[2] > now:
                break  # deadlines grow with insertion order
            expired.append(seq)
        if expired:
            result = SubmitResult(LOST, error="response timeout")
            for seq in expired:
                batch, idx, _ = self._pending.pop(seq)
                batch.resolve(idx, result)
            self._inflight -= len(expired)
            self._wake(len(expired))
            log.warning("smpp %s: %d submit_sm without response", self.label, len(expired))

    async def _inbound_loop(self) -> None:
        """deliver_sm → handler (persists) → deliver_sm_resp; a handler error answers ESME_RX_T_APPN."""
        assert self._on_deliver is not None
        queue, limit = self._inbound, self.settings.inbound_batch
        while True:
            batch = [await queue.get()]
            while len(batch) < limit and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                statuses: Sequence[int] = await self._on_deliver(batch)
            except Exception:
                log.exception("smpp %s: deliver_sm handler failed; answering ESME_RX_T_APPN", self.label)
                statuses = [wire.ESME_RX_T_APPN] * len(batch)
            if self._writer is None or self.closed.is_set():
                return
            self._writer.write(
                b"".join(
                    p.encode(p.SmResp(wire.DELIVER_SM_RESP, st, sm.sequence))
                    for sm, st in zip(batch, statuses, strict=True)
                )
            )


def _ignore_result(fut: asyncio.Future[p.Pdu]) -> None:
    if not fut.cancelled():
        fut.exception()
