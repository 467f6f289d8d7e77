"""Our own batches (``/v1/batches``) against a real gateway: per-recipient refusals while the rest are accepted,
counts per status and cost, paged messages, sub-account scoping."""

from __future__ import annotations

import json

import httpx

from tests.support import GatewayProcess, WebhookSink, run_cli, wait_for


def auth(acc: dict[str, str]) -> tuple[str, str]:
    return (acc["api_key"], acc["api_secret"])


def test_a_batch_refuses_bad_recipients_and_sends_the_rest(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("ours")
    body = {
        "from": "Shop",
        "text": "Hi {name}, your code is {code}",
        "recipients": [
            {"to": "+31612340011", "vars": {"name": "Ann", "code": 1234}},
            {"to": "not-a-number", "vars": {"name": "Bob", "code": 1}},
            {"to": "+31612340015", "vars": {"name": "Cy", "code": 99}},
            {"to": "+31612340012", "vars": {"name": "Dee"}},
        ],
        "validity_seconds": 600,
    }
    r = httpx.post(gateway.url + "/v1/batches", json=body, auth=auth(acc))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["accepted"] == 2, out
    assert [(f["index"], f["to"]) for f in out["refused"]] == [(1, "not-a-number"), (3, "+31612340012")]
    assert "{code}" in out["refused"][1]["reason"]
    bid = out["id"]

    def done() -> dict[str, object] | None:
        b = httpx.get(gateway.url + f"/v1/batches/{bid}", auth=auth(acc)).json()
        return b if b["statuses"] == {"delivered": 2} else None

    b = wait_for(done, timeout=15)
    assert (b["messages"], b["parts"], b["refused"], b["kind"]) == (2, 2, 2, "api")
    assert b["price"] == out["price"] != "0.00000000"

    page1 = httpx.get(gateway.url + f"/v1/batches/{bid}/messages", params={"limit": 1}, auth=auth(acc)).json()
    assert len(page1["messages"]) == 1 and page1["next_cursor"]
    page2 = httpx.get(gateway.url + f"/v1/batches/{bid}/messages",
                      params={"limit": 1, "cursor": page1["next_cursor"]}, auth=auth(acc)).json()  # fmt: skip
    assert page2["next_cursor"] is None
    got = {m["to"]: m for m in page1["messages"] + page2["messages"]}
    assert set(got) == {"+31612340011", "+31612340015"}
    assert got["+31612340011"]["text"] == "Hi Ann, your code is 1234"
    assert got["+31612340011"]["batch_id"] == bid and got["+31612340011"]["from"] == "Shop"
    assert got["+31612340011"]["meta"]["ttl_seconds"] == 600

    other = gateway.create_account("ours-other")
    assert httpx.get(gateway.url + f"/v1/batches/{bid}", auth=auth(other)).status_code == 404
    assert httpx.get(gateway.url + f"/v1/batches/{bid}/messages", auth=auth(other)).status_code == 404
    listed = httpx.get(gateway.url + "/v1/batches", auth=auth(acc)).json()["batches"]
    assert [x["id"] for x in listed] == [bid]


def test_every_recipient_refused_or_a_bad_body_is_a_400(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("ours-bad")
    r = httpx.post(gateway.url + "/v1/batches", json={"text": "x {a}", "recipients": [{"to": "+31612340013"}]},
                   auth=auth(acc))  # fmt: skip
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_request"
    for body in ({"recipients": [{"to": "+31612340013"}]}, {"text": "x", "recipients": []},
                 {"text": "x", "recipients": [{"to": "+31612340013"}], "callback_url": "ftp://x"}):  # fmt: skip
        assert httpx.post(gateway.url + "/v1/batches", json=body, auth=auth(acc)).status_code == 400, body
    assert (
        httpx.post(gateway.url + "/v1/batches", json={"text": "x", "recipients": [{"to": "+31612340013"}]}).status_code
        == 401
    )


def test_account_field_sends_as_a_sub_account(gateway: GatewayProcess) -> None:
    parent = gateway.create_account("ours-parent")
    env = {"SMSGATE_DATA_DIR": str(gateway.data_dir)}
    sub = json.loads(
        run_cli(
            "accounts", "create", "desk", "--parent", parent["api_key"], "--default-sender", "desk", "--json", env=env
        ).stdout
    )
    body = {"text": "hello", "recipients": [{"to": "+31612340014"}], "account": "desk"}
    r = httpx.post(gateway.url + "/v1/batches", json=body, auth=auth(parent))
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    b = httpx.get(gateway.url + f"/v1/batches/{bid}", auth=auth(parent)).json()
    assert b["account_id"] == sub["account_id"]
    assert httpx.get(gateway.url + f"/v1/batches/{bid}", auth=auth(sub)).status_code == 200
    r = httpx.post(gateway.url + "/v1/batches", json={**body, "account": "nobody"}, auth=auth(parent))
    assert r.status_code == 403


def test_idempotency_key_answers_a_repeat_without_sending_again(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("ours-idem")
    body = {"text": "once", "recipients": [{"to": "+31612340016"}, {"to": "bad"}]}
    first = httpx.post(gateway.url + "/v1/batches", json=body, auth=auth(acc), headers={"Idempotency-Key": "k1"})
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    again = httpx.post(gateway.url + "/v1/batches", json=body, auth=auth(acc), headers={"Idempotency-Key": "k1"})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert {k: v for k, v in first.json().items() if k != "remaining_balance"} == again.json()
    listed = httpx.get(gateway.url + "/v1/batches", auth=auth(acc)).json()["batches"]
    assert len(listed) == 1 and listed[0]["messages"] == 1
    # the key is the caller's own: another account with the same key sends its own batch
    other = gateway.create_account("ours-idem2")
    r = httpx.post(gateway.url + "/v1/batches", json=body, auth=auth(other), headers={"Idempotency-Key": "k1"})
    assert r.status_code == 201 and r.json()["id"] != first.json()["id"]
    long_key = {"Idempotency-Key": "k" * 101}
    assert httpx.post(gateway.url + "/v1/batches", json=body, auth=auth(acc), headers=long_key).status_code == 400


def test_a_suppressed_recipient_is_refused_alone_with_the_reason(gateway: GatewayProcess) -> None:
    """Issue 21: the account's suppression list holds for every recipient of a batch; the others still go."""
    acc = gateway.create_account("ours-optout")
    assert httpx.put(gateway.url + "/v1/suppressions/31612340021", auth=auth(acc)).status_code == 201
    body = {"text": "Sale today", "recipients": [{"to": "+31612340020"}, {"to": "+31612340021"}]}
    r = httpx.post(gateway.url + "/v1/batches", json=body, auth=auth(acc))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["accepted"] == 1
    assert [(f["index"], f["to"]) for f in out["refused"]] == [(1, "+31612340021")]
    assert "opted out" in out["refused"][0]["reason"]
    listed = httpx.get(gateway.url + f"/v1/batches/{out['id']}/messages", auth=auth(acc)).json()["messages"]
    assert [m["to"] for m in listed] == ["+31612340020"]


def test_cancel_stops_what_is_not_yet_submitted_and_refunds_it(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("ours-cancel")
    before = httpx.get(gateway.url + "/v1/account", auth=auth(acc)).json()["balance"]
    body = {"text": "Tomorrow", "send_at": "+3600s", "recipients": [{"to": f"+3161234003{i}"} for i in range(3)]}
    out = httpx.post(gateway.url + "/v1/batches", json=body, auth=auth(acc)).json()
    bid = out["id"]
    assert httpx.get(gateway.url + f"/v1/batches/{bid}", auth=auth(acc)).json()["statuses"] == {"scheduled": 3}
    assert httpx.get(gateway.url + "/v1/account", auth=auth(acc)).json()["balance"] != before

    other = gateway.create_account("ours-cancel-other")
    assert httpx.post(gateway.url + f"/v1/batches/{bid}/cancel", auth=auth(other)).status_code == 404
    r = httpx.post(gateway.url + f"/v1/batches/{bid}/cancel", auth=auth(acc))
    assert r.status_code == 200, r.text
    assert (r.json()["canceled"], r.json()["too_late"]) == (3, 0)
    assert r.json()["batch"]["statuses"] == {"canceled": 3}
    assert httpx.get(gateway.url + "/v1/account", auth=auth(acc)).json()["balance"] == before
    again = httpx.post(gateway.url + f"/v1/batches/{bid}/cancel", auth=auth(acc)).json()
    assert (again["canceled"], again["too_late"]) == (0, 0)

    sent = httpx.post(gateway.url + "/v1/batches", json={"text": "Now", "recipients": [{"to": "+31612340040"}]},
                      auth=auth(acc)).json()  # fmt: skip
    wait_for(lambda: httpx.get(gateway.url + f"/v1/batches/{sent['id']}", auth=auth(acc)).json()["statuses"]
             == {"delivered": 1}, timeout=15)  # fmt: skip
    late = httpx.post(gateway.url + f"/v1/batches/{sent['id']}/cancel", auth=auth(acc)).json()
    assert (late["canceled"], late["batch"]["statuses"]) == (0, {"delivered": 1})


def test_cancel_of_1200_recipients_cancels_all_refunds_the_payer_and_gives_quota_back(gateway: GatewayProcess) -> None:
    """A batch cancel works through the batch a page at a time (``BatchReads.unsent``): every one of 1,200 scheduled
    messages (five pages) ends canceled, the parent that paid for its sub-account gets all of it back, the sub-account's quota
    is free again, and each message's ``message.canceled`` reaches the webhook."""
    sink = WebhookSink().start()
    try:
        parent = gateway.create_account("ours-bulk-parent", balance=10**8 * 10**4)
        sub = gateway.create_account("ours-bulk-sub", parent_id=parent["account_id"], balance=0, quota_limit=1200,
                                     receipt_url=sink.url)  # fmt: skip
        before = httpx.get(gateway.url + "/v1/account", auth=auth(parent)).json()["balance"]
        body = {"text": "Sale tomorrow", "send_at": "+3600s",
                "recipients": [{"to": f"+3161{i:07d}"} for i in range(100000, 101200)]}  # fmt: skip
        r = httpx.post(gateway.url + "/v1/batches", json=body, auth=auth(sub), timeout=60)
        assert r.status_code == 201, r.text
        bid = r.json()["id"]
        assert r.json()["accepted"] == 1200
        assert httpx.get(gateway.url + "/v1/account", auth=auth(parent)).json()["balance"] != before
        one = {"text": "x", "recipients": [{"to": "+31612399999"}]}
        assert httpx.post(gateway.url + "/v1/batches", json=one, auth=auth(sub)).status_code == 429  # quota full

        r = httpx.post(gateway.url + f"/v1/batches/{bid}/cancel", auth=auth(sub), timeout=120)
        assert r.status_code == 200, r.text
        assert (r.json()["canceled"], r.json()["too_late"]) == (1200, 0)
        assert r.json()["batch"]["statuses"] == {"canceled": 1200}
        assert httpx.get(gateway.url + "/v1/account", auth=auth(parent)).json()["balance"] == before
        assert httpx.post(gateway.url + "/v1/batches", json=one, auth=auth(sub)).status_code == 201  # quota back
        paid_one = httpx.get(gateway.url + "/v1/account", auth=auth(parent)).json()["balance"]

        def told() -> int:
            return sum(k == {"message.canceled"} for k in sink.types_by_message().values())

        wait_for(lambda: told() >= 1200, timeout=120, interval=0.5)
        assert told() == 1200
        again = httpx.post(gateway.url + f"/v1/batches/{bid}/cancel", auth=auth(sub), timeout=60).json()
        assert (again["canceled"], again["too_late"]) == (0, 0)
        assert httpx.get(gateway.url + "/v1/account", auth=auth(parent)).json()["balance"] == paid_one  # no 2nd refund
    finally:
        sink.stop()
