"""Retention on two PostgreSQL nodes: both run the sweep (one batch at a time under the advisory lock), old
messages go and older texts are blanked, whichever node accepted them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from tests import support
from tests.e2e.test_retention import DAY, send
from tests.e2e.test_security_multinode import env_for
from tests.e2e.test_suppressions import basic

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def db_and_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[support.GatewayProcess]]]:
    redis_url = support.require_redis()
    with support.postgres_database() as db:
        env = {
            **env_for(db, redis_url),
            "SMSGATE_RETENTION_DAYS": "30",
            "SMSGATE_CONTENT_RETENTION_DAYS": "7",
            "SMSGATE_RETENTION_INTERVAL": "0.3",
        }
        with support.gateway_nodes(tmp_path_factory.mktemp, env) as gws:
            yield db, gws


def age(db: str, message_id: str, days: float) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(db)
        try:
            await conn.execute("UPDATE messages SET created_at = created_at - $1 WHERE id = $2", days * DAY, message_id)
        finally:
            await conn.close()

    asyncio.run(run())


def test_both_nodes_sweep(db_and_nodes: tuple[str, list[support.GatewayProcess]]) -> None:
    db, nodes = db_and_nodes
    acc = nodes[0].create_account("pg")
    with basic(nodes[0], acc) as a, basic(nodes[1], acc) as b:
        old = [send(a, "old a"), send(b, "old b")]
        stale = send(b, "stale b")
        for mid in old:
            age(db, mid, 31)
        age(db, stale, 8)
        for mid in old:
            support.wait_for(lambda m=mid: a.get(f"/v1/messages/{m}").status_code == 404)
        blanked = support.wait_for(lambda: (m := a.get(f"/v1/messages/{stale}").json())["text"] is None and m)
        assert blanked["status"] == "delivered" and blanked["parts"][0]["text"] is None
