"""``type = "http"``: any HTTP SMS API, described by templates (as Kannel's generic HTTP SMSC).

    [[connectors]]
    name = "acme"
    type = "http"
    url = "https://sms.acme.example/v2/send"
    method = "POST"                          # GET sends no body: put the placeholders in the URL
    body_format = "json"                     # json | form | raw
    body = { to = "{to}", from = "{from}", text = "{text}", ref = "{id}", dlr = "{callback}" }
    headers = { Authorization = "Bearer s3cr3t" }
    success_status = [200, 201, 202]         # and, optionally, success_body = 'regex' the answer must match
    id_path = "$.result.id"                  # or id_regex = 'id=(\\w+)'; without either, our message id
    retry_status = [408, 500, 502, 503, 504] # 429 always throttles; 401/403/404/405 mean bad credentials or URL
    idempotency_header = "Idempotency-Key"   # the upstream ignores repeats: a timed-out request may be retried

    [connectors.receipt]                     # optional: the upstream's receipts, posted to {callback}
    id = "$.ref"
    status = "$.state"
    error = "$.err"
    delivered = ["DELIVRD"]
    failed = ["UNDELIV"]
    expired = ["EXPIRED"]
    rejected = ["REJECTD"]
    token = "t0k3n"

One request per message with its whole text (the upstream splits it); binary messages are refused. The
receipt receiver (``/connectors/<name>/receipts``) reads the mapped fields from the JSON body, the form body or
the query; a status in none of the lists is an intermediate one and changes nothing. With ``token`` set, a
receipt must carry it (``?token=``, which ``{callback}`` includes, or an ``X-Smsgate-Token`` header).
"""

from __future__ import annotations

import dataclasses
import hmac
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from smsgate import errors
from smsgate.connectors import base
from smsgate.connectors.http import answers as http_answers
from smsgate.connectors.http import base as http_base
from smsgate.connectors.http import template
from smsgate.connectors.http.settings import HttpSettings, Special, check

