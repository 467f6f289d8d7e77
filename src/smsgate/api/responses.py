"""What every HTTP answer of ours shares: a JSON body, the ``Retry-After`` rule, and the paging cursor.

Dialects keep their own body shapes and headers (``kpn_json``, Kaarai's one body...) and build them with these,
so a rule like "Retry-After is whole seconds, rounded up, at least 1" is written once.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from fastapi.responses import Response

from smsgate import errors


def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``body`` as JSON with exactly ``application/json`` (KPN clients parse JSON only then, reference notes
    §0.1); bytes come out as hex and Decimals as strings."""
    head = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    if any(name in _SET_HERE for name, _ in head):
        return Response(
            orjson.dumps(body, default=_default), status_code=status, headers=headers, media_type="application/json"
        )
    return json_raw(body, status, head)


class Raw(Response):
    """An answer whose header lines are already bytes, in wire order, content-length and content-type included:
    Starlette's ``__init__`` (a dict turned into a list, both headers looked for and added) is skipped, which a
    KPN send paid on every answer; it is sent by ``Response.__call__`` like any other."""

    def __init__(self, body: bytes, status: int, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = raw_headers


_JSON_TYPE = (b"content-type", b"application/json")
_SET_HERE = (b"content-length", b"content-type")  # by ``json_raw``, unless the caller's headers name them


def json_raw(body: Any, status: int, head: list[tuple[bytes, bytes]]) -> Response:
    """``json(body, status, headers)`` for headers already encoded (``head``, lower-case names, taken over): the
    same bytes on the wire, content-length and content-type appended as Starlette appends them."""
    content = orjson.dumps(body, default=_default)
    if status >= 200 and status not in (204, 304):
        head.append((b"content-length", str(len(content)).encode()))
    head.append(_JSON_TYPE)
    return Raw(content, status, head)


def _default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, Decimal):
        return str(obj)
    raise TypeError


def retry_after(seconds: float) -> dict[str, str]:
    """The ``Retry-After`` header for a wait of ``seconds``: whole seconds, rounded up (past a millisecond's
    slack), at least 1."""
    return {"retry-after": str(max(1, int(seconds + 0.999)))}


def cursor(created_at: float, key: str) -> str:
    """An opaque paging cursor: the sort key of the last row a page showed (newest-first lists)."""
    return base64.urlsafe_b64encode(f"{created_at!r}|{key}".encode()).decode().rstrip("=")


T = TypeVar("T")


def page(name: str, rows: Sequence[T], limit: int, render: Callable[[T], Any], key: Callable[[T], str]) -> Response:
    """A list page from the ``limit + 1`` rows a list read (the extra one only says that more follow): the first
    ``limit`` rendered under ``name``, and ``next_cursor``, ``key`` of the last one shown, when more follow."""
    shown = rows[:limit]
    more = len(rows) > limit and shown
    return json({name: [render(r) for r in shown], "next_cursor": key(shown[-1]) if more else None})


def after_cursor(raw: str | None) -> tuple[float, str] | None:
    """The (created_at, key) a ``cursor`` holds; None for none; ValidationError (the dialect's 400) when bad."""
    if not raw:
        return None
    try:
        t, sep, key = base64.urlsafe_b64decode(raw.encode() + b"==").decode().partition("|")
        if not sep:
            raise ValueError(raw)
        return float(t), key
    except (ValueError, UnicodeDecodeError):
        raise errors.ValidationError("bad cursor") from None
