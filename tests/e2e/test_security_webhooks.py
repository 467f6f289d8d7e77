"""Issue #14 item 6: one account's slow receivers only slow its own webhooks.

A real gateway on SQLite (8 deliveries in flight, 2 per receiver, 4 per account). One account sends messages whose
delivery receipts go to eight receivers that each take 3 s to answer: enough to hold every slot of the node. A
second account then sends one message; its status webhooks must still arrive promptly.
"""

from __future__ import annotations

import pathlib
import time

import httpx

from tests.e2e.test_webhooks import Receiver
from tests.support import GatewayProcess, wait_for

SLOW = 3.0
ENV = {
    "SMSGATE_WEBHOOK_CONCURRENCY": "8",
    "SMSGATE_WEBHOOK_PER_TARGET_CONCURRENCY": "2",
    "SMSGATE_WEBHOOK_PER_ACCOUNT_CONCURRENCY": "4",
    "SMSGATE_WEBHOOK_TIMEOUT": "10",
}


def test_a_slow_account_does_not_delay_another(tmp_path: pathlib.Path) -> None:
    slow = [Receiver(delay=SLOW).start() for _ in range(8)]
    fast = Receiver().start()
    gw = GatewayProcess(tmp_path, env=ENV).start()
    try:
        hog, other = gw.create_account("hog"), gw.create_account("other", receipt_url=fast.url)
        with httpx.Client(base_url=gw.url, auth=(hog["api_key"], hog["api_secret"])) as c:
            for i in range(32):
                form = {"from": "Hog", "to": f"3161234{i:04d}", "text": "slow", "callback": slow[i % 8].url}
                assert c.post("/sms/json", data=form).json()["messages"][0]["status"] == "0"
        wait_for(lambda: sum(len(r.seen) for r in slow) >= 4, timeout=10)  # the hog's receivers are busy
        token = gw.token(other)
        start = time.monotonic()
        r = httpx.post(
            gw.url + "/messaging/sms-kpn/v1/send",
            json={"messages": [{"mobile_number": "0612349999", "content": "fast"}]},
            headers={"authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.text
        wait_for(lambda: {e["type"] for e in fast.events()} >= {"message.submitted", "message.delivered"}, timeout=30)
        latency = time.monotonic() - start
        busy = sum(len(r.seen) - len(r.ok) for r in slow)  # still being answered slowly meanwhile
        assert latency < 1.5, f"the other account's webhooks took {latency:.2f}s (hog deliveries in progress: {busy})"
        assert sum(len(r.ok) for r in slow) < 32  # the hog's backlog was still there
        print(f"\nthe other account's webhooks after {latency:.2f}s, with the hog's receivers busy")
    finally:
        gw.stop()
        fast.stop()
        for r in slow:
            r.stop()
