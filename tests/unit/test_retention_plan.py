"""The retention plan: the gateway's limits for every account without its own, each account's own otherwise."""

from __future__ import annotations

from smsgate.core import retention

DAY = retention.DAY
NOW = 1_000 * DAY


def test_keeping_everything_plans_nothing() -> None:
    assert retention.plan(NOW, 0, 0, {}) == []
    assert retention.plan(NOW, 0, 0, {"acc_keep": (0, None)}) == []


def test_gateway_limits_skip_accounts_with_their_own() -> None:
    jobs = retention.plan(NOW, 30, 7, {"acc_b": (2, None), "acc_k": (0, 0)})
    default, b = jobs
    assert default.scope == retention.Scope(None, ("acc_b", "acc_k"))
    assert (default.delete_before, default.blank_before) == (NOW - 30 * DAY, NOW - 7 * DAY)
    assert b.scope == retention.Scope("acc_b") and b.delete_before == NOW - 2 * DAY
    assert b.blank_before is None  # deleted after 2 days, before the 7 days' blanking would come


def test_blanking_alone() -> None:
    (job,) = retention.plan(NOW, 0, 3, {})
    assert job.delete_before is None and job.blank_before == NOW - 3 * DAY
