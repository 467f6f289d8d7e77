"""``type = "vonage"``: relay to a Vonage account through its native SMS API, ``POST /sms/json`` on ``base_url``.

One request per message (Vonage splits long texts and answers one ``messages[]`` entry, with its own id, per
part: those ids go on our parts one to one), or per part for binary messages (``type=binary`` with ``udh`` and
``body``, so the parts stay exactly as they were cut). Credentials go in the form body as Vonage documents them:
``api_key`` + ``api_secret``, or ``api_key`` + ``timestamp`` + ``sig`` when ``signature_secret`` is set (then no
secret travels at all). ``client-ref`` carries our message id.

Delivery receipts: each request names ``callback`` = ``SMSGATE_PUBLIC_URL/connectors/<name>/receipts`` (unless
``callback = false``, for an account whose dashboard already points there); inbound messages come to
``/connectors/<name>/inbound`` (set it as the number's inbound webhook). With ``signature_secret`` both must be
signed by Vonage (ask Vonage to sign webhooks), and unsigned or forged calls are refused with 401.

    messages[].status                                    verdict
    0                                                    accepted
    1 throttled                                          throttled (the connector rests ``throttle_rest``)
    5 internal error, 10 too many binds, 13 comms        retry
    4 bad credentials, 8 account barred, 9 no credit,    unhealthy: circuit open, operator alerted, the parts
    11 not enabled for HTTP, 32 sig and secret           wait or go to the route's next connector
    14 invalid signature                                 signed again once (fresh timestamp), then unhealthy
    anything else (2, 3, 6, 7, 12, 15, 29, 33...)        rejected
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import urllib.parse
from typing import Any

import httpx

from smsgate import errors
from smsgate.connectors import base
from smsgate.connectors.http import answers as http_answers
from smsgate.connectors.http import base as http_base
from smsgate.connectors.http.settings import HttpSettings, check
from smsgate.core import encoding, signing

SEND_PATH = "/sms/json"
TTL_MS = (20_000, 604_800_000)
RETRY_STATUSES = frozenset({"5", "10", "13"})
UNHEALTHY_STATUSES = frozenset({"4", "8", "9", "11", "32"})
BAD_SIGNATURE = "14"
RECEIPT_STATES = {
    "delivered": base.ReceiptState.DELIVERED,
    "expired": base.ReceiptState.EXPIRED,
    "failed": base.ReceiptState.UNDELIVERABLE,
    "rejected": base.ReceiptState.REJECTED,
    "accepted": base.ReceiptState.ACCEPTED,
    "buffered": base.ReceiptState.ENROUTE,
    "unknown": base.ReceiptState.UNKNOWN,
}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VonageSettings(HttpSettings):
    base_url: str = "https://rest.nexmo.com"
    api_key: str
    api_secret: str | None = dataclasses.field(default=None, repr=False)
    signature_secret: str | None = dataclasses.field(default=None, repr=False)
    signature_method: str = "md5hash"
    callback: bool = True  # ask for receipts at /connectors/<name>/receipts (SMSGATE_PUBLIC_URL)
    throttle_rest: float = 1.0  # seconds the connector rests after status 1 (Vonage sends no Retry-After)

    def __post_init__(self) -> None:
        HttpSettings.__post_init__(self)
        check(self.base_url.startswith(("https://", "http://")), "base_url", "must be an http(s) URL")
        check(bool(self.api_key), "api_key", "must not be empty")
        check(bool(self.api_secret or self.signature_secret), "api_secret", "give api_secret or signature_secret")
        check(self.signature_method in signing.METHODS, "signature_method", f"one of {', '.join(signing.METHODS)}")
        check(self.throttle_rest >= 0, "throttle_rest", "must be >= 0")


class VonageConnector(http_base.HttpConnector):
    TYPE = "vonage"
    takes_binary = True

    def __init__(self, settings: VonageSettings, *, public_url: str | None = None) -> None:
        super().__init__(settings, public_url=public_url)
        self.vonage = settings

    @property
    def where(self) -> str:
        return urllib.parse.urlsplit(self.vonage.base_url).netloc

    # -- sending -------------------------------------------------------------------------------------------------
    async def exchange(self, client: httpx.AsyncClient, sub: http_answers.Submission) -> list[http_answers.Answer]:
        params = self._params(sub)
        url = self.vonage.base_url.rstrip("/") + SEND_PATH
        for signed_again in (False, True):
            response = await client.post(url, data=self._authenticated(params))
            answers = self._answers(response)
            bad_sig = any(a.code == int(BAD_SIGNATURE) for a in answers)
            if not (bad_sig and self.vonage.signature_secret and not signed_again):
                break
        if bad_sig:
            return [
                http_answers.Answer(http_answers.Verdict.UNHEALTHY, error="Vonage refused our signature (14)", code=14)
            ]
        return answers

    def _params(self, sub: http_answers.Submission) -> dict[str, str]:
        p = sub.first
        params = {"from": p.source, "to": p.destination, "client-ref": sub.message_id}
        if sub.text is None:
            params.update(type="binary", body=p.payload.hex(), udh=p.udh.hex())
        else:
            params.update(type="unicode" if sub.unicode else "text", text=sub.text)
        params["status-report-req"] = "true" if p.registered_delivery else "false"
        callback = self.receiver_url("receipts") if self.vonage.callback else None
        if callback and p.registered_delivery:
            params["callback"] = callback
        if p.validity_seconds:
            params["ttl"] = str(min(max(p.validity_seconds * 1000, TTL_MS[0]), TTL_MS[1]))
        if p.message_class is not None:
            params["message-class"] = str(p.message_class)
        if p.protocol_id:
            params["protocol-id"] = str(p.protocol_id)
        return params

    def _authenticated(self, params: dict[str, str]) -> dict[str, str]:
        s = self.vonage
        if s.signature_secret:
            signed = {**params, "api_key": s.api_key, "timestamp": str(int(time.time()))}
            signed["sig"] = signing.vonage_sign(signed, s.signature_secret, s.signature_method)
            return signed
        return {**params, "api_key": s.api_key, "api_secret": s.api_secret or ""}

    def _answers(self, response: httpx.Response) -> list[http_answers.Answer]:
        status = response.status_code
        verdict = http_answers.by_status(response)
        if verdict is not None:
            return [
                http_answers.Answer(
                    verdict, error=f"Vonage answered HTTP {status}", retry_after=http_answers.retry_after(response)
                )
            ]
        if status == 401:
            return [
                http_answers.Answer(http_answers.Verdict.UNHEALTHY, error="Vonage refused the credentials (HTTP 401)")
            ]
        if status in (404, 405):
            return [
                http_answers.Answer(
                    http_answers.Verdict.UNHEALTHY, error=f"Vonage answered HTTP {status}: check base_url"
                )
            ]
        data = http_answers.json_body(response)
        entries = data.get("messages") if isinstance(data, dict) else None
        if status != 200 or not isinstance(entries, list) or not entries:
            # answered, but not in Vonage's shape: whether the SMS went out cannot be told
            return [
                http_answers.Answer(
                    http_answers.Verdict.UNKNOWN, error=f"unreadable answer from Vonage (HTTP {status})"
                )
            ]
        return [self._entry(e) for e in entries if isinstance(e, dict)]

    def _entry(self, entry: dict[str, Any]) -> http_answers.Answer:
        code = str(entry.get("status", ""))
        text = str(entry.get("error-text") or "")
        if code == "0":
            mid = entry.get("message-id")
            return http_answers.Answer(http_answers.Verdict.ACCEPTED, network_id=str(mid) if mid else None)
        error = f"Vonage status {code}: {text}" if text else f"Vonage status {code}"
        number = int(code) if code.isdigit() else None
        if code == "1":
            rest = self.vonage.throttle_rest
            return http_answers.Answer(http_answers.Verdict.THROTTLED, error=error, code=number, retry_after=rest)
        if code in RETRY_STATUSES:
            return http_answers.Answer(http_answers.Verdict.RETRY, error=error, code=number)
        if code in UNHEALTHY_STATUSES:
            return http_answers.Answer(http_answers.Verdict.UNHEALTHY, error=error, code=number)
        return http_answers.Answer(http_answers.Verdict.REJECTED, error=error, code=number)

    # -- callbacks -----------------------------------------------------------------------------------------------
    def _checked(self, call: base.UpstreamCall) -> dict[str, str]:
        """The callback's fields as strings, after the signature check when a signature secret is configured.

        No freshness window on ``timestamp``: Vonage signs a webhook once and sends the same copy again when we
        did not answer, for up to a day."""
        params = {str(k): "" if v is None else str(v) for k, v in http_answers.call_params(call).items()}
        secret_ = self.vonage.signature_secret
        if secret_ and not signing.vonage_verify(params, secret_, self.vonage.signature_method):
            raise errors.AuthError("missing or wrong signature (sig)")
        return params

    def receipts_from(self, call: base.UpstreamCall) -> list[base.Receipt]:
        params = self._checked(call)
        network_id = params.get("messageId") or params.get("message-id")
        if not network_id:
            raise errors.ValidationError("a Vonage receipt carries messageId")
        status = params.get("status", "").lower()
        try:
            code = int(params.get("err-code") or 0)
        except ValueError:
            code = 99
        raw = " ".join(f"{k}:{params[k]}" for k in ("status", "err-code", "scts", "network-code") if params.get(k))
        return [
            base.Receipt(
                connector=self.name,
                network_id=network_id,
                state=RECEIPT_STATES.get(status, base.ReceiptState.UNKNOWN),
                error_code=code,
                done_at=_timestamp(params.get("message-timestamp")),
                raw=raw,
            )
        ]

    def inbound_from(self, call: base.UpstreamCall) -> list[base.InboundPart]:
        params = self._checked(call)
        source, destination = params.get("msisdn", ""), params.get("to", "")
        if not source or not destination:
            raise errors.ValidationError("a Vonage inbound message carries msisdn and to")
        kind = params.get("type", "text").lower()
        udh = b""
        if kind == "binary":
            try:
                payload, udh = bytes.fromhex(params.get("data", "")), bytes.fromhex(params.get("udh", ""))
            except ValueError:
                raise errors.ValidationError("data and udh of a binary message are hex") from None
            data_coding = 4
        else:
            text = params.get("text", "")
            enc = encoding.choose(text, encoding.Encoding.UCS2 if kind == "unicode" else None)
            payload, data_coding = encoding.encode(text, enc), encoding.DATA_CODING[enc]
        concat = params.get("concat", "").lower() == "true"
        return [
            base.InboundPart(
                connector=self.name,
                source=source.lstrip("+"),
                destination=destination.lstrip("+"),
                data_coding=data_coding,
                payload=payload,
                udh=udh,
                sar_ref=_int(params.get("concat-ref")) if concat else None,
                sar_total=_int(params.get("concat-total")) if concat else None,
                sar_seq=_int(params.get("concat-part")) if concat else None,
                network_id=params.get("messageId") or None,
                received_at=_timestamp(params.get("message-timestamp")),
            )
        ]


def _int(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() else None


def _timestamp(raw: str | None) -> dt.datetime | None:
    """Vonage's ``YYYY-MM-DD HH:MM:SS`` (UTC); None when absent or unreadable."""
    if not raw:
        return None
    try:
        return dt.datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
