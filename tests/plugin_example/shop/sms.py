"""The shop's SMS senders, one per provider: each sends one text to one number, as the shop does in production.

``verify`` is what to trust (the shop's staging has a private CA); the tests pass the test gateway's certificate.
"""

from __future__ import annotations

import ssl
from typing import Protocol

import httpx
from vonage import Auth, HttpClientOptions, Vonage
from vonage_sms import SmsMessage


class Sms(Protocol):
    def send(self, to: str, text: str) -> str: ...

    def close(self) -> None: ...


class KpnSms:
    """KPN SMS API v1: an OAuth2 token (client credentials), then ``/messaging/sms-kpn/v1/send``."""

    def __init__(
        self, base_url: str, client_id: str, client_secret: str, *, sender: str, verify: ssl.SSLContext | bool = True
    ):
        self._http = httpx.Client(base_url=base_url, verify=verify, timeout=10)
        self._creds = {"client_id": client_id, "client_secret": client_secret}
        self.sender = sender

    def send(self, to: str, text: str) -> str:
        token = self._http.post(
            "/oauth/client_credential/accesstoken", params={"grant_type": "client_credentials"}, data=self._creds
        ).json()["access_token"]
        r = self._http.post(
            "/messaging/sms-kpn/v1/send",
            headers={"Authorization": f"Bearer {token}"},
            json={"sender": self.sender, "messages": [{"mobile_number": to, "content": text}]},
        )
        r.raise_for_status()
        return str(r.json()["document_id"])

    def close(self) -> None:
        self._http.close()


class KaaraiSms:
    """Kaarai Send Single SMS: Basic auth, ``{to, from, text}``."""

    def __init__(self, url: str, username: str, password: str, *, sender: str, verify: ssl.SSLContext | bool = True):
        self._http = httpx.Client(auth=(username, password), verify=verify, timeout=10)
        self._url = url
        self.sender = sender

    def send(self, to: str, text: str) -> str:
        r = self._http.post(self._url, json={"to": to.lstrip("+"), "from": self.sender, "text": text})
        body = r.json()
        if body.get("code") not in (2020, 2021):
            raise RuntimeError(f"Kaarai refused the message: {body}")
        return str(body["message_id"])

    def close(self) -> None:
        self._http.close()


class VonageSms:
    """Vonage's SMS API through the official SDK."""

    def __init__(self, api_key: str, api_secret: str, *, sender: str, host: str = "rest.nexmo.com"):
        options = HttpClientOptions(rest_host=host, api_host=host, max_retries=0)
        self._client = Vonage(Auth(api_key=api_key, api_secret=api_secret), options)
        self.sender = sender

    def send(self, to: str, text: str) -> str:
        r = self._client.sms.send(SmsMessage(to=to.lstrip("+"), from_=self.sender, text=text))
        if r.messages[0].status != "0":
            raise RuntimeError(f"Vonage refused the message: {r.messages[0]}")
        return str(r.messages[0].message_id)

    def close(self) -> None:
        self._client.http_client._session.close()  # the SDK has no close of its own
