"""Faults around a real gateway process: the SMSC drops the link, throttles (0x58), answers nothing; the webhook
receiver is down; the database is briefly unavailable (SQLite locked, PostgreSQL cut behind a TCP proxy).

Each test sends a stream of uniquely-texted messages through the fault, clears the fault and does nothing else:
the gateway must recover by itself, and every message that got a 200 must be delivered (``GET /v1/messages``),
found at the SMSC simulator by its text, with the network id the SMSC gave it, and both its status webhooks received.
"""

from __future__ import annotations

import contextlib
import pathlib
import sqlite3
import time
from collections.abc import Iterator

import pytest

from tests.support import (
    GatewayProcess,
    KpnStream,
    SmscThread,
    TcpProxy,
    WebhookSink,
    assert_all_completed,
    create_account,
    postgres_database,
    smpp_config,
    wait_for,
)

ENV = {
    "SMSGATE_SANDBOX": "false",
    "SMSGATE_WEBHOOK_RETRY_BASE": "0.2",
    "SMSGATE_WEBHOOK_RETRY_MAX_DELAY": "1",
    "SMSGATE_WEBHOOK_TIMEOUT": "2",
    "SMSGATE_WEBHOOK_PER_TARGET_CONCURRENCY": "16",  # every account posts to the one test receiver
}
# The database tests shorten the submit lease (60 s by default): a submit result the dispatcher could not record
# during the outage is dropped from memory while its job stays claimed by the live node until the lease runs out,
# and is then submitted again (a dispatcher shortcoming: with the default lease these tests would take over 60 s).
DB_OUTAGE_ENV = ENV  # the default 60 s lease: recovery must not wait for it


def smsc() -> SmscThread:
    """Receipts 50 ms after each submit; a refused receipt is offered again for 30 s, as an SMSC keeps them."""
    return SmscThread(receipt_delay_ms=50, max_redeliveries=150, redeliver_delay_ms=200).start()


@pytest.fixture
def sim() -> Iterator[SmscThread]:
    """A simulator of the test's own: the SMSC offers a refused receipt again to any bound receiver, which would
    be another test's gateway if they shared one."""
    s = smsc()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def sink() -> Iterator[WebhookSink]:
    s = WebhookSink().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def rig(
    tmp_path_factory: pytest.TempPathFactory, sink: WebhookSink
) -> Iterator[tuple[GatewayProcess, SmscThread, WebhookSink]]:
    """One simulator and one gateway (SQLite, default settings) routed to it, for the SMSC and receiver faults."""
    sim = smsc()
    d = tmp_path_factory.mktemp("faults")
    try:
        gw = GatewayProcess(d, env=ENV, config=smpp_config(d / "smsgate.toml", sim.sim.port)).start()
        try:
            yield gw, sim, sink
        finally:
            gw.stop()
    finally:
        sim.stop()


def duplicates(copies: dict[str, list[object]], texts: dict[str, str]) -> int:
    return sum(len(copies[t]) - 1 for t in texts)


def test_smsc_drops_the_connection(rig: tuple[GatewayProcess, SmscThread, WebhookSink]) -> None:
    gw, sim, sink = rig
    acc = gw.create_account("drops", receipt_url=sink.url)
    before = sim.stats().get("dropped_connections", 0)
    stream = KpnStream(gw, acc, "drop").start(threads=2, limit=150)
    for k in range(1, 4):  # three drops, each after 15 more submits; each re-arms after the link is back
        sim.set_mode("drop_after:15")
        wait_for(lambda k=k: sim.stats().get("dropped_connections", 0) >= before + k, timeout=15)
        wait_for(lambda: sim.stats()["bound_sessions"] >= 1, timeout=10)
    stream.join()
    sim.set_mode("")
    assert len(stream.accepted) == 150 and not stream.refused, stream.refused
    copies = assert_all_completed(gw, acc, sim, stream.accepted, sink=sink, timeout=30)
    dups = duplicates(copies, stream.accepted)
    print(f"\nSMSC dropped the link 3 times: 150 messages delivered, {dups} submitted twice")
    assert dups <= 3 * 20  # at most the window in flight at each drop


def test_smsc_throttles(rig: tuple[GatewayProcess, SmscThread, WebhookSink]) -> None:
    gw, sim, sink = rig
    acc = gw.create_account("throttled", receipt_url=sink.url)
    before = sim.stats().get("throttled", 0)
    sim.set_mode("throttle_every:5")  # each 0x58 pauses the connector for throttle_backoff (0.2 s)
    stream = KpnStream(gw, acc, "throttle").start(threads=2, limit=60)
    stream.join()
    wait_for(lambda: sim.stats().get("throttled", 0) - before >= 10, timeout=15)
    sim.set_mode("")
    assert len(stream.accepted) == 60 and not stream.refused, stream.refused
    copies = assert_all_completed(gw, acc, sim, stream.accepted, sink=sink, timeout=30)
    assert duplicates(copies, stream.accepted) == 0  # a throttled submit_sm was not taken: sending it again is right


