"""Sub-accounts against a real gateway: created by the CLI, addressed by KPN's ``SubAccount`` header, billed to the
parent, visible to the parent and to their own credentials only."""

from __future__ import annotations

import json

import httpx

from tests.support import GatewayProcess, run_cli

SEND = "/messaging/sms-kpn/v1/send"


def make_sub(gateway: GatewayProcess, parent: dict[str, str], name: str) -> dict[str, str]:
    env = {"SMSGATE_DATA_DIR": str(gateway.data_dir)}
    out = run_cli("accounts", "create", name, "--parent", parent["api_key"], "--default-sender", "sub", "--json",
                  env=env).stdout  # fmt: skip
    data = json.loads(out)
    return {"account_id": data["account_id"], "api_key": data["api_key"], "api_secret": data["api_secret"]}


def balance(gateway: GatewayProcess, acc: dict[str, str]) -> str:
    """The account's balance as the store has it now (``GET /v1/account`` reads past the credential cache)."""
    with gateway.client(auth=(acc["api_key"], acc["api_secret"])) as c:
        r = c.get("/v1/account")
    assert r.status_code == 200, r.text
    return str(r.json()["balance"])


def kpn_send(gateway: GatewayProcess, token: str, sub: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if sub is not None:
        headers["SubAccount"] = sub
    body = {"messages": [{"mobile_number": "0612345678", "content": "hello"}]}
    return httpx.post(gateway.url + SEND, json=body, headers=headers)


def test_subaccount_header_scopes_and_bills_the_parent(gateway: GatewayProcess) -> None:
    parent = gateway.create_account("parent")
    other = gateway.create_account("other")
    sub = make_sub(gateway, parent, "shop")
    make_sub(gateway, other, "foreign")
    assert balance(gateway, sub) == "0.00000000"
    before = balance(gateway, parent)
    token = gateway.token(parent)

    r = kpn_send(gateway, token, "shop")
    assert r.status_code == 200, r.text
    mid = r.json()["document_id"]
    assert balance(gateway, parent) != before  # the parent paid
    assert balance(gateway, sub) == "0.00000000"

    # the parent sees it, the sub-account's own credentials see it, another account does not
    parent_view = httpx.get(gateway.url + f"/v1/messages/{mid}", auth=(parent["api_key"], parent["api_secret"]))
    assert parent_view.status_code == 200
    assert parent_view.json()["account_id"] == sub["account_id"]
    own = httpx.get(gateway.url + f"/v1/messages/{mid}", auth=(sub["api_key"], sub["api_secret"]))
    assert own.status_code == 200
    assert (
        httpx.get(gateway.url + f"/v1/messages/{mid}", auth=(other["api_key"], other["api_secret"])).status_code == 404
    )

    # a message of the parent itself is not the sub-account's to see
    r = kpn_send(gateway, token, "")  # blank: none
    assert r.status_code == 200
    own_mid = r.json()["document_id"]
    assert (
        httpx.get(gateway.url + f"/v1/messages/{own_mid}", auth=(sub["api_key"], sub["api_secret"])).status_code == 404
    )
    listed = httpx.get(gateway.url + "/v1/messages", auth=(parent["api_key"], parent["api_secret"])).json()
    assert {m["id"] for m in listed["messages"]} >= {mid, own_mid}

    # another account's sub-account, an unknown name, and a sub-account naming itself: 403 in KPN's body
    for name in ("foreign", "nobody"):
        r = kpn_send(gateway, token, name)
        assert r.status_code == 403
        assert r.json()["errorResponse"]["code"] == "403"
    assert kpn_send(gateway, gateway.token(sub), "shop").status_code == 403

    # the sub-account sending with its own credentials is billed to the parent as well
    mid_before = balance(gateway, parent)
    assert kpn_send(gateway, gateway.token(sub), None).status_code == 200
    assert balance(gateway, parent) != mid_before
    assert balance(gateway, sub) == "0.00000000"


def test_subaccount_of_a_subaccount_is_refused(gateway: GatewayProcess) -> None:
    parent = gateway.create_account("p2")
    sub = make_sub(gateway, parent, "child")
    env = {"SMSGATE_DATA_DIR": str(gateway.data_dir)}
    r = run_cli("accounts", "create", "grandchild", "--parent", sub["api_key"], env=env, check=False)
    assert r.returncode == 1
    assert "cannot have sub-accounts" in r.stdout
    r = run_cli("accounts", "create", "child", "--parent", parent["api_key"], env=env, check=False)
    assert r.returncode == 1
    assert "already has a sub-account" in r.stdout


def test_a_canceled_message_of_a_subaccount_refunds_the_parent(gateway: GatewayProcess) -> None:
    """The refund goes back to whoever paid: the parent, not the sub-account that sent."""
    parent = gateway.create_account("refund-parent")
    sub = make_sub(gateway, parent, "later")
    before = balance(gateway, parent)
    headers = {"Authorization": f"Bearer {gateway.token(sub)}", "X-Send-At": "+3600s"}
    body = {"messages": [{"mobile_number": "0612345678", "content": "tomorrow"}]}
    r = httpx.post(gateway.url + SEND, json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert balance(gateway, parent) != before
    mid = r.json()["document_id"]
    canceled = httpx.post(gateway.url + f"/v1/messages/{mid}/cancel", auth=(sub["api_key"], sub["api_secret"]))
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert balance(gateway, parent) == before
    assert balance(gateway, sub) == "0.00000000"
