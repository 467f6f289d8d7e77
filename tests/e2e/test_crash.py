"""Crash test: SIGKILL the gateway at random moments while it sends to the SMSC simulator, restart, repeat.

The gateway runs as a subprocess (SQLite, fsync'd) routed to the simulator over SMPP; receipts come back 300 ms
after each submit, and every status event goes to a webhook receiver in this process. Each round picks a moment
from a seeded random schedule: during accept (requests in flight), during submit (a stream well under way), or
after the stream with receipts and webhooks pending. After the last kill the gateway runs on by itself, and:

* every message that got a 200 reached the SMSC (found there by its unique text) and is delivered;
* every message the gateway holds (also those whose 200 was cut off by the kill) reached a final status;
* every such message's ``message.submitted`` and ``message.delivered`` webhooks arrived, none is left to send;
* a message went to the SMSC twice only across a kill, and only if at that kill the gateway had not yet
  recorded the submit (read from its database right after the kill): the in-flight window.

    SMSGATE_CRASH_SEED=123 SMSGATE_CRASH_KILLS=50 .venv/bin/pytest tests/e2e/test_crash.py -s

The seed, the kills and the duplicate counts are printed (``-s``); a failure names the seed to reproduce it.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import dataclasses
import os
import pathlib
import random
import sqlite3
import time

import pytest

from tests.support import (
    GatewayProcess,
    KpnStream,
    SmscThread,
    WebhookSink,
    assert_all_completed,
    smpp_config,
    wait_for,
)

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("SMSGATE_CRASH_SEED", "20251122"))
KILLS = int(os.environ.get("SMSGATE_CRASH_KILLS", "20"))
MOMENTS = ("accept", "submit", "pending")
ENV = {
    "SMSGATE_SANDBOX": "false",
    "SMSGATE_WEBHOOK_RETRY_BASE": "0.2",
    "SMSGATE_WEBHOOK_RETRY_MAX_DELAY": "1",
    "SMSGATE_WEBHOOK_TIMEOUT": "3",
    "SMSGATE_WEBHOOK_PER_TARGET_CONCURRENCY": "16",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Kill:
    """What the gateway's database held right after one SIGKILL."""

    moment: str
    boundary: int  # submit records the simulator had when the killed process's connection closed
    status_by_text: dict[str, str]
    unsubmitted: int  # accepted, submit not recorded
    awaiting_receipt: int  # submitted, receipt not recorded
    webhooks_pending: int
    cut_requests: int  # sends whose answer the kill cut off


def snapshot(db: pathlib.Path, account_id: str) -> tuple[dict[str, str], int]:
    """(text -> status of every outbound message, webhook deliveries not yet done), read while the gateway is dead."""
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        rows = conn.execute(
            "SELECT text, status FROM messages WHERE account_id = ? AND direction = 'outbound'", (account_id,)
        ).fetchall()
        [(hooks,)] = conn.execute(
            "SELECT count(*) FROM webhook_deliveries WHERE account_id = ? AND status IN ('pending', 'retrying')",
            (account_id,),
        ).fetchall()
    return dict(rows), int(hooks)


def run_round(gw: GatewayProcess, acc: dict[str, str], k: int, moment: str, rng: random.Random) -> KpnStream:
    """One stream of sends with a SIGKILL at ``moment``; returns the stream (stopped)."""
    stream = KpnStream(gw, acc, f"crash {k}")
    if moment == "pending":
        stream.start(threads=2, limit=rng.randint(20, 60))
        stream.join()
        time.sleep(rng.uniform(0.0, 0.3))  # receipts come 300 ms after each submit; webhooks trail them
    else:
        stream.start(threads=3)
        time.sleep(rng.uniform(0.05, 0.4) if moment == "accept" else rng.uniform(0.4, 1.2))
    gw.kill()
    stream.stop()
    return stream


def duplicates_by_kill(kills: list[Kill], copies: dict[str, list[int]]) -> tuple[collections.Counter[int], list[str]]:
    """Duplicates per kill, and every copy that breaks the in-flight rule (see the module docstring)."""
    bounds = [k.boundary for k in kills]
    per_kill: collections.Counter[int] = collections.Counter()
    wrong: list[str] = []
    for text, indexes in copies.items():
        gens = [bisect.bisect_right(bounds, i) for i in indexes]  # which process sent it: the one killed at kill g
        if len(set(gens)) < len(gens):
            wrong.append(f"{text!r} submitted twice by one process (generations {gens})")
        for g in gens[:-1]:
            per_kill[g] += 1
            status = kills[g].status_by_text.get(text) if g < len(kills) else "never killed"
            if status != "accepted":
                wrong.append(f"{text!r} sent again after kill {g} although the gateway had it {status!r}")
    return per_kill, wrong


