"""lb.node.admin: the request head parser of the admin listener."""

from __future__ import annotations

import pytest

from lb.node.admin import parse_head


def test_request_line_path_query_and_headers() -> None:
    r = parse_head(
        b"GET /events?token=abc&x=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t\r\n\r\n"
    )
    assert r.method == "GET"
    assert r.path == "/events"
    assert r.query["token"] == ["abc"]
    assert r.headers["authorization"] == "Bearer t"
    assert r.headers["host"] == "h"


@pytest.mark.parametrize(
    "head",
    [
        b"GET\r\n\r\n",
        b"GET / HTTP/2\r\n\r\n",
        b"GET http://x/ HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
        b"GET / HTTP/1.1\r\n Folded: x\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
    ],
)
def test_bad_heads_are_refused(head: bytes) -> None:
    with pytest.raises(ValueError):
        parse_head(head)
