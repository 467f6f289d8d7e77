"""The shop's SMS senders pointed at the smsgate test gateway, and its inbound webhook listening on loopback."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from shop.flows import Orders
from shop.sms import KaaraiSms, KpnSms, VonageSms


@pytest.fixture
def kpn(smsgate_server: Any, smsgate_account: Any) -> Iterator[KpnSms]:
    with contextlib.closing(
        KpnSms(
            smsgate_server.url,
            smsgate_account.api_key,
            smsgate_account.api_secret,
            sender="MyShop",
            verify=smsgate_server.verify,
        )
    ) as sms:
        yield sms


@pytest.fixture
def kaarai(smsgate_server: Any, smsgate_account: Any) -> Iterator[KaaraiSms]:
    with contextlib.closing(
        KaaraiSms(
            smsgate_server.url + "/v1/send-sms",
            smsgate_account.api_key,
            smsgate_account.api_secret,
            sender="MyShop",
            verify=smsgate_server.verify,
        )
    ) as sms:
        yield sms


@pytest.fixture
def vonage(smsgate_server: Any, smsgate_account: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[VonageSms]:
    # the SDK's requests session trusts the test gateway's certificate for this test only
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(smsgate_server.ca_file))
    host = smsgate_server.url.removeprefix("https://")
    with contextlib.closing(
        VonageSms(smsgate_account.api_key, smsgate_account.api_secret, sender=smsgate_account.number, host=host)
    ) as sms:
        yield sms


@pytest.fixture
def orders(smsgate_server: Any, smsgate_account: Any, kaarai: KaaraiSms) -> Iterator[Orders]:
    """The order flow with its inbound webhook served on loopback, set as the account's inbound URL."""
    shop = Orders(kaarai)

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            shop.on_inbound(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/sms/inbound"
    r = httpx.put(
        smsgate_server.url + "/v1/account/webhooks",
        json={"inbound_url": hook},
        auth=(smsgate_account.api_key, smsgate_account.api_secret),
        verify=smsgate_server.verify,
    )
    r.raise_for_status()
    try:
        yield shop
    finally:
        server.shutdown()
        server.server_close()
