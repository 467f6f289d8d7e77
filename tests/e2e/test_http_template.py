"""The generic ``http`` connector against a small SMS API written here: templates, answers, retries, receipts.

The receiver plays an upstream with its own wire format: it takes a JSON body, answers ``{"result": {"id"}}``
(or what the test queues: a 503 with Retry-After...), and the test posts its receipts back to A's receiver the
way such an upstream would, to the ``{callback}`` URL the request carried.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import Reply, ScriptedUpstream, Sender, relay_gateway, wait_for

TOKEN = "receipt-token-42"
UPSTREAM_KEY = "upstream-api-key-7"
TEXT = "Generic upstream, one request per message. " * 4  # 172 characters: two parts


class Upstream(ScriptedUpstream):
    """Answers with the replies the test queued, then with success and a new id (``UP-<n>``)."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        super().__init__(self.answer)

    def answer(self, req: dict[str, Any]) -> Reply:
        return self.replies.pop(0) if self.replies else (200, {}, {"result": {"id": f"UP-{len(self.requests)}"}})

    def bodies(self, text: str) -> list[dict[str, Any]]:
        return self.requests_where("message", text)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    u = Upstream()
    yield u
    u.stop()


def connector(upstream: Upstream) -> dict[str, Any]:
    return {
        "name": "acme",
        "type": "http",
        "url": f"http://127.0.0.1:{upstream.port}/v2/sms?key={UPSTREAM_KEY}",
        "body_format": "json",
        "body": {"recipient": "{to_plus}", "originator": "{from}", "message": "{text}", "reference": "{id}",
                 "report_url": "{callback}", "meta": {"coding": "{coding}", "parts": "{parts}"}},
        "headers": {"X-Api-Key": UPSTREAM_KEY},
        "id_path": "$.result.id",
        "retries": 2,
        "backoff": 0.1,
        "backoff_max": 5.0,
        "receipt": {"id": "msgid", "status": "stat", "error": "err", "delivered": ["DELIVRD"],
                    "failed": ["UNDELIV"], "expired": ["EXPIRED"], "token": TOKEN},
    }  # fmt: skip


def test_generic_http_connector_with_a_receipt_mapped_back(tmp_path: pathlib.Path, upstream: Upstream) -> None:
    with relay_gateway(tmp_path, [connector(upstream)], []) as a:
        sender = Sender(a, a.create_account("generic"))
        mid = sender.send("31644123456", TEXT)
        [req] = wait_for(lambda: upstream.bodies(TEXT))
        callback = f"{a.url}/connectors/acme/receipts?token={TOKEN}"
        assert req["body"] == {
            "recipient": "+31644123456", "originator": "Shop", "message": TEXT, "reference": mid,
            "report_url": callback, "meta": {"coding": "gsm7", "parts": "2"},
        }  # fmt: skip
        assert req["path"] == f"/v2/sms?key={UPSTREAM_KEY}" and req["headers"]["x-api-key"] == UPSTREAM_KEY
        msg = wait_for(lambda: (m := sender.message(mid))["status"] == "submitted" and m)
        upstream_id = f"UP-{len(upstream.requests)}"
        assert [p["network_message_id"] for p in msg["parts"]] == [upstream_id, upstream_id]

        assert httpx.post(callback.split("?")[0], data={"msgid": upstream_id, "stat": "DELIVRD"}).status_code == 401
        r = httpx.post(callback, data={"msgid": upstream_id, "stat": "DELIVRD", "err": "0"})
        assert r.status_code == 200 and r.json() == {"received": 1}, r.text
        msg = wait_for(lambda: (m := sender.message(mid))["status"] == "delivered" and m)
        assert [p["status"] for p in msg["parts"]] == ["delivered", "delivered"]  # one id, both parts
        assert UPSTREAM_KEY not in a.log.read_text()


def test_generic_http_connector_honours_retry_after(tmp_path: pathlib.Path, upstream: Upstream) -> None:
    """A 503 with Retry-After: 1 is tried again after a second (not at once), then accepted; a 400 is final."""
    upstream.replies.append((503, {"retry-after": "1"}, {"error": "busy"}))
    with relay_gateway(tmp_path, [connector(upstream)], []) as a:
        sender = Sender(a, a.create_account("retry-after"))
        mid = sender.send("31644123456", "try me again")
        first, second = wait_for(lambda: len(upstream.bodies("try me again")) == 2 and upstream.bodies("try me again"))
        assert second["at"] - first["at"] >= 1.0
        msg = wait_for(lambda: (m := sender.message(mid))["status"] == "submitted" and m)
        [event] = [e["data"] for e in msg["events"] if e["type"] == "submitted"]
        assert event["connector"] == "acme" and event["network_id"] == "UP-2"
        assert event["note"] == "after 1 failed try (answered HTTP 503)", event

        upstream.replies.append((400, {}, {"error": "no such number"}))
        bad = sender.send("31644123456", "refused for good")
        msg = wait_for(lambda: (m := sender.message(bad))["status"] == "rejected" and m)
        assert len(upstream.bodies("refused for good")) == 1
        assert msg["parts"][0]["status"] == "rejected"
