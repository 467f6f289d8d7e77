"""KPN answers built from pre-encoded headers (``kpn._head``) carry the bytes, in the order, that Starlette's
``Response`` writes for the same headers (``standard_headers``), which is what every KPN answer was before."""

from __future__ import annotations

import types
from typing import Any

import pytest
from starlette.requests import Request

from smsgate import limits
from smsgate.api import responses
from smsgate.api.dialects import kpn


def _request(*headers: tuple[bytes, bytes]) -> Request:
    app = types.SimpleNamespace(state=types.SimpleNamespace(cors_origins=("https://ok.example",)))
    return Request({"type": "http", "method": "POST", "path": "/", "headers": list(headers), "app": app})


@pytest.mark.parametrize(
    "quota",
    [
        None,
        limits.QuotaState(limit=2, used=1, interval=1, unit="hour", reset_at=1_764_000_000.0),
        limits.QuotaState(limit=None, used=12345, interval=30, unit="day", reset_at=1_764_086_400.0),
    ],
)
@pytest.mark.parametrize("status", [200, 400, 429])
def test_raw_answer_is_starlettes(quota: limits.QuotaState | None, status: int) -> None:
    body: dict[str, Any] = {"document_id": "ABC", "status": "OK"}
    request = _request()
    fast = kpn.kpn_json(request, status, body, quota)
    assert isinstance(fast, responses.Raw)
    slow = responses.json(body, status, kpn.standard_headers(request, quota))
    assert (fast.status_code, fast.body, fast.raw_headers) == (slow.status_code, slow.body, slow.raw_headers)


def test_origin_and_extra_headers_take_the_general_path() -> None:
    quota = limits.QuotaState(limit=2, used=1, interval=1, unit="hour", reset_at=1_764_000_000.0)
    named = kpn.kpn_json(_request((b"origin", b"https://ok.example")), 200, {}, quota)
    assert (b"access-control-allow-origin", b"https://ok.example") in named.raw_headers
    assert (b"vary", b"Origin") in named.raw_headers
    extra = kpn.kpn_json(_request(), 429, {}, quota, extra={"retry-after": "3"})
    assert extra.raw_headers[-3] == (b"retry-after", b"3")
