"""Issue #14 item 9: webhook targets in reserved IPv6 forms are refused, wherever a URL is registered.

A real gateway on SQLite that refuses private targets (the default). Every IPv6 form below either embeds a
private IPv4 address in a prefix a translator on the path would decode (IPv4-compatible ``::a.b.c.d``,
IPv4-translated ``::ffff:0:a.b.c.d``, local-use NAT64 ``64:ff9b:1::/48``) or lies outside global unicast
``2000::/3``; each is refused by the account webhook settings, a number's ``moHttpUrl`` and a send's ``callback``,
for either account, while a public IPv6 literal is still taken.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import GatewayProcess, add_numbers

REFUSED = [
    "http://[::7f00:1]/hook",  # ::127.0.0.1, IPv4-compatible
    "http://[::a9fe:a9fe]/latest",  # ::169.254.169.254
    "http://[::ffff:0:7f00:1]/hook",  # IPv4-translated 127.0.0.1
    "http://[::ffff:0:a00:1]/hook",  # IPv4-translated 10.0.0.1
    "http://[64:ff9b:1:7f00:0:100::]/hook",  # local-use NAT64 of 127.0.0.1 (RFC 6052 /48 layout)
    "http://[64:ff9b:1:a9fe:a9:fe00::]/hook",  # local-use NAT64 of 169.254.169.254
    "http://[64:ff9b:1::]/hook",  # local-use NAT64, whatever it embeds
    "http://[4000::1]/hook",  # outside 2000::/3
    "http://[100::1]/hook",  # discard-only prefix
    "http://[2001::7f00:1]/hook",  # Teredo
]
ACCEPTED = "http://[2606:2800:220:1:248:1893:25c8:1946]/hook"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    g = GatewayProcess(tmp_path_factory.mktemp("targets"), env={"SMSGATE_WEBHOOKS_ALLOW_PRIVATE": "false"}).start()
    try:
        yield g
    finally:
        g.stop()


@pytest.mark.parametrize("url", REFUSED)
def test_reserved_ipv6_targets_are_refused_everywhere(gw: GatewayProcess, url: str) -> None:
    alice, bob = gw.create_account("alice"), gw.create_account("bob")
    number = f"3197010{REFUSED.index(url):07d}"
    add_numbers(gw.database_url, {number: bob["account_id"]})
    with gw.client(auth=(alice["api_key"], alice["api_secret"])) as c:
        r = c.put("/v1/account/webhooks", json={"receipt_url": url})
        assert r.status_code == 400 and "refused" in r.json()["error"]["message"], r.text
        r = c.post("/sms/json", data={"from": "Shop", "to": "31612345678", "text": "x", "callback": url})
        assert r.json()["messages"][0]["status"] == "23", r.text
    with gw.client(auth=(bob["api_key"], bob["api_secret"])) as c:
        r = c.post("/number/update", data={"country": "NL", "msisdn": number, "moHttpUrl": url})
        assert r.status_code == 420 and "refused" in r.json()["error-code-label"], r.text
        assert c.get("/v1/account/webhooks").json()["receipt_url"] is None


def test_a_public_ipv6_target_is_taken(gw: GatewayProcess) -> None:
    acc = gw.create_account("public")
    with gw.client(auth=(acc["api_key"], acc["api_secret"])) as c:
        r = c.put("/v1/account/webhooks", json={"receipt_url": ACCEPTED})
        assert r.status_code == 200 and r.json()["receipt_url"] == ACCEPTED, r.text
