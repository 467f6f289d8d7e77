"""``type = "kaarai"``: relay to a Kaarai account, "Send Single SMS" (specs/kaarai-send-single-sms.txt).

``url`` is the whole endpoint (Kaarai gives each customer theirs); a request is a JSON ``{to, from, text}`` with
HTTP Basic ``username:password``. Kaarai publishes no delivery receipt: parts end ``submitted`` with
``final: no receipt from upstream`` in their event. The answer's ``code`` decides, whatever the HTTP status:

    code         verdict
    2020, 2021   accepted (2021: queued by Kaarai for later delivery, noted in the event)
    4000-4003    rejected (4000 is a content-type the connector never sends; seen, it is still this message)
    4030         unhealthy: user/password refused; circuit open and the operator alerted
    4031         rejected: not routable
    4040         unhealthy: the URL is wrong
    5030         retry (after Retry-After when given)
    no code      by HTTP status: 429 throttled, 408/5xx retry, 401/403 unhealthy, 2xx accepted, other rejected
"""

from __future__ import annotations

import dataclasses
import urllib.parse

import httpx

from smsgate.connectors.http import answers as http_answers
from smsgate.connectors.http import base as http_base
from smsgate.connectors.http.settings import HttpSettings, check

ACCEPTED = {2020: None, 2021: "queued by Kaarai for later delivery"}
UNHEALTHY = {4030: "Kaarai refused the user/password (4030)", 4040: "Kaarai does not know this URL (4040): check url"}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class KaaraiSettings(HttpSettings):
    url: str = dataclasses.field(repr=False)
    username: str = dataclasses.field(repr=False)
    password: str = dataclasses.field(repr=False)

    def __post_init__(self) -> None:
        HttpSettings.__post_init__(self)
        check(self.url.startswith(("https://", "http://")), "url", "must be an http(s) URL (Kaarai gives you yours)")
        check(bool(self.username and self.password), "username", "username and password are needed")


class KaaraiConnector(http_base.HttpConnector):
    TYPE = "kaarai"

    def __init__(self, settings: KaaraiSettings, *, public_url: str | None = None) -> None:
        super().__init__(settings, public_url=public_url)
        self.kaarai = settings
        self._auth = httpx.BasicAuth(settings.username, settings.password)

    @property
    def where(self) -> str:
        return urllib.parse.urlsplit(self.kaarai.url).netloc

    async def exchange(self, client: httpx.AsyncClient, sub: http_answers.Submission) -> list[http_answers.Answer]:
        body = {"to": sub.first.destination, "from": sub.first.source, "text": sub.text}
        response = await client.post(
            self.kaarai.url, json=body, auth=self._auth, headers={"accept": "application/json"}
        )
        return [self._answer(response)]

    def _answer(self, response: httpx.Response) -> http_answers.Answer:
        data = http_answers.json_body(response)
        raw = data.get("code") if isinstance(data, dict) else None
        code = int(raw) if isinstance(raw, int | str) and str(raw).isdigit() else None
        said = str(data.get("message") or "") if isinstance(data, dict) else ""
        error = f"Kaarai {code}: {said}" if code and said else f"Kaarai answered HTTP {response.status_code}"
        retry_after = http_answers.retry_after(response)
        V, A = http_answers.Verdict, http_answers.Answer
        if code in ACCEPTED:
            mid = data.get("message_id") if isinstance(data, dict) else None
            note = "; ".join(n for n in (ACCEPTED[code], http_answers.NO_RECEIPT) if n)
            return A(V.ACCEPTED, network_id=str(mid) if mid else None, note=note)
        if code in UNHEALTHY:
            return A(V.UNHEALTHY, error=UNHEALTHY[code], code=code)
        if code == 5030:
            return A(V.RETRY, error=error, code=code, retry_after=retry_after)
        if code is not None and 4000 <= code < 5000:
            return A(V.REJECTED, error=error, code=code)
        verdict = http_answers.by_status(response)
        if verdict is not None:
            return A(verdict, error=error, code=code, retry_after=retry_after)
        status = response.status_code
        if status in (401, 403):
            return A(V.UNHEALTHY, error=f"Kaarai refused the credentials (HTTP {status})")
        if 200 <= status < 300:
            return A(V.ACCEPTED, note=http_answers.NO_RECEIPT)
        return A(V.REJECTED, error=error, code=code)
