"""``type = "kpn"``: relay to an account at KPN's API Store, SMS API v1 (specs/kpn-sms-api.txt).

The OAuth2 token comes from ``/oauth/client_credential/accesstoken`` (client credentials, ``grant_type`` in the
query, KPN's own path on ``base_url``), is shared by all requests, renewed a minute before it expires and once
more when a send is answered 401. A send is ``POST /messaging/sms-kpn/v1/send`` with one message to one Dutch
mobile; KPN splits long texts itself. Its answer ``{"document_id", "status": "OK"}`` gives the id stored on the
message's parts. KPN v1 publishes no delivery receipt, so the parts end ``submitted``, their event saying
``final: no receipt from upstream``.

    KPN answers                     verdict
    2xx                             accepted (document_id)
    400, 403, 412, other 4xx        rejected (KPN's errorResponse message): this message cannot go
    401 twice (token renewed)       unhealthy: the credentials no longer work
    404, 405                        unhealthy: base_url is wrong
    429                             throttled (Retry-After)
    408, 5xx                        retry
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import urllib.parse
from typing import Any

import httpx

from smsgate.connectors.http import answers as http_answers
from smsgate.connectors.http import base as http_base
from smsgate.connectors.http.settings import HttpSettings, check

TOKEN_PATH = "/oauth/client_credential/accesstoken"
SEND_PATH = "/messaging/sms-kpn/v1/send"
SENDER_MAX = 11
RENEW_BEFORE = 60.0  # seconds before expiry


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class KpnSettings(HttpSettings):
    base_url: str = "https://api-prd.kpn.com"
    client_id: str = dataclasses.field(repr=False)
    client_secret: str = dataclasses.field(repr=False)
    sender: str | None = None  # sends every message from this sender (KPN: at most 11 characters)

    def __post_init__(self) -> None:
        HttpSettings.__post_init__(self)
        check(self.base_url.startswith(("https://", "http://")), "base_url", "must be an http(s) URL")
        check(bool(self.client_id and self.client_secret), "client_id", "client_id and client_secret are needed")
        check(self.sender is None or 0 < len(self.sender) <= SENDER_MAX, "sender", "1 to 11 characters (KPN's rule)")


class KpnConnector(http_base.HttpConnector):
    TYPE = "kpn"

    def __init__(self, settings: KpnSettings, *, public_url: str | None = None) -> None:
        super().__init__(settings, public_url=public_url)
        self.kpn = settings
        self._token: tuple[str, float] | None = None  # (authorization header value, expires at, monotonic)
        self._token_lock = asyncio.Lock()
        self.tokens_fetched = 0

    @property
    def where(self) -> str:
        return urllib.parse.urlsplit(self.kpn.base_url).netloc

    def refuse(self, sub: http_answers.Submission) -> http_answers.Answer | None:
        sender = self.kpn.sender or sub.first.source
        if len(sender) > SENDER_MAX:
            return http_answers.Answer(
                http_answers.Verdict.REJECTED, error=f"KPN takes senders of at most {SENDER_MAX} characters"
            )
        if not sub.first.destination.startswith("31"):
            return http_answers.Answer(
                http_answers.Verdict.REJECTED, error="KPN SMS API v1 sends to Dutch numbers only"
            )
        return None

    async def exchange(self, client: httpx.AsyncClient, sub: http_answers.Submission) -> list[http_answers.Answer]:
        body = {
            "sender": self.kpn.sender or sub.first.source,
            "messages": [{"mobile_number": "+" + sub.first.destination, "content": sub.text}],
        }
        url = self.kpn.base_url.rstrip("/") + SEND_PATH
        refused: str | None = None
        for _ in range(2):
            auth = await self._authorization(client, refused=refused)
            response = await client.post(url, json=body, headers={"authorization": auth})
            if response.status_code != 401:
                return [self._answer(response)]
            refused = auth
        return [http_answers.Answer(http_answers.Verdict.UNHEALTHY, error="KPN refused a freshly issued token (401)")]

    def _answer(self, response: httpx.Response) -> http_answers.Answer:
        status = response.status_code
        verdict = http_answers.by_status(response)
        if verdict is not None:
            return http_answers.Answer(verdict, error=f"KPN answered {status}", code=status,
                                    retry_after=http_answers.retry_after(response))  # fmt: skip
        if 200 <= status < 300:
            data = http_answers.json_body(response)
            doc = data.get("document_id") if isinstance(data, dict) else None
            return http_answers.Answer(http_answers.Verdict.ACCEPTED, network_id=str(doc) if doc else None,
                                    note=http_answers.NO_RECEIPT)  # fmt: skip
        if status in (404, 405):
            return http_answers.Answer(http_answers.Verdict.UNHEALTHY, error=f"KPN answered {status}: check base_url")
        return http_answers.Answer(http_answers.Verdict.REJECTED, error=_error_text(response), code=status)

    async def _authorization(self, client: httpx.AsyncClient, *, refused: str | None) -> str:
        """``<token_type> <access_token>``, fetched once for all concurrent requests; ``refused`` is the value KPN
        just answered 401 to, renewed once however many requests saw it refused."""
        held = self._token
        if held is not None and held[0] != refused and held[1] > time.monotonic():
            return held[0]
        async with self._token_lock:
            current = self._token
            if current is not None and current[0] != refused and current[1] > time.monotonic():
                return current[0]  # fetched, or renewed by another request, while this one waited
            self._token = await self._fetch_token(client)
            return self._token[0]

    async def _fetch_token(self, client: httpx.AsyncClient) -> tuple[str, float]:
        url = self.kpn.base_url.rstrip("/") + TOKEN_PATH + "?grant_type=client_credentials"
        try:
            response = await client.post(
                url, data={"client_id": self.kpn.client_id, "client_secret": self.kpn.client_secret}
            )
        except httpx.HTTPError as exc:  # no SMS went out: safe to try again, here or elsewhere
            raise http_answers.NotSent(f"KPN token request failed: {type(exc).__name__}") from None
        if response.status_code in (400, 401, 403):
            answer = http_answers.Answer(
                http_answers.Verdict.UNHEALTHY, error=f"KPN refused the client credentials ({response.status_code})"
            )
            raise http_answers.Refusal(answer)
        data = http_answers.json_body(response)
        if response.status_code != 200 or not isinstance(data, dict) or not data.get("access_token"):
            raise http_answers.NotSent(f"KPN token endpoint answered {response.status_code} without a token")
        self.tokens_fetched += 1
        try:
            lifetime = float(data.get("expires_in") or 3599)
        except (TypeError, ValueError):
            lifetime = 3599.0
        scheme = str(data.get("token_type") or "Bearer")
        expires = time.monotonic() + max(lifetime - RENEW_BEFORE, lifetime / 2)
        return f"{scheme} {data['access_token']}", expires


def _error_text(response: httpx.Response) -> str:
    """KPN's own words from ``{"errorResponse": {"message"}}`` or an Apigee fault, else the status."""
    data: Any = http_answers.json_body(response)
    text = None
    if isinstance(data, dict):
        inner = data.get("errorResponse") or data.get("fault") or data
        if isinstance(inner, dict):
            text = inner.get("message") or inner.get("faultstring") or inner.get("info")
    return f"KPN answered {response.status_code}: {str(text)[:200]}" if text else f"KPN answered {response.status_code}"
