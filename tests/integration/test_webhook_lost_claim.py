"""A webhook claim that committed but whose answer was lost (the database connection cut at that moment) must not
leave its jobs leased to this node, which is alive, until the lease ends: the sender gives back the claims it does
not know of before it claims again, so the delivery goes out at once, not after the 60 s lease."""

from __future__ import annotations

import asyncio
import http.server
import pathlib
import threading
import time
import uuid
from typing import Any

from smsgate.core import deliveries
from smsgate.store import committer as store_committer
from smsgate.store import engine as store_engine
from smsgate.store import migrate
from smsgate.store import outbox as store_outbox
from smsgate.store import webhooks as store_webhooks
from smsgate.webhooks import sender as webhook_sender
from tests.support import free_port


class LosesFirstAnswer(store_outbox.Outbox):
    """The first claim commits, then its caller hears of a cut connection instead of the jobs it got."""

    lost = 0

    async def claim_fair(self, kind: str, limit: int, **kw: Any) -> list[tuple[str, int]]:
        got = await super().claim_fair(kind, limit, **kw)
        if got and not self.lost:
            self.lost = len(got)
            raise OSError("connection reset by peer")
        return got


def receiver(expected: int, loop: asyncio.AbstractEventLoop) -> tuple[http.server.ThreadingHTTPServer, asyncio.Event]:
    """A receiver on loopback whose event is set once ``expected`` deliveries came."""
    seen: list[float] = []
    done = asyncio.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append(time.monotonic())
            if len(seen) >= expected:
                loop.call_soon_threadsafe(done.set)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, done


async def test_a_claim_whose_answer_was_lost_is_delivered_at_once(tmp_path: pathlib.Path) -> None:
    engine = store_engine.create(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await migrate.upgrade(engine)
    server, all_came = receiver(3, asyncio.get_running_loop())
    committer = store_committer.GroupCommitter(engine)
    outbox = LosesFirstAnswer(engine, node_id="node-a", lease=60.0, dead_after=60.0)
    await outbox.heartbeat()
    url = f"http://127.0.0.1:{server.server_address[1]}/receipts"
    body = '{"status": "delivered"}'
    planned = [
        deliveries.Delivery(
            str(uuid.uuid4()), "acc", str(uuid.uuid4()), "message.delivered", url, "POST", "application/json", body
        )
        for _ in range(3)
    ]
    async with engine.begin() as conn:
        await store_webhooks.insert(conn, planned, time.time())
    sender = webhook_sender.Sender(
        deliveries=store_webhooks.Deliveries(engine),
        committer=committer,
        outbox=outbox,
        settings=webhook_sender.SenderSettings(allow_private=True, poll_interval=0.1),
    )
    committer.start()
    sender.start()
    try:
        await asyncio.wait_for(all_came.wait(), 10)  # well within the 60 s lease the lost claim left
        assert outbox.lost == 3  # the first claim took all three, and its answer was lost
    finally:
        await sender.close()
        await committer.close()
        server.shutdown()
        await engine.dispose()