BODY_FORMATS = {"json": "application/json", "form": "application/x-www-form-urlencoded", "raw": "text/plain"}
METHODS = ("GET", "POST", "PUT")
STATE_KEYS = {
    "delivered": base.ReceiptState.DELIVERED,
    "failed": base.ReceiptState.UNDELIVERABLE,
    "expired": base.ReceiptState.EXPIRED,
    "rejected": base.ReceiptState.REJECTED,
    "accepted": base.ReceiptState.ACCEPTED,
}
RECEIPT_KEYS = ("id", "status", "error", "token", *STATE_KEYS)
ESCAPES = {"json": template.json_escape, "form": template.url_escape, "raw": template.no_escape}


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiptMapping:
    id: template.Path
    status: template.Path
    error: template.Path | None
    states: Mapping[str, base.ReceiptState]  # upstream status (lower-case) → ours
    token: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def parse(cls, key: str, value: object) -> ReceiptMapping:
        if not isinstance(value, Mapping):
            raise ValueError(f'{key!r}: a table such as {{ id = "$.ref", status = "$.state", delivered = ["OK"] }}')
        for k in value:
            if k not in RECEIPT_KEYS:
                raise ValueError(f"{key}: unknown key {k!r}{errors.did_you_mean(str(k), RECEIPT_KEYS)}")
        for k in ("id", "status"):
            if not isinstance(value.get(k), str):
                raise ValueError(f"{key}.{k}: a field name or path is needed")
        states: dict[str, base.ReceiptState] = {}
        for k, state in STATE_KEYS.items():
            words = value.get(k, [])
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise ValueError(f"{key}.{k}: a list of the upstream's status words")
            states.update({w.lower(): state for w in words})
        if base.ReceiptState.DELIVERED not in states.values():
            raise ValueError(f"{key}.delivered: name the upstream's word(s) for delivered")
        error, token = value.get("error"), value.get("token")
        if not isinstance(error, str | None) or not isinstance(token, str | None):
            raise ValueError(f"{key}: error and token are strings")
        return cls(
            id=template.Path.parse(f"{key}.id", value["id"]),
            status=template.Path.parse(f"{key}.status", value["status"]),
            error=template.Path.parse(f"{key}.error", error) if error else None,
            states=states,
            token=token or None,
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GenericSettings(HttpSettings):
    url: template.Template = dataclasses.field(repr=False)
    method: str = "POST"
    body_format: str = "json"
    body: Any = None  # a template string, or a table whose strings are templates
    content_type: str | None = None  # default by body_format
    headers: Mapping[str, template.Template] = dataclasses.field(default_factory=dict, repr=False)
    success_status: tuple[int, ...] = (200, 201, 202)
    success_body: re.Pattern[str] | None = None
    id_path: template.Path | None = None
    id_regex: re.Pattern[str] | None = None
    retry_status: tuple[int, ...] = (408, 500, 502, 503, 504)
    idempotency_header: str | None = None
    receipt: ReceiptMapping | None = None

    def __post_init__(self) -> None:
        HttpSettings.__post_init__(self)
        check(self.method in METHODS, "method", f"one of {', '.join(METHODS)}")
        check(self.body_format in BODY_FORMATS, "body_format", "json, form or raw")
        check(self.method != "GET" or self.body is None, "body", "a GET sends no body: use the URL's query")
        check(self.body_format != "raw" or not isinstance(self.body, dict), "body", "a raw body is a string")
        check(bool(self.success_status), "success_status", "list at least one status")
        check(self.id_path is None or self.id_regex is None, "id_path", "give id_path or id_regex, not both")

    @property
    def idempotent(self) -> bool:
        return self.idempotency_header is not None

    @classmethod
    def special(cls) -> Mapping[str, Special]:
        return {
            "url": _url,
            "body": template.parse_tree,
            "headers": _headers,
            "method": lambda key, value: _string(key, value).upper(),
            "success_body": _regex,
            "id_regex": _regex,
            "id_path": lambda key, value: template.Path.parse(key, _string(key, value)),
            "receipt": ReceiptMapping.parse,
        }


def _string(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key!r}: must be a string")
    return value


def _url(key: str, value: object) -> template.Template:
    raw = _string(key, value)
    check(raw.startswith(("https://", "http://")), key, "must be an http(s) URL")
    return template.Template.parse(key, raw)


def _headers(key: str, value: object) -> dict[str, template.Template]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f'{key!r}: a table of strings, such as {{ Authorization = "Bearer …" }}')
    return {str(k): template.Template.parse(f"{key}.{k}", v) for k, v in value.items()}


def _regex(key: str, value: object) -> re.Pattern[str]:
    try:
        return re.compile(_string(key, value))
    except re.error as exc:
        raise ValueError(f"{key!r}: not a regular expression ({exc})") from None


