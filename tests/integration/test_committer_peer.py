"""The SQLite committer of a split node's process waits for its peer's word that the write lock is free
(``store.committer.Peer``) instead of polling for it; a try now and then still covers any other holder.

A real SQLite file; the other process's transaction is a plain sqlite3 connection holding ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import asyncio
import pathlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from smsgate.store import committer as store_committer
from smsgate.store import engine as store_engine


async def _insert(tx: Any, items: Sequence[int]) -> list[None]:
    await tx.exec_driver_sql("INSERT INTO t (v) VALUES (?)", [(i,) for i in items])
    return [None] * len(items)


@pytest.fixture
async def setup(tmp_path: pathlib.Path) -> AsyncIterator[tuple[store_committer.GroupCommitter, list[str], str]]:
    path = str(tmp_path / "db.sqlite")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (v INTEGER)")
    url = f"sqlite+aiosqlite:///{path}"
    committer = store_committer.GroupCommitter(
        store_engine.create(url), sync_engine=store_engine.create_sync_writer(url)
    )
    committer.register("t", _insert)
    told: list[str] = []
    committer.peer = store_committer.Peer()
    committer.after_unlock = lambda: told.append("written")
    committer.start()
    try:
        yield committer, told, path
    finally:
        await committer.close()


def _hold(path: str) -> sqlite3.Connection:
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def test_the_peers_word_wakes_a_waiting_writer_at_once(
    setup: tuple[store_committer.GroupCommitter, list[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    committer, told, path = setup
    monkeypatch.setattr(store_committer, "PEER_POLL", 30.0)  # no try of its own in this test's time
    other = _hold(path)
    writing = asyncio.ensure_future(committer.write("t", 1))
    await asyncio.sleep(0.05)
    assert not writing.done()  # waiting for the lock
    other.execute("COMMIT")
    assert committer.peer is not None
    committer.peer.committed()
    await asyncio.wait_for(writing, 2.0)
    assert told == ["written"]  # and it told its peer in turn, once its commit was over
    other.close()


async def test_without_a_word_it_still_tries_now_and_then(
    setup: tuple[store_committer.GroupCommitter, list[str], str],
) -> None:
    committer, _told, path = setup
    other = _hold(path)  # someone other than the peer, which says nothing when it is done
    writing = asyncio.ensure_future(committer.write("t", 2))
    await asyncio.sleep(0.05)
    assert not writing.done()
    other.execute("COMMIT")
    await asyncio.wait_for(writing, 2.0)
    other.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [(2,)]
