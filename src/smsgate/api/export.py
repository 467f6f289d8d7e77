"""``GET /v1/messages/export``: an account's messages as CSV, for accounting and data requests (GDPR art. 15).

Streamed: rows are read a chunk at a time (``store.exports``) and written out as they come, so an export of any
size costs the gateway constant memory. Text only when asked (``text=true``): the default export carries no
message content. Times are UTC ISO 8601; price in the account's currency with 8 decimals, as everywhere.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from smsgate import errors
from smsgate.api import auth
from smsgate.core import accounts as core_accounts
from smsgate.core import pricing
from smsgate.store import exports as store_exports

router = APIRouter(tags=["Messages"])
HEADER = ["id", "direction", "from", "to", "status", "parts", "price", "created_at", "updated_at"]


def _when(raw: str | None, name: str) -> float | None:
    """Epoch seconds, or an ISO date / time (UTC unless it says otherwise)."""
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise errors.ValidationError(f"{name}: not a date or epoch seconds: {raw[:40]!r}") from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@router.get(
    "/v1/messages/export",
    summary="The account's messages as CSV (streamed), oldest first",
    openapi_extra={"security": [{"kpnOAuth2": []}, {"basicAuth": []}]},
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV, header first"}},
    response_class=StreamingResponse,
)
async def export_messages(
    request: Request,
    account: core_accounts.Account = Depends(auth.any_credentials),
    from_: str | None = Query(None, alias="from", description="created at or after (ISO date/time UTC, or epoch)"),
    to: str | None = Query(None, description="created before (ISO date/time UTC, or epoch)"),
    text: bool = Query(False, description="add the message text as a last column"),
) -> StreamingResponse:
    since, until = _when(from_, "from"), _when(to, "to")
    exports = store_exports.Exports(request.app.state.runtime.engine)

    async def rows() -> AsyncIterator[str]:
        buf = io.StringIO()
        out = csv.writer(buf)
        out.writerow(HEADER + (["text"] if text else []))
        async for chunk in exports.messages(account.id, since, until, text=text):
            for r in chunk:
                price = pricing.format_amount(pricing.from_units(r.price or 0))
                line = [r.id, r.direction, r.sender, r.recipient, r.status, r.parts_count, price,
                        _iso(r.created_at), _iso(r.updated_at)]  # fmt: skip
                out.writerow(line + ([r.text or ""] if text else []))
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
        if buf.tell():
            yield buf.getvalue()

    name = f"messages-{account.api_key}.csv"
    return StreamingResponse(
        rows(), media_type="text/csv; charset=utf-8", headers={"content-disposition": f'attachment; filename="{name}"'}
    )