def test_smsc_answers_nothing(rig: tuple[GatewayProcess, SmscThread, WebhookSink]) -> None:
    """Submits go unanswered (the simulator never answers those), so each must time out (2 s) and be sent again."""
    gw, sim, sink = rig
    acc = gw.create_account("silent", receipt_url=sink.url)
    before = sim.stats().get("unanswered", 0)
    sim.set_mode("no_response")
    stream = KpnStream(gw, acc, "silent").start(threads=2, limit=60)
    wait_for(lambda: sim.stats().get("unanswered", 0) - before >= 15, timeout=10)
    sim.set_mode("")
    stream.join()
    assert len(stream.accepted) == 60 and not stream.refused, stream.refused
    copies = assert_all_completed(gw, acc, sim, stream.accepted, sink=sink, timeout=30)
    assert duplicates(copies, stream.accepted) == 0  # unanswered submits were never taken by the simulator


def test_webhook_receiver_down(rig: tuple[GatewayProcess, SmscThread, WebhookSink]) -> None:
    gw, sim, _ = rig
    down = WebhookSink()  # nothing listens on its port yet
    acc = gw.create_account("hooks-down", receipt_url=down.url)
    stream = KpnStream(gw, acc, "hooksdown").start(threads=2, limit=20)
    stream.join()
    assert len(stream.accepted) == 20
    auth = (acc["api_key"], acc["api_secret"])

    def retrying() -> int:
        with gw.client(auth=auth) as c:
            return len(
                c.get("/v1/webhooks/deliveries", params={"status": "retrying", "limit": 200}).json()["deliveries"]
            )

    wait_for(lambda: retrying() >= 20, timeout=15)
    time.sleep(0.5)  # a few failed rounds
    down.start()
    try:
        assert_all_completed(gw, acc, sim, stream.accepted, sink=down, timeout=30)
    finally:
        down.stop()


@contextlib.contextmanager
def sqlite_locked(db: pathlib.Path) -> Iterator[None]:
    """SQLite's write lock on ``db``, held by another connection for the duration of the block."""
    conn = sqlite3.connect(db, timeout=20, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_sqlite_briefly_locked(tmp_path: pathlib.Path, sim: SmscThread, sink: WebhookSink) -> None:
    """Sends during the outage are accepted once the lock is gone or refused with KPN's retryable 503; receipts
    refused meanwhile are offered again by the SMSC; everything accepted completes afterwards."""
    gw = GatewayProcess(tmp_path, env=DB_OUTAGE_ENV, config=smpp_config(tmp_path / "smsgate.toml", sim.sim.port))
    try:
        gw.start()
        acc = gw.create_account("locked", receipt_url=sink.url)
        stream = KpnStream(gw, acc, "locked").start(threads=3)
        wait_for(lambda: len(stream.accepted) >= 30, timeout=10)
        nacked = sim.stats().get("receipts_nacked", 0)
        with sqlite_locked(gw.data_dir / "smsgate.db"):  # longer than the gateway's 5 s busy timeout
            n = len(stream.accepted)
            time.sleep(6.0)
        wait_for(lambda: len(stream.accepted) >= n + 30, timeout=15)  # sending works again, by itself
        stream.stop()
        check_refusals(stream)
        copies = assert_all_completed(gw, acc, sim, stream.accepted, sink=sink, timeout=30)
        print(
            f"\nSQLite locked 6 s: {len(stream.accepted)} accepted, refused {dict(stream.refused)}, receipts refused "
            f"and offered again: {sim.stats().get('receipts_nacked', 0) - nacked}, "
            f"submitted twice: {duplicates(copies, stream.accepted)}"
        )
    finally:
        gw.stop()


def check_refusals(stream: KpnStream) -> None:
    """During a store outage KPN answers 503 with Retry-After (its 'try again'), never a 500 or a stack trace."""
    assert set(stream.refused) <= {503}, stream.refusals[:3]
    for status, body, headers in stream.refusals:
        assert status == 503 and headers.get("retry-after") and "Traceback" not in body, (status, body)
    assert stream.broken == 0


@pytest.mark.postgres
def test_postgres_briefly_unreachable(tmp_path: pathlib.Path, sim: SmscThread, sink: WebhookSink) -> None:
    """PostgreSQL behind a proxy the test cuts for 3 s (the shared server itself is never touched)."""
    with postgres_database() as db:
        host, port = "127.0.0.1", int(db.rsplit(":", 1)[1].split("/", 1)[0])
        proxy = TcpProxy((host, port)).start()
        proxied = db.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
        env = {**DB_OUTAGE_ENV, "SMSGATE_DATABASE_URL": proxied}
        gw = GatewayProcess(tmp_path, env=env, config=smpp_config(tmp_path / "smsgate.toml", sim.sim.port))
        try:
            gw.start()
            acc = create_account(db, "pg-cut", receipt_url=sink.url)
            stream = KpnStream(gw, acc, "pgcut").start(threads=3)
            wait_for(lambda: len(stream.accepted) >= 30, timeout=10)
            proxy.cut()
            time.sleep(3.0)
            proxy.start()
            n = len(stream.accepted)
            wait_for(lambda: len(stream.accepted) >= n + 30, timeout=15)  # sending works again, by itself
            stream.stop()
            check_refusals(stream)
            copies = assert_all_completed(gw, acc, sim, stream.accepted, sink=sink, timeout=30)
            print(
                f"\nPostgreSQL cut 3 s: {len(stream.accepted)} accepted, refused {dict(stream.refused)}, "
                f"submitted twice: {duplicates(copies, stream.accepted)}"
            )
        finally:
            gw.stop()
            proxy.stop()
