"""A split node's ``/metrics`` shows its HTTP upstreams as the delivery process, which sends through them, counts
them: request verdicts, the latency histogram and circuit openings cross in the ``status`` report."""

from __future__ import annotations

import types
from typing import cast

from smsgate import link, metrics
from smsgate.runtime import Runtime
from tests.integration.test_http_connectors import generic_connector, message, started
from tests.support import free_port


async def test_the_accept_process_reports_what_the_delivery_process_counted() -> None:
    c = await started(generic_connector(f"http://127.0.0.1:{free_port()}", circuit_failures=2))  # nobody listens
    try:
        for i in range(2):
            await c.submit(message(f"m{i}"))
        report = link.snapshot({"up": c}, lambda _name: 0, {}, 0, {})
    finally:
        await c.close()
    assert c.stats.requests and c.circuit.opened == 1

    status = link.Status()
    status.update(report)
    stats, opened = status.upstream("up")
    assert (stats.requests, stats.buckets, stats.latency_sum, opened) == (
        c.stats.requests, c.stats.buckets, c.stats.latency_sum, 1,
    )  # fmt: skip
    accept_view = cast(Runtime, types.SimpleNamespace(remote=status))
    assert metrics._upstream(accept_view, "up", c) == (stats, "open", 1)
    before, none_opened = link.Status().upstream("up")  # before the first report: nothing counted yet
    assert (before.requests, sum(before.buckets), none_opened) == ({}, 0, 0)
