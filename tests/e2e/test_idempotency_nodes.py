"""``Idempotency-Key`` across two ``smsgate serve`` nodes on one PostgreSQL, submitting to one SMSC simulator:
50 identical requests with one key, spread over both nodes at once, make one message and one submit_sm. Within a
node the in-process wait decides; between the nodes the key's primary key does (the loser's accept transaction
inserts nothing and it replays the winner's committed answer)."""

from __future__ import annotations

import asyncio
import pathlib
import time
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests import support

pytestmark = [pytest.mark.postgres]
REQUESTS = 50
ENV = {"SMSGATE_SANDBOX": "false", "SMSGATE_NODE_DEAD_AFTER": "10", "SMSGATE_NODE_HEARTBEAT_INTERVAL": "1"}


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[list[support.GatewayProcess], str, support.SmscThread]]:
    sim = support.SmscThread().start()
    try:
        with support.postgres_database() as db:
            nodes: list[support.GatewayProcess] = []
            try:
                for name in ("a", "b"):
                    d: pathlib.Path = tmp_path_factory.mktemp(f"node-{name}")
                    cfg = support.smpp_config(d / "smsgate.toml", sim.sim.port, system_id=f"node-{name}")
                    nodes.append(
                        support.GatewayProcess(
                            d, env={**ENV, "SMSGATE_DATABASE_URL": db}, config=cfg, log_level="info"
                        ).start()
                    )
                yield nodes, db, sim
            finally:
                for n in nodes:
                    n.stop()
    finally:
        sim.stop()


def messages_in(db: str, account_id: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(db.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return int(await conn.fetchval("SELECT count(*) FROM messages WHERE account_id = $1", account_id))
        finally:
            await conn.close()

    return asyncio.run(count())


def test_fifty_concurrent_duplicates_on_two_nodes_make_one_message_and_one_submit(
    cluster: tuple[list[support.GatewayProcess], str, support.SmscThread],
) -> None:
    nodes, db, sim = cluster
    acc = support.create_account(db, "twins")
    key, text = str(uuid.uuid4()), f"one and only {uuid.uuid4().hex[:8]}"
    auth = httpx.BasicAuth(acc["api_key"], acc["api_secret"])

    async def burst() -> list[httpx.Response]:
        clients = [httpx.AsyncClient(base_url=n.url, auth=auth, timeout=30) for n in nodes]
        try:
            return await asyncio.gather(
                *(
                    clients[i % 2].post(
                        "/v1/messages", json={"to": "+31612345678", "text": text}, headers={"idempotency-key": key}
                    )
                    for i in range(REQUESTS)
                )
            )
        finally:
            for c in clients:
                await c.aclose()

    answers = asyncio.run(burst())
    assert [r.status_code for r in answers] == [201] * REQUESTS, [r.text for r in answers if r.status_code != 201]
    assert len({r.content for r in answers}) == 1  # byte for byte, the same id
    assert sum("idempotent-replayed" not in r.headers for r in answers) == 1
    assert messages_in(db, acc["account_id"]) == 1
    support.wait_for(lambda: text in sim.copies_by_text(), timeout=10)
    time.sleep(1.0)  # a second submit, if any, would arrive within the dispatcher's next rounds
    assert len(sim.copies_by_text()[text]) == 1
    # the other node sent too, lost the key's insert in its accept transaction and replayed the winner's answer;
    # the requests that waited on their node's first read the kept answer
    lost = sum(n.log.read_text().count("stored first by another request") for n in nodes)
    assert lost == 1, lost


def test_a_kpn_batch_retried_on_two_nodes_at_once_is_one_batch(
    cluster: tuple[list[support.GatewayProcess], str, support.SmscThread],
) -> None:
    """KPN's batch call: the key is claimed in the batch's accept transaction, so the node that loses the insert
    stores none of its 300 messages and replays the winner's answer."""
    nodes, db, _sim = cluster
    acc = support.create_account(db, "batch-twins")
    token, key = nodes[0].token(acc), str(uuid.uuid4())
    body = {"messages": [{"mobile_number": f"06{30000010 + i:08d}", "content": "one batch"} for i in range(300)]}
    headers = {"authorization": f"Bearer {token}", "idempotency-key": key}

    async def burst() -> list[httpx.Response]:
        clients = [httpx.AsyncClient(base_url=n.url, headers=headers, timeout=60) for n in nodes]
        try:
            return await asyncio.gather(
                *(clients[i % 2].post("/communication/kpn/sms/send", json=body) for i in range(10))
            )
        finally:
            for c in clients:
                await c.aclose()

    answers = asyncio.run(burst())
    assert [r.status_code for r in answers] == [200] * 10, [r.text for r in answers if r.status_code != 200]
    assert len({r.content for r in answers}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in answers) == 1
    assert messages_in(db, acc["account_id"]) == 300
