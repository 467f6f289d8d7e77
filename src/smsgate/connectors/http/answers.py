"""What an HTTP upstream's answer means, as values: the verdicts, one request's worth of a message, and the
readers every upstream type shares (Retry-After, JSON bodies, the fields of a callback).

``connectors.http.base`` acts on these (retries, the circuit, throttling); each upstream type (``kpn``,
``vonage``, ``kaarai``, ``generic``) produces them from its own wire format.
"""

from __future__ import annotations

import dataclasses
import email.utils
import enum
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from smsgate import errors
from smsgate.connectors import base
from smsgate.core import encoding

NO_RECEIPT = "final: no receipt from upstream"


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    RETRY = "retry"
    THROTTLED = "throttled"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


NOT_SENT = frozenset({Verdict.RETRY, Verdict.THROTTLED, Verdict.UNHEALTHY})


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """What the upstream said about a message (or one of its parts, for an upstream that answers per part)."""

    verdict: Verdict
    network_id: str | None = None
    error: str | None = None
    code: int | None = None
    retry_after: float | None = None
    note: str | None = None


class Refusal(Exception):
    """Raised inside ``exchange`` to answer at once (a KPN token refused, a binary part for a text-only API)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.error)
        self.answer = answer


class NotSent(Exception):
    """Raised inside ``exchange`` when a preliminary call failed (KPN's token): the SMS request never left."""


@dataclasses.dataclass(frozen=True, slots=True)
class Submission:
    """One request's worth: the given parts of one message, joined back into its text (None for binary)."""

    message_id: str
    parts: tuple[base.OutboundPart, ...]
    text: str | None

    @property
    def first(self) -> base.OutboundPart:
        return self.parts[0]

    @property
    def unicode(self) -> bool:
        return self.first.data_coding == 8

    @property
    def binary(self) -> bool:
        return self.text is None


def submissions(parts: Sequence[base.OutboundPart]) -> list[Submission]:
    """Group parts by message (in order); text parts are joined, binary parts stay one per submission."""
    by_message: dict[str, list[base.OutboundPart]] = {}
    for p in parts:
        by_message.setdefault(p.message_id, []).append(p)
    out: list[Submission] = []
    for mid, group in by_message.items():
        group.sort(key=lambda p: p.part_index)
        dc = group[0].data_coding
        if dc in (0, 8) and all(p.data_coding == dc for p in group):
            text = encoding.decode(b"".join(p.payload for p in group), dc)
            out.append(Submission(mid, tuple(group), text))
        else:
            out.extend(Submission(mid, (p,), None) for p in group)
    return out


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), capped at an hour; None when absent or unreadable."""
    raw = response.headers.get("retry-after", "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), 3600.0)


def by_status(response: httpx.Response) -> Verdict | None:
    """The verdict an HTTP status alone decides (429, 408, 5xx), or None when the body must be read."""
    status = response.status_code
    if status == 429:
        return Verdict.THROTTLED
    if status == 408 or status >= 500:
        return Verdict.RETRY
    return None


def json_body(response: httpx.Response) -> Any:
    """The body as JSON, or None when it is not JSON."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def call_params(call: base.UpstreamCall) -> dict[str, Any]:
    """A callback's fields: the query string, then a JSON object body or a form body on top."""
    params: dict[str, Any] = dict(call.query)
    body = call.body.strip()
    if not body:
        return params
    ctype = call.headers.get("content-type", "").lower()
    if "json" in ctype or body[:1] == b"{":
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise errors.ValidationError("the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise errors.ValidationError("the body must be a JSON object")
        params.update(data)
        return params
    try:
        form = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise errors.ValidationError("the body is neither JSON nor a form") from None
    params.update(form)
    return params