class GenericConnector(http_base.HttpConnector):
    TYPE = "http"

    def __init__(self, settings: GenericSettings, *, public_url: str | None = None) -> None:
        super().__init__(settings, public_url=public_url)
        self.generic = settings
        self.idempotent = settings.idempotent

    @property
    def where(self) -> str:
        host = self.generic.url.pieces[0][0]  # the literal before any placeholder: scheme and host
        return urllib.parse.urlsplit(host).netloc or "the configured URL"

    def _callback(self) -> str:
        url = self.receiver_url("receipts")
        if url is None or self.generic.receipt is None:
            return ""
        token = self.generic.receipt.token
        return f"{url}?token={urllib.parse.quote(token, safe='')}" if token else url

    def _values(self, sub: http_answers.Submission) -> dict[str, str]:
        p = sub.first
        return {
            "to": p.destination,
            "to_plus": "+" + p.destination,
            "from": p.source,
            "text": sub.text or "",
            "id": sub.message_id,
            "coding": "ucs2" if sub.unicode else "gsm7",
            "parts": str(len(sub.parts)),
            "validity": str(p.validity_seconds or ""),
            "callback": self._callback(),
        }

    async def exchange(self, client: httpx.AsyncClient, sub: http_answers.Submission) -> list[http_answers.Answer]:
        s = self.generic
        values = self._values(sub)
        headers = {
            k: t.render(values, template.no_escape).replace("\r", " ").replace("\n", " ") for k, t in s.headers.items()
        }
        content: bytes | None = None
        if s.body is not None:
            if isinstance(s.body, template.Template):
                content = s.body.render(values, ESCAPES[s.body_format]).encode()
            elif s.body_format == "json":
                content = orjson.dumps(template.render_tree(s.body, values))
            else:
                rendered = template.render_tree(s.body, values)
                content = urllib.parse.urlencode({k: _flat(v) for k, v in rendered.items()}).encode()
            if not any(k.lower() == "content-type" for k in headers):
                headers["content-type"] = s.content_type or BODY_FORMATS[s.body_format]
        if s.idempotency_header:
            headers[s.idempotency_header] = sub.message_id
        url = s.url.render(values, template.url_escape)
        response = await client.request(s.method, url, content=content, headers=headers)
        return [self._answer(response, sub)]

    def _answer(self, response: httpx.Response, sub: http_answers.Submission) -> http_answers.Answer:
        s = self.generic
        status = response.status_code
        error = f"answered HTTP {status}"
        if status in s.success_status:
            text = response.text
            if s.success_body is not None and not s.success_body.search(text):
                return http_answers.Answer(
                    http_answers.Verdict.REJECTED, error=f"{error}; the body did not match success_body"
                )
            return http_answers.Answer(
                http_answers.Verdict.ACCEPTED, network_id=self._upstream_id(response) or sub.message_id
            )
        if status == 429:
            return http_answers.Answer(
                http_answers.Verdict.THROTTLED, error=error, retry_after=http_answers.retry_after(response)
            )
        if status in s.retry_status:
            return http_answers.Answer(
                http_answers.Verdict.RETRY, error=error, code=status, retry_after=http_answers.retry_after(response)
            )
        if status in (401, 403, 404, 405):
            return http_answers.Answer(http_answers.Verdict.UNHEALTHY, error=f"{error}: check the credentials and url")
        return http_answers.Answer(http_answers.Verdict.REJECTED, error=error, code=status)

    def _upstream_id(self, response: httpx.Response) -> str | None:
        s = self.generic
        if s.id_path is not None:
            found = s.id_path.find(http_answers.json_body(response))
            return str(found) if found not in (None, "") else None
        if s.id_regex is not None:
            m = s.id_regex.search(response.text)
            if m is not None:
                return m.group(1) if m.groups() else m.group(0)
        return None

    def receipts_from(self, call: base.UpstreamCall) -> list[base.Receipt]:
        mapping = self.generic.receipt
        if mapping is None:
            return super().receipts_from(call)
        if mapping.token is not None:
            given = call.query.get("token") or call.headers.get("x-smsgate-token") or ""
            if not hmac.compare_digest(given.encode(), mapping.token.encode()):
                raise errors.AuthError("missing or wrong receipt token")
        params = http_answers.call_params(call)
        network_id = mapping.id.find(params)
        if network_id in (None, ""):
            raise errors.ValidationError("the receipt has no id where the connector's receipt.id says")
        word = str(mapping.status.find(params) or "")
        raw_error = mapping.error.find(params) if mapping.error else None
        code = int(raw_error) if isinstance(raw_error, int | str) and str(raw_error).isdigit() else 0
        return [
            base.Receipt(
                connector=self.name,
                network_id=str(network_id),
                state=mapping.states.get(word.lower(), base.ReceiptState.ENROUTE),
                error_code=code,
                raw=f"status:{word} error:{raw_error}" if raw_error is not None else f"status:{word}",
            )
        ]


def _flat(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else orjson.dumps(value).decode()
