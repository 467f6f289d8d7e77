"""Two nodes on one PostgreSQL share every account's suppression list: a number suppressed through one node is
refused by the other at once, although that node had read (and kept in memory) the list before the change."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import support
from tests.e2e.test_security_multinode import env_for  # caches kept a minute: a change seen is a signal
from tests.e2e.test_suppressions import basic
from tests.support import handset

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[support.GatewayProcess]]:
    redis_url = support.require_redis()
    with (
        support.postgres_database() as db,
        support.gateway_nodes(tmp_path_factory.mktemp, env_for(db, redis_url)) as gws,
    ):
        yield gws


def test_the_list_is_shared_and_changes_hold_at_once(nodes: list[support.GatewayProcess]) -> None:
    acc = nodes[0].create_account("shared")
    to = handset()
    a, b = basic(nodes[0], acc), basic(nodes[1], acc)
    with a, b:
        assert b.post("/v1/send-sms", json={"to": to, "text": "before"}).status_code == 202  # B reads the list
        assert a.put(f"/v1/suppressions/{to}").status_code == 201
        assert b.get(f"/v1/suppressions/{to}").json()["source"] == "api"
        support.wait_for(
            lambda: b.post("/v1/send-sms", json={"to": to, "text": "after"}).json()["code"] == 4031, timeout=2
        )
        assert b.post("/v1/send-sms", json={"to": to, "text": "again"}).json()["code"] == 4031
        assert b.delete(f"/v1/suppressions/{to}").status_code == 204
        support.wait_for(lambda: a.post("/v1/send-sms", json={"to": to, "text": "back"}).status_code == 202, timeout=2)


def test_a_stop_recorded_by_one_node_holds_on_the_other(nodes: list[support.GatewayProcess]) -> None:
    acc = nodes[0].create_account("keyword")
    number, to = "31970" + handset()[-8:], handset()
    support.add_numbers(nodes[0].database_url, {number: acc["account_id"]})
    a, b = basic(nodes[0], acc), basic(nodes[1], acc)
    with a, b:
        assert b.post("/v1/send-sms", json={"to": to, "text": "before"}).status_code == 202  # B reads the list
        assert a.post(f"/sandbox/handsets/{to}/reply", json={"to": number, "text": "STOP"}).status_code == 202
        support.wait_for(lambda: b.get(f"/v1/suppressions/{to}").status_code == 200)
        refused = lambda: b.post("/v1/send-sms", json={"to": to, "text": "after"}).json()["code"] == 4031  # noqa: E731
        support.wait_for(refused, timeout=2)  # the NOTIFY may trail the row B just read by a moment
        assert a.post(f"/sandbox/handsets/{to}/reply", json={"to": number, "text": "START"}).status_code == 202
        support.wait_for(lambda: b.get(f"/v1/suppressions/{to}").status_code == 404)
        assert b.post("/v1/send-sms", json={"to": to, "text": "back"}).status_code == 202
