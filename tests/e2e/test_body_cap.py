"""Bodies over the server-wide cap are refused in the route's own error format, whether declared or streamed."""

from __future__ import annotations

from collections.abc import Iterator

from tests.support import GatewayProcess

CAP = 1 << 20


def _stream(total: int) -> Iterator[bytes]:
    for _ in range(total // 65536):
        yield b"x" * 65536


def test_a_streamed_body_past_the_cap_is_a_400_in_our_format(gateway: GatewayProcess, account: dict[str, str]) -> None:
    auth = (account["api_key"], account["api_secret"])
    with gateway.client(auth=auth) as c:
        # chunked: no Content-Length, so the cap trips while FastAPI reads the body for its model
        r = c.put("/v1/account/webhooks", content=_stream(2 * CAP), headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert "too large" in r.text.lower()
        declared = c.put("/v1/account/webhooks", content=b"x" * (CAP + 1), headers={"Content-Type": "application/json"})
        assert declared.status_code == 400 and "too large" in declared.text.lower()
        assert c.get("/v1/account/webhooks").status_code == 200  # and the account is untouched and usable
