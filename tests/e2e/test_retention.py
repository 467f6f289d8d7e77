"""Retention on a real server: messages older than SMSGATE_RETENTION_DAYS leave /v1/messages and the console with
everything that hangs off them; older than SMSGATE_CONTENT_RETENTION_DAYS they lose their text and keep status and
price; an account's own limit replaces the gateway's; ``smsgate purge`` deletes on the operator's word.

Messages are made old by moving their ``created_at`` back in the SQLite file the gateway uses, as time would."""

from __future__ import annotations

import asyncio
import datetime as dt
import pathlib
import sqlite3
from collections.abc import Iterator

import httpx
import pytest

from smsgate.store import engine as store_engine
from smsgate.store import tables
from tests import support
from tests.support import handset

DAY = 86_400


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[support.GatewayProcess]:
    env = {"SMSGATE_RETENTION_DAYS": "30", "SMSGATE_CONTENT_RETENTION_DAYS": "7", "SMSGATE_RETENTION_INTERVAL": "0.3"}
    with support.gateway_process(tmp_path_factory.mktemp("retention"), env=env) as g:
        yield g


def db_file(g: support.GatewayProcess) -> pathlib.Path:
    return g.data_dir / "smsgate.db"


def age(g: support.GatewayProcess, message_id: str, days: float) -> None:
    """Make a message (and its events and webhooks) ``days`` older, in whichever database the gateway uses."""
    if "postgresql" not in g.database_url:
        with sqlite3.connect(db_file(g), timeout=10) as db:
            db.execute("UPDATE messages SET created_at = created_at - ? WHERE id = ?", (days * DAY, message_id))
        return

    async def run() -> None:
        engine = store_engine.create(g.database_url)
        try:
            async with engine.begin() as conn:
                m = tables.messages
                await conn.execute(
                    m.update().where(m.c.id == message_id).values(created_at=m.c.created_at - days * DAY)
                )
        finally:
            await engine.dispose()

    asyncio.run(run())


def send(c: httpx.Client, text: str, to: str | None = None) -> str:
    r = c.post("/v1/send-sms", json={"to": to or handset(), "text": text})
    assert r.status_code == 202, r.text
    mid = str(r.json()["message_id"])
    support.wait_for(lambda: c.get(f"/v1/messages/{mid}").json()["status"] == "delivered", 30)  # loaded runs
    return mid


def test_old_messages_go_and_older_texts_are_blanked(gw: support.GatewayProcess) -> None:
    acc = gw.create_account("shop")
    with gw.client(auth=(acc["api_key"], acc["api_secret"])) as c:
        old, stale, fresh = send(c, "old secret 1111"), send(c, "stale secret 2222"), send(c, "fresh 3333")
        before = c.get(f"/v1/messages/{stale}").json()
        age(gw, old, 31)
        age(gw, stale, 8)
        support.wait_for(lambda: c.get(f"/v1/messages/{old}").status_code == 404)
        assert old not in {m["id"] for m in c.get("/v1/messages").json()["messages"]}
        with gw.client(headers={"authorization": f"Bearer {gw.operator_token}"}) as op:
            assert old not in {m["id"] for m in op.get("/console/api/messages").json()["messages"]}
        blanked = support.wait_for(lambda: (m := c.get(f"/v1/messages/{stale}").json())["text"] is None and m)
        assert blanked["status"] == "delivered" and blanked["price"] == before["price"]
        assert blanked["parts_count"] == before["parts_count"] and [p["text"] for p in blanked["parts"]] == [None]
        assert [e["type"] for e in blanked["events"]] == [e["type"] for e in before["events"]]
        assert c.get(f"/v1/messages/{fresh}").json()["text"] == "fresh 3333"
    with sqlite3.connect(db_file(gw)) as db:
        for table, column in (("parts", "message_id"), ("events", "message_id"), ("webhook_deliveries", "message_id")):
            assert db.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?", (old,)).fetchone() == (0,), table
        assert db.execute("SELECT payload FROM parts WHERE message_id = ?", (stale,)).fetchone() == (b"",)


def test_an_accounts_own_limit_replaces_the_gateways(gw: support.GatewayProcess) -> None:
    keeper = gw.create_account("keeps everything", retention_days=0, content_retention_days=0)
    strict = gw.create_account("two days", retention_days=2)
    with (
        gw.client(auth=(keeper["api_key"], keeper["api_secret"])) as k,
        gw.client(auth=(strict["api_key"], strict["api_secret"])) as s,
    ):
        kept, gone = send(k, "kept 4444"), send(s, "gone 5555")
        age(gw, kept, 400)
        age(gw, gone, 3)
        support.wait_for(lambda: s.get(f"/v1/messages/{gone}").status_code == 404)
        assert k.get(f"/v1/messages/{kept}").json()["text"] == "kept 4444"


@pytest.mark.parametrize("backend", support.BACKENDS)
def test_purge_deletes_before_a_date(tmp_path: pathlib.Path, backend: str) -> None:
    with support.backend_env(backend) as db, support.gateway_process(tmp_path / "gw", env=db) as g:
        # keeps everything: only the operator deletes
        a, b = g.create_account("a"), g.create_account("b")
        with g.client(auth=(a["api_key"], a["api_secret"])) as ca, g.client(auth=(b["api_key"], b["api_secret"])) as cb:
            a_old, a_new, b_old = send(ca, "a old"), send(ca, "a new"), send(cb, "b old")
            age(g, a_old, 100)
            age(g, b_old, 100)
            cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(days=50)).date().isoformat()
            env = {"SMSGATE_DATA_DIR": str(g.data_dir), **db}
            out = support.cli_json("purge", "--before", cutoff, "--account", a["api_key"], "--json", env=env)
            assert out == {"deleted": 1}
            assert ca.get(f"/v1/messages/{a_old}").status_code == 404
            assert ca.get(f"/v1/messages/{a_new}").status_code == 200
            assert cb.get(f"/v1/messages/{b_old}").status_code == 200
            assert support.cli_json("purge", "--before", cutoff, "--json", env=env) == {"deleted": 1}
            assert cb.get(f"/v1/messages/{b_old}").status_code == 404
            bad = support.run_cli("purge", "--before", "last tuesday", env=env, check=False)
            assert bad.returncode == 2 and "not a date" in bad.stderr