def test_sigkill_at_random_moments(tmp_path: pathlib.Path) -> None:
    rng = random.Random(SEED)
    print(f"\ncrash test: seed {SEED} (SMSGATE_CRASH_SEED), {KILLS} kills (SMSGATE_CRASH_KILLS)")
    started = time.monotonic()
    # a receipt the gateway refuses is offered again every 200 ms for 2 minutes (an SMSC keeps them for hours)
    sim = SmscThread(receipt_delay_ms=300, max_redeliveries=600, redeliver_delay_ms=200).start()
    sink = WebhookSink(delay=0.02).start()
    config = smpp_config(tmp_path / "smsgate.toml", sim.sim.port, response_timeout=5.0)
    gw = GatewayProcess(tmp_path / "data", env=ENV, config=config)
    accepted: dict[str, str] = {}
    kills: list[Kill] = []
    try:
        gw.start()
        acc = gw.create_account("crash", receipt_url=sink.url, balance=10**8 * 10**6)
        for k in range(KILLS):
            moment = rng.choice(MOMENTS)
            stream = run_round(gw, acc, k, moment, rng)
            accepted |= stream.accepted
            assert not stream.refused, (k, stream.refusals[:3])
            wait_for(lambda: sim.call(lambda: not sim.sim.conns), timeout=10)  # the sim has read all it was sent
            status_by_text, hooks = snapshot(gw.data_dir / "smsgate.db", acc["account_id"])
            lost = sorted(t for t in stream.accepted if t not in status_by_text)
            assert not lost, f"seed {SEED}, kill {k}: 200 but not in the database: {lost[:5]}"
            counts = collections.Counter(status_by_text.values())
            boundary = sim.call(lambda: len(sim.sim.records))
            kills.append(
                Kill(moment, boundary, status_by_text, counts["accepted"], counts["submitted"], hooks, stream.broken)
            )
            gw.start()
        print(f"  {KILLS} kills in {time.monotonic() - started:.1f}s; {len(accepted)} messages got a 200")

        assert_all_completed(gw, acc, sim, accepted, sink=sink, timeout=90)
        final, hooks_left = snapshot(gw.data_dir / "smsgate.db", acc["account_id"])
        not_final = {t: s for t, s in final.items() if s != "delivered"}
        assert not not_final, f"seed {SEED}: messages not delivered: {list(not_final.items())[:5]}"
        assert hooks_left == 0
        unheard = set(final) - set(accepted)  # their 200 was cut off by a kill: they must complete all the same
        got = sink.types_by_message()
        assert len(got) == len(final), f"seed {SEED}: webhooks for {len(got)} of {len(final)} messages"
        assert all(t == {"message.submitted", "message.delivered"} for t in got.values())

        records = sim.records()
        by_text: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            by_text.setdefault(r.short_message.decode("latin-1"), []).append(i)
        strangers = set(by_text) - set(final)
        assert not strangers, f"seed {SEED}: submitted but never committed: {sorted(strangers)[:5]}"
        per_kill, wrong = duplicates_by_kill(kills, by_text)
        assert not wrong, f"seed {SEED}: duplicates outside the in-flight window: {wrong[:5]}"

        moments = collections.Counter(k.moment for k in kills)

        def at_kills(field: str) -> str:
            values = [getattr(k, field) for k in kills]
            return f"{sum(1 for v in values if v)} kills (up to {max(values)})"

        print(
            f"  moments {dict(moments)}; sends cut off by a kill: {sum(k.cut_requests for k in kills)} "
            f"({len(unheard)} of them had been accepted)\n"
            f"  killed with accepted messages not yet submitted: {at_kills('unsubmitted')}, with messages awaiting a "
            f"receipt: {at_kills('awaiting_receipt')}, with webhooks pending: {at_kills('webhooks_pending')}\n"
            f"  SMSC: {len(records)} submits for {len(final)} messages; duplicates {sum(per_kill.values())} "
            f"(per kill: {[per_kill.get(i, 0) for i in range(KILLS)]}); webhook repeats {sink.repeats}\n"
            f"  all delivered and every webhook received {time.monotonic() - started:.1f}s after the start"
        )
        # the schedule really hit the moments it is meant to
        assert sum(k.cut_requests for k in kills) > 0
        assert any(k.unsubmitted for k in kills)
        assert any(k.awaiting_receipt for k in kills)
        assert any(k.webhooks_pending for k in kills)
    finally:
        gw.stop()
        sink.stop()
        sim.stop()
