"""The direct path's response head (``http_limits._head_lines``) refuses exactly what uvicorn's ``send`` refuses:
its two checks over all names and all values against uvicorn's per-name and per-value checks, on random headers built from
the bytes that matter (separators, CR, LF, tab, other controls)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE

from smsgate.http_limits import _head_lines

_PIECES = [
    b"a",
    b"Z",
    b"-",
    b"0",
    b":",
    b" ",
    b"\r",
    b"\n",
    b"\r\n",
    b"\t",
    b"\x00",
    b"\x7f",
    b"\xe9",
    b"(",
    b'"',
    b": ",
]
_part = st.lists(st.sampled_from(_PIECES), max_size=6).map(b"".join)


@given(st.lists(st.tuples(_part, _part), max_size=4))
def test_refused_exactly_when_uvicorn_refuses(headers: list[tuple[bytes, bytes]]) -> None:
    uvicorn_refuses = any(HEADER_RE.search(name) or HEADER_VALUE_RE.search(value) for name, value in headers)
    if uvicorn_refuses:
        with pytest.raises(RuntimeError):
            _head_lines(headers)
    else:
        block = _head_lines(headers)[0]
        assert block == b"".join(name.lower() + b": " + value + b"\r\n" for name, value in headers)


def test_what_the_head_says_about_the_body_and_the_connection() -> None:
    assert _head_lines([(b"Content-Length", b"12"), (b"content-length", b"99")])[1:] == (12, False, False)
    assert _head_lines([(b"transfer-encoding", b"Chunked"), (b"content-length", b"5")])[1:] == (-1, True, False)
    assert _head_lines([(b"connection", b"keep-alive, Close")])[1:] == (-1, False, True)
    with pytest.raises(RuntimeError):
        _head_lines([(b"x-a", b"b\r\nset-cookie: c")])  # a header smuggled in a value
