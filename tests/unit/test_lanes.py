"""The dispatcher's lanes: high, normal and bulk served 8:3:1 when all are busy, bulk never starved."""

from __future__ import annotations

import asyncio
import collections

import pytest

from smsgate.dispatch import lanes

HIGH, NORMAL, BULK = 0, 1, 2


def _filled(per_lane: int) -> lanes.Lanes[tuple[int, int]]:
    q: lanes.Lanes[tuple[int, int]] = lanes.Lanes()
    for lane in (BULK, NORMAL, HIGH):
        for i in range(per_lane):
            q.put_nowait((lane, i), lane)
    return q


def test_busy_lanes_are_served_by_weight_spread_out() -> None:
    q = _filled(100)
    first = [q.get_nowait()[0] for _ in range(12)]
    assert collections.Counter(first) == {HIGH: 8, NORMAL: 3, BULK: 1}
    assert first != sorted(first)  # interleaved, not all highs first
    assert first[0] == HIGH


def test_bulk_moves_while_high_never_stops() -> None:
    q = _filled(0)
    served = collections.Counter()
    for i in range(1200):
        q.put_nowait(("high", i), HIGH)  # a steady stream of highs, always waiting
        if i < 300:
            q.put_nowait(("bulk", i), BULK)
        served[q.get_nowait()[0]] += 1
    assert served["bulk"] >= 1200 // 9 - 1  # one in nine while both are busy


def test_each_lane_keeps_its_order_and_a_lone_lane_is_a_plain_queue() -> None:
    q = _filled(3)
    out = [q.get_nowait() for _ in range(9)]
    for lane in (HIGH, NORMAL, BULK):
        assert [i for l_, i in out if l_ == lane] == [0, 1, 2]
    assert q.empty() and q.qsize() == 0
    q.put_nowait((NORMAL, 9), NORMAL)
    q.put_nowait((NORMAL, 10), NORMAL)
    assert [q.get_nowait(), q.get_nowait()] == [(NORMAL, 9), (NORMAL, 10)]
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()


def test_a_late_high_job_goes_next_even_after_a_long_bulk_run() -> None:
    q: lanes.Lanes[str] = lanes.Lanes()
    for i in range(1000):
        q.put_nowait(f"bulk {i}", BULK)
    for _ in range(500):
        q.get_nowait()
    q.put_nowait("otp", HIGH)
    assert q.get_nowait() == "otp"


async def test_get_waits_for_a_put() -> None:
    q: lanes.Lanes[str] = lanes.Lanes()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    q.put_nowait("x", BULK)
    assert await asyncio.wait_for(waiter, 1) == "x"
