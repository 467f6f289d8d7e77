"""Two ``smsgate serve`` nodes on one PostgreSQL that poll only every 30 seconds: work one node puts back into the
outbox is picked up by the other within a second of coming due, through ``LISTEN``/``NOTIFY`` and the poll loop
sleeping until the next job's ``run_at`` (issue #17 item 5).

Node A takes its own sandbox network down (the operator's per-node switch), so the message it accepts fails its
submit there and goes back to the outbox as a retry about a second later, announced by ``NOTIFY``; A then stops.
Node B heard the notification before the retry was due: with a 30-second poll it would otherwise submit it half a
minute late.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import support

pytestmark = [pytest.mark.postgres]

SEND = "/messaging/sms-kpn/v1/send"
PICKUP = 1.0  # seconds from "due" to "submitted by the other node"


@pytest.fixture
def two_nodes(tmp_path: pathlib.Path) -> Iterator[tuple[support.GatewayProcess, support.GatewayProcess]]:
    with support.postgres_database() as db:
        env = {"SMSGATE_DATABASE_URL": db, "SMSGATE_POLL_INTERVAL": "30", "SMSGATE_SANDBOX": "false"}
        started: list[support.GatewayProcess] = []
        try:
            for name in ("a", "b"):
                started.append(support.GatewayProcess(tmp_path / name, env=env).start())
            yield started[0], started[1]
        finally:
            for n in started:
                n.stop()


def events(node: support.GatewayProcess, account: dict[str, str], message_id: str) -> list[dict[str, Any]]:
    auth = (account["api_key"], account["api_secret"])
    r = httpx.get(f"{node.url}/v1/messages/{message_id}", auth=auth, verify=support.system_cas())  # polled
    r.raise_for_status()
    return list(r.json()["events"])


def test_a_retry_put_back_by_one_node_is_taken_by_the_other_when_due(
    two_nodes: tuple[support.GatewayProcess, support.GatewayProcess],
) -> None:
    a, b = two_nodes
    account = a.create_account()
    down = httpx.post(
        a.url + "/sandbox/network", json={"available": False}, headers={"authorization": f"Bearer {a.operator_token}"}
    )
    assert down.status_code == 200, down.text
    sent = httpx.post(
        a.url + SEND,
        json={"messages": [{"mobile_number": "0612345678", "content": "wake up"}]},
        headers={"authorization": f"Bearer {a.token(account)}"},
    )
    assert sent.status_code == 200, sent.text
    message_id = sent.json()["document_id"]
    support.wait_for(lambda: any(e["type"] == "retry" for e in events(b, account, message_id)), timeout=10)
    a.stop()  # A could take the retry itself when it comes due; stopped, only B can
    stopped = time.time()
    history = support.wait_for(
        lambda: (h := events(b, account, message_id)) and any(e["type"] == "submitted" for e in h) and h,
        timeout=10,
    )
    due = max(float(e["data"]["at"]) for e in history if e["type"] == "retry")
    submitted = min(float(e["at"]) for e in history if e["type"] == "submitted")
    # from the moment B could take it (due, and A gone) to B's submit
    assert submitted - max(due, stopped) < PICKUP, history
